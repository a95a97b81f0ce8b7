"""The edge's Prometheus series: names, kinds and labels, defined once (the runner
declares them to Kamailio's xhttp_prom, the adapter updates them, docs/metrics.md lists
them). Pure.

Label values come from bounded sets only (methods, reasons, POPs, configured gateways):
never a domain, account or address, so 100 000 customers do not mean 100 000 series.
"""

from __future__ import annotations

from dataclasses import dataclass

from trunkedge.core.methods import ALLOW


@dataclass(frozen=True)
class Series:
    name: str
    kind: str  # "counter" | "gauge"
    labels: tuple[str, ...]
    help: str
    copied: bool = False
    """Its values are copied from Kamailio's statistics at each scrape: xhttp_prom holds it
    as a gauge (set, never added), Prometheus users read a counter."""

    @property
    def xhttp_prom_kind(self) -> str:
        return "gauge" if self.copied else self.kind


REQUESTS = Series("trunkedge_requests_total", "counter", ("method",),
                  "SIP requests received, by method (unknown methods: other)", copied=True)
ADMITTED = Series("trunkedge_calls_admitted_total", "counter", ("pop",),
                  "calls admitted, by the POP tried first")
REFUSED = Series("trunkedge_refusals_total", "counter", ("reason",),
                 "requests refused, by reason (every reason the edge logs)")
DROPPED = Series("trunkedge_requests_dropped_total", "counter", ("why",),
                 "requests dropped without an answer: scanner, flood, banned")
CHALLENGES = Series("trunkedge_challenges_total", "counter", (),
                    "407 digest challenges sent")
AUTH_FAILURES = Series("trunkedge_auth_failures_total", "counter", (),
                       "failed authentications (they count towards a ban)")
BANS_CREATED = Series("trunkedge_bans_created_total", "counter", (),
                      "addresses this edge banned for brute force")
BANS_ACTIVE = Series("trunkedge_bans_active", "gauge", (),
                     "addresses banned now (this edge's copy of every edge's bans)")
CALLS_IN_PROGRESS = Series("trunkedge_calls_in_progress", "gauge", (),
                           "admitted calls not yet ended on this edge (dialogs)")
FAILOVERS = Series("trunkedge_failovers_total", "counter", ("pop",),
                   "calls moved on from a failed gateway, by the POP that failed")
GATEWAY_UP = Series("trunkedge_gateway_up", "gauge", ("pop", "gateway"),
                    "1 while a gateway answers its keepalives, 0 while it is skipped")
REDIS_ROUND_TRIPS = Series("trunkedge_redis_round_trips_total", "counter", (),
                           "Redis round trips on the call path (workers)")
REDIS_ERRORS = Series("trunkedge_redis_errors_total", "counter", (),
                      "Redis round trips that failed or timed out")
BREAKER_OPEN = Series("trunkedge_redis_breaker_open", "gauge", (),
                      "1 while the Redis circuit breaker answers 503 at once")
CACHE_LOOKUPS = Series("trunkedge_cache_lookups_total", "counter", ("result",),
                       "customer lookups: hit (no round trip) or miss")

ALL = (REQUESTS, ADMITTED, REFUSED, DROPPED, CHALLENGES, AUTH_FAILURES, BANS_CREATED,
       BANS_ACTIVE, CALLS_IN_PROGRESS, FAILOVERS, GATEWAY_UP, REDIS_ROUND_TRIPS, REDIS_ERRORS,
       BREAKER_OPEN, CACHE_LOOKUPS)

KNOWN_METHODS = frozenset({*(m.strip() for m in ALLOW.split(",")), "REGISTER", "SUBSCRIBE",
                           "NOTIFY", "MESSAGE", "PUBLISH", "REFER"})


def core_statistic(method: str) -> str:
    """Kamailio's own count of received requests of a known method (kex core statistics:
    every method of KNOWN_METHODS has one), read as $stat(...)."""
    return f"rcv_requests_{method.lower()}"


def method_label(method: str) -> str:
    """A request method as a label value: a known one, else "other" (bounded)."""
    return method if method in KNOWN_METHODS else "other"


def xhttp_prom_declaration(series: Series) -> str:
    """The series as xhttp_prom's `prom_counter`/`prom_gauge` parameter value."""
    labels = f" label={':'.join(series.labels)};" if series.labels else ""
    return f"name={series.name};{labels}"
