"""End to end: `trunkedge run` whatever Python the caller's environment names, and the
secret that edges sharing a Redis, with no `auth.secret`, agree on through that Redis."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import (
    BASE,
    Edge,
    Gateway,
    RedisServer,
    SipCall,
    authorization,
    challenges,
    free_port,
    sip_request,
    status_of,
)

pytestmark = pytest.mark.e2e

STDLIB = f"python{sys.version_info.major}.{sys.version_info.minor}"  # Debian's, in the venv
PREFIX = "te-test:"  # harness.Edge's redis.prefix
NUMBER, USER, PASSWORD = "+3123456789", "31000077", "pw-77"
RURI = f"sip:{NUMBER}@shared.{BASE}"


def fake_installation(root: Path) -> Path:
    """A `python3` whose prefix holds a standard library of the same version as Debian's
    that cannot even be imported: an interpreter that takes it dies at start."""
    (root / "bin").mkdir(parents=True)
    python3 = root / "bin" / "python3"
    python3.write_text("#!/bin/sh\nexit 1\n")
    python3.chmod(0o755)
    (root / "lib" / STDLIB).mkdir(parents=True)
    (root / "lib" / STDLIB / "os.py").write_text('raise ImportError("not Debian\'s os")\n')
    return root / "bin"


def pyenv_bin() -> Path | None:
    """The bin folder of a pyenv Python of Debian's minor version (the reported case)."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found = sorted(root.glob(f"versions/{sys.version_info.major}.{sys.version_info.minor}.*"
                             "/bin/python3"))
    return found[-1].parent if found else None


def python_dirs(kind: str, tmp_path: Path) -> Path:
    if kind == "fake":
        return fake_installation(tmp_path / "fakepy")
    found = pyenv_bin()
    if found is None:
        pytest.skip(f"no pyenv Python {STDLIB} here")
    return found


@pytest.mark.parametrize("kind", ["fake", "pyenv"], ids=["fake-python3", "pyenv-python3"])
def test_edge_starts_with_another_python3_first_on_path(
    kind: str, tmp_path: Path, redis_server: RedisServer, gateways: dict[str, Gateway],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kamailio's embedded interpreter finds its prefix from `python3` on PATH: another
    installation's standard library there must not be taken. (PYTHONHOME cannot be made
    bogus here: it would stop `trunkedge` itself, the venv's Python; a unit test covers it.)"""
    bogus = tmp_path / "bogus"
    bogus.mkdir()
    edge = Edge(tmp_path / "edge", redis_server.url, {p: g.uri for p, g in gateways.items()})
    with monkeypatch.context() as env:  # what `edge.start()` runs `trunkedge run` with
        env.setenv("PATH", f"{python_dirs(kind, tmp_path)}:{os.environ['PATH']}")
        env.setenv("PYTHONPATH", str(bogus))
        env.setenv("PYTHONUSERBASE", str(bogus))
        try:
            edge.start()  # returns once the edge answers OPTIONS 200
            reply = sip_request((edge.host, edge.port), "OPTIONS", f"sip:{edge.address}")
            assert status_of(reply) == 200, reply
        finally:
            edge.stop()
    assert "Fatal Python error" not in edge.log() and "ImportError" not in edge.log()


def test_edge_without_a_secret_or_redis_exits_naming_auth_secret(
    tmp_path: Path, gateways: dict[str, Gateway]
) -> None:
    """No `auth.secret` and no Redis to agree on one with: refuse to start (exit 2)."""
    edge = Edge(tmp_path / "edge", f"redis://127.0.0.1:{free_port()}/0",
                {p: g.uri for p, g in gateways.items()}, auth={"secret": ""})
    with pytest.raises(RuntimeError, match="auth.secret"):
        edge.start()
    assert edge.proc is not None and edge.proc.returncode == 2, edge.log()
    assert not (edge.rundir / "kamailio.cfg").exists()


@pytest.fixture
def unconfigured_pair(tmp_path: Path, redis_server: RedisServer,
                      gateways: dict[str, Gateway]) -> Iterator[tuple[Edge, Edge]]:
    """Edges A and B on one Redis, neither with a secret of its own; no secret in Redis yet."""
    redis_server.client().delete(PREFIX + "secret")
    gws = {p: g.uri for p, g in gateways.items()}
    edges = [Edge(tmp_path / name, redis_server.url, gws, auth={"secret": ""})
             for name in ("a", "b")]
    try:
        for e in edges:
            e.start()
        edges[0].provision({
            "acls": {"shared-roaming": {
                "accounts": [{"username": USER, "password": PASSWORD}],
                "caller_ids": {"default": "+31200000000", "policy": "replace"}}},
            "domains": {"shared": {"acls": ["shared-roaming"]}},
        })
        yield edges[0], edges[1]
    finally:
        for e in edges:
            e.stop()
        redis_server.client().delete(PREFIX + "secret")


def test_edges_without_a_secret_admit_each_others_challenges(
    unconfigured_pair: tuple[Edge, Edge], redis_server: RedisServer
) -> None:
    """A challenge from A answered to B (and the reverse) is admitted: both edges use the
    one secret the first of them created in Redis."""
    a, b = unconfigured_pair
    for challenger, answerer in ((a, b), (b, a)):
        asked = SipCall((challenger.host, challenger.port), RURI, "127.0.6.1", USER)
        (offer,) = challenges(asked.invite())
        asked.close()
        call = SipCall((answerer.host, answerer.port), RURI, "127.0.6.1", USER)
        reply = call.invite([authorization(offer, USER, PASSWORD, "INVITE", RURI)])
        assert status_of(reply) == 200, reply
        assert status_of(call.bye()) == 200
    secret = redis_server.client().get(PREFIX + "secret")
    assert secret is not None and re.fullmatch(rb"[0-9a-f]{32}", secret)
    assert "(created it)" in a.log() and "(using it)" in b.log()
    for e in (a, b):
        assert "wrong-credentials" not in e.log()
        assert status_of(sip_request((e.host, e.port), "OPTIONS", f"sip:{e.address}")) == 200
