"""End to end: digest hardening and attackers, against two edges sharing one Redis.

SIPp 3.6.1 speaks MD5 only, so these cases use the tests' small Python SIP client, which
computes digests independently of the product's code (harness.authorization).
"""

from __future__ import annotations

import statistics
import time
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
    header_values,
    sip_request,
    status_of,
)

pytestmark = pytest.mark.e2e

NUMBER = "+3123456789"
RURI = f"sip:{NUMBER}@acme.{BASE}"
SHA_RURI = f"sip:{NUMBER}@secure.{BASE}"
USER, PASSWORD = "31000000", "correct horse"
NONCE_LIFE = 2
BAN_FAILURES, BAN_TIME = 3, 4
SECURITY = {"ban_failures": BAN_FAILURES, "ban_window_s": 60, "ban_time_s": BAN_TIME,
            "flood_requests": 40, "flood_window_s": 2, "flood_exempt": ["127.0.5.2/32"]}


class Pair:
    """Edges A and B: same secret, same Redis, same gateways."""

    def __init__(self, a: Edge, b: Edge) -> None:
        self.a, self.b = a, b

    @staticmethod
    def addr(edge: Edge) -> tuple[str, int]:
        return (edge.host, edge.port)

    def call(self, edge: Edge, source: str, ruri: str = RURI, user: str = USER) -> SipCall:
        return SipCall(self.addr(edge), ruri, source=source, from_user=user)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer,
         gateways: dict[str, Gateway]) -> Iterator[Pair]:
    work = tmp_path_factory.mktemp("hardened")
    gws = {p: g.uri for p, g in gateways.items()}
    edges = [Edge(work / name, redis_server.url, gws, security=dict(SECURITY),
                  auth={"nonce_expire": NONCE_LIFE}) for name in ("a", "b")]
    try:
        for e in edges:
            e.start()
        edges[0].provision({
            "acls": {"roaming": {
                "accounts": [{"username": USER, "password": PASSWORD}],
                "caller_ids": {"default": "+31200000000", "policy": "replace"}}},
            "domains": {"acme": {"acls": ["roaming"]},
                        "secure": {"acls": ["roaming"], "algorithms": ["SHA-256", "MD5"]},
                        "shaonly": {"acls": ["roaming"], "algorithms": ["SHA-256"]}},
        })
        yield Pair(*edges)
    finally:
        for e in edges:
            e.stop()


def authenticated(call: SipCall, challenge: dict[str, str], password: str = PASSWORD,
                  **kw: str) -> str:
    header = authorization(challenge, USER, password, "INVITE", call.ruri, **kw)
    return call.invite([header])


def test_challenge_offers_each_allowed_algorithm_with_one_nonce(pair: Pair) -> None:
    reply = pair.call(pair.a, "127.0.5.10", SHA_RURI).invite()
    assert reply.startswith("SIP/2.0 407 Proxy Authentication Required"), reply
    offered = challenges(reply)
    assert [c["algorithm"] for c in offered] == ["SHA-256", "MD5"]
    assert len({c["nonce"] for c in offered}) == 1 and len({c["opaque"] for c in offered}) == 1
    for c in offered:
        assert c["scheme"] == "Digest" and c["realm"] == BASE and c["qop"] == "auth"
        assert c["opaque"] and "stale" not in c
    assert [c["algorithm"] for c in challenges(pair.call(pair.a, "127.0.5.10").invite())] \
        == ["MD5"]  # a domain that sets nothing: the edge's default


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_each_offered_algorithm_admits(pair: Pair, algorithm: str) -> None:
    call = pair.call(pair.a, "127.0.5.11", SHA_RURI)
    (offer,) = [c for c in challenges(call.invite()) if c["algorithm"] == algorithm]
    reply = authenticated(call, offer)
    assert status_of(reply) == 200, reply
    assert status_of(call.bye()) == 200


def test_an_algorithm_the_domain_does_not_allow_is_refused(pair: Pair) -> None:
    call = pair.call(pair.a, "127.0.5.12", f"sip:{NUMBER}@shaonly.{BASE}")
    (offer,) = challenges(call.invite())
    assert offer["algorithm"] == "SHA-256"
    reply = authenticated(call, offer, algorithm="MD5")
    assert reply.startswith("SIP/2.0 403 Forbidden"), reply
    assert "reason=wrong-credentials:algorithm" in pair.a.log()


def test_a_uri_other_than_the_request_uri_is_refused(pair: Pair) -> None:
    call = pair.call(pair.a, "127.0.5.13")
    (offer,) = challenges(call.invite())
    reply = authenticated(call, offer, response_uri=f"sip:{NUMBER}@other.{BASE}")
    assert reply.startswith("SIP/2.0 403"), reply
    assert "reason=wrong-credentials:uri" in pair.a.log()


def test_expired_nonce_with_a_correct_response_is_challenged_stale(pair: Pair) -> None:
    call = pair.call(pair.a, "127.0.5.14")
    (offer,) = challenges(call.invite())
    time.sleep(NONCE_LIFE + 1.5)
    reply = authenticated(call, offer)
    assert reply.startswith("SIP/2.0 407"), reply
    (fresh,) = challenges(reply)
    assert fresh["stale"] == "true" and fresh["nonce"] != offer["nonce"]
    assert status_of(authenticated(call, fresh)) == 200
    call.bye()


def test_replayed_nonce_count_is_refused_on_both_edges(pair: Pair) -> None:
    first = pair.call(pair.a, "127.0.5.15")
    (offer,) = challenges(first.invite())
    header = authorization(offer, USER, PASSWORD, "INVITE", RURI)
    assert status_of(first.invite([header])) == 200
    first.bye()
    # the very same credentials, in a new call, to the same edge and to the other one
    for edge in (pair.a, pair.b):
        replay = pair.call(edge, "127.0.5.16").invite([header])
        assert replay.startswith("SIP/2.0 403"), replay
    assert "reason=wrong-credentials:replay" in pair.b.log()
    # the next nonce count of the same nonce is a new, legitimate use
    again = pair.call(pair.b, "127.0.5.15")
    reply = again.invite([authorization(offer, USER, PASSWORD, "INVITE", RURI, nc="00000002")])
    assert status_of(reply) == 200, reply
    again.bye()


def test_unknown_user_and_wrong_password_look_the_same(pair: Pair) -> None:
    """Same challenge, same final response, same timing class."""
    def attempt(i: int, user: str, password: str) -> tuple[str, str, float]:
        call = pair.call(pair.a, f"127.0.6.{i}", user=user)
        first = call.invite()
        (offer,) = challenges(first)
        header = authorization(offer, user, password, "INVITE", RURI)
        started = time.monotonic()
        final = call.invite([header])
        return first, final, time.monotonic() - started

    runs = {kind: [attempt(i + (0 if kind == "unknown" else 100), *creds) for i in range(1, 16)]
            for kind, creds in (("unknown", ("31999999", PASSWORD)),
                                ("wrong", (USER, "wrong password")))}

    def shape(reply: str) -> tuple[str, tuple[str, ...]]:
        head = reply.split("\r\n\r\n")[0].split("\r\n")
        return head[0], tuple(sorted(line.split(":")[0] for line in head[1:]))

    for kind in runs:
        firsts = {shape(first) for first, _, _ in runs[kind]}
        finals = {shape(final) for _, final, _ in runs[kind]}
        assert finals == {shape(runs["wrong"][0][1])}, (kind, finals)
        assert firsts == {shape(runs["wrong"][0][0])}
    assert runs["unknown"][0][1].startswith("SIP/2.0 403 Forbidden")
    median = {k: statistics.median(t for _, _, t in v) for k, v in runs.items()}
    assert abs(median["unknown"] - median["wrong"]) < 0.005, median


def test_brute_force_bans_the_address_on_every_edge(pair: Pair) -> None:
    attacker = "127.0.5.20"
    for _ in range(BAN_FAILURES):
        call = pair.call(pair.a, attacker)
        (offer,) = challenges(call.invite())
        assert authenticated(call, offer, password="guess").startswith("SIP/2.0 403")
    # banned: even the right password gets no answer, from either edge. Edge B learns of
    # the ban by pub/sub within milliseconds (until then its warm cache could still send
    # a 407, but credentials are checked against the ban in Redis with their claim).
    time.sleep(0.1)
    for edge in (pair.b, pair.a):
        call = pair.call(edge, attacker)
        assert call.invite(timeout=1.0) == "", "a banned address got an answer"
    assert "banned 127.0.5.20" in pair.a.log()
    assert pair.b.status()["dropped"]["banned"] >= 1
    # others are not affected, and the ban ends by itself
    assert status_of(pair.call(pair.b, "127.0.5.21").invite()) == 407
    time.sleep(BAN_TIME + 0.5)
    call = pair.call(pair.b, attacker)
    (offer,) = challenges(call.invite())
    assert status_of(authenticated(call, offer)) == 200
    call.bye()


@pytest.mark.parametrize("agent", ["friendly-scanner", "sipvicious 0.3.4", "SIPCLI/v1.8"])
def test_scanners_are_dropped(pair: Pair, agent: str) -> None:
    target = Pair.addr(pair.a)
    assert sip_request(target, "OPTIONS", f"sip:{pair.a.address}", source="127.0.5.30",
                       headers=[f"User-Agent: {agent}"], timeout=0.7) is None
    assert status_of(sip_request(target, "OPTIONS", f"sip:{pair.a.address}",
                                 source="127.0.5.30", headers=["User-Agent: Asterisk"])) == 200


def test_flooding_address_is_dropped_but_exempt_addresses_are_not(pair: Pair) -> None:
    def burst(source: str) -> int:
        answered = 0
        for _ in range(120):
            reply = sip_request(Pair.addr(pair.b), "OPTIONS", f"sip:{pair.b.address}",
                                source=source, timeout=0.2)
            answered += reply is not None
        return answered

    flooded = burst("127.0.5.40")
    assert flooded < 100, flooded  # pike stopped answering past the density
    assert burst("127.0.5.2") == 120  # settings' flood_exempt
    assert pair.b.status()["dropped"]["flood"] >= 120 - flooded


def test_header_order_and_other_realms_credentials(pair: Pair, tmp_path: Path) -> None:
    """Credentials for another realm are ignored; ours are found among several."""
    call = pair.call(pair.a, "127.0.5.50")
    (offer,) = challenges(call.invite())
    foreign = ('Proxy-Authorization: Digest username="x", realm="other.example", '
               'nonce="n", uri="sip:x", response="00000000000000000000000000000000"')
    ours = authorization(offer, USER, PASSWORD, "INVITE", RURI)
    reply = call.invite([foreign, ours])
    assert status_of(reply) == 200, reply
    assert header_values(reply, "Proxy-Authenticate") == []
    call.bye()
