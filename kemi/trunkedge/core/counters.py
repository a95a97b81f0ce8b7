"""The names of the edge's counters: written by the adapter (htable `te_metrics`), read
by `trunkedge status` (rpc). Defined here once so writer and reader cannot drift. Pure."""

from __future__ import annotations

from trunkedge.core.reasons import Drop, Reason

ADMITTED = "admitted:"  # admitted:<acl>
REFUSED = "refused:"  # refused:<reason>
DROPPED = "dropped:"  # dropped:<why>
SENT = "sent:"  # sent:<pop> and sent:<pop>:<gateway>
FAILOVER = "failover:"  # failover:<pop> and failover:<pop>:<gateway>
BANNED = "banned"  # addresses this edge banned
OTHER_REQUESTS = "requests:other"  # requests of a method Kamailio counts under no name


def admitted(acl: str) -> str:
    return f"{ADMITTED}{acl}"


def refused(reason: Reason) -> str:
    return f"{REFUSED}{reason.value}"


def dropped(why: Drop) -> str:
    return f"{DROPPED}{why.value}"


def sent(pop: str, gateway: str | None = None) -> str:
    return f"{SENT}{pop}" if gateway is None else f"{SENT}{pop}:{gateway}"


def failover(pop: str, gateway: str | None = None) -> str:
    return f"{FAILOVER}{pop}" if gateway is None else f"{FAILOVER}{pop}:{gateway}"


def group(metrics: dict[str, int], prefix: str) -> dict[str, int]:
    """The counters under one prefix, by what follows it, sorted."""
    return {k[len(prefix):]: v for k, v in sorted(metrics.items()) if k.startswith(prefix)}
