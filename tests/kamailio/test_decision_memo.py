"""Admission remembers the decisions of requests without credentials per worker, only
while the store's view of the domain is the one they were worked out from."""

from __future__ import annotations

from fake_ksr import install

install()  # before the adapter binds `KSR`

from trunkedge.core import digest  # noqa: E402
from trunkedge.core.admission import Admit, CallFacts, Refuse  # noqa: E402
from trunkedge.core.identity import CallerIds, IdentityEdits  # noqa: E402
from trunkedge.core.names import NetworkSet  # noqa: E402
from trunkedge.core.reasons import Reason  # noqa: E402
from trunkedge.core.target import Target  # noqa: E402
from trunkedge.core.views import AclView, DomainView, Lookup  # noqa: E402
from trunkedge.kamailio.adapter import Edge  # noqa: E402
from trunkedge.kamailio.calls import Admission, InitialRequest, Settled  # noqa: E402
from trunkedge.settings import parse_settings  # noqa: E402

SETTINGS = parse_settings({
    "listen": ["udp:127.0.0.1:5060"], "base_domain": "sip.example.net",
    "pops": {"eu1": ["sip:127.0.0.1:5091"]},
})
TARGET = Target("acme", None)
IDS = CallerIds(allow=("+31*",), default="+31200000000", policy="replace")


def domain(*nets: str) -> DomainView:
    return DomainView("acme", (AclView("office", NetworkSet(nets), False, IDS),))


def request(source: str = "192.0.2.10", preferred: str | None = None,
            credentials: digest.Credentials | None = None) -> InitialRequest:
    return InitialRequest(
        host="acme.sip.example.net", method="INVITE", call_id="call-1",
        ruri="sip:+3123456789@acme.sip.example.net",
        from_uri="sip:+31201234567@pbx", preferred=preferred, privacy=None,
        call=CallFacts(source_ip=source, ruri_user="+3123456789", from_user="+31201234567",
                       credentials=credentials))


def settled(calls: Admission, req: InitialRequest, view: DomainView) -> Settled:
    return calls.settled(req, TARGET, Lookup(view, None), digest.NonceState.INVALID, ("MD5",))


def test_a_repeated_request_gets_the_same_decision_without_working_it_out_again() -> None:
    calls = Edge(SETTINGS, "test-secret").calls
    view = domain("192.0.2.0/24")
    first = settled(calls, request(), view)
    decision, identity = first
    assert isinstance(decision, Admit) and decision.acl == "office"
    assert isinstance(identity, IdentityEdits) and identity.asserted == "+31201234567"
    assert settled(calls, request(), view) is first  # remembered: the very same value
    other = settled(calls, request(preferred="<sip:+31209999999@pbx>"), view)
    assert other is not first and isinstance(other[1], IdentityEdits)
    assert other[1].asserted == "+31209999999"


def test_a_new_view_of_the_domain_is_decided_afresh() -> None:
    calls = Edge(SETTINGS, "test-secret").calls
    assert isinstance(settled(calls, request(), domain("192.0.2.0/24"))[0], Admit)
    refused = settled(calls, request(), domain("198.51.100.0/24"))[0]
    assert isinstance(refused, Refuse) and refused.reason is Reason.ADDRESS_NOT_ALLOWED


def test_requests_with_long_facts_are_not_remembered() -> None:
    """What a request says comes from the network: a huge one must not fill the memory."""
    calls = Edge(SETTINGS, "test-secret").calls
    long = request(preferred="<sip:+31209999999@" + "p" * 600 + ">")
    assert long.memo_key() is None
    settled(calls, long, domain("192.0.2.0/24"))
    assert not len(calls.memo)


def test_requests_with_credentials_are_never_remembered() -> None:
    calls = Edge(SETTINGS, "test-secret").calls
    creds = digest.Credentials(username="31000000", realm="sip.example.net", nonce="n",
                               uri="sip:x", response="r", algorithm="MD5", qop="auth",
                               nc="00000001", cnonce="c", opaque="")
    assert request(credentials=creds).memo_key() is None
    settled(calls, request(credentials=creds), domain())
    assert not len(calls.memo)
