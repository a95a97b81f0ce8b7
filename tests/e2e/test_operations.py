"""End to end: what an operator runs the edge with. Prometheus metrics on an HTTP
endpoint (parsed with prometheus_client, and scraped by Debian's real Prometheus), and a
call detail record per call and per refused INVITE, published from the spool to the
Redis stream, none lost across a Redis outage."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import (
    BASE,
    Edge,
    Gateway,
    RedisServer,
    SipCall,
    free_port,
    run_sipp,
    status_of,
    wait_until,
)

pytestmark = pytest.mark.e2e

PBX = "127.0.0.1"
NUMBER = "+3123456789"
STREAM = "te-test:cdrs"
CALLER_IDS = {"allow": ["+31*"], "default": "+31200000000", "policy": "replace"}


class Ops:
    def __init__(self, edge: Edge, metrics_port: int, redis: RedisServer) -> None:
        self.edge, self.metrics_port, self.redis = edge, metrics_port, redis

    def scrape(self, path: str = "/metrics") -> str:
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as reply:
            return str(reply.read().decode())

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        found = {}
        for family in text_string_to_metric_families(self.scrape()):
            for s in family.samples:
                found[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return found

    def records(self) -> dict[str, dict[str, str]]:
        """The stream's records by Call-ID."""
        entries = self.redis.client().xrange(STREAM)
        out = {}
        for _, fields in entries:
            record = {k.decode(): v.decode() for k, v in fields.items()}
            out[record["call_id"]] = record
        return out

    def record(self, call_id: str) -> dict[str, str]:
        wait_until(lambda: call_id in self.records(), 5, f"the record of {call_id}")
        return self.records()[call_id]


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer,
        gateways: dict[str, Gateway]) -> Iterator[Ops]:
    work = tmp_path_factory.mktemp("ops")
    own = [Gateway("eu2", work, scenario="gateway_busy_486"),
           Gateway("us1", work, scenario="gateway_rings"),
           Gateway("us2", work, scenario="gateway_answers_then_hangs_up")]
    for gw in own:
        gw.start()
    port = free_port()
    edge = Edge(work / "edge", redis_server.url, {
        "eu1": gateways["eu1"].uri, **{g.name: g.uri for g in own}},
        metrics={"listen": f"127.0.0.1:{port}"})
    try:
        edge.start()
        edge.provision({"acls": {"office": {"ips": [f"{PBX}/32"], "caller_ids": CALLER_IDS}},
                        "domains": {"acme": {"acls": ["office"]}}})
        redis_server.client().delete(STREAM)
        yield Ops(edge, port, redis_server)
    finally:
        edge.stop()
        for gw in own:
            gw.stop()


def test_each_kind_of_call_gets_one_record_with_the_right_fields(ops: Ops) -> None:
    answered = SipCall((ops.edge.host, ops.edge.port), f"sip:{NUMBER}@acme.{BASE}",
                       source=PBX, from_user="pbx")
    assert status_of(answered.invite()) == 200
    time.sleep(0.3)
    assert status_of(answered.bye()) == 200
    far = SipCall((ops.edge.host, ops.edge.port), f"sip:{NUMBER}@acme.us2.{BASE}",
                  source=PBX, from_user="pbx")
    assert status_of(far.invite()) == 200
    assert far.answer_request().startswith("BYE ")
    busy = SipCall((ops.edge.host, ops.edge.port), f"sip:{NUMBER}@acme.eu2.{BASE}",
                   source=PBX, from_user="pbx")
    assert status_of(busy.invite()) == 486
    busy.close()
    refused = SipCall((ops.edge.host, ops.edge.port), f"sip:{NUMBER}@nosuch.{BASE}",
                      source=PBX, from_user="pbx")
    assert status_of(refused.invite()) == 403
    refused.close()

    a = ops.record(answered.call_id)
    assert (a["kind"], a["status"], a["hangup"], a["pop"], a["domain"]) == \
        ("call", "200", "caller", "eu1", "acme")
    assert 250 <= int(a["duration_ms"]) < 3000
    assert int(a["start_ms"]) <= int(a["answer_ms"]) <= int(a["end_ms"])
    assert (a["acl"], a["source_ip"], a["transport"], a["asserted"], a["private"]) == \
        ("office", PBX, "udp", "+31200000000", "0")
    assert a["gateway"].startswith("sip:127.0.0.1:") and a["edge"]
    assert not {"password", "ha1", "nonce"} & set(a)
    f = ops.record(far.call_id)
    assert (f["status"], f["hangup"], f["pop"]) == ("200", "callee", "us2")
    b = ops.record(busy.call_id)
    assert (b["status"], b["hangup"], b["answer_ms"], b["duration_ms"]) == \
        ("486", "callee", "", "0")
    r = ops.record(refused.call_id)
    assert (r["kind"], r["status"], r["reason"], r["domain"]) == \
        ("refused", "403", "unknown-domain", "nosuch")


def test_a_cancelled_call_gets_its_record(ops: Ops, tmp_path: Path) -> None:
    before = set(ops.records())
    r = run_sipp("call_cancelled_while_ringing", ops.edge.address, workdir=tmp_path,
                 number=NUMBER, domain=f"acme.us1.{BASE}", source=PBX)
    assert r.ok, r.explain()
    wait_until(lambda: len(set(ops.records()) - before) == 1, 5, "the cancelled call's record")
    (call_id,) = set(ops.records()) - before
    c = ops.records()[call_id]
    assert (c["status"], c["hangup"], c["pop"], c["duration_ms"]) == \
        ("487", "caller", "us1", "0")
    # the 487 relayed to the customer carries its Via (topoh logs an ERROR for one without)
    assert " ERROR: " not in ops.edge.log()


def test_metrics_count_what_happened_with_bounded_labels(ops: Ops, tmp_path: Path) -> None:
    before = ops.samples()
    r = run_sipp("call_answered", ops.edge.address, workdir=tmp_path, number=NUMBER,
                 domain=f"acme.{BASE}", source=PBX, calls=5, rate=50)
    assert r.ok, r.explain()
    refused = run_sipp("refused_403_without_challenge", ops.edge.address, workdir=tmp_path,
                       number=NUMBER, domain=f"other.{BASE}", source=PBX)
    assert refused.ok, refused.explain()
    after = ops.samples()

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("trunkedge_calls_admitted_total", pop="eu1") == 5
    assert grew("trunkedge_refusals_total", reason="unknown-domain") == 1
    assert grew("trunkedge_requests_total", method="INVITE") == 6
    assert after[("trunkedge_gateway_up", (("gateway", ops.edge.gateways["eu1"]),
                                           ("pop", "eu1")))] == 1
    assert ("dialog_processed_dialogs", ()) in after  # Kamailio's own statistics too
    labels = {k for (_, ls) in after for k, _ in ls}
    assert labels <= {"method", "pop", "reason", "why", "result", "gateway"}  # bounded
    with pytest.raises(urllib.error.HTTPError) as missing:
        ops.scrape("/other")
    assert missing.value.code == 404
    print("a scrape:", *[ln for ln in ops.scrape().splitlines() if ln.startswith((
        "trunkedge_calls_admitted", "trunkedge_refusals_total{reason=\"unknown",
        "trunkedge_requests_total{method=\"INVITE", "trunkedge_gateway_up",
        "dialog_active"))], sep="\n  ")


def test_a_real_prometheus_scrapes_the_edge(ops: Ops, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: run scripts/setup.sh --test")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "trunkedge", "static_configs": [
            {"targets": [f"127.0.0.1:{ops.metrics_port}"]}]}]}))
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"))
    try:
        def query(expr: str) -> list[dict[str, Any]]:
            url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.request.quote(expr)}"
            with urllib.request.urlopen(url, timeout=5) as reply:
                return list(json.loads(reply.read())["data"]["result"])

        def admitted() -> float | None:
            try:
                found = query('trunkedge_calls_admitted_total{pop="eu1"}')
            except (urllib.error.URLError, ConnectionError):
                return None
            return float(found[0]["value"][1]) if found else None

        wait_until(lambda: admitted() is not None, 30, "Prometheus to scrape the edge")
        first = admitted()
        r = run_sipp("call_answered", ops.edge.address, workdir=tmp_path, number=NUMBER,
                     domain=f"acme.{BASE}", source=PBX, calls=3, rate=30)
        assert r.ok, r.explain()
        assert first is not None
        wait_until(lambda: admitted() == first + 3, 10, "Prometheus to see 3 more calls")
        assert query('up{job="trunkedge"}')[0]["value"][1] == "1"
    finally:
        proc.terminate()
        proc.wait(10)


def stream_call_ids(server: RedisServer) -> list[str]:
    return [fields[b"call_id"].decode() for _, fields in server.client().xrange(STREAM)]


def test_a_redis_outage_under_load_loses_and_duplicates_no_record(
        own_redis: RedisServer, gateways: dict[str, Gateway], tmp_path: Path) -> None:
    edge = Edge(tmp_path / "edge", own_redis.url, {p: g.uri for p, g in gateways.items()})
    edge.start()
    try:
        edge.provision({"acls": {"office": {"ips": [f"{PBX}/32"], "caller_ids": CALLER_IDS}},
                        "domains": {"acme": {"acls": ["office"]}}})
        stopper = subprocess.Popen(["sleep", "4"])  # Redis goes at 4 s, for 10 s
        load = subprocess.Popen(
            [".venv/bin/python", "-c", "import sys; sys.path.insert(0, 'tests');"
             "from pathlib import Path; from harness import run_sipp;"
             f"r = run_sipp('call_answered_or_refused_503', '{edge.address}',"
             f" workdir=Path('{tmp_path}'), number='{NUMBER}', domain='acme.{BASE}',"
             f" source='{PBX}', calls=400, rate=20, hold_ms=100, timeout=60);"
             "print('ok' if r.ok else r.explain())"],
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
        stopper.wait()
        own_redis.stop(save=True)
        time.sleep(10)
        own_redis.start()
        out, _ = load.communicate(timeout=90)
        assert out.strip() == "ok", out
        wait_until(lambda: len(stream_call_ids(own_redis)) >= 400, 20, "every record")
        time.sleep(1)
        ids = stream_call_ids(own_redis)
        numbers = sorted(int(i.split("-", 1)[0]) for i in ids)
        print(f"Redis down 10 s under 20 calls/s: {len(ids)} records for 400 calls, "
              f"{len(set(ids))} distinct")
        assert len(ids) == len(set(ids)) == 400 and numbers == list(range(1, 401))
        kinds = [f[b"kind"] for _, f in own_redis.client().xrange(STREAM)]
        assert kinds.count(b"refused") > 0 and kinds.count(b"call") > 0
    finally:
        edge.stop()


def test_an_edge_restarted_with_records_in_its_spool_publishes_them(
        own_redis: RedisServer, gateways: dict[str, Gateway], tmp_path: Path) -> None:
    edge = Edge(tmp_path / "edge", own_redis.url, {p: g.uri for p, g in gateways.items()})
    edge.start()
    own_redis.stop(save=True)
    try:
        r = run_sipp("refused_503_retry_later", edge.address, workdir=tmp_path,
                     number=NUMBER, domain=f"acme.{BASE}", source=PBX, calls=5, rate=20)
        assert r.ok, r.explain()
        wait_until(lambda: sum(p.read_text().count("\n") for p in
                               edge.spool_dir.glob("*.jsonl")) == 5, 5, "5 spooled records")
        edge.stop()
        own_redis.start()
        assert stream_call_ids(own_redis) == []
        edge.start()
        wait_until(lambda: len(stream_call_ids(own_redis)) == 5, 10, "the spool flushed")
    finally:
        edge.stop()
