"""`trunkedge run`: several edges side by side; SIGTERM and SIGINT stop every process."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from harness import Edge, Gateway, RedisServer, proc_stat

pytestmark = pytest.mark.e2e


def alive(pid: int) -> bool:
    fields = proc_stat(pid)
    return fields is not None and fields[0] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_second_edge_runs_beside_the_first_and_stops_cleanly(
    edge: Edge, redis_server: RedisServer, gateways: dict[str, Gateway], tmp_path: Path,
    sig: int,
) -> None:
    second = Edge(tmp_path / "edge2", redis_server.url, {p: g.uri for p, g in gateways.items()})
    second.start()
    assert second.port != edge.port
    processes = second.children_pids()
    assert len(processes) >= 5  # workers, timers, ctl, ...
    assert second.ready() and edge.ready()

    assert second.stop(sig) == 0
    assert [pid for pid in processes if alive(pid)] == []
    assert edge.ready()  # the first edge is untouched
