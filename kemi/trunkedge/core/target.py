"""Which customer domain and POP a Request-URI host names."""

from __future__ import annotations

from dataclasses import dataclass

from trunkedge.core.names import is_domain_name


@dataclass(frozen=True)
class Target:
    """`<domain>.sip.<base>` (pop None: the default form) or `<domain>.<pop>.sip.<base>`."""

    domain: str
    pop: str | None


def parse_target(host: str, base_domain: str, pops: frozenset[str] | set[str]) -> Target | None:
    """Return the target a host names, or None if the host is not one of ours.

    `base_domain` is the whole suffix (e.g. `sip.example.net`); pinned forms insert a
    known POP label before it. Host comparison is case-insensitive; a trailing dot is allowed.
    """
    h = host.lower().rstrip(".")
    suffix = "." + base_domain.lower()
    if not h.endswith(suffix):
        return None
    labels = h[: -len(suffix)].split(".")
    if len(labels) == 1:
        name, pop = labels[0], None
    elif len(labels) == 2 and labels[1] in pops:
        name, pop = labels
    else:
        return None
    if not is_domain_name(name):
        return None
    return Target(domain=name, pop=pop)
