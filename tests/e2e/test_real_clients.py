"""End to end with real softphones: Debian's linphonec and baresip call through the edge.

The softphones are set up as a customer would set them up (clients/README in the shared
folder): the edge as outbound proxy (so they preload `Route: <sip:EDGE;lr>`), identity
`sip:USERNAME@acme.sip.example.net`, the account's password, no registration. From
127.0.0.1 (the IP ACL) they are admitted at once; from 127.0.0.2 / 127.0.0.3 (in no ACL)
they must answer the 407. The POP gateway is a recording UAS (clients.RecordingGateway):
every assertion about the trust border is made on what it received.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clients import Baresip, GatewayCall, Linphone, RecordingGateway, SipMessage, Softphone
from harness import BASE, Edge, RedisServer

pytestmark = pytest.mark.e2e

NUMBER = "+31201234567"
ACME, SECURE = f"acme.{BASE}", f"secure.{BASE}"
PBX, ROAMING, ROAMING2 = "127.0.0.1", "127.0.0.2", "127.0.0.3"
OFFICE_DEFAULT = "+31205550000"
USER, PASSWORD, USER_DEFAULT = "31000000", "pw-linphone", "+31205550100"
BARE_USER, BARE_PASSWORD, BARE_DEFAULT = "31000001", "pw-baresip", "+31205550111"

CUSTOMER = {
    "acls": {
        # IP only: the office PBX; numbers it does not own get the office's default
        "office": {"ips": [f"{PBX}/32"], "caller_ids": {
            "allow": ["+3120555*"], "default": OFFICE_DEFAULT, "policy": "replace"}},
        "roaming": {"accounts": [
            # as the seed: a number of its own, refused otherwise. The softphone's From
            # user is its username, which presents no number: the default is asserted.
            {"username": USER, "password": PASSWORD, "caller_ids": {
                "allow": [USER_DEFAULT], "default": USER_DEFAULT, "policy": "reject"}},
            # `replace`: admitted whatever the From, so that the credentials on ACK and
            # BYE are checked by a call the edge admits, independently of caller IDs
            {"username": BARE_USER, "password": BARE_PASSWORD, "caller_ids": {
                "allow": [BARE_DEFAULT], "default": BARE_DEFAULT, "policy": "replace"}},
        ]},
    },
    "domains": {
        "acme": {"acls": ["office", "roaming"]},
        "secure": {"acls": ["roaming"], "algorithms": ["SHA-256", "MD5"]},
    },
}


def pai(number: str) -> str:
    return f"<sip:{number}@{BASE};user=phone>"


@dataclass
class Site:
    edge: Edge
    gateway: RecordingGateway

    @property
    def addr(self) -> tuple[str, int]:
        return (self.edge.host, self.edge.port)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One Redis, one recording gateway as POP eu1, one edge: for the whole module."""
    for binary in ("redis-server", "kamailio", "linphonec", "baresip"):
        if shutil.which(binary) is None:
            pytest.fail(f"{binary} is not installed: run scripts/setup.sh --test")
    work = tmp_path_factory.mktemp("real-clients")
    redis = RedisServer(work / "redis")
    redis.start()
    gateway = RecordingGateway("eu1", log_path=work / "gateway-eu1.log").start()
    edge = Edge(work / "edge", redis.url, {"eu1": gateway.uri})
    try:
        edge.start()
        edge.provision(CUSTOMER)
        yield Site(edge, gateway)
    finally:
        edge.stop()
        gateway.stop()
        redis.stop(save=False)


def linphone(site: Site, tmp_path: Path, source: str, domain: str = ACME) -> Linphone:
    return Linphone(tmp_path / f"linphone-{source}", edge=site.addr, user=USER,
                    password=PASSWORD, domain=domain, source=source)


def baresip(site: Site, tmp_path: Path, source: str, domain: str = ACME) -> Baresip:
    return Baresip(tmp_path / f"baresip-{source}", edge=site.addr, user=BARE_USER,
                   password=BARE_PASSWORD, domain=domain, source=source)


# -- helpers -------------------------------------------------------------------------------
def wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def context(site: Site, phone: Softphone, mark: int) -> str:
    """Everything that explains a failure: the softphone, the gateway, the edge's lines."""
    call_id = phone.call_id
    edge_lines = [ln for ln in site.edge.log().splitlines() if call_id and call_id in ln]
    return (f"{phone.explain()}\n\n--- what the gateway received ---\n"
            f"{site.gateway.dump(mark)}\n\n--- edge log for Call-ID {call_id} ---\n"
            + "\n".join(edge_lines[-40:]))


def place_call(site: Site, phone: Softphone, mark: int, domain: str = ACME) -> GatewayCall:
    """Dial NUMBER; the call must come up (see call_is_up)."""
    phone.dial(f"sip:{NUMBER}@{domain}")
    return call_is_up(site, phone, mark)


def call_is_up(site: Site, phone: Softphone, mark: int) -> GatewayCall:
    """The call came up at the softphone and at the gateway (INVITE and ACK received);
    returns what the gateway received of it."""
    over = wait(lambda: phone.is_established() or phone.is_over(), 10)
    assert over and phone.is_established(), (
        f"the call did not come up: final answers {phone.final_responses()}\n"
        f"{context(site, phone, mark)}")
    assert site.gateway.wait_request("ACK", mark, 5), (
        f"the gateway got no ACK\n{context(site, phone, mark)}")
    return gateway_call(site, phone, mark)


def statuses(finals: list[str]) -> list[int]:
    return [int(s.split()[1]) for s in finals]


def gateway_call(site: Site, phone: Softphone, mark: int) -> GatewayCall:
    calls = [c for c in site.gateway.calls_since(mark) if c.call_id == phone.call_id]
    assert len(calls) == 1, f"gateway calls: {calls}\n{context(site, phone, mark)}"
    return calls[0]


def hang_up(site: Site, phone: Softphone, mark: int) -> GatewayCall:
    """The softphone hangs up: its BYE reaches the gateway and the 200 comes back."""
    phone.hangup()
    assert site.gateway.wait_request("BYE", mark, 5), (
        f"the gateway got no BYE\n{context(site, phone, mark)}")
    assert wait(lambda: any(s.startswith("SIP/2.0 200") for s in phone.final_responses("BYE")),
                5), f"the softphone got no 200 for its BYE\n{context(site, phone, mark)}"
    phone.wait_ended(5)
    return gateway_call(site, phone, mark)


def border_violations(call: GatewayCall) -> list[str]:
    """What crossed the trust border into the POP and must not have (SPEC: 'The trust
    border, in requests too')."""
    found = []
    for m in call.messages:
        if not m.is_request:
            continue
        for name in ("Route", "Proxy-Authorization", "Authorization"):
            found += [f"{m.method} carried {name}: {v}" for v in m.headers(name)]
    return found


def assert_trust_border(call: GatewayCall, asserted: str) -> None:
    """Exactly the edge's P-Asserted-Identity on the INVITE; no customer Route, no
    credentials on any request of the dialog (INVITE, ACK, BYE)."""
    invite = call.first("INVITE")
    problems = border_violations(call)
    if invite.headers("P-Asserted-Identity") != [pai(asserted)]:
        problems.append(f"INVITE P-Asserted-Identity {invite.headers('P-Asserted-Identity')}"
                        f" != [{pai(asserted)}]")
    for name in ("P-Preferred-Identity", "Remote-Party-ID"):
        problems += [f"INVITE carried {name}: {v}" for v in invite.headers(name)]
    assert not problems, ("at the gateway:\n  " + "\n  ".join(problems)
                          + f"\n\n--- what the gateway received ---\n{call.dump()}")


def credentials_sent(phone: Softphone) -> list[SipMessage]:
    return [m for m in phone.sent("INVITE") if m.headers("Proxy-Authorization")]


# -- the cases -----------------------------------------------------------------------------
def test_linphone_from_the_ip_acl_is_answered_and_hangs_up(site: Site, tmp_path: Path) -> None:
    mark = site.gateway.mark()
    with linphone(site, tmp_path, PBX) as phone:
        place_call(site, phone, mark)
        assert phone.final_responses() == ["SIP/2.0 200 OK"], context(site, phone, mark)
        assert credentials_sent(phone) == []  # the IP ACL admits without a challenge
        call = hang_up(site, phone, mark)
    assert [m.method for m in call.messages if m.is_request] == ["INVITE", "ACK", "BYE"]
    assert_trust_border(call, OFFICE_DEFAULT)


def test_linphone_digest_md5_407_then_200(site: Site, tmp_path: Path) -> None:
    mark = site.gateway.mark()
    with linphone(site, tmp_path, ROAMING) as phone:
        place_call(site, phone, mark)
        assert statuses(phone.final_responses()) == [407, 200], context(site, phone, mark)
        (auth,) = {m.header("Proxy-Authorization") for m in credentials_sent(phone)}
        assert f'username="{USER}"' in auth and "algorithm=SHA-256" not in auth, auth
        assert len(auth.split('response="')[1].split('"')[0]) == 32, auth  # an MD5 hash
        call = hang_up(site, phone, mark)
    # a softphone as the seed: From user = username, no PPI -> the account's default
    assert call.first("INVITE").header("From").startswith(f'"{USER}" <sip:{USER}@{ACME}>')
    assert_trust_border(call, USER_DEFAULT)


def test_baresip_digest_md5_407_then_200(site: Site, tmp_path: Path) -> None:
    mark = site.gateway.mark()
    with baresip(site, tmp_path, ROAMING2) as phone:
        place_call(site, phone, mark)
        assert statuses(phone.final_responses()) == [407, 200], context(site, phone, mark)
        (auth,) = {m.header("Proxy-Authorization") for m in credentials_sent(phone)}
        assert f'username="{BARE_USER}"' in auth, auth
        call = hang_up(site, phone, mark)
        # baresip repeats its credentials on ACK and BYE: the edge must not pass them on
        assert phone.sent("BYE")[0].headers("Proxy-Authorization"), phone.explain()
    assert_trust_border(call, BARE_DEFAULT)


def test_linphone_answers_sha256_on_a_sha256_md5_domain(site: Site, tmp_path: Path) -> None:
    mark = site.gateway.mark()
    with linphone(site, tmp_path, ROAMING, domain=SECURE) as phone:
        phone.dial(f"sip:{NUMBER}@{SECURE}")
        assert wait(lambda: bool(credentials_sent(phone)) or phone.is_over(), 10), (
            context(site, phone, mark))
        # the challenge it got and the credentials it sent, from linphone's own log of
        # every message (what the edge received; the gateway must see none of it)
        challenge = next(t.message for t in phone.traced()
                         if not t.out and t.message.status == 407)
        algorithms = [c.split("algorithm=")[1].split(",")[0].strip()
                      for c in challenge.headers("Proxy-Authenticate")]
        assert algorithms == ["SHA-256", "MD5"], challenge.raw
        (auth,) = {m.header("Proxy-Authorization") for m in credentials_sent(phone)}
        assert "algorithm=SHA-256" in auth, auth
        assert len(auth.split('response="')[1].split('"')[0]) == 64, auth  # a SHA-256 hash
        call_is_up(site, phone, mark)
        assert statuses(phone.final_responses()) == [407, 200], context(site, phone, mark)
        call = hang_up(site, phone, mark)
    assert_trust_border(call, USER_DEFAULT)  # which includes: no credentials at the POP


@pytest.mark.parametrize("client", ["linphone", "baresip"])
def test_far_end_bye_reaches_the_softphone(site: Site, tmp_path: Path, client: str) -> None:
    mark = site.gateway.mark()
    make = linphone if client == "linphone" else baresip
    with make(site, tmp_path, PBX) as phone:
        place_call(site, phone, mark)
        answer = site.gateway.hangup(phone.call_id)
        assert answer is not None and answer.status == 200, (
            f"the far end's BYE got {answer and answer.start_line}\n"
            f"{context(site, phone, mark)}")
        assert phone.requests_received("BYE"), phone.explain()
        phone.wait_ended(5)
    assert_trust_border(gateway_call(site, phone, mark), OFFICE_DEFAULT)
