"""End to end over TLS (RFC 3261 §26.2, RFC 5630): real Kamailio with the tls module, a
certificate of the test's own CA, customers speaking SIP over TLS from Python's `ssl`
(tls_clients) and linphone, POP gateways on UDP (a recording one as eu1, SIPp as eu2).

The edge runs four TCP workers: Kamailio 5.6.3 with OpenSSL 3 crashed with more than one
before the fork guard (kamailio/tls.py); every test scans the edge's log for the marks of
that crash. The load test runs TRUNKEDGE_TLS_LOAD_S seconds (30 by default; 60 is the full
run the README reports).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from certs import Certificate, make_ca, make_certificate
from clients import GatewayCall, Linphone, RecordingGateway
from harness import (
    BASE,
    Edge,
    Gateway,
    RedisServer,
    free_port,
    run_sipp,
    sip_request,
    status_of,
)
from tls_clients import (
    LoadResult,
    TlsCall,
    TlsConnection,
    TlsGateway,
    client_hello,
    closed_by_peer,
    connect,
    garbage,
    load,
    raw_connection,
)
from trunkedge.kamailio import rpc

pytestmark = pytest.mark.e2e

NUMBER = "+31201234567"
ACME = f"acme.{BASE}"
PINNED_EU2 = f"acme.eu2.{BASE}"  # the SIPp gateway: the load goes there
PBX, ROAMING = "127.0.0.1", "127.0.0.2"
USER, PASSWORD = "31000000", "pw-tls"
OFFICE_DEFAULT, USER_DEFAULT = "+31205550000", "+31205550100"
HANDSHAKE_S = 3  # tls.handshake_timeout_s of the test edge
LOAD_S = float(os.environ.get("TRUNKEDGE_TLS_LOAD_S", "30"))
SETTLE_S = 6  # after a load: ended transactions (5 s) and closed connections freed
CRASH_MARKS = re.compile(r"freeing already freed|TLS read:|tlsf_malloc\.c.*Assertion"
                         r"|exited by a signal|qm_debug_check_frag|BUG: ")
"""What Kamailio 5.6 logs when OpenSSL 3's shared state corrupts it (kamailio#3791)."""

CUSTOMER = {
    "acls": {
        "office": {"ips": [f"{PBX}/32"], "caller_ids": {
            "allow": ["+3120555*"], "default": OFFICE_DEFAULT, "policy": "replace"}},
        "roaming": {"accounts": [{"username": USER, "password": PASSWORD, "caller_ids": {
            "allow": [USER_DEFAULT], "default": USER_DEFAULT, "policy": "replace"}}]},
    },
    "domains": {"acme": {"acls": ["office", "roaming"]}},
}


@dataclass
class TlsSite:
    edge: Edge
    recorder: RecordingGateway  # POP eu1
    sipp: Gateway  # POP eu2
    tls_gateway: TlsGateway  # POP us1, sip:...;transport=tls
    ca: Certificate
    cert: Certificate  # the edge's, at the paths of its settings
    tls_port: int

    @property
    def tls(self) -> tuple[str, int]:
        return (self.edge.host, self.tls_port)

    @property
    def udp(self) -> tuple[str, int]:
        return (self.edge.host, self.edge.port)

    def connect(self, source: str = PBX) -> TlsConnection:
        return connect(self.tls, source=source, ca=self.ca.cert)

    def pids(self) -> set[int]:
        assert self.edge.proc is not None
        return {self.edge.proc.pid, *self.edge.children_pids()}

    def crash_marks(self) -> list[str]:
        return [ln for ln in self.edge.log().splitlines() if CRASH_MARKS.search(ln)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer,
         gateways: dict[str, Gateway]) -> Iterator[TlsSite]:
    """An edge of the module's own (its own key prefix in the session's Redis) with a TLS
    listener and four TCP workers; POP eu1 a recording gateway, eu2 the session's SIPp one,
    us1 a gateway on TLS."""
    work = tmp_path_factory.mktemp("tls")
    ca = make_ca(work / "pki")
    cert = make_certificate(work / "pki", "edge", ca)
    recorder = RecordingGateway("eu1", log_path=work / "gateway-eu1.log").start()
    tls_gateway = TlsGateway(cert.cert, cert.key)
    tls_port = free_port()
    pops = {"eu1": recorder.uri, "eu2": gateways["eu2"].uri, "us1": tls_gateway.uri}
    edge = Edge(work / "edge", redis_server.url, pops,
                redis={"url": redis_server.url, "prefix": "te-tls:"},
                extra_listen=(f"tls:127.0.0.1:{tls_port}",), tcp_children=4, shm_mb=256,
                tls={"certificate": str(cert.cert), "private_key": str(cert.key),
                     "handshake_timeout_s": HANDSHAKE_S})
    try:
        edge.start()
        edge.provision(CUSTOMER)
        yield TlsSite(edge, recorder, gateways["eu2"], tls_gateway, ca, cert, tls_port)
    finally:
        edge.stop()
        recorder.stop()
        tls_gateway.stop()


@pytest.fixture(autouse=True)
def no_crash_marks(site: TlsSite) -> Iterator[None]:
    """After every test: nothing in the edge's log says OpenSSL corrupted it."""
    yield
    assert site.crash_marks() == [], "\n".join(site.crash_marks()[:20])


def recorded(site: TlsSite, call_id: str, mark: int) -> GatewayCall:
    calls = [c for c in site.recorder.calls_since(mark) if c.call_id == call_id]
    assert len(calls) == 1, site.recorder.dump(mark)
    return calls[0]


def edge_lines(site: TlsSite, call_id: str) -> str:
    return "\n".join(ln for ln in site.edge.log().splitlines() if call_id in ln)


def udp_call_is_answered(site: TlsSite, tmp_path: Path) -> bool:
    result = run_sipp("call_answered", site.edge.address, workdir=tmp_path, number=NUMBER,
                      domain=PINNED_EU2, source=PBX)
    return result.ok


# -- calls over TLS ----------------------------------------------------------------------
def test_options_over_tls_is_answered_200_with_the_edges_certificate(site: TlsSite) -> None:
    conn = site.connect()
    try:
        answer = conn.options(f"sip:{site.tls[0]}:{site.tls[1]};transport=tls")
        assert answer.status == 200, answer.raw
        assert conn.peer_fingerprint == site.cert.fingerprint  # verified against the CA
        assert conn.version == "TLSv1.3"  # min_version TLSv1.2: 1.3 when the client offers it
    finally:
        conn.close()


def test_an_ip_acl_call_over_tls_reaches_the_pop_over_udp_and_its_answer_comes_back(
        site: TlsSite) -> None:
    mark, conn = site.recorder.mark(), site.connect()
    try:
        call = TlsCall(conn, f"sip:{NUMBER}@{ACME}")
        answer = call.invite()
        assert answer.status == 200, f"{answer.raw}\n{edge_lines(site, call.call_id)}"
        assert answer.header("X-Gateway") == "eu1"
        bye = call.bye()
        assert bye.status == 200, "\n".join(m.raw for m in conn.received)
        at_pop = recorded(site, call.call_id, mark)
    finally:
        conn.close()
    invite = at_pop.first("INVITE")
    assert invite.headers("Via")[0].startswith("SIP/2.0/UDP "), invite.raw  # the edge's leg
    assert invite.headers("P-Asserted-Identity") == [f"<sip:{OFFICE_DEFAULT}@{BASE};user=phone>"]
    assert [m.method for m in at_pop.messages if m.is_request] == ["INVITE", "ACK", "BYE"]
    # double Record-Route, one per transport: each side sees the edge's entry on its own
    # transport, sealed with the dialog token, and the other one masked by topoh
    at_pop_rr = [r for v in invite.headers("Record-Route") for r in v.split(",")]
    assert len(at_pop_rr) == 2 and at_pop_rr[1].startswith("<sip:127.0.0.8;line=sr-")
    assert at_pop_rr[0].startswith(f"<sip:127.0.0.1:{site.edge.port};") and ";te=" in \
        at_pop_rr[0], at_pop_rr
    assert call.route[0].startswith(f"<sip:127.0.0.1:{site.tls_port};transport=tls;")
    assert ";te=" in call.route[0] and call.route[1].startswith("<sip:127.0.0.8;line=sr-")
    assert "admitted pops=eu1,eu2" in edge_lines(site, call.call_id)
    assert "proto=tls" in edge_lines(site, call.call_id)


def test_topology_is_hidden_both_ways_across_the_tls_udp_bridge(site: TlsSite) -> None:
    mark, conn = site.recorder.mark(), site.connect()
    try:
        call = TlsCall(conn, f"sip:{NUMBER}@{ACME}")
        answer = call.invite()
        assert answer.status == 200, answer.raw
        call.bye()
        at_pop = recorded(site, call.call_id, mark)
    finally:
        conn.close()
    customer_port, contact_port = conn.local.rsplit(":", 1)[1], str(call.contact_port)
    seen_by_pop = "\n".join(m.raw for m in at_pop.messages)
    for port in (customer_port, contact_port):
        assert f":{port}" not in seen_by_pop, f"the POP saw the customer's port {port}"
    seen_by_customer = "\n".join(m.raw for m in conn.received)
    assert f":{site.recorder.port}" not in seen_by_customer, seen_by_customer


def test_a_digest_call_over_tls_is_challenged_then_answered(site: TlsSite) -> None:
    mark, conn = site.recorder.mark(), site.connect(ROAMING)
    try:
        call = TlsCall(conn, f"sip:{NUMBER}@{ACME}", from_user=USER,
                       credentials=(USER, PASSWORD))
        answer = call.invite()
        assert [r.status for r in call.responses] == [407, 200], answer.raw
        assert call.bye().status == 200
    finally:
        conn.close()
    invite = recorded(site, call.call_id, mark).first("INVITE")
    assert invite.headers("Proxy-Authorization") == []
    assert invite.headers("P-Asserted-Identity") == [f"<sip:{USER_DEFAULT}@{BASE};user=phone>"]
    assert f"src={ROAMING} proto=tls" in edge_lines(site, call.call_id)


def test_the_far_ends_bye_reaches_the_customer_over_its_tls_connection(site: TlsSite) -> None:
    """The customer's Contact names a port nothing listens on (a PBX behind NAT): the
    edge sends the far end's BYE over the customer's connection."""
    mark, conn = site.recorder.mark(), site.connect()
    try:
        call = TlsCall(conn, f"sip:{NUMBER}@{ACME}")
        assert call.invite().status == 200
        assert site.recorder.wait_request("ACK", mark, 5), site.recorder.dump(mark)
        answers: list[object] = []
        hangup = threading.Thread(target=lambda: answers.append(
            site.recorder.hangup(call.call_id)))
        hangup.start()
        bye = call.answer_request()
        hangup.join(10)
    finally:
        conn.close()
    assert bye.method == "BYE", bye.raw
    assert f":{site.recorder.port}" not in bye.raw  # topology hidden this way too
    (answer,) = answers
    assert answer is not None and answer.status == 200  # type: ignore[attr-defined]


def test_a_sips_request_uri_is_taken_over_tls_and_goes_to_a_udp_pop_as_sip(
        site: TlsSite) -> None:
    mark, conn = site.recorder.mark(), site.connect()
    try:
        call = TlsCall(conn, f"sips:{NUMBER}@{ACME}")
        assert call.invite().status == 200, edge_lines(site, call.call_id)
        assert call.bye().status == 200
    finally:
        conn.close()
    invite = recorded(site, call.call_id, mark).first("INVITE")
    assert invite.uri == f"sip:{NUMBER}@{ACME}", invite.raw


@pytest.mark.parametrize("customer", ["udp", "tls"])
def test_a_gateway_with_transport_tls_gets_the_call_over_tls(
        site: TlsSite, tmp_path: Path, customer: str) -> None:
    """The POP leg uses the gateway URI's transport: us1 is `;transport=tls`."""
    mark, pinned = len(site.tls_gateway.requests), f"sip:{NUMBER}@acme.us1.{BASE}"
    if customer == "udp":
        result = run_sipp("call_answered", site.edge.address, workdir=tmp_path,
                          number=NUMBER, domain=f"acme.us1.{BASE}", source=PBX)
        assert result.ok and result.landed == ["us1"], result.explain()
    else:
        conn = site.connect()
        try:
            call = TlsCall(conn, f"sips:{NUMBER}@acme.us1.{BASE}")
            assert call.invite().status == 200
            assert call.bye().status == 200
        finally:
            conn.close()
    got = site.tls_gateway.requests[mark:]
    assert [m.method for m in got] == ["INVITE", "ACK", "BYE"], [m.start_line for m in got]
    assert all(m.headers("Via")[0].startswith("SIP/2.0/TLS ") for m in got)
    # sips: stays sips: on a TLS leg; sip: stays sip:
    assert got[0].uri == (pinned if customer == "udp" else "sips" + pinned[3:])


def test_a_sips_request_uri_over_udp_gets_416(site: TlsSite) -> None:
    answer = sip_request(site.udp, "INVITE", f"sips:{NUMBER}@{ACME}")
    assert status_of(answer) == 416, answer
    assert "reason=sips-without-tls" in site.edge.log()


def test_linphone_over_tls_is_answered_200(site: TlsSite, tmp_path: Path) -> None:
    if shutil.which("linphonec") is None:
        pytest.fail("linphonec is not installed: run scripts/setup.sh --test")
    mark = site.recorder.mark()
    # by name: linphone's mbedTLS matches DNS names only (not the certificate's IP address)
    phone = Linphone(tmp_path / "linphone", edge=("localhost", site.tls_port), user=USER,
                     password=PASSWORD, domain=ACME, source=PBX).over_tls(site.ca.cert)
    with phone:
        phone.dial(f"sip:{NUMBER}@{ACME}")
        deadline = time.monotonic() + 15
        while not (phone.is_established() or phone.is_over()):
            assert time.monotonic() < deadline, phone.explain()
            time.sleep(0.05)
        assert phone.final_responses() == ["SIP/2.0 200 OK"], phone.explain()
        phone.hangup()
        assert site.recorder.wait_request("BYE", mark, 5), site.recorder.dump(mark)
        phone.wait_ended(5)
    sent = phone.sent("INVITE")
    assert sent and "SIP/2.0/TLS" in sent[0].header("Via"), phone.explain()


def test_status_shows_the_listeners_and_the_tls_connections(site: TlsSite) -> None:
    conn = site.connect()
    try:
        conn.options(f"sip:{site.tls[0]}:{site.tls[1]};transport=tls")
        status = site.edge.status()
    finally:
        conn.close()
    assert f"tls:127.0.0.1:{site.tls_port}" in status["listeners"], status
    assert f"udp:127.0.0.1:{site.edge.port}" in status["listeners"], status
    assert status["tls_connections"]["open"] >= 1
    assert status["tls_connections"]["max"] == 2048


# -- attackers and broken peers -----------------------------------------------------------
def test_stalled_handshakes_garbage_and_instant_closes_leave_the_edge_serving(
        site: TlsSite, tmp_path: Path) -> None:
    before = site.pids()
    stalled = raw_connection(site.tls, client_hello()[:-1])  # a ClientHello, then nothing
    quiet = raw_connection(site.tls)  # connects, says nothing
    for _ in range(20):
        raw_connection(site.tls, garbage(2000)).close()
    opened = [raw_connection(site.tls) for _ in range(200)]  # 200 at once, closed at once
    for sock in opened:
        sock.close()
    conn = site.connect()
    try:
        answer = conn.options(f"sip:{site.tls[0]}:{site.tls[1]};transport=tls")
    finally:
        conn.close()
    assert answer.status == 200
    assert udp_call_is_answered(site, tmp_path)
    # the edge closes what never carried SIP: after tls.handshake_timeout_s, checked by
    # Kamailio's timers (a reader holds a connection with bytes up to 5 s more)
    assert closed_by_peer(quiet, HANDSHAKE_S + 10) and closed_by_peer(stalled, HANDSHAKE_S + 15)
    stalled.close()
    quiet.close()
    assert site.pids() == before


def test_many_idle_tls_connections_do_not_starve_the_workers(site: TlsSite) -> None:
    """Idle connections wait in Kamailio's TCP main process, not in a worker: with 300
    open (each after a handshake and an OPTIONS), four workers still answer at once."""
    ruri = f"sip:{site.tls[0]}:{site.tls[1]};transport=tls"
    idle = []
    try:
        for _ in range(300):
            conn = site.connect()
            idle.append(conn)
            assert conn.options(ruri).status == 200
        started = time.monotonic()
        fresh = site.connect()
        idle.append(fresh)
        assert fresh.options(ruri).status == 200 and time.monotonic() - started < 1.0
        assert site.edge.status()["tls_connections"]["open"] >= 301
    finally:
        for conn in idle:
            conn.close()


def test_a_connection_that_carries_sip_stays_open_past_the_handshake_timeout(
        site: TlsSite) -> None:
    conn = site.connect()
    try:
        assert conn.options(f"sip:{site.tls[0]}:{site.tls[1]};transport=tls").status == 200
        time.sleep(HANDSHAKE_S + 7)
        assert conn.options(f"sip:{site.tls[0]}:{site.tls[1]};transport=tls").status == 200
    finally:
        conn.close()


# -- the certificate, renewed --------------------------------------------------------------
def renew(site: TlsSite, name: str) -> Certificate:
    """A new certificate and key (the same CA) written over the edge's files."""
    new = make_certificate(site.cert.cert.parent / name, "edge", site.ca)
    site.cert.key.write_bytes(new.key.read_bytes())
    site.cert.cert.write_bytes(new.cert.read_bytes())
    return new


def reload_tls(site: TlsSite) -> None:
    out = site.edge.cli("tls", "reload", "--rundir", str(site.edge.rundir))
    assert out.returncode == 0, out.stderr
    assert "reloaded the certificate" in out.stdout


def test_tls_reload_serves_a_renewed_certificate_without_dropping_a_call(
        site: TlsSite) -> None:
    before, mark = site.pids(), site.recorder.mark()
    old_conn = site.connect()
    try:
        call = TlsCall(old_conn, f"sip:{NUMBER}@{ACME}")
        assert call.invite().status == 200
        new = renew(site, "renewed")
        reload_tls(site)
        fresh = site.connect()
        try:
            assert fresh.peer_fingerprint == new.fingerprint != old_conn.peer_fingerprint
            assert fresh.options(f"sip:{site.tls[0]}:{site.tls[1]};transport=tls").status \
                == 200
        finally:
            fresh.close()
        assert call.bye().status == 200  # the call set up before the reload goes on
    finally:
        old_conn.close()
    assert [m.method for m in recorded(site, call.call_id, mark).messages if m.is_request] \
        == ["INVITE", "ACK", "BYE"]
    assert site.pids() == before


def test_tls_reload_refuses_an_unreadable_key_and_keeps_the_old_one(site: TlsSite) -> None:
    saved = site.cert.key.read_bytes()
    site.cert.key.write_text("not a key\n")
    try:
        out = site.edge.cli("tls", "reload", "--rundir", str(site.edge.rundir))
        assert out.returncode == 2 and "tls.private_key" in out.stderr, out.stderr
    finally:
        site.cert.key.write_bytes(saved)
    conn = site.connect()
    try:
        assert conn.options(f"sip:{site.tls[0]}:{site.tls[1]};transport=tls").status == 200
    finally:
        conn.close()


# -- load ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Memory:
    """The edge's memory, every page counted once however many processes share it
    (smaps_rollup PSS), and what Kamailio has allocated in its shared memory."""

    private: int  # Pss_Anon: the processes' own heaps (pkg, Python), stacks
    shm_allocated: int  # core.shmmem real_used: transactions, dialogs, connections, TLS
    shm_resident: int  # Pss_Shmem: the pages of the shm arena touched so far
    rss_sum: int  # Rss of every process summed: shared pages once per process, code too

    @property
    def held(self) -> int:
        """What the edge holds: private memory and allocated shared memory."""
        return self.private + self.shm_allocated


def memory(site: TlsSite, pids: set[int]) -> Memory:
    fields = {"Pss_Anon": 0, "Pss_Shmem": 0, "Rss": 0}
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in fields:
                fields[name] += int(value.split()[0]) * 1024
    shm = int(rpc.call(site.edge.rundir, "core.shmmem")["real_used"])
    return Memory(fields["Pss_Anon"], shm, fields["Pss_Shmem"], fields["Rss"])


def growth(before: Memory, after: Memory) -> str:
    def one(name: str, b: int, a: int) -> str:
        return f"{name} {b / 2**20:.1f} -> {a / 2**20:.1f} MiB ({(a - b) / b:+.1%})"
    return ", ".join(one(name, getattr(before, name), getattr(after, name))
                     for name in ("held", "private", "shm_allocated", "shm_resident", "rss_sum"))


def load_with_a_reload(site: TlsSite, duration_s: float, pace_s: float,
                       name: str) -> tuple[LoadResult, Certificate]:
    """200 connections placing calls (IP ACL and digest alike) for `duration_s`, the
    certificate renewed and reloaded half way; the renewed certificate."""
    renewed: list[Certificate] = []

    def renew_half_way() -> None:
        time.sleep(duration_s / 2)
        renewed.append(renew(site, name))
        reload_tls(site)

    reloader = threading.Thread(target=renew_half_way)
    reloader.start()
    result = load(site.tls, f"sip:{NUMBER}@{PINNED_EU2}", connections=200,
                  duration_s=duration_s, pace_s=pace_s, ca=site.ca.cert,
                  digest=(ROAMING, (USER, PASSWORD)))
    reloader.join(30)
    assert renewed, "the certificate was not reloaded"
    return result, renewed[0]


def test_200_tls_connections_placing_calls_with_a_certificate_reload(
        site: TlsSite, tmp_path: Path) -> None:
    """Bounded load: 200 connections, each a call every 4 s (held 1 s), for LOAD_S
    seconds, the certificate reloaded half way. Memory is compared with the state after a
    warm-up of the same kind (caches filled, one earlier certificate kept by the tls module
    until the next reload)."""
    pids = site.pids()
    warm, _ = load_with_a_reload(site, 10, 2.0, "warm-up")
    assert warm.failed == [], warm.failed[:10]
    time.sleep(SETTLE_S)
    before = memory(site, pids)
    started = time.monotonic()
    result, renewed = load_with_a_reload(site, LOAD_S, 4.0, "load")
    elapsed = time.monotonic() - started
    time.sleep(SETTLE_S)
    after = memory(site, pids)
    print(f"\nTLS load: {result.connections} connections, {result.calls} calls in "
          f"{elapsed:.1f} s ({result.calls / elapsed:.1f} calls/s), {len(result.failed)} "
          f"failed, certificate reloaded at {LOAD_S / 2:.0f} s; memory {growth(before, after)}")
    assert result.connections == 200 and result.failed == [], result.failed[:10]
    assert result.calls >= 200 * (LOAD_S / 4 - 1)
    assert site.pids() == pids  # no worker crashed
    assert after.held < before.held * 1.05, growth(before, after)
    fresh = site.connect()
    assert fresh.peer_fingerprint == renewed.fingerprint
    fresh.close()
    assert udp_call_is_answered(site, tmp_path)


def test_the_edge_stops_cleanly(site: TlsSite) -> None:
    """Last: SIGTERM stops Kamailio and every worker with status 0 (and the log, scanned
    after this test too, shows no worker killed by a signal)."""
    assert site.edge.stop() == 0
