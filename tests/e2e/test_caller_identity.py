"""End to end: P-Asserted-Identity and Privacy at the border of the trusted realm.

The customer (SIPp UAC, or a small Python UAC for exact checks) is outside; the POP
gateway (SIPp UAS) is inside. The gateway scenario itself fails any call whose INVITE
carries anything but one P-Asserted-Identity of the edge's form, a P-Preferred-Identity,
a Remote-Party-ID, or any trace of a spoofed identity (host spoof.invalid); it logs
what it received, which the tests compare with what must arrive.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import BASE, Edge, Gateway, SipCall, header_values, run_sipp, status_of

pytestmark = pytest.mark.e2e

PBX, STRICT_PBX, ROAMING = "127.0.0.1", "127.0.0.4", "127.0.0.2"
NUMBER = "+3123456789"
OWN, OWN2, DEFAULT = "+31205550101", "+31205550102", "+31205550000"
ACCOUNT_NUMBER = "+31205550100"
SPOOF = "+19995550123"
USER, PASSWORD = "31000000", "pw-identity"
SOFTPHONE = "31000002"  # an account with a default caller ID, as a softphone is set up
CONNECTED = "<sip:+442000000000@pop.example.net;user=phone>"
ANON_FROM = {"from_display": '"Anonymous" ', "from_user": "anonymous",
             "from_host": "anonymous.invalid"}


def pai(number: str) -> str:
    return f"<sip:{number}@{BASE};user=phone>"


@pytest.fixture
def eu1(edge: Edge, gateways: dict[str, Gateway]) -> Iterator[Gateway]:
    edge.provision({
        "acls": {
            "office": {"ips": [f"{PBX}/32"], "caller_ids": {
                "allow": ["+3120555*"], "default": DEFAULT, "policy": "replace"}},
            "strict": {"ips": [f"{STRICT_PBX}/32"], "caller_ids": {
                "allow": ["+3120555*"], "policy": "reject"}},
            "roaming": {"accounts": [
                {"username": USER, "password": PASSWORD, "caller_ids": {
                    "allow": [ACCOUNT_NUMBER], "policy": "reject"}},
                {"username": SOFTPHONE, "password": PASSWORD, "caller_ids": {
                    "allow": [ACCOUNT_NUMBER], "default": ACCOUNT_NUMBER,
                    "policy": "reject"}}]},
        },
        "domains": {"acme": {"acls": ["office", "strict", "roaming"]}},
    })
    yield gateways["eu1"]


def received(gw: Gateway, mark: tuple[int, int]) -> dict[str, str]:
    """What the gateway logged of the one INVITE it received since `mark` (and it passed
    the gateway's own checks)."""
    (line,) = gw.identities_since(mark)
    fields = {}
    for key, end in (("from", " pai="), ("pai", " privacy="), ("privacy", " [")):
        fields[key] = line.split(f"{key}=", 1)[1].split(end)[0].strip()
    return fields


def call(edge: Edge, tmp_path: Path, scenario: str = "call_answered", **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("source", PBX)
    return run_sipp(scenario, edge.address, workdir=tmp_path, number=NUMBER,
                    domain=f"acme.{BASE}", **kw)


def test_own_from_number_is_asserted(edge: Edge, eu1: Gateway, tmp_path: Path) -> None:
    at = eu1.mark()
    r = call(edge, tmp_path, from_user=OWN)
    assert r.ok and r.landed == ["eu1"], r.explain()
    got = received(eu1, at)
    assert got["pai"] == pai(OWN) and got["privacy"] == ""
    assert got["from"].startswith(f"<sip:{OWN}@acme.{BASE}>")
    assert r.connected == [CONNECTED]  # no privacy: the connected identity is kept


def test_preferred_identity_is_asserted_and_removed(edge: Edge, eu1: Gateway,
                                                    tmp_path: Path) -> None:
    at = eu1.mark()
    r = call(edge, tmp_path, from_user="pbx",
             headers=[f"P-Preferred-Identity: <sip:{OWN2}@acme.{BASE}>"])
    assert r.ok and r.landed == ["eu1"], r.explain()
    assert received(eu1, at)["pai"] == pai(OWN2)  # and the gateway saw no PPI


def test_spoofed_pai_and_rpid_never_reach_the_gateway(edge: Edge, eu1: Gateway,
                                                      tmp_path: Path) -> None:
    at = eu1.mark()
    r = call(edge, tmp_path, from_user=OWN, headers=[
        f"P-Asserted-Identity: <sip:{SPOOF}@spoof.invalid;user=phone>",
        f"P-Asserted-Identity: <tel:{SPOOF}>",
        f"Remote-Party-ID: <sip:{SPOOF}@spoof.invalid>;party=calling;screen=yes",
    ])
    assert r.ok and r.landed == ["eu1"], r.explain()
    assert received(eu1, at)["pai"] == pai(OWN)


def test_number_not_allowed_gets_the_default_under_replace(edge: Edge, eu1: Gateway,
                                                           tmp_path: Path) -> None:
    at = eu1.mark()
    r = call(edge, tmp_path, from_user=SPOOF)
    assert r.ok and r.landed == ["eu1"], r.explain()
    got = received(eu1, at)
    assert got["pai"] == pai(DEFAULT)
    assert got["from"].startswith(f"<sip:{SPOOF}@")  # From is the customer's, untouched


def test_number_not_allowed_is_refused_under_reject(edge: Edge, eu1: Gateway) -> None:
    at = eu1.mark()
    c = SipCall((edge.host, edge.port), f"sip:{NUMBER}@acme.{BASE}", source=STRICT_PBX,
                from_user=SPOOF)
    reply = c.invite()
    assert reply.startswith("SIP/2.0 403 Caller ID Not Allowed"), reply
    assert eu1.identities_since(at) == []
    assert "reason=caller-id-not-allowed" in edge.log()


def test_anonymous_call_keeps_its_from_and_asserts_with_privacy(
    edge: Edge, eu1: Gateway, tmp_path: Path
) -> None:
    at = eu1.mark()
    r = call(edge, tmp_path, "call_answered_privately", **ANON_FROM,
             headers=[f"P-Preferred-Identity: <sip:{OWN}@acme.{BASE}>"])
    assert r.ok and r.landed == ["eu1"], r.explain()  # and no PAI in the customer's 200
    got = received(eu1, at)
    assert got["from"].startswith('"Anonymous" <sip:anonymous@anonymous.invalid>')
    assert got["pai"] == pai(OWN) and got["privacy"] == "id"


def test_privacy_id_hides_the_identity_from_the_customer_side(
    edge: Edge, eu1: Gateway, tmp_path: Path
) -> None:
    at = eu1.mark()
    r = call(edge, tmp_path, "call_answered_privately", from_user=OWN,
             headers=["Privacy: id"])
    assert r.ok, r.explain()
    assert received(eu1, at)["privacy"] == "id"


def test_privacy_header_value_adds_id(edge: Edge, eu1: Gateway, tmp_path: Path) -> None:
    at = eu1.mark()
    r = call(edge, tmp_path, "call_answered_privately", from_user=OWN,
             headers=["Privacy: header"])
    assert r.ok, r.explain()
    assert received(eu1, at)["privacy"] == "header;id"


def test_anonymous_without_identity_gets_the_default(edge: Edge, eu1: Gateway,
                                                     tmp_path: Path) -> None:
    at = eu1.mark()
    r = call(edge, tmp_path, "call_answered_privately", **ANON_FROM)
    assert r.ok, r.explain()
    got = received(eu1, at)
    assert got["pai"] == pai(DEFAULT) and got["privacy"] == "id"


def test_anonymous_without_identity_is_refused_under_reject(edge: Edge, eu1: Gateway,
                                                            tmp_path: Path) -> None:
    r = call(edge, tmp_path, "refused_403_without_challenge", source=STRICT_PBX, **ANON_FROM)
    assert r.ok, r.explain()
    assert "reason=anonymous-without-identity" in edge.log()


def test_account_presents_its_number_through_ppi(edge: Edge, eu1: Gateway,
                                                 tmp_path: Path) -> None:
    at = eu1.mark()
    r = call(edge, tmp_path, "call_answered_after_challenge", source=ROAMING,
             from_user=USER, auth=(USER, PASSWORD),
             headers=[f"P-Preferred-Identity: <tel:{ACCOUNT_NUMBER}>"])
    assert r.ok and r.landed == ["eu1"], r.explain()
    assert received(eu1, at)["pai"] == pai(ACCOUNT_NUMBER)
    other = call(edge, tmp_path, "refused_403_after_challenge", source=ROAMING,
                 from_user=USER, auth=(USER, PASSWORD),
                 headers=[f"P-Preferred-Identity: <tel:{OWN}>"])
    assert other.ok, other.explain()  # the ACL's numbers are not the account's


@pytest.mark.parametrize("private", [False, True], ids=["public", "private"])
def test_far_end_bye_leaves_the_trusted_realm_without_pai_when_private(
    edge: Edge, gateways: dict[str, Gateway], tmp_path: Path, private: bool
) -> None:
    hangs_up = Gateway("eu1-hangup", tmp_path, scenario="gateway_answers_then_hangs_up")
    hangs_up.start()
    pinned = Edge(tmp_path / "edge", edge.redis_url, {"eu1": hangs_up.uri})
    pinned.start()
    try:
        edge.provision({"acls": {"office": {"ips": [f"{PBX}/32"], "caller_ids": {
            "allow": ["+3120555*"], "policy": "reject"}}},
            "domains": {"acme": {"acls": ["office"]}}})
        c = SipCall((pinned.host, pinned.port), f"sip:{NUMBER}@acme.{BASE}", source=PBX,
                    from_user=OWN, headers=["Privacy: id"] if private else [])
        ok = c.invite()
        assert status_of(ok) == 200, ok
        assert header_values(ok, "P-Asserted-Identity") == ([] if private else [CONNECTED])
        bye = c.answer_request()
        assert bye.startswith("BYE ")
        assert header_values(bye, "P-Asserted-Identity") == ([] if private else [CONNECTED])
    finally:
        pinned.stop()
        hangs_up.stop()


@pytest.mark.parametrize("anonymous", [
    {"from_display": '"Anonymous" ', "from_user": "Anonymous", "from_host": "anoymous.invalid"},
    {"from_user": "anonymous", "from_host": "pbx.example.com"},
    {"from_user": "restricted", "from_host": "pbx.example.com"},
], ids=["documented-typo", "anonymous-at-pbx", "restricted"])
def test_common_withheld_forms_are_anonymous(edge: Edge, eu1: Gateway, tmp_path: Path,
                                             anonymous: dict[str, str]) -> None:
    at = eu1.mark()
    r = call(edge, tmp_path, "call_answered_privately", **anonymous)
    assert r.ok, r.explain()
    got = received(eu1, at)
    assert got["pai"] == pai(DEFAULT) and got["privacy"] == "id"
    assert f"{anonymous['from_user']}@{anonymous['from_host']}" in got["from"]


def test_a_softphone_account_gets_its_default_caller_id(edge: Edge, eu1: Gateway,
                                                        tmp_path: Path) -> None:
    at = eu1.mark()
    r = call(edge, tmp_path, "call_answered_after_challenge", source=ROAMING,
             from_user=SOFTPHONE, auth=(SOFTPHONE, PASSWORD))
    assert r.ok and r.landed == ["eu1"], r.explain()
    got = received(eu1, at)
    assert got["pai"] == pai(ACCOUNT_NUMBER) and got["privacy"] == ""


def test_a_digest_account_calls_anonymously(edge: Edge, eu1: Gateway, tmp_path: Path) -> None:
    at = eu1.mark()
    r = call(edge, tmp_path, "call_answered_after_challenge", source=ROAMING,
             auth=(SOFTPHONE, PASSWORD), **ANON_FROM)
    assert r.ok and r.landed == ["eu1"], r.explain()
    got = received(eu1, at)
    assert got["pai"] == pai(ACCOUNT_NUMBER) and got["privacy"] == "id"
    assert got["from"].lower().startswith("\"anonymous\" <sip:anonymous@anonymous.invalid>")
