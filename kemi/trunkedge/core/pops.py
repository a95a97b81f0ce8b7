"""Points of Presence: regions, the order in which a call tries them, dispatcher sets.

Pure: no KSR, no I/O. The adapter hands `attempt_order` to Kamailio's dispatcher as one
`ds_select_routes` rule list, so failover walks the POPs in exactly this order.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

POP_NAMES = ("eu1", "eu2", "us1", "us2", "apac1", "apac2")
REGIONS: dict[str, tuple[str, ...]] = {
    "eu": ("eu1", "eu2"),
    "us": ("us1", "us2"),
    "apac": ("apac1", "apac2"),
}
REGION_OF = {pop: region for region, pops in REGIONS.items() for pop in pops}
SET_ID = {pop: i for i, pop in enumerate(POP_NAMES, start=1)}
"""Dispatcher set id of each POP (stable: the order of POP_NAMES)."""
POP_OF_SET = {i: pop for pop, i in SET_ID.items()}

ALG_PRIORITY = 8  # dispatcher: serial, ordered by the gateways' priority
ALG_WEIGHT = 9  # dispatcher: weight-based distribution


@dataclass(frozen=True)
class Gateway:
    uri: str
    priority: int = 0
    weight: int | None = None


def region_pops(pop: str) -> tuple[str, ...]:
    """The POP first, then the other POP(s) of its region."""
    siblings = REGIONS[REGION_OF[pop]]
    return (pop, *(p for p in siblings if p != pop))


def attempt_order(
    pinned: str | None,
    domain_pop: str | None,
    default_pop: str,
    region_order: Sequence[str],
    configured: Mapping[str, object],
) -> tuple[str, ...]:
    """POPs a call tries, in order (only POPs that have gateways configured).

    Pinned form (`<name>.<pop>.sip.<base>`): that POP, then the other POP of its region,
    never another region. Default form: the domain's provisioned POP (else the edge's
    default POP) and its region first, then the other regions in `region_order`.
    """
    if pinned is not None:
        order = region_pops(pinned)
    else:
        first = domain_pop or default_pop
        order = region_pops(first)
        for region in region_order:
            order += tuple(p for p in REGIONS[region] if p not in order)
    return tuple(p for p in order if p in configured)


@dataclass(frozen=True)
class PopPlan:
    """The edge's routing settings that attempt_order needs."""

    default_pop: str
    region_order: tuple[str, ...]
    configured: frozenset[str]

    def order(self, pinned: str | None, domain_pop: str | None) -> tuple[str, ...]:
        return _order(self, pinned, domain_pop)


@functools.lru_cache(maxsize=256)
def _order(plan: PopPlan, pinned: str | None, domain_pop: str | None) -> tuple[str, ...]:
    """A handful of (pinned, provisioned) pairs per edge: each computed once."""
    return attempt_order(pinned, domain_pop, plan.default_pop, plan.region_order,
                         dict.fromkeys(plan.configured))


def dispatcher_rules(order: Sequence[str], gateways: Mapping[str, Sequence[Gateway]]) -> str:
    """The `ds_select_routes` rules for an attempt order: "1=8;2=8;3=9"."""
    return ";".join(
        f"{SET_ID[pop]}={ALG_WEIGHT if any(g.weight for g in gateways[pop]) else ALG_PRIORITY}"
        for pop in order
    )


def dispatcher_list(gateways: Mapping[str, Sequence[Gateway]]) -> str:
    """Kamailio's dispatcher list file: `setid uri flags priority attrs`, one set per POP.

    Flag 8 puts every gateway in probing mode from the start (OPTIONS keepalives).
    """
    lines = ["# Rendered by trunkedge from the settings' pops; one set per POP."]
    for pop in POP_NAMES:
        for gw in gateways.get(pop, ()):
            attrs = f"pop={pop}" + (f";weight={gw.weight}" if gw.weight else "")
            lines.append(f"{SET_ID[pop]} {gw.uri} 8 {gw.priority} {attrs}")
    return "\n".join(lines) + "\n"


FAILOVER_CODES = frozenset({408, 477, 500, 502, 503, 504})
"""Local failures: no answer (408), transport error (477), server errors. Anything else
(404, 486, 603, ...) is the far end's definitive answer and goes back to the customer."""


def should_fail_over(code: int) -> bool:
    return code in FAILOVER_CODES


def gateway_unreachable(code: int, replied: bool) -> bool:
    """A gateway that sent nothing at all, or could not be sent to, is marked down."""
    return code == 477 or (code == 408 and not replied)
