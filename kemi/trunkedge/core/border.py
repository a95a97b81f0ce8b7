"""What a customer's request loses at the border of the trusted realm. Pure.

The edge alone chooses where a call goes and what the trusted realm is told: a customer's
Route set is not followed into it (RFC 3261 §16.4: a Route naming the edge is consumed,
and the edge takes no other from a customer), its credentials stay at the edge, and the
trusted realm's own headers (identity, charging) are never taken from it (RFC 3325 §5).
"""

from __future__ import annotations

from collections.abc import Sequence

from trunkedge.core.identity import REMOVED

CREDENTIAL_HEADERS = ("Proxy-Authorization", "Authorization")
ASSERTED = "P-Asserted-Identity"
ROUTE = "Route"


def removed_in_dialog(internal: Sequence[str]) -> tuple[str, ...]:
    """Headers removed from every request of the customer inside a dialog: identity,
    credentials and the trusted realm's internal headers (`internal`)."""
    return tuple(dict.fromkeys((*REMOVED, *CREDENTIAL_HEADERS, *internal)))


def removed_initially(internal: Sequence[str]) -> tuple[str, ...]:
    """... and from an initial request: also the customer's Route set (the edge routes
    it to a POP itself)."""
    return (ROUTE, *removed_in_dialog(internal))


def removed_from_replies(internal: Sequence[str], private: bool) -> tuple[str, ...]:
    """Headers a reply on its way to the customer loses: the trusted realm's internal ones
    and, in a dialog whose caller asked for privacy, the asserted identity (RFC 3325 §7)."""
    return (*((ASSERTED,) if private else ()), *internal)
