"""The adapter's request route, step by step, against a fake KSR: which step ends which
request, and what it answers. End-to-end tests run the same code in real Kamailio."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest
from fake_ksr import Message, install

install()  # before the adapter binds `KSR`

from trunkedge.core import counters  # noqa: E402
from trunkedge.core.reasons import Drop, Reason  # noqa: E402
from trunkedge.kamailio import symbols  # noqa: E402
from trunkedge.kamailio.adapter import Edge  # noqa: E402
from trunkedge.kamailio.records import DialogEnd  # noqa: E402
from trunkedge.settings import parse_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_DOC = {
    "listen": ["udp:127.0.0.1:5060"], "base_domain": "sip.example.net",
    "pops": {"eu1": ["sip:127.0.0.1:5091"]},
}
SETTINGS = parse_settings(SETTINGS_DOC)


@pytest.fixture
def msg() -> Message:
    return install()


@pytest.fixture
def edge(msg: Message) -> Edge:
    return Edge(SETTINGS, "test-secret")


def counted(msg: Message, name: str) -> int:
    return int(msg.htable.get((symbols.HT_METRICS, name), 0))


@pytest.mark.parametrize("agent", ["friendly-scanner", "x" * 2000 + " sipvicious"])
def test_a_scanner_is_dropped_before_anything_else(edge: Edge, msg: Message,
                                                   agent: str) -> None:
    msg.headers["User-Agent"] = [agent]  # the long one is too long to be remembered
    msg.sane = False
    for n in (1, 2):  # the second time from the per-worker memory (when it fits)
        edge.request()
        assert msg.replies() == []
        assert counted(msg, counters.dropped(Drop.SCANNER)) == n
    assert not any(c[0] == "sanity_check" for c in msg.calls)
    assert len(edge.scanner_agents) == (len(agent) <= 512)


def test_a_flooding_source_is_dropped_without_an_answer(edge: Edge, msg: Message) -> None:
    msg.flood = True
    edge.request()
    assert msg.replies() == []
    assert counted(msg, counters.dropped(Drop.FLOOD)) == 1


def test_exhausted_max_forwards_gets_483(edge: Edge, msg: Message) -> None:
    msg.max_forwards_exhausted = True
    edge.request()
    assert msg.replies() == [(483, "Too Many Hops")]


def test_an_insane_request_is_left_to_sanity_and_counted_malformed(edge: Edge,
                                                                   msg: Message) -> None:
    msg.sane = False
    edge.request()
    assert msg.replies() == []
    assert counted(msg, counters.refused(Reason.MALFORMED)) == 1
    (line,) = [c[1] for c in msg.calls if c[0] == "notice"]
    assert "refused by sanity reason=malformed" in line


def test_a_request_with_a_to_tag_takes_the_dialog_route(edge: Edge, msg: Message) -> None:
    msg.to_tag, msg.method = True, "BYE"
    edge.request()
    assert ("loose_route",) in msg.calls
    assert msg.replies() == [(481, "Call/Transaction Does Not Exist")]


def test_strict_syntax_is_checked_before_bans_and_methods(edge: Edge, msg: Message) -> None:
    msg.headers["Date"] = ["yesterday"]
    msg.htable[(symbols.HT_BANS, msg.source)] = 1
    edge.request()
    assert msg.replies() == [(400, "Bad Date")]


def test_a_banned_address_is_dropped(edge: Edge, msg: Message) -> None:
    msg.htable[(symbols.HT_BANS, msg.source)] = 1
    edge.request()
    assert msg.replies() == []
    assert counted(msg, counters.dropped(Drop.BANNED)) == 1


def test_a_cancel_without_its_transaction_gets_481(edge: Edge, msg: Message) -> None:
    msg.method = "CANCEL"
    edge.request()
    assert msg.replies() == [(481, "Call/Transaction Does Not Exist")]


def test_a_retransmission_is_absorbed(edge: Edge, msg: Message) -> None:
    msg.method, msg.transaction = "OPTIONS", 0
    edge.request()
    assert msg.replies() == []


@pytest.mark.parametrize(("method", "answer", "allow"), [
    ("OPTIONS", (200, "OK"), True),
    ("REGISTER", (405, "Method Not Allowed"), True),
    ("BYE", (481, "Call/Transaction Does Not Exist"), False),
])
def test_the_edge_answers_what_it_does_not_relay(edge: Edge, msg: Message, method: str,
                                                 answer: tuple[int, str], allow: bool) -> None:
    msg.method = method
    edge.request()
    assert msg.replies() == [answer]
    headers = [c[1] for c in msg.calls if c[0] == "append_to_reply"]
    assert bool([h for h in headers if h.startswith("Allow: INVITE")]) is allow


def test_an_invite_for_a_foreign_host_is_refused_403(edge: Edge, msg: Message) -> None:
    msg.ruri = "sip:+3123456789@sip.example.org"
    edge.request()
    assert msg.replies() == [(403, "Forbidden")]
    assert counted(msg, counters.refused(Reason.FOREIGN_HOST)) == 1


def test_an_invite_while_redis_is_down_gets_503_with_retry_after(edge: Edge,
                                                                  msg: Message) -> None:
    edge.request()
    assert msg.replies() == [(503, "Service Unavailable")]
    assert ("append_to_reply", "Retry-After: 5\r\n") in msg.calls
    assert counted(msg, counters.refused(Reason.STORE_UNAVAILABLE)) == 1


def test_every_callback_kamailio_calls_by_name_is_a_method_of_the_edge() -> None:
    for name in symbols.CALLBACKS:
        assert callable(getattr(Edge, name, None)), name
        assert len(inspect.signature(getattr(Edge, name)).parameters) >= 1


def test_kamailio_cfg_names_shared_things_only_through_the_substitutions() -> None:
    cfg = (ROOT / "kamailio" / "kamailio.cfg").read_text()
    for placeholder, value in symbols.SUBSTITUTIONS.items():
        assert placeholder in cfg, placeholder
        assert not re.search(rf"\b{re.escape(value)}\b", cfg), f"{value} spelled out in cfg"


TLS_SETTINGS = parse_settings({
    "listen": ["udp:127.0.0.1:5060", "tls:127.0.0.1:5061"], "base_domain": "sip.example.net",
    "pops": {"eu1": ["sip:127.0.0.1:5091"]},
    "tls": {"certificate": "/e.crt", "private_key": "/e.key", "idle_timeout_s": 900},
})


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_a_sips_request_uri_not_over_tls_gets_416(edge: Edge, msg: Message, proto: str) -> None:
    msg.ruri, msg.proto = "sips:+3123456789@acme.sip.example.net", proto
    edge.request()
    assert msg.replies() == [(416, "Unsupported URI Scheme")]
    assert counted(msg, counters.refused(Reason.SIPS_WITHOUT_TLS)) == 1
    (line,) = [c[1] for c in msg.calls if c[0] == "notice"]
    assert "reason=sips-without-tls method=INVITE" in line and f"proto={proto}" in line


def test_a_sips_request_uri_over_tls_goes_on_to_admission(msg: Message) -> None:
    msg.ruri, msg.proto = "sips:+3123456789@acme.sip.example.net", "tls"
    Edge(TLS_SETTINGS, "test-secret").request()
    assert msg.replies() == [(503, "Service Unavailable")]  # Redis is down in the fake


def test_an_in_dialog_sips_request_from_a_gateway_is_not_refused(edge: Edge,
                                                                  msg: Message) -> None:
    """The far end's BYE towards a sips: Contact comes over UDP from the POP."""
    msg.method, msg.to_tag, msg.ruri = "BYE", True, "sips:pbx@192.0.2.10:5061"
    edge.request()
    assert (416, "Unsupported URI Scheme") not in msg.replies()
    assert ("loose_route",) in msg.calls


@pytest.mark.parametrize(("proto", "extended"), [("tls", True), ("tcp", True), ("udp", False)])
def test_with_tls_a_connection_that_carries_sip_gets_the_idle_timeout(
        msg: Message, proto: str, extended: bool) -> None:
    msg.method, msg.proto = "OPTIONS", proto
    Edge(TLS_SETTINGS, "test-secret").request()
    assert msg.replies() == [(200, "OK")]
    assert (("tcp_set_connection_lifetime", 900) in msg.calls) is extended


def test_without_tls_connection_lifetimes_are_left_to_kamailio(edge: Edge, msg: Message) -> None:
    msg.method, msg.proto = "OPTIONS", "tcp"
    edge.request()
    assert not [c for c in msg.calls if c[0] == "tcp_set_connection_lifetime"]


def dialog_facts(event: str, **given: str) -> str:
    """What event_route[dialog:end|failed] hands the adapter (runner.render_dialog_events):
    Kamailio prints "<null>" for a variable that is not set."""
    facts = {name: given.get(name, symbols.UNSET) for name in symbols.DIALOG_END_FACTS}
    return "\n".join((event, *facts.values()))


def test_a_dialog_that_ends_frees_its_channels_and_writes_its_record(
        msg: Message, tmp_path: Path) -> None:
    settings = parse_settings({**SETTINGS_DOC, "cdr": {"spool_dir": str(tmp_path)}})
    edge = Edge(settings, "test-secret")
    head = '{"kind":"call","call_id":"c1"'
    edge.ksr_dialog_event(msg, dialog_facts(
        symbols.DIALOG_END, held="edge-1:abc d:acme.example", answered="1000.5",
        method="BYE", from_tag="caller-tag",
        call=f'caller-tag\n{head},"pop":"eu1","gateway":"sip:gw1","failovers":"0"'))
    assert msg.htable[(symbols.HT_ENDED, "edge-1:abc")] == "d:acme.example"
    [segment] = tmp_path.glob("cdr-*.jsonl")
    record = json.loads(segment.read_text())
    assert (record["call_id"], record["hangup"], record["answer_ms"], record["pop"],
            record["gateway"], record["failovers"]) == \
        ("c1", "caller", "1000500", "eu1", "sip:gw1", "0")


def test_a_failed_dialog_records_its_final_status(
        msg: Message, tmp_path: Path) -> None:
    settings = parse_settings({**SETTINGS_DOC, "cdr": {"spool_dir": str(tmp_path)}})
    edge = Edge(settings, "test-secret")
    edge.ksr_dialog_event(msg, dialog_facts(
        symbols.DIALOG_FAILED, status="503", by_edge="1", method="INVITE",
        call='t\n{"kind":"call","pop":"eu2","gateway":"sip:gw2","failovers":"1"'))
    [segment] = tmp_path.glob("cdr-*.jsonl")
    record = json.loads(segment.read_text())
    assert (record["status"], record["hangup"], record["answer_ms"], record["duration_ms"],
            record["pop"], record["failovers"]) == ("503", "edge", "", "0", "eu2", "1")


def test_dialog_end_parses_the_facts_in_the_order_kamailio_formats_them() -> None:
    assert list(DialogEnd._fields) == list(symbols.DIALOG_END_FACTS)


def test_a_dialog_event_without_its_facts_is_logged_not_raised(msg: Message) -> None:
    edge = Edge(SETTINGS, "test-secret")
    assert edge.ksr_dialog_event(msg, f"{symbols.DIALOG_END}\nonly\nthree") == 1
    assert any(c[0] == "err" and "without its facts" in c[1] for c in msg.calls)
