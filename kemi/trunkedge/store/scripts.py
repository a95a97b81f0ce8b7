"""The Lua scripts the edge runs in Redis (`lua/*.lua`, shipped in the package).

A script that builds key names from the prefix gets them as Lua functions rendered from
`schema.KEY_TEMPLATES` (`key_ban(p, ip)` is `p .. 'ban:' .. ip`), so the key layout is
defined once, in Python, for Python and Lua alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources

from trunkedge.store.schema import KEY_TEMPLATES

KEY_FUNCTIONS_MARK = "--!key-functions"


@dataclass(frozen=True)
class Script:
    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


def key_functions() -> str:
    """One Lua function per key template: `local function key_<kind>(p, x) ... end`."""
    lines = []
    for kind, template in KEY_TEMPLATES.items():
        head, hole, tail = template.partition("{}")
        parts = ["p", _lua_string(head)] + (["x"] if hole else []) + \
            ([_lua_string(tail)] if tail else [])
        params = "p, x" if hole else "p"
        lines.append(f"local function key_{kind}({params}) return {' .. '.join(parts)} end")
    return "\n".join(lines)


def _lua_string(text: str) -> str:
    assert "'" not in text and "\\" not in text
    return f"'{text}'"


def load(name: str) -> Script:
    """A script from the package, with the key functions where it marks them."""
    text = resources.files(__package__).joinpath("lua", f"{name}.lua").read_text()
    return Script(name, text.replace(KEY_FUNCTIONS_MARK, key_functions()))


EDGE = load("edge")  # the per-call lookup (domain, account, ban) when not cached
COMMIT = load("commit")  # an admitted call's ban check, nonce claim and limits
FAILURE = load("failure")  # a failed authentication, and the ban it may cause
RELEASE = load("release")  # a call ended: its channels are free
REFRESH = load("refresh")  # the watcher: this edge's calls are still up
CDR_PUBLISH = load("cdr_publish")  # the watcher: spooled call records to the stream
SCRIPTS = (EDGE, COMMIT, FAILURE, RELEASE, REFRESH)
