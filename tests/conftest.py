"""Shared fixtures: real redis-server, SIPp gateways and the edge, started once per session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import POPS, Edge, Gateway, RedisServer


def _require(binary: str) -> None:
    if shutil.which(binary) is None:
        pytest.fail(f"{binary} is not installed: run scripts/setup.sh")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("trunkedge")


@pytest.fixture(scope="session")
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    _require("redis-server")
    server = RedisServer(workdir / "redis")
    server.start()
    yield server
    server.stop(save=False)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own (to stop, pause or restart), stopped after it."""
    _require("redis-server")
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    if server.proc is not None:
        server.resume()  # a test that paused it (SIGSTOP) and failed before resuming
    server.stop(save=False)


@pytest.fixture(scope="session")
def gateways(workdir: Path) -> Iterator[dict[str, Gateway]]:
    _require("sipp")
    gws = {pop: Gateway(pop, workdir / "gateways") for pop in POPS}
    try:
        for gw in gws.values():
            gw.start()
        yield gws
    finally:
        for gw in gws.values():
            gw.stop()


@pytest.fixture(scope="session")
def edge(workdir: Path, redis_server: RedisServer, gateways: dict[str, Gateway]) -> Iterator[Edge]:
    _require("kamailio")
    e = Edge(workdir / "edge", redis_server.url, {p: g.uri for p, g in gateways.items()})
    e.extra_listen = (f"udp:[::1]:{e.port}",)
    try:
        e.start()
        yield e
    finally:
        e.stop()
