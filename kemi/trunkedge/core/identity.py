"""Caller identity at the border of the trusted realm (RFC 3325, RFC 3323). Pure.

The customer is outside the trusted realm, the POP gateways inside. The edge never
trusts a P-Asserted-Identity (or Remote-Party-ID) from a customer: it removes them and
asserts the identity itself, from P-Preferred-Identity if present, else from the From
URI, when that number is one of the account's (or ACL's) verified caller IDs. Otherwise
the call is refused, or asserted with the default caller ID (policy `reject` / `replace`).

The result is data (headers to remove and to add); the adapter applies it. No value the
customer sent is copied into a header: the asserted number is rebuilt from digits, and
Privacy keeps only the RFC 3323 tokens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from trunkedge.core.names import is_e164
from trunkedge.core.reasons import Reason

POLICIES = ("reject", "replace")
PRIVACY_TOKENS = ("header", "session", "user", "id", "critical")
HIDE_IDENTITY = frozenset({"id", "header", "user"})
"""Privacy values that ask for the caller's identity to be withheld from the far end."""

REMOVED = ("P-Asserted-Identity", "P-Preferred-Identity", "Remote-Party-ID")
"""Identity headers a customer may send and the edge never passes on as they came."""

_SEPARATORS = re.compile(r"[\s().-]")
_URI_IN_BRACKETS = re.compile(r"<([^<>]*)>")
_PATTERN = re.compile(r"\+[0-9]{1,15}\*|\+[0-9]{8,15}")


@dataclass(frozen=True)
class CallerIds:
    """The caller IDs an account or ACL may present, and what happens otherwise."""

    allow: tuple[str, ...] = ()  # "+31201234567" (exact) or "+3120123*" (prefix)
    default: str | None = None
    policy: str = "reject"

    @property
    def configured(self) -> bool:
        return bool(self.allow or self.default)

    def allows(self, number: str) -> bool:
        return any(number.startswith(p[:-1]) if p.endswith("*") else number == p
                   for p in self.allow)


NO_CALLER_IDS = CallerIds()


@dataclass(frozen=True)
class IdentityFacts:
    """What the customer's request says about who calls, and who was authenticated."""

    from_uri: str
    preferred: str | None  # P-Preferred-Identity value, if any
    privacy: str | None  # Privacy value, if any
    account: str | None = None  # the authenticated username (None: admitted by address)


@dataclass(frozen=True)
class IdentityEdits:
    """Header edits before the relay, and whether privacy applies to the dialog."""

    remove: tuple[str, ...]
    add: tuple[str, ...]  # whole header lines, without CRLF
    asserted: str  # the number asserted, +E.164
    private: bool


@dataclass(frozen=True)
class IdentityRefused:
    reason: Reason


def is_pattern(text: str) -> bool:
    return _PATTERN.fullmatch(text) is not None


def normalize_number(text: str) -> str | None:
    """A presented number as +E.164: visual separators dropped, "00" read as "+",
    digits without a prefix taken as international. None if it is not a number."""
    n = _SEPARATORS.sub("", text)
    if n.startswith("00"):
        n = "+" + n[2:]
    elif not n.startswith("+"):
        n = "+" + n
    return n if is_e164(n) else None


def uri_number(value: str) -> str | None:
    """The number in a name-addr or URI: user part of sip:/sips:, subscriber of tel:."""
    m = _URI_IN_BRACKETS.search(value)
    uri = (m.group(1) if m else value).strip()
    scheme, _, rest = uri.partition(":")
    scheme = scheme.lower()
    if scheme in ("sip", "sips"):
        if "@" not in rest:
            return None
        user = rest.split("@", 1)[0].split(";", 1)[0]
    elif scheme == "tel":
        user = rest.split(";", 1)[0]
    else:
        return None
    return normalize_number(user)


WITHHELD_USERS = frozenset({"anonymous", "restricted", "unavailable", "unknown", "private",
                            "withheld"})
"""From users that PBXs write for a withheld number: each asks for privacy, like RFC 3323's
sip:anonymous@anonymous.invalid (§4.1.1.3)."""
ANONYMOUS_HOST = "anonymous.invalid"


def uri_user_host(uri: str) -> tuple[str, str] | None:
    """(user, host) of a sip:/sips: URI or name-addr, lower-cased; None if it has no user."""
    m = _URI_IN_BRACKETS.search(uri)
    scheme, _, rest = (m.group(1) if m else uri).strip().partition(":")
    if scheme.lower() not in ("sip", "sips") or "@" not in rest:
        return None
    user, _, host = rest.split(";", 1)[0].rpartition("@")
    return user.split(":", 1)[0].lower(), host.split(":", 1)[0].split(">", 1)[0].lower()


def is_anonymous(from_uri: str) -> bool:
    """A From that withholds the caller: user `anonymous` on any host, host
    `anonymous.invalid` (RFC 3323 §4.1.1.3), or one of WITHHELD_USERS (any case)."""
    parts = uri_user_host(from_uri)
    return parts is not None and (parts[0] in WITHHELD_USERS or parts[1] == ANONYMOUS_HOST)


def privacy_values(value: str | None) -> tuple[str, ...]:
    """The RFC 3323 tokens of a Privacy header (unknown ones dropped), in order."""
    if not value:
        return ()
    tokens = [t.strip().lower() for t in re.split(r"[;,]", value)]
    if "none" in tokens:
        return ("none",)
    return tuple(dict.fromkeys(t for t in tokens if t in PRIVACY_TOKENS))


def settle(
    facts: IdentityFacts, ids: CallerIds, base_domain: str
) -> IdentityEdits | IdentityRefused:
    """Decide the asserted identity and privacy of an admitted call (RFC 3325 §9.1).

    The presented number is P-Preferred-Identity's, else the From user's. An authenticated
    account whose From user is its own username, or who calls anonymously, presents no
    number: it gets its default caller ID, whatever the policy (that number is its own).
    """
    anonymous = is_anonymous(facts.from_uri)
    requested = privacy_values(facts.privacy)
    private = anonymous or bool(HIDE_IDENTITY.intersection(requested))
    asserted = _asserted(facts, ids, anonymous)
    if isinstance(asserted, IdentityRefused):
        return asserted

    remove = list(REMOVED)
    add = [f"P-Asserted-Identity: <sip:{asserted}@{base_domain};user=phone>"]
    if private or facts.privacy is not None:
        remove.append("Privacy")  # rewritten from its valid tokens only
        values = requested
        if private:
            values = tuple(v for v in requested if v != "none")
            values += () if "id" in values else ("id",)
        if values:
            add.append("Privacy: " + ";".join(values))
    return IdentityEdits(tuple(remove), tuple(add), asserted, private)


def _asserted(facts: IdentityFacts, ids: CallerIds, anonymous: bool) -> str | IdentityRefused:
    """The number to assert, or why there is none."""
    if facts.preferred is not None:
        presented = uri_number(facts.preferred)
    elif anonymous or _is_own_username(facts):
        if facts.account is not None:
            return ids.default or IdentityRefused(Reason.NO_DEFAULT_CALLER_ID)
        presented = None
    else:
        presented = uri_number(facts.from_uri)
    if presented is not None and ids.allows(presented):
        return presented
    if ids.policy == "replace" and ids.default:
        return ids.default
    return IdentityRefused(Reason.CALLER_ID_NOT_ALLOWED if presented or not anonymous
                           else Reason.ANONYMOUS_WITHOUT_IDENTITY)


def _is_own_username(facts: IdentityFacts) -> bool:
    """The From user is the authenticated account's username: no presentation attempt."""
    parts = uri_user_host(facts.from_uri)
    return facts.account is not None and parts is not None and \
        parts[0] == facts.account.lower()


def parse_caller_ids(allow: Sequence[str], default: str | None, policy: str) -> CallerIds:
    """From stored fields (already validated by provisioning)."""
    return CallerIds(tuple(a for a in allow if a), default or None,
                     policy if policy in POLICIES else "reject")
