"""End to end with Redis Sentinel: a master, a replica and three sentinels (Debian's
redis-server and redis-sentinel), an edge and the CLI that know only the sentinels.

The master is SIGKILLed under 50 calls/s: every call is answered 200 or refused 503 with
Retry-After (none hung, nobody admitted unauthenticated), and calls are admitted again
within 2 s of the sentinels promoting the replica, through the edge's ndb_redis (the domain
has limits, so every admitted call runs a script on the master) and its watcher. The CLI
provisions the new master; the old one, restarted, becomes a replica and nothing breaks;
a failover while the edge's preferred sentinel is dead is followed too.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from harness import BASE, Edge, Gateway, SippResult, run_sipp, sip_request, status_of
from sentinels import MASTER_NAME, SentinelCluster, sentinel_cluster
from trunkedge.store.schema import Keys

pytestmark = pytest.mark.e2e

PBX, STRANGER = "127.0.0.1", "127.0.0.3"  # listed in the IP ACL / listed nowhere
USER, PASSWORD = "31000055", "pw-sentinel"
NUMBER = "+3123456789"
CONFIG = {
    "acls": {
        "office": {"ips": [f"{PBX}/32"], "caller_ids": {"default": "+31200000000",
                                                        "policy": "replace"}},
        "roaming": {"accounts": [{"username": USER, "password": PASSWORD}]},
    },
    # limits: every admitted call takes them in the one script it runs on the master
    "domains": {"acme": {"acls": ["office", "roaming"], "limits": {"cps": 1000}}},
}
RATE, CALLS, KILL_AT_S = 50, 1000, 5.0
PROMOTED_TO_ADMITTED_S = 2.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelCluster]:
    with sentinel_cluster(tmp_path_factory.mktemp("sentinel")) as c:
        yield c


@pytest.fixture(scope="module")
def edge(cluster: SentinelCluster, gateways: dict[str, Gateway],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    e = Edge(tmp_path_factory.mktemp("sentinel-edge"), "", {p: g.uri for p, g in gateways.items()},
             redis={"sentinels": cluster.addresses, "master_name": MASTER_NAME})  # no URL
    try:
        e.start()
        e.provision(CONFIG)  # the CLI, through the sentinels
        yield e
    finally:
        e.stop()


def master_client(cluster: SentinelCluster) -> redis.Redis:
    named = cluster.named_master()
    assert named is not None
    return redis.Redis(*named, socket_timeout=2)


def evalsha_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))


def timeline(log: str) -> list[tuple[float, bool]]:
    """(wall-clock time, answered) of each call, from the scenario's `at=` timestamps."""
    events = []
    for line in log.splitlines():
        if line.startswith(("answered=", "refused=503")) and " at=" in line:
            epoch = float(line.rsplit(" at=", 1)[1].split("\t")[-1])
            events.append((epoch, line.startswith("answered=")))
    return sorted(events)


def call(edge: Edge, tmp_path: Path, calls: int = 1) -> SippResult:
    """`calls` IP calls to acme (20 a second), each to be answered."""
    return run_sipp("call_answered", edge.address, workdir=tmp_path, number=NUMBER,
                    domain=f"acme.{BASE}", source=PBX, calls=calls, rate=20)


class Stranger(threading.Thread):
    """INVITEs without credentials from an address no ACL lists, one per 50 ms, to a domain
    that also has an accounts ACL: each must be challenged (407) or refused (503), never let in."""

    def __init__(self, edge: Edge) -> None:
        super().__init__(daemon=True)
        self.edge, self.codes, self.stopping = edge, [], threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            reply = sip_request((self.edge.host, self.edge.port), "INVITE",
                                f"sip:{NUMBER}@acme.{BASE}", source=STRANGER, timeout=1.0)
            self.codes.append(status_of(reply))
            time.sleep(0.05)


def failover_under_load(cluster: SentinelCluster, edge: Edge, tmp_path: Path, label: str,
                        calls: int = CALLS, kill_at_s: float = KILL_AT_S) -> None:
    """SIGKILL the master `kill_at_s` into `calls` calls at RATE/s (and a Stranger's probes);
    print and keep the timings (from SIPp's timestamps), and check that every call got 200
    or 503 with Retry-After, the stranger 407 or 503, and that 200s came back and 503s
    stopped within 2 s of the promotion."""
    old = cluster.named_master()
    assert old is not None
    held = cluster.sentinel_connections_held()
    results = []
    load = threading.Thread(target=lambda: results.append(run_sipp(
        "call_answered_or_refused_503", edge.address, workdir=tmp_path, number=NUMBER,
        domain=f"acme.{BASE}", source=PBX, calls=calls, rate=RATE, timeout=90)))
    stranger = Stranger(edge)
    load.start()
    stranger.start()
    time.sleep(kill_at_s)
    killed = time.time()
    cluster.kill_master()
    promoted = cluster.wait_promotion(old[1])
    load.join(120)
    stranger.stopping.set()
    stranger.join(5)

    (r,) = results
    events = timeline(r.log)
    answered = sum(ok for _, ok in events)
    first_refusal = min(t for t, ok in events if not ok)
    last_before = max(t for t, ok in events if ok and t < first_refusal)
    first_after = min(t for t, ok in events if ok and t > promoted)
    last_refusal = max(t for t, ok in events if not ok)
    report = (f"{label}: calls={calls} rate={RATE}/s answered={answered} "
              f"refused_503={len(events) - answered} hung_or_failed={calls - len(events)}; "
              f"master killed at +0.00 s, promoted +{promoted - killed:.2f} s; last 200 before "
              f"{last_before - killed:+.2f} s, first 503 {first_refusal - killed:+.2f} s, "
              f"last 503 {last_refusal - killed:+.2f} s, first 200 after "
              f"{first_after - killed:+.2f} s: gap {first_after - last_before:.2f} s, "
              f"{first_after - promoted:.2f} s after the promotion; stranger probes "
              f"{len(stranger.codes)}: {sorted(set(map(str, stranger.codes)))}; sentinel "
              f"connections left open by ndb_redis {held} -> {cluster.sentinel_connections_held()}")
    print(report)
    with (tmp_path.parent / "sentinel-failover.txt").open("a") as f:
        f.write(report + "\n")
    assert r.ok, r.explain()  # every call answered 200 or 503 + Retry-After, none hung
    assert len(events) == calls, report
    assert answered < calls, report  # there was an outage, and it was refused, not admitted
    assert first_after - promoted <= PROMOTED_TO_ADMITTED_S, report
    assert last_refusal - promoted <= PROMOTED_TO_ADMITTED_S, report
    assert stranger.codes and set(stranger.codes) <= {407, 503}, report


def test_master_killed_under_load_fails_closed_and_calls_resume_within_2s(
        cluster: SentinelCluster, edge: Edge, tmp_path: Path) -> None:
    scripts_run = evalsha_calls(master_client(cluster))
    assert call(edge, tmp_path).ok
    assert evalsha_calls(master_client(cluster)) > scripts_run  # on the master, no sentinel
    failover_under_load(cluster, edge, tmp_path, "sentinel failover")
    assert evalsha_calls(master_client(cluster)) > 0  # the edge's scripts ran on the new one


def test_the_cli_provisions_the_new_master(cluster: SentinelCluster, edge: Edge,
                                           tmp_path: Path) -> None:
    created = edge.cli("domain", "create", "beta")
    assert created.returncode == 0, created.stderr
    assert master_client(cluster).exists(Keys("te-test:").domain("beta"))
    attached = edge.cli("domain", "attach", "beta", "office")
    assert attached.returncode == 0, attached.stderr
    beta = run_sipp("call_answered", edge.address, workdir=tmp_path, number=NUMBER,
                    domain=f"beta.{BASE}", source=PBX)
    assert beta.ok, beta.explain()


def test_the_old_master_restarted_joins_as_a_replica(cluster: SentinelCluster, edge: Edge,
                                                      tmp_path: Path) -> None:
    old = next(n for n in (cluster.master, cluster.replica) if n.proc is None)
    old.start()  # as a master of nothing, until a sentinel makes it a replica
    cluster.wait_settled()
    assert SentinelCluster.link_up(old)
    before = evalsha_calls(old.client())
    r = call(edge, tmp_path, calls=20)
    assert r.ok, r.explain()
    assert evalsha_calls(old.client()) == before  # the edge uses the master only
    created = edge.cli("domain", "create", "gamma")  # confirmed on the replica (WAIT)
    assert created.returncode == 0 and "warning" not in created.stderr, created.stderr
    assert old.client().exists(Keys("te-test:").domain("gamma"))


def test_a_failover_with_the_edges_first_sentinel_dead_is_followed(
        cluster: SentinelCluster, edge: Edge, tmp_path: Path) -> None:
    """Each worker's first ndb_redis server asks the first sentinel (every sentinel answered
    when the edge started: the settings' order); with that one dead, a worker hands over
    to the next server, which asks another."""
    first = cluster.sentinels[0]
    first.stop(signal.SIGKILL)
    try:
        failover_under_load(cluster, edge, tmp_path, "sentinel failover, first sentinel dead",
                            calls=500, kill_at_s=3.0)
    finally:
        first.start()
