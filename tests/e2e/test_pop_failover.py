"""End to end: regional dispatch, health probing and failover across the POPs.

A dedicated edge with its own SIPp gateways (each names itself in X-Gateway, so every test
proves where a call landed). apac1's gateway answers 503 and apac2's answers 486, to show
which answers fail over and which go back to the customer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import (
    BASE,
    POPS,
    Edge,
    Gateway,
    RedisServer,
    SipCall,
    run_sipp,
    status_of,
    wait_until,
)

pytestmark = pytest.mark.e2e

PBX = "127.0.0.1"
NUMBER = "+3123456789"
OFFICE = {"ips": [f"{PBX}/32"],
          "caller_ids": {"default": "+31200000000", "policy": "replace"}}
ROUTING = {"probe_interval_s": 1, "probe_timeout_ms": 1000, "branch_timeout_ms": 1000}


class Pops:
    def __init__(self, edge: Edge, gateways: dict[str, Gateway]) -> None:
        self.edge = edge
        self.gw = gateways

    def call(self, tmp_path: Path, host: str, scenario: str = "call_answered", **kw):  # type: ignore[no-untyped-def]
        return run_sipp(scenario, self.edge.address, workdir=tmp_path, number=NUMBER,
                        domain=host, source=PBX, **kw)

    def kill(self, *pops: str) -> None:
        for pop in pops:
            self.gw[pop].kill()

    def wait_state(self, pop: str, state: str, timeout: float = 10, uri: str = "") -> None:
        uri = uri or self.gw[pop].uri
        wait_until(lambda: self.edge.gateway_states().get(uri) == state, timeout,
                   f"{pop} ({uri}) to become {state}", interval=0.2)

    def restore(self) -> None:
        """Restart every killed gateway and wait until the edge probes it active again."""
        for gw in self.gw.values():
            if gw.proc is None:
                gw.start()
        for pop in self.gw:
            self.wait_state(pop, "active")

    def sent(self) -> dict[str, int]:
        return {pop: body["sent"] for pop, body in self.edge.status()["pops"].items()}


@pytest.fixture(scope="module")
def pops(tmp_path_factory: pytest.TempPathFactory,
         redis_server: RedisServer) -> Iterator[Pops]:
    work = tmp_path_factory.mktemp("pops")
    special = {"apac1": "gateway_unavailable_503", "apac2": "gateway_busy_486"}
    gws = {p: Gateway(p, work / "gw", scenario=special.get(p, "gateway_answers")) for p in POPS}
    edge = Edge(work / "edge", redis_server.url, {p: g.uri for p, g in gws.items()},
                routing=dict(ROUTING))
    try:
        for gw in gws.values():
            gw.start()
        edge.start()
        p = Pops(edge, gws)
        p.restore()
        yield p
    finally:
        edge.stop()
        for gw in gws.values():
            gw.stop()


@pytest.fixture
def fresh(pops: Pops) -> Iterator[Pops]:
    pops.edge.provision({"acls": {"office": OFFICE},
                         "domains": {"acme": {"acls": ["office"]},
                                     "globex": {"acls": ["office"], "pop": "us2"}}})
    yield pops
    pops.restore()


def test_default_form_lands_on_eu1(fresh: Pops, tmp_path: Path) -> None:
    r = fresh.call(tmp_path, f"acme.{BASE}")
    assert r.ok, r.explain()
    assert r.landed == ["eu1"]


def test_domain_with_a_provisioned_pop_lands_there(fresh: Pops, tmp_path: Path) -> None:
    r = fresh.call(tmp_path, f"globex.{BASE}")
    assert r.ok, r.explain()
    assert r.landed == ["us2"]
    assert fresh.edge.cli("domain", "set-pop", "globex", "default").returncode == 0
    r = fresh.call(tmp_path, f"globex.{BASE}")
    assert r.landed == ["eu1"], r.explain()


def test_eu1_down_lands_on_eu2_within_one_branch_timeout(fresh: Pops, tmp_path: Path) -> None:
    fresh.kill("eu1")  # not yet noticed by the probes: the call itself finds out
    started = time.monotonic()
    r = fresh.call(tmp_path, f"acme.{BASE}", hold_ms=0)
    elapsed = time.monotonic() - started
    assert r.ok, r.explain()
    assert r.landed == ["eu2"]
    assert elapsed < ROUTING["branch_timeout_ms"] / 1000 + 1.0, elapsed
    fresh.wait_state("eu1", "inactive")
    started = time.monotonic()
    r = fresh.call(tmp_path, f"acme.{BASE}", hold_ms=0)
    assert r.landed == ["eu2"], r.explain()
    assert time.monotonic() - started < 0.9  # skipped at once: no branch timeout paid


def test_all_eu_down_lands_on_us1(fresh: Pops, tmp_path: Path) -> None:
    fresh.kill("eu1", "eu2")
    fresh.wait_state("eu1", "inactive")
    fresh.wait_state("eu2", "inactive")
    r = fresh.call(tmp_path, f"acme.{BASE}")
    assert r.ok, r.explain()
    assert r.landed == ["us1"]
    log = fresh.edge.log()
    for pop in ("eu1", "eu2"):  # dispatcher's event reaches the script and is logged
        assert f"trunkedge: gateway down {fresh.gw[pop].uri}" in log
    assert "TypeError" not in log


def test_pinned_us1_down_lands_on_us2(fresh: Pops, tmp_path: Path) -> None:
    fresh.kill("us1")
    r = fresh.call(tmp_path, f"acme.us1.{BASE}")
    assert r.ok, r.explain()
    assert r.landed == ["us2"]


def test_pinned_us1_with_the_us_down_gets_503_and_never_leaves_the_region(
    fresh: Pops, tmp_path: Path
) -> None:
    before = fresh.sent()
    fresh.kill("us1", "us2")
    r = fresh.call(tmp_path, f"acme.us1.{BASE}", scenario="refused_503_retry_later")
    assert r.ok, r.explain()
    after = fresh.sent()
    for pop in ("eu1", "eu2", "apac1", "apac2"):
        assert after.get(pop, 0) == before.get(pop, 0), (pop, before, after)


def test_busy_gateway_486_goes_back_without_retry(fresh: Pops, tmp_path: Path) -> None:
    before = fresh.edge.status()["pops"]
    r = fresh.call(tmp_path, f"acme.apac2.{BASE}", scenario="busy_486_from_gateway")
    assert r.ok, r.explain()
    assert r.landed == ["apac2"]
    after = fresh.edge.status()["pops"]
    assert after["apac2"]["sent"] == before["apac2"]["sent"] + 1
    assert after["apac1"]["sent"] == before["apac1"]["sent"]  # apac2's sibling not tried
    assert after["apac2"]["failovers"] == before["apac2"]["failovers"]


def test_503_fails_over_to_the_sibling_pop(fresh: Pops, tmp_path: Path) -> None:
    before = fresh.edge.status()["pops"]
    busy_before = len(spooled(fresh.edge, "486"))
    r = fresh.call(tmp_path, f"acme.apac1.{BASE}", scenario="busy_486_from_gateway")
    assert r.ok, r.explain()
    assert r.landed == ["apac2"]  # apac1 answered 503, apac2 486: the customer gets 486
    after = fresh.edge.status()["pops"]
    assert after["apac1"]["failovers"] == before["apac1"]["failovers"] + 1
    # its record names the gateway that took the call, once, and the failover
    wait_until(lambda: len(spooled(fresh.edge, "486")) > busy_before, 5, "the call's record")
    line = spooled(fresh.edge, "486")[-1]
    record = json.loads(line)
    assert (record["pop"], record["gateway"], record["failovers"], record["hangup"]) == \
        ("apac2", fresh.gw["apac2"].uri, "1", "callee")
    assert line.count('"pop":') == 1 and line.count('"gateway":') == 1


def spooled(edge: Edge, status: str) -> list[str]:
    """The spooled records of calls with this final status, oldest first, as written."""
    return [ln for path in sorted(edge.spool_dir.glob("*.jsonl"))
            for ln in path.read_text().splitlines() if f'"status":"{status}"' in ln]


def test_status_shows_states_and_counters(fresh: Pops, tmp_path: Path) -> None:
    assert fresh.call(tmp_path, f"acme.{BASE}").ok
    status = fresh.edge.status()
    assert list(status["pops"]) == list(POPS)
    (eu1,) = status["pops"]["eu1"]["gateways"]
    assert eu1 == {"uri": fresh.gw["eu1"].uri, "state": "active", "probing": True,
                   "sent": status["pops"]["eu1"]["sent"], "failovers": eu1["failovers"]}
    assert eu1["sent"] >= 1 and status["admitted"]["office"] >= 1


def test_gateways_reload_without_restart(fresh: Pops, tmp_path: Path) -> None:
    import yaml

    spare = Gateway("eu1-spare", tmp_path)
    spare.start()
    settings_file = fresh.edge.settings_path
    original = settings_file.read_text()
    try:
        settings = yaml.safe_load(original)
        settings["pops"]["eu1"] = [{"uri": spare.uri, "priority": 10},
                                   {"uri": fresh.gw["eu1"].uri, "priority": 1}]
        settings_file.write_text(yaml.safe_dump(settings))
        out = fresh.edge.cli("reload-gateways", "--rundir", str(fresh.edge.rundir))
        assert out.returncode == 0, out.stderr
        fresh.wait_state("eu1", "active", uri=spare.uri)
        r = fresh.call(tmp_path, f"acme.{BASE}")
        assert r.landed == ["eu1-spare"], r.explain()
    finally:
        settings_file.write_text(original)
        time.sleep(1.1)  # dispatcher's reload_delta
        assert fresh.edge.cli("reload-gateways", "--rundir", str(fresh.edge.rundir)).returncode == 0
        spare.stop()
    assert fresh.call(tmp_path, f"acme.{BASE}").landed == ["eu1"]


class LogWatcher(threading.Thread):
    """Timestamps the edge's admission lines as they are written (for failover timing)."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.stop_flag = path, threading.Event()
        self.lines: list[tuple[float, str]] = []

    def run(self) -> None:
        with self.path.open(errors="replace") as f:
            f.seek(0, 2)
            while not self.stop_flag.is_set():
                line = f.readline()
                if not line:
                    time.sleep(0.01)
                elif "trunkedge: admitted" in line:
                    self.lines.append((time.monotonic(), line))


def test_killing_eu1_under_load_loses_no_call(fresh: Pops, tmp_path: Path) -> None:
    """50 calls/s for 30 s, calls of 3 s; eu1's gateway dies after 10 s."""
    watcher = LogWatcher(fresh.edge.log_path)
    watcher.start()
    results = []
    load = threading.Thread(target=lambda: results.append(fresh.call(
        tmp_path, f"acme.{BASE}", scenario="call_answered_or_dialog_lost", calls=1500, rate=50,
        hold_ms=3000, timeout=90, extra=["-l", "400"])))
    load.start()
    time.sleep(10)
    killed_at = time.monotonic()
    fresh.kill("eu1")
    load.join(120)
    watcher.stop_flag.set()
    (r,) = results
    lost = [ln for ln in r.log.splitlines() if ln.startswith("lost=")]
    landed = r.landed
    eu2_direct = [t for t, ln in watcher.lines if t > killed_at and " first=eu2 " in ln]
    report = (f"calls={len(landed)} landed_eu1={landed.count('eu1')} "
              f"landed_eu2={landed.count('eu2')} lost_dialogs_on_eu1={len(lost)} "
              f"first_direct_eu2_after={eu2_direct[0] - killed_at:.2f}s" if eu2_direct else "")
    print(report)
    (tmp_path.parent / "failover-load.txt").write_text(report + "\n")
    assert r.ok, r.explain()  # no failed call at the UAC
    assert eu2_direct and eu2_direct[0] - killed_at < 3.0, report
    assert all(gw == "eu1" for gw in [ln.split("=", 1)[1].split()[0] for ln in lost])


def test_internal_headers_never_reach_the_customer(
    pops: Pops, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Gateways send P-Charging-Vector; the customer's UAC fails the call if it sees it.
    An edge configured to strip nothing proves that the UAC's check does fail."""
    pops.edge.provision({"acls": {"office": OFFICE}, "domains": {"acme": {"acls": ["office"]}}})
    assert pops.call(tmp_path, f"acme.{BASE}").ok
    leaky = Edge(tmp_path / "leaky", redis_server.url, {"eu1": pops.gw["eu1"].uri},
                 routing={"strip_reply_headers": []})
    leaky.start()
    try:
        r = run_sipp("call_answered", leaky.address, workdir=tmp_path, number=NUMBER,
                     domain=f"acme.{BASE}", source=PBX)
        assert not r.ok and "Regexp matched but should not" in r.errors, r.explain()
    finally:
        leaky.stop()


def test_no_gateway_address_reaches_the_customer(fresh: Pops) -> None:
    """The 200 shows the edge's Record-Route and Via only; the gateway's Contact is masked."""
    call = SipCall((fresh.edge.host, fresh.edge.port), f"sip:{NUMBER}@acme.{BASE}", source=PBX)
    ok = call.invite()
    assert status_of(ok) == 200, ok
    gateway_ports = {str(gw.port) for gw in fresh.gw.values()}
    leaks = [p for p in gateway_ports if f":{p}" in ok]
    assert leaks == [], ok
    assert all(str(fresh.edge.port) in rr for rr in call.route), call.route
    assert status_of(call.bye()) == 200  # the masked Contact still routes the BYE
