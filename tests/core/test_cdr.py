"""Call detail records from the facts of a call."""

from __future__ import annotations

import json

import pytest

from trunkedge.core import cdr

CALL = cdr.opened('c1 "quoted" \\ ü', 1000, "192.0.2.1", "5060", "udp", cdr.customer(
    domain="acme", acl="roaming", account="31000000", asserted="+31201234567", private=False,
    edge="edge-1"))


def closed(*, pop: str, gateway: str, failovers: int, **end: object) -> dict[str, str]:
    head = cdr.routed(CALL, "eu1", "sip:gw1", 0) if failovers else \
        cdr.routed(CALL, pop, gateway, 0)
    for n in range(1, failovers + 1):  # each failover replaces the POP and gateway
        head = cdr.routed(head, pop, gateway, n)
    line = cdr.closed(head, **end)  # type: ignore[arg-type]
    assert line.endswith("}\n") and "\n" not in line[:-1] and line.isascii()
    record: dict[str, str] = json.loads(line)
    return record


def test_an_answered_call_lasts_from_its_answer_to_its_end() -> None:
    r = closed(answer_ms=3000, end_ms=63_500, status=200, hangup="callee", pop="eu2",
               gateway="sip:gw2", failovers=1)
    assert sorted(r) == sorted(cdr.FIELDS)  # every field, nothing else
    assert all(isinstance(v, str) for v in r.values())
    assert (r["kind"], r["duration_ms"], r["status"], r["answer_ms"]) == \
        ("call", "60500", "200", "3000")
    assert (r["pop"], r["gateway"], r["failovers"]) == ("eu2", "sip:gw2", "1")
    assert r["account"] == "31000000" and r["reason"] == ""
    assert r["call_id"] == 'c1 "quoted" \\ ü'


def test_failovers_leave_one_pop_and_gateway_however_the_call_id_reads() -> None:
    head = cdr.opened('x,"pop":"eu9"', 1, "192.0.2.1", "5060", "udp", cdr.customer(
        domain="d", acl="a", account=None, asserted="+31", private=True, edge="e"))
    head = cdr.routed(cdr.routed(cdr.routed(head, "eu1", "sip:gw1", 0), "eu2", "sip:gw2", 1),
                      "us1", "sip:gw3", 2)
    r = json.loads(cdr.closed(head, None, 5, 503, "edge"))
    assert (r["call_id"], r["pop"], r["gateway"], r["failovers"], r["private"]) == \
        ('x,"pop":"eu9"', "us1", "sip:gw3", "2", "1")
    assert head.count('"gateway"') == 1


def test_an_unanswered_call_has_no_duration() -> None:
    r = closed(answer_ms=None, end_ms=2000, status=486, hangup="callee", pop="eu1",
               gateway="sip:gw1", failovers=0)
    assert (r["answer_ms"], r["duration_ms"], r["pop"]) == ("", "0", "eu1")


@pytest.mark.parametrize(("ended", "method", "tag", "status", "by_edge", "who"), [
    (True, "BYE", "t-caller", 200, False, "caller"),
    (True, "BYE", "t-callee", 200, False, "callee"),
    (True, "OPTIONS", "", 200, False, "timeout"),  # the dialog's timer: no BYE came
    (False, "CANCEL", "t-caller", 487, False, "caller"),
    (False, "INVITE", "", 486, False, "callee"),
    (False, "INVITE", "", 503, True, "edge"),
])
def test_who_hung_up(ended: bool, method: str, tag: str, status: int, by_edge: bool,
                     who: str) -> None:
    assert cdr.hangup_of(ended, method, tag, "t-caller", status, by_edge) == who


def test_a_refused_invite_has_its_reason_and_no_customer_secrets() -> None:
    r = cdr.refused(call_id="c2", at_ms=5, status=403, reason="address-not-allowed",
                    domain="acme", source_ip="198.51.100.7", source_port="5060",
                    transport="tcp", edge="edge-1")
    assert list(r) == list(cdr.FIELDS)
    assert (r["kind"], r["reason"], r["status"], r["end_ms"]) == \
        ("refused", "address-not-allowed", "403", "5")
