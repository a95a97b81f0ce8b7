"""End to end: the edge fails closed while Redis is down or wedged, and recovers by itself.

These tests stop and freeze Redis, so they get a Redis and an edge of their own.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import BASE, Edge, Gateway, RedisServer, run_sipp, sip_request, status_of

pytestmark = pytest.mark.e2e

PBX = "127.0.0.1"
USER, PASSWORD = "31000000", "pw"
CONFIG = {
    "acls": {
        "office": {"ips": [f"{PBX}/32"], "caller_ids": {"default": "+31200000000",
                                                        "policy": "replace"}},
        "roaming": {"accounts": [{"username": USER, "password": PASSWORD}]},
    },
    "domains": {"acme": {"acls": ["office", "roaming"]}},
}


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory,
           gateways: dict[str, Gateway]) -> Iterator[tuple[RedisServer, Edge]]:
    work = tmp_path_factory.mktemp("outage")
    server = RedisServer(work / "redis")
    edge = Edge(work / "edge", server.url, {p: g.uri for p, g in gateways.items()})
    try:
        server.start()
        edge.start()
        edge.provision(CONFIG)
        yield server, edge
    finally:
        edge.stop()
        if server.proc:
            server.resume()
        server.stop(save=False)


def recovery_time(edge: Edge, limit: float = 3.0, in_a_row: int = 5) -> float:
    """Seconds until the edge reads Redis again (it probes Redis again after its circuit
    breaker's pause): `in_a_row` probes answered without 503. Each probe names a domain
    no worker has cached, so it needs Redis (a warm cache would answer without it); the
    domain does not exist, so the probe is refused 403 once Redis answers."""
    started = time.monotonic()
    good = 0
    while time.monotonic() - started < limit:
        domain = f"probe{uuid.uuid4().hex[:12]}.{BASE}"
        reply = sip_request((edge.host, edge.port), "INVITE", f"sip:+3123456789@{domain}",
                            source="127.0.0.9", timeout=0.5)
        good = good + 1 if status_of(reply) not in (None, 503) else 0
        if good >= in_a_row:
            return time.monotonic() - started
        time.sleep(0.02)
    return limit


def ip_call(edge: Edge, tmp_path: Path, scenario: str):  # type: ignore[no-untyped-def]
    return run_sipp(scenario, edge.address, workdir=tmp_path, number="+3123456789",
                    domain=f"acme.{BASE}", source=PBX)


def test_redis_stopped_gives_503_then_service_resumes(
    outage: tuple[RedisServer, Edge], tmp_path: Path
) -> None:
    server, edge = outage
    assert ip_call(edge, tmp_path, "call_answered").ok

    server.stop(save=True)
    try:
        refused = ip_call(edge, tmp_path, "refused_503_retry_later")
        assert refused.ok, refused.explain()  # 503 carrying Retry-After
        digest = run_sipp("refused_503_retry_later", edge.address, workdir=tmp_path,
                          number="+3123456789", domain=f"acme.{BASE}", source="127.0.0.2",
                          from_user=USER, auth=(USER, PASSWORD))
        assert digest.ok, digest.explain()  # nobody is let in unauthenticated
    finally:
        server.start()

    assert recovery_time(edge) < 1.5
    again = ip_call(edge, tmp_path, "call_answered")
    assert again.ok, again.explain()
    assert "reason=store-unavailable" in edge.log()


def test_wedged_redis_gives_503_within_the_timeout(
    outage: tuple[RedisServer, Edge], tmp_path: Path
) -> None:
    server, edge = outage
    server.pause()
    # The watcher notices within its heartbeat plus the Redis timeout (0.1 + 0.1 s); until
    # then the workers' warm caches still answer, as the watcher last vouched for them.
    time.sleep(0.3)
    try:
        refused = ip_call(edge, tmp_path, "refused_503_retry_later")
        assert refused.ok, refused.explain()
        # The Redis timeout is 100 ms: the 503 comes before a UAC's first retransmission
        # (T1 = 500 ms), so no worker is tied up waiting on Redis.
        started = time.monotonic()
        reply = sip_request((edge.host, edge.port), "INVITE", f"sip:+3123456789@acme.{BASE}",
                            source=PBX, timeout=0.5)
        elapsed = time.monotonic() - started
        assert status_of(reply) == 503, reply
        assert "Retry-After: 7" in (reply or "")
        assert elapsed < 0.5
    finally:
        server.resume()
    assert recovery_time(edge) < 1.5
    again = ip_call(edge, tmp_path, "call_answered")
    assert again.ok, again.explain()


def test_outage_under_load_admits_nobody_and_hangs_no_call(
    outage: tuple[RedisServer, Edge], tmp_path: Path
) -> None:
    """50 calls/s for 25 s; Redis is stopped from 5 s to 15 s. Every call gets a final
    answer: 200 (dialogs already up keep working) or 503 with Retry-After; none hangs."""
    server, edge = outage
    results = []
    load = threading.Thread(target=lambda: results.append(run_sipp(
        "call_answered_or_refused_503", edge.address, workdir=tmp_path, number="+3123456789",
        domain=f"acme.{BASE}", source=PBX, calls=1250, rate=50, hold_ms=1000, timeout=90)))
    load.start()
    time.sleep(5)
    server.stop(save=True)
    stopped = time.monotonic()
    time.sleep(10)
    server.start()
    restarted = time.monotonic()
    load.join(120)
    (r,) = results
    answered = sum(ln.startswith("answered=") for ln in r.log.splitlines())
    refused = sum(ln.startswith("refused=503") for ln in r.log.splitlines())
    report = (f"calls=1250 answered={answered} refused_503={refused} "
              f"hung_or_failed={1250 - answered - refused} "
              f"outage={restarted - stopped:.1f}s")
    print(report)
    (tmp_path.parent / "redis-outage-load.txt").write_text(report + "\n")
    assert r.ok, r.explain()  # no failed or hung call at the UAC
    assert answered + refused == 1250, report
    assert refused >= 400, report  # ~10 s at 50 calls/s were refused, none admitted
    assert answered >= 600, report


def test_edge_started_without_redis_fails_closed_then_serves(
    tmp_path: Path, gateways: dict[str, Gateway]
) -> None:
    """Kamailio starts even when Redis is not there yet: 503 until it is, then calls."""
    server = RedisServer(tmp_path / "redis")
    edge = Edge(tmp_path / "edge", server.url, {p: g.uri for p, g in gateways.items()})
    try:
        edge.start()
        reply = sip_request((edge.host, edge.port), "INVITE", f"sip:+3123456789@acme.{BASE}",
                            source=PBX, timeout=1.0)
        assert status_of(reply) == 503, reply
        server.start()
        edge.provision(CONFIG)
        assert recovery_time(edge) < 1.5
        assert ip_call(edge, tmp_path, "call_answered").ok
    finally:
        edge.stop()
        server.stop(save=False)
