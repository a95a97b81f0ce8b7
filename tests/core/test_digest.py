"""Digest (RFC 7616/8760), sans-IO: credentials, nonces, challenges, verdicts and HA1s."""

from __future__ import annotations

import hashlib

import pytest

from trunkedge.core import digest
from trunkedge.core.digest import ha1, ha1_all, is_ha1

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
    """What the edge does: the nonce is checked once per request, then the credentials."""
    ha1s = digest.ha1_all("u1", REALM, "pw") if known else None
    return digest.verify(c, method="INVITE", request_uri=URI, ha1s=ha1s, allowed=allowed,
                         opaque=nonces.opaque(), nonce_state=nonces.check(c.nonce, now))


def test_credentials_keep_quoted_commas_and_escapes_and_lower_case_the_response() -> None:
    v = ('Digest username="31000000", realm="sip.example.net", nonce="abc", '
         'uri="sip:+31@x", response="ABCDEF", algorithm=SHA-256, qop=auth, nc=00000001, '
         'cnonce="x,y", opaque="o"')
    c = digest.parse_credentials(v)
    assert c is not None
    assert (c.username, c.algorithm, c.cnonce, c.response) == ("31000000", "SHA-256", "x,y",
                                                              "abcdef")
    assert digest.parse_credentials('Digest username="a\\"b", realm="r", nonce="n", '
                                    'uri="u", response="r"').username == 'a"b'  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", [
    pytest.param("Basic dXNlcjpwYXNz", id="basic-scheme"),
    pytest.param('Digest username="u"', id="fields-missing"),
    pytest.param("Digest garbage", id="garbage"),
    pytest.param('Digest username="u", username="v", realm="r", nonce="n", uri="u", '
                 'response="r"', id="username-twice"),
])
def test_malformed_or_ambiguous_credentials_are_not_credentials(bad: str) -> None:
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


def test_challenge_has_one_header_per_algorithm_sharing_one_nonce() -> None:
    headers = digest.challenge_headers(REALM, ("SHA-256", "MD5"), "N", "O", stale=True)
    assert headers == [
        'Proxy-Authenticate: Digest realm="sip.example.net", nonce="N", opaque="O", '
        'algorithm=SHA-256, qop="auth", stale=true',
        'Proxy-Authenticate: Digest realm="sip.example.net", nonce="N", opaque="O", '
        'algorithm=MD5, qop="auth", stale=true',
    ]


@pytest.mark.parametrize(("over", "now", "allowed", "known", "want"), [
    pytest.param({}, 1000.0, ("SHA-256", "MD5"), True, ("ok", "ok"), id="md5-right-password"),
    pytest.param({"algorithm": "SHA-256"}, 1000.0, ("SHA-256",), True, ("ok", "ok"),
                 id="sha256-right-password"),
    pytest.param({}, 1000.0, ("SHA-256",), True, ("wrong", "algorithm"),
                 id="algorithm-not-allowed"),
    pytest.param({"algorithm": "SHA-512-256"}, 1000.0, ("SHA-256", "MD5"), True,
                 ("wrong", "algorithm"), id="algorithm-unknown"),
    pytest.param({"password": "nope"}, 1000.0, ("MD5",), True, ("wrong", "response"),
                 id="wrong-password"),
    pytest.param({}, 1000.0, ("MD5",), False, ("wrong", "response"),
                 id="unknown-user-same-as-wrong-password"),
    pytest.param({"uri": "sip:other@x"}, 1000.0, ("MD5",), True, ("wrong", "uri"),
                 id="uri-not-the-request-uri"),
    pytest.param({"opaque": "x"}, 1000.0, ("MD5",), True, ("wrong", "opaque"),
                 id="opaque-not-ours"),
    pytest.param({"qop": None}, 1000.0, ("MD5",), True, ("wrong", "qop"), id="qop-missing"),
    pytest.param({"nc": "1"}, 1000.0, ("MD5",), True, ("wrong", "nc"), id="nc-malformed"),
    pytest.param({}, 1400.0, ("MD5",), True, ("stale", "stale"),
                 id="expired-nonce-right-password-is-stale"),
    pytest.param({"password": "nope"}, 1400.0, ("MD5",), True, ("wrong", "response"),
                 id="expired-nonce-wrong-password-is-wrong"),
    pytest.param({"nonce": "forged"}, 1000.0, ("MD5",), True, ("wrong", "nonce"),
                 id="nonce-forged"),
])
def test_verdict_names_what_is_wrong_with_the_credentials(
        over: dict[str, str | None], now: float, allowed: tuple[str, ...], known: bool,
        want: tuple[str, str]) -> None:
    n = digest.Nonces(SECRET, REALM, 300)
    nonce = str(over.pop("nonce", None) or n.issue(1000.0))
    alg = str(over.pop("algorithm", "MD5"))
    password = str(over.pop("password", "pw"))
    c = creds_for(n, nonce, alg if alg in digest.ALGORITHMS else "MD5", password, **over)  # type: ignore[arg-type]
    if alg not in digest.ALGORITHMS:
        c = digest.Credentials(**{**c.__dict__, "algorithm": alg})
    v = check(c, n, now, allowed, known)
    assert (v.outcome.value, v.detail) == want


def test_ha1_is_the_rfc_hash_of_user_realm_and_password_per_algorithm() -> None:
    want = hashlib.md5(b"31000000:sip.example.net:pw").hexdigest()
    assert ha1("MD5", "31000000", "sip.example.net", "pw") == want
    both = ha1_all("31000000", "sip.example.net", "pw")
    assert set(both) == {"MD5", "SHA-256"}
    assert is_ha1("SHA-256", both["SHA-256"]) and not is_ha1("MD5", both["SHA-256"])
