"""What the edge counts, in one place: each event updates this edge's htable counters
(`trunkedge status`, core.counters) and, when metrics are on, its Prometheus series
(core.metrics, served by xhttp_prom). The series' labels are bounded; the htable's
per-ACL admissions are for the operator's status only."""

from __future__ import annotations

import KSR

from trunkedge.core import counters, metrics
from trunkedge.core.reasons import Drop, Reason
from trunkedge.kamailio import symbols


def count(*names: str) -> None:
    """Increment counters (core.counters names) in this edge's shared memory."""
    for name in names:
        KSR.htable.sht_inc(symbols.HT_METRICS, name)


class Prometheus:
    """xhttp_prom's counters and gauges (a no-op while metrics are off: the module is
    loaded only with metrics.listen)."""

    on = False

    @classmethod
    def inc(cls, series: metrics.Series, *labels: str) -> None:
        if not cls.on:
            return
        p = KSR.xhttp_prom
        if not labels:
            p.counter_inc_l0(series.name, 1)
        elif len(labels) == 1:
            p.counter_inc_l1(series.name, 1, labels[0])
        else:
            p.counter_inc_l2(series.name, 1, labels[0], labels[1])

    @classmethod
    def set(cls, series: metrics.Series, value: int, *labels: str) -> None:
        if not cls.on:
            return
        p = KSR.xhttp_prom
        if not labels:
            p.gauge_set_l0(series.name, str(value))
        elif len(labels) == 1:
            p.gauge_set_l1(series.name, str(value), labels[0])
        else:
            p.gauge_set_l2(series.name, str(value), labels[0], labels[1])


OTHER = "other"


def request(method: str) -> None:
    """Every request. Kamailio counts those of known methods itself (kex statistics,
    copied at each scrape: requests_at_scrape); the others are counted here."""
    if Prometheus.on and method not in metrics.KNOWN_METHODS:
        count(counters.OTHER_REQUESTS)


def requests_at_scrape() -> None:
    """trunkedge_requests_total from Kamailio's own counts (set, not added: a scrape on
    another worker at the same time cannot count anything twice)."""
    for method in metrics.KNOWN_METHODS:
        Prometheus.set(metrics.REQUESTS, statistic(metrics.core_statistic(method)), method)
    other = KSR.htable.sht_get(symbols.HT_METRICS, counters.OTHER_REQUESTS)
    Prometheus.set(metrics.REQUESTS, int(other or 0), OTHER)


def statistic(name: str) -> int:
    """One of Kamailio's statistics ($stat), 0 when it has none of that name."""
    value = KSR.pv.get(f"$stat({name})")
    return int(value) if value else 0


def dropped(why: Drop) -> None:
    count(counters.dropped(why))
    Prometheus.inc(metrics.DROPPED, why.value)


def refused(reason: Reason) -> None:
    count(counters.refused(reason))
    Prometheus.inc(metrics.REFUSED, reason.value)


def admitted(acl: str, pop: str, gateway: str) -> None:
    count(counters.admitted(acl), counters.sent(pop), counters.sent(pop, gateway))
    Prometheus.inc(metrics.ADMITTED, pop)


def failed_over(pop: str, gateway: str, next_pop: str | None, next_gateway: str) -> None:
    count(counters.failover(pop), counters.failover(pop, gateway))
    Prometheus.inc(metrics.FAILOVERS, pop)
    if next_pop is not None:
        count(counters.sent(next_pop), counters.sent(next_pop, next_gateway))


def challenged() -> None:
    Prometheus.inc(metrics.CHALLENGES)


def auth_failed() -> None:
    Prometheus.inc(metrics.AUTH_FAILURES)


def banned() -> None:
    count(counters.BANNED)
    Prometheus.inc(metrics.BANS_CREATED)


def gateway_state(pop: str, gateway: str, up: bool) -> None:
    Prometheus.set(metrics.GATEWAY_UP, int(up), pop, gateway)


def redis_round_trip(ok: bool) -> None:
    Prometheus.inc(metrics.REDIS_ROUND_TRIPS)
    if not ok:
        Prometheus.inc(metrics.REDIS_ERRORS)


def breaker(open_: bool) -> None:
    Prometheus.set(metrics.BREAKER_OPEN, int(open_))


def cache_lookup(hit: bool) -> None:
    Prometheus.inc(metrics.CACHE_LOOKUPS, "hit" if hit else "miss")


def gauges(calls_in_progress: int, bans_active: int) -> None:
    """The watcher's periodic gauges."""
    Prometheus.set(metrics.CALLS_IN_PROGRESS, calls_in_progress)
    Prometheus.set(metrics.BANS_ACTIVE, bans_active)
