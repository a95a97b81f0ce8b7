"""End to end: customer limits (calls per second, channels) shared by every edge of one
Redis, answered (503 with Retry-After, 403) instead of dropped, never leaked.

Each call is placed by SIPp (`call_answered_or_limited`: answered, or refused 503 or 403;
anything else fails it); the channel counts are read from Redis itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from harness import (
    BASE,
    SCENARIOS,
    Edge,
    Gateway,
    RedisServer,
    SippResult,
    free_media_port,
    free_port,
    run_sipp,
    wait_until,
)

pytestmark = pytest.mark.e2e

PBX, TRUNK = "127.0.0.1", "127.0.0.6"
NUMBER = "+3123456789"
USER, PASSWORD = "31000077", "pw-limits"
LEASE_S = 3
LIMITS = {"channel_lease_s": LEASE_S}
CALLER_IDS = {"allow": ["+3120555*"], "default": "+31205550000", "policy": "replace"}


def config() -> dict[str, object]:
    return {
        "acls": {
            "office": {"ips": [f"{PBX}/32"], "caller_ids": CALLER_IDS},
            "trunk": {"accounts": [{"username": USER, "password": PASSWORD,
                                    "caller_ids": CALLER_IDS,
                                    "limits": {"cps": 1000, "channels": 1000}}]},
        },
        "domains": {
            "chan": {"acls": ["office"], "limits": {"channels": 10}},
            "paced": {"acls": ["office"], "limits": {"cps": 20}},
            "odd": {"acls": ["office"], "limits": {"channels": 5}},
            "trunk": {"acls": ["trunk"], "limits": {"cps": 1000, "channels": 1000}},
        },
    }


def in_use(db: redis.Redis, scope: str) -> int:
    """Calls that count against a scope now (members whose lease has not run out)."""
    return int(db.zcount(f"te-test:ch:{scope}", f"({int(time.time() * 1000)}", "+inf"))


def outcomes(r: SippResult) -> dict[str, int]:
    lines = r.log.splitlines()
    return {"answered": sum(ln.startswith("answered=") for ln in lines),
            "403": sum(ln.startswith("refused=403") for ln in lines),
            "503": sum(ln.startswith("refused=503") for ln in lines)}


@pytest.fixture(scope="module")
def edges(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer,
          gateways: dict[str, Gateway]) -> Iterator[tuple[Edge, Edge]]:
    work = tmp_path_factory.mktemp("limits")
    gws = {p: g.uri for p, g in gateways.items()}
    pair = (Edge(work / "a", redis_server.url, gws, limits=LIMITS),
            Edge(work / "b", redis_server.url, gws, limits=LIMITS))
    try:
        for e in pair:
            e.start()
        pair[0].provision(config())
        yield pair
    finally:
        for e in pair:
            e.stop()


def place(edge: Edge, tmp_path: Path, domain: str, **kw: object) -> SippResult:
    return run_sipp("call_answered_or_limited", edge.address, workdir=tmp_path, number=NUMBER,
                    domain=f"{domain}.{BASE}", source=PBX, **kw)  # type: ignore[arg-type]


def test_channels_admit_exactly_the_limit_and_come_back_when_calls_end(
        edges: tuple[Edge, Edge], redis_server: RedisServer, tmp_path: Path) -> None:
    db = redis_server.client()
    for _ in range(5):
        r = place(edges[0], tmp_path, "chan", calls=30, rate=200, hold_ms=1500, timeout=30)
        assert r.ok, r.explain()
        assert outcomes(r) == {"answered": 10, "403": 20, "503": 0}
        wait_until(lambda: db.zcard("te-test:ch:d:chan") == 0, 3, "every channel released")
    assert "reason=over-channels" in edges[0].log()
    assert edges[0].status()["refused"]["over-channels"] >= 100


def test_calls_per_second_are_held_to_the_rate_with_retry_after(
        edges: tuple[Edge, Edge], tmp_path: Path) -> None:
    r = place(edges[0], tmp_path, "paced", calls=1000, rate=100, hold_ms=50, timeout=40)
    assert r.ok, r.explain()  # every 503 carried Retry-After (the scenario checks it)
    got = outcomes(r)
    print(f"cps 20, 100/s offered for 10 s: {got}")
    assert 170 <= got["answered"] <= 235, got  # 20/s for 10 s, and a burst of 5
    assert got["answered"] + got["503"] == 1000


def test_two_edges_share_one_domains_channels(
        edges: tuple[Edge, Edge], redis_server: RedisServer, tmp_path: Path) -> None:
    results: list[SippResult] = []

    def offer(edge: Edge) -> None:
        results.append(place(edge, tmp_path, "chan", calls=15, rate=200, hold_ms=2500,
                             timeout=30))

    threads = [threading.Thread(target=offer, args=(e,)) for e in edges]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.ok for r in results), [r.explain() for r in results]
    split = [outcomes(r)["answered"] for r in results]
    print(f"channels 10, 15 calls to each of two edges: answered {split}")
    assert sum(split) == 10
    wait_until(lambda: redis_server.client().zcard("te-test:ch:d:chan") == 0, 3,
               "every channel released")


def test_a_killed_edges_channels_are_free_within_the_lease(
        edges: tuple[Edge, Edge], redis_server: RedisServer, gateways: dict[str, Gateway],
        tmp_path: Path) -> None:
    db = redis_server.client()
    doomed = Edge(tmp_path / "doomed", redis_server.url,
                  {p: g.uri for p, g in gateways.items()}, limits=LIMITS)
    doomed.start()
    uac = subprocess.Popen(
        ["sipp", "-sf", str(SCENARIOS / "call_answered_or_limited.xml"), doomed.address,
         "-i", PBX, "-p", str(free_port(PBX)), "-mp", str(free_media_port(PBX)),
         "-m", "5", "-r", "50", "-d", "60000", "-s", NUMBER, "-key", "domain", f"odd.{BASE}",
         "-key", "from_user", "pbx", "-key", "from_host", f"odd.{BASE}",
         "-key", "from_display", "", *[a for i in range(4) for a in
                                       ("-key", f"hdr{i + 1}", "X-Pad: 1")],
         "-nostdin", "-timeout", "70s"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: in_use(db, "d:odd") == 5, 10, "5 calls up on the doomed edge")
        assert edges[0].status()["channels"] == {"d:odd": 5}  # every edge's calls
        assert doomed.proc is not None
        for pid in [*doomed.children_pids(), doomed.proc.pid]:
            os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        doomed.proc.wait(5)
        doomed.proc = None
        wait_until(lambda: in_use(db, "d:odd") == 0, LEASE_S + 2, "the dead edge's channels")
        freed = time.monotonic() - killed
        print(f"a SIGKILLed edge's 5 channels were free after {freed:.1f} s "
              f"(lease {LEASE_S} s)")
        assert freed <= LEASE_S + 1
        r = place(edges[0], tmp_path, "odd", calls=5, rate=100, hold_ms=200)
        assert r.ok and outcomes(r)["answered"] == 5, r.explain()
    finally:
        uac.kill()
        uac.wait(5)
        doomed.stop()


@pytest.fixture(scope="module")
def troubled(tmp_path_factory: pytest.TempPathFactory,
             redis_server: RedisServer) -> Iterator[Edge]:
    """An edge whose eu1 gateway answers 486, eu2's rings for ever, us1's is not there."""
    work = tmp_path_factory.mktemp("troubled")
    busy = Gateway("eu1", work, scenario="gateway_busy_486")
    rings = Gateway("eu2", work, scenario="gateway_rings")
    for gw in (busy, rings):
        gw.start()
    edge = Edge(work / "edge", redis_server.url, {
        "eu1": busy.uri, "eu2": rings.uri, "us1": f"sip:127.0.0.1:{free_port()}"},
        limits=LIMITS, routing={"branch_timeout_ms": 500})
    try:
        edge.start()
        yield edge
    finally:
        edge.stop()
        busy.stop()
        rings.stop()


@pytest.mark.parametrize(("host", "scenario", "logged"), [
    (f"odd.eu1.{BASE}", "busy_486_from_gateway", None),
    (f"odd.eu2.{BASE}", "call_cancelled_while_ringing", "cancelled=1"),
    (f"odd.us1.{BASE}", "refused_503_retry_later", None),
], ids=["486-from-the-gateway", "cancelled", "gateway-never-answers"])
def test_calls_that_end_before_an_answer_leak_no_channel(
        edges: tuple[Edge, Edge], troubled: Edge, redis_server: RedisServer, tmp_path: Path,
        host: str, scenario: str, logged: str | None) -> None:
    db = redis_server.client()
    r = run_sipp(scenario, troubled.address, workdir=tmp_path, number=NUMBER, domain=host,
                 source=PBX, calls=5, rate=20, timeout=30)
    assert r.ok, r.explain()
    if logged:
        assert r.log.count(logged) == 5
    wait_until(lambda: db.zcard("te-test:ch:d:odd") == 0, 3, "no channel left held")


def test_one_pbx_within_its_limits_is_never_dropped_by_the_flood_guard(
        redis_server: RedisServer, gateways: dict[str, Gateway], tmp_path: Path,
        edges: tuple[Edge, Edge]) -> None:
    """Default security settings (pike: 200 requests per 2 s per address): a digest PBX
    at 300 calls/s (5 requests a call) is a customer once admitted, governed by its
    limits, not by the flood guard."""
    edge = Edge(tmp_path / "defaults", redis_server.url,
                {p: g.uri for p, g in gateways.items()}, security={}, limits=LIMITS)
    edge.start()
    try:
        r = run_sipp("call_answered_after_challenge", edge.address, workdir=tmp_path,
                     number=NUMBER, domain=f"trunk.{BASE}", from_user=USER, source=TRUNK,
                     auth=(USER, PASSWORD), calls=3000, rate=300, hold_ms=100, timeout=40)
        assert r.ok, r.explain()  # 0 failed, 0 dropped (a drop times out a call)
        assert edge.status()["dropped"].get("flood", 0) == 0
    finally:
        edge.stop()
