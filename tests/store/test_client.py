"""store.client with Redis Sentinel (real redis-server and redis-sentinel): `connect` reaches
the master the sentinels name, and after a failover the new one; the watcher follows a
failover by itself; the runner learns which sentinels answer. (The old master rejoining as
a replica: tests/e2e/test_sentinel.py.)"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
from test_watcher import Board

from sentinels import MASTER_NAME, SentinelCluster, sentinel_cluster
from trunkedge.settings import RedisSettings
from trunkedge.store.client import connect, sentinels_answering_first
from trunkedge.store.watcher import Watcher


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelCluster]:
    with sentinel_cluster(tmp_path_factory.mktemp("store-sentinel")) as c:
        yield c


def settings(cluster: SentinelCluster) -> RedisSettings:
    return RedisSettings(sentinels=tuple(cluster.addresses), master_name=MASTER_NAME,
                         prefix="client-test:", timeout_ms=200)


def port_of(client: object) -> int:
    return int(client.info("server")["tcp_port"])  # type: ignore[attr-defined]


def test_connect_reaches_the_master_the_sentinels_name(cluster: SentinelCluster) -> None:
    client = connect(settings(cluster))
    assert client.info("replication")["role"] == "master"
    assert port_of(client) == cluster.master.port
    client.set("client-test:k", "v")
    assert connect(settings(cluster), timeout_s=5).get("client-test:k") == b"v"


def test_sentinels_that_answer_come_first(cluster: SentinelCluster) -> None:
    first = cluster.sentinels[0]
    assert sentinels_answering_first(settings(cluster)) == tuple(cluster.addresses)
    first.stop(signal.SIGKILL)
    try:
        assert sentinels_answering_first(settings(cluster)) == (
            *cluster.addresses[1:], cluster.addresses[0])
    finally:
        first.start()
    cluster.wait_settled()


def test_the_watcher_and_connect_follow_a_failover(cluster: SentinelCluster) -> None:
    board = Board()
    watcher = Watcher(settings(cluster), board)
    watcher.run_for(0.3)
    assert board.version is not None
    old = cluster.kill_master()
    watcher.run_for(0.3)
    assert board.version is None  # nothing vouched for while no master answers
    cluster.wait_promotion(old.port)
    promoted = time.monotonic()
    while board.version is None and time.monotonic() - promoted < 2:
        watcher.run_for(0.1)
    assert board.version is not None, "the watcher did not follow the promotion"
    assert port_of(watcher.client) == cluster.replica.port
    assert port_of(connect(settings(cluster))) == cluster.replica.port

