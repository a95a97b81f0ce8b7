"""Digest (RFC 7616/8760) sans-IO pieces, the strict syntax checks and the guards."""

from __future__ import annotations

import hashlib
import ipaddress

import pytest

from trunkedge import digest, strict
from trunkedge.guard import is_scanner
from trunkedge.names import NetworkSet, address_value

REALM, SECRET = "sip.example.net", "s3cret"
URI = "sip:+3123456789@acme.sip.example.net"


def creds_for(nonces: digest.Nonces, nonce: str, algorithm: str = "MD5",
              password: str = "pw", **over: str) -> digest.Credentials:
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[algorithm]
    ha1 = h(f"u1:{REALM}:{password}".encode()).hexdigest()
    ha2 = h(f"INVITE:{URI}".encode()).hexdigest()
    resp = h(f"{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}".encode()).hexdigest()
    fields = dict(username="u1", realm=REALM, nonce=nonce, uri=URI, response=resp,
                  algorithm=algorithm, qop="auth", nc="00000001", cnonce="c0ffee",
                  opaque=nonces.opaque())
    fields.update(over)
    return digest.Credentials(**fields)


def check(c: digest.Credentials, nonces: digest.Nonces, now: float,
          allowed: tuple[str, ...] = ("SHA-256", "MD5"), known: bool = True) -> digest.Verdict:
    ha1s = digest.ha1_all("u1", REALM, "pw") if known else None
    return digest.verify(c, method="INVITE", request_uri=URI, ha1s=ha1s, allowed=allowed,
                         nonces=nonces, now=now)


def test_parse_credentials() -> None:
    v = ('Digest username="31000000", realm="sip.example.net", nonce="abc", '
         'uri="sip:+31@x", response="ABCDEF", algorithm=SHA-256, qop=auth, nc=00000001, '
         'cnonce="x,y", opaque="o"')
    c = digest.parse_credentials(v)
    assert c is not None
    assert (c.username, c.algorithm, c.cnonce, c.response) == ("31000000", "SHA-256", "x,y",
                                                              "abcdef")
    assert digest.parse_credentials('Digest username="a\\"b", realm="r", nonce="n", '
                                    'uri="u", response="r"').username == 'a"b'  # type: ignore[union-attr]
    for bad in ("Basic dXNlcjpwYXNz", 'Digest username="u"', "Digest garbage",
                'Digest username="u", username="v", realm="r", nonce="n", uri="u", '
                'response="r"'):
        assert digest.parse_credentials(bad) is None, bad


def test_nonces_are_signed_and_expire() -> None:
    n = digest.Nonces(SECRET, REALM, 300)
    nonce = n.issue(1000.0)
    assert n.check(nonce, 1000.0) is digest.NonceState.VALID
    assert n.check(nonce, 1300.0) is digest.NonceState.VALID
    assert n.check(nonce, 1301.0) is digest.NonceState.STALE
    assert n.remaining(nonce, 1100.0) == 201
    other = digest.Nonces("another secret", REALM, 300)
    assert other.check(nonce, 1000.0) is digest.NonceState.INVALID
    assert digest.Nonces(SECRET, "other.realm", 300).check(nonce, 1000.0) \
        is digest.NonceState.INVALID
    tampered = ("A" if nonce[0] != "A" else "B") + nonce[1:]
    assert n.check(tampered, 1000.0) is digest.NonceState.INVALID
    assert n.check("!!", 1000.0) is digest.NonceState.INVALID
    assert n.check(n.issue(2000.0), 1000.0) is digest.NonceState.INVALID  # from the future
    assert n.issue(1.0) != n.issue(1.0)


def test_challenge_headers() -> None:
    headers = digest.challenge_headers(REALM, ("SHA-256", "MD5"), "N", "O", stale=True)
    assert headers == [
        'Proxy-Authenticate: Digest realm="sip.example.net", nonce="N", opaque="O", '
        'algorithm=SHA-256, qop="auth", stale=true',
        'Proxy-Authenticate: Digest realm="sip.example.net", nonce="N", opaque="O", '
        'algorithm=MD5, qop="auth", stale=true',
    ]


@pytest.mark.parametrize(("over", "now", "allowed", "known", "want"), [
    ({}, 1000.0, ("SHA-256", "MD5"), True, ("ok", "ok")),
    ({"algorithm": "SHA-256"}, 1000.0, ("SHA-256",), True, ("ok", "ok")),
    ({}, 1000.0, ("SHA-256",), True, ("wrong", "algorithm")),
    ({"algorithm": "SHA-512-256"}, 1000.0, ("SHA-256", "MD5"), True, ("wrong", "algorithm")),
    ({"password": "nope"}, 1000.0, ("MD5",), True, ("wrong", "response")),
    ({}, 1000.0, ("MD5",), False, ("wrong", "response")),  # unknown user: same answer
    ({"uri": "sip:other@x"}, 1000.0, ("MD5",), True, ("wrong", "uri")),
    ({"opaque": "x"}, 1000.0, ("MD5",), True, ("wrong", "opaque")),
    ({"qop": None}, 1000.0, ("MD5",), True, ("wrong", "qop")),
    ({"nc": "1"}, 1000.0, ("MD5",), True, ("wrong", "nc")),
    ({}, 1400.0, ("MD5",), True, ("stale", "stale")),
    ({"password": "nope"}, 1400.0, ("MD5",), True, ("wrong", "response")),
    ({"nonce": "forged"}, 1000.0, ("MD5",), True, ("wrong", "nonce")),
])
def test_verify(over: dict[str, str | None], now: float, allowed: tuple[str, ...],
                known: bool, want: tuple[str, str]) -> None:
    n = digest.Nonces(SECRET, REALM, 300)
    nonce = str(over.pop("nonce", None) or n.issue(1000.0))
    alg = str(over.pop("algorithm", "MD5"))
    password = str(over.pop("password", "pw"))
    c = creds_for(n, nonce, alg if alg in digest.ALGORITHMS else "MD5", password, **over)  # type: ignore[arg-type]
    if alg not in digest.ALGORITHMS:
        c = digest.Credentials(**{**c.__dict__, "algorithm": alg})
    v = check(c, n, now, allowed, known)
    assert (v.outcome.value, v.detail) == want


@pytest.mark.parametrize(("line", "want"), [
    ("INVITE sip:+31@acme.sip.example.net SIP/2.0", None),
    ("OPTIONS sip:x@example.com SIP/2.0  ", (400, "Bad Request Line")),
    ("OPTIONS  sip:x@example.com SIP/2.0", (400, "Bad Request Line")),
    ("INVITE <sip:x@example.com> SIP/2.0", (400, "Bad Request Line")),
    ("INVITE sip:x@example.com;a=b c SIP/2.0", (400, "Bad Request Line")),
    ("INVITE sip:x@example.com?Route=%3Csip:y%3E SIP/2.0", (400, "Bad Request-URI")),
    ("OPTIONS sip:x@example.com SIP/7.0", (505, "Version Not Supported")),
])
def test_request_line(line: str, want: tuple[int, str] | None) -> None:
    assert strict.request_line(line + "\r") == want


@pytest.mark.parametrize(("value", "ok"), [
    ('"Bell, A" <sip:a@example.com>;tag=1', True), ("sip:a@example.com;tag=1", True),
    ("*", True), (None, True), ('"W" < sip:t@example.org >', False),
    ("sip:a@example.com?Route=%3Csip:x%3E", False), ("<sip:a@example.com", False),
])
def test_address(value: str | None, ok: bool) -> None:
    assert (strict.address(value) is None) == ok


def test_date() -> None:
    assert strict.date("Sat, 13 Nov 2010 23:29:00 GMT") is None
    assert strict.date("Fri, 01 Jan 2010 16:00:00 EST") == (400, "Bad Date")
    assert strict.date(None) is None


def test_guards() -> None:
    sigs = ("friendly-scanner", "sipvicious")
    assert is_scanner("friendly-scanner", sigs) and is_scanner("SIPVicious 0.3", sigs)
    assert not is_scanner("Asterisk PBX 20", sigs) and not is_scanner(None, sigs)
    exempt = NetworkSet(["10.0.0.0/8", "2001:db8::/32"])
    assert "10.1.2.3" in exempt and "2001:db8::1" in exempt
    assert "192.0.2.1" not in exempt and "garbage" not in exempt
    assert "10.0.0.1" not in NetworkSet([])
    for garbage in ("", "1.2.3", "01.2.3.4", "10.0.0.1 ", "fe80::1%eth0", "::g", "10.0.0.1\0"):
        assert garbage not in exempt


def test_addresses_parse_as_the_ipaddress_module_does() -> None:
    for text in ("10.1.2.3", "0.0.0.0", "255.255.255.255", "::1", "2001:db8::1", "::ffff:1.2.3.4"):
        a = ipaddress.ip_address(text)
        assert address_value(text) == (a.version, int(a))
    assert address_value("256.1.1.1") is None and address_value("garbage") is None


@pytest.mark.parametrize("cidr", ["10.0.0.0/8", "10.1.2.3/8", "192.0.2.7/32", "192.0.2.7",
                                  "2001:db8::/32", "2001:db8::7/127", "0.0.0.0/0", "::/0"])
def test_network_sets_span_what_ipaddress_spans(cidr: str) -> None:
    net = ipaddress.ip_network(cidr, strict=False)
    nets = NetworkSet([cidr])
    assert net.network_address in nets and net.broadcast_address in nets
    assert (net.network_address - 1 not in nets) if int(net.network_address) else True
    assert (net.broadcast_address + 1 not in nets) if net.prefixlen else True


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "10.0.0.0/x", "10.0.0.0/", "garbage", "::/129"])
def test_network_sets_refuse_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        NetworkSet([bad])
