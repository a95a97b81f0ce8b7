"""HTTP Digest for SIP (RFC 3261 §22, RFC 7616, RFC 8760), sans-IO.

Challenges offer one Proxy-Authenticate per allowed algorithm, all with the same nonce,
`qop="auth"` and an `opaque`. Nonces are stateless and authenticated: a keyed BLAKE2s MAC
(key derived from the cluster's shared secret) over their issue time, a random part and
the realm, so every edge verifies what any edge issued, and an expired one is recognised
as stale. Replay of a (nonce, nc) pair is refused by the caller through `replay_claim`
(the store claims it atomically in Redis, for every edge).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import os
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ALGORITHMS = {"MD5": "md5", "SHA-256": "sha256"}
"""Supported digest algorithms: RFC name -> hashlib name."""


def _h(algorithm: str, text: str) -> str:
    return hashlib.new(ALGORITHMS[algorithm], text.encode()).hexdigest()


def ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """H(username:realm:password) as lower-case hex."""
    return _h(algorithm, f"{username}:{realm}:{password}")


def ha1_all(username: str, realm: str, password: str) -> dict[str, str]:
    """The HA1 for every supported algorithm, as provisioning stores them."""
    return {alg: ha1(alg, username, realm, password) for alg in ALGORITHMS}


def is_ha1(algorithm: str, value: str) -> bool:
    """A well-formed hex HA1 of the algorithm's length."""
    size = hashlib.new(ALGORITHMS[algorithm]).digest_size * 2
    return len(value) == size and all(c in "0123456789abcdef" for c in value)


def response(algorithm: str, ha1_hex: str, method: str, uri: str, nonce: str, nc: str,
             cnonce: str, qop: str = "auth") -> str:
    """The request-digest for qop=auth: H(HA1:nonce:nc:cnonce:qop:H(method:uri))."""
    ha2 = _h(algorithm, f"{method}:{uri}")
    return _h(algorithm, f"{ha1_hex}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


# -- credentials ------------------------------------------------------------------------
@dataclass(frozen=True)
class Credentials:
    """A parsed `Digest` Authorization / Proxy-Authorization value."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None


NONCE_COUNT = re.compile(r"[0-9a-fA-F]{8}")  # nc: 8 hex digits (RFC 7616)
_ESCAPE = re.compile(r"\\(.)")
_CONTROL = re.compile(r"[\r\n\0]")
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^\s,"]+)\s*(?:,|$)')


def parse_credentials(value: str) -> Credentials | None:
    """Parse `Digest k=v, k="v", ...`; None if it is not well-formed Digest."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest" or len(value) > 4096:
        return None
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if not m or m.end() == pos:
            return None
        key = m.group(1).lower()
        raw = m.group(3) if m.group(3) is not None else m.group(2)
        if key in params:
            return None  # a parameter twice: ambiguous, refuse
        params[key] = _ESCAPE.sub(r"\1", raw) if m.group(3) is not None and "\\" in raw \
            else raw
        pos = m.end()
    try:
        creds = Credentials(
            username=params["username"], realm=params["realm"], nonce=params["nonce"],
            uri=params["uri"], response=params["response"].lower(),
            algorithm=params.get("algorithm", "MD5"), qop=params.get("qop"),
            nc=params.get("nc"), cnonce=params.get("cnonce"), opaque=params.get("opaque"),
        )
    except KeyError:
        return None
    if _CONTROL.search(value):
        return None
    return creds


# -- nonces -----------------------------------------------------------------------------
class NonceState(enum.Enum):
    VALID = "valid"
    STALE = "stale"  # ours, but expired
    INVALID = "invalid"  # not ours (bad signature, malformed, from the future)


class Nonces:
    """Stateless nonces: base64url(issued[8] random[8] mac[16]), mac a keyed BLAKE2s."""

    def __init__(self, secret: str, realm: str, lifetime: int) -> None:
        self._key = hashlib.sha256(f"trunkedge-nonce:{secret}".encode()).digest()
        self._realm = realm.encode()
        self.lifetime = lifetime
        self._opaque = hmac.new(self._key, b"opaque:" + self._realm,
                                hashlib.sha256).hexdigest()[:32]

    def _mac(self, head: bytes) -> bytes:
        """Keyed BLAKE2s (a PRF like HMAC-SHA-256, cheaper per call), 128 bits."""
        return hashlib.blake2s(head + self._realm, key=self._key, digest_size=16).digest()

    def issue(self, now: float, rand: bytes | None = None) -> str:
        head = struct.pack(">Q", int(now)) + (rand if rand is not None else os.urandom(8))
        return base64.urlsafe_b64encode(head + self._mac(head)).decode().rstrip("=")

    def check(self, nonce: str, now: float) -> NonceState:
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, TypeError):
            return NonceState.INVALID
        if len(raw) != 32 or not hmac.compare_digest(raw[16:], self._mac(raw[:16])):
            return NonceState.INVALID
        issued = struct.unpack(">Q", raw[:8])[0]
        if issued > now + 5:
            return NonceState.INVALID
        return NonceState.VALID if now - issued <= self.lifetime else NonceState.STALE

    def remaining(self, nonce: str, now: float) -> int:
        """Seconds the nonce stays valid (for the replay record's expiry)."""
        raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        return max(1, int(struct.unpack(">Q", raw[:8])[0] + self.lifetime - now) + 1)

    def opaque(self) -> str:
        """The realm's opaque value (computed once per worker)."""
        return self._opaque


def challenge_headers(realm: str, algorithms: Sequence[str], nonce: str, opaque: str,
                      stale: bool, header: str = "Proxy-Authenticate") -> list[str]:
    """One challenge per algorithm, most preferred first, sharing one nonce."""
    tail = ", stale=true" if stale else ""
    return [f'{header}: Digest realm="{realm}", nonce="{nonce}", opaque="{opaque}", '
            f'algorithm={alg}, qop="auth"{tail}' for alg in algorithms]


# -- verification -----------------------------------------------------------------------
class Outcome(enum.Enum):
    OK = "ok"
    STALE = "stale"
    WRONG = "wrong"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    detail: str  # why, for logs: "ok", "response", "uri", "algorithm", "nonce", ...


def verify(
    creds: Credentials,
    *,
    method: str,
    request_uri: str,
    ha1s: dict[str, str] | None,
    allowed: Sequence[str],
    opaque: str,
    nonce_state: NonceState,
) -> Verdict:
    """Check one set of credentials (RFC 7616 §3.4, RFC 8760), given the state of its
    nonce (checked once per request, see `Nonces.check`). `ha1s` None (unknown user) costs
    the same work and fails the same way as a wrong password, so neither can be told from
    the other."""
    algorithm = creds.algorithm.upper() if creds.algorithm else "MD5"
    canonical = next((a for a in ALGORITHMS if a.upper() == algorithm), None)
    known = canonical is not None and ha1s is not None and canonical in ha1s
    work_alg = canonical or "MD5"
    ha1_hex = ha1s[work_alg] if known and ha1s else "0" * (len(_h(work_alg, "")))
    expected = response(work_alg, ha1_hex, method, creds.uri, creds.nonce,
                        creds.nc or "", creds.cnonce or "", creds.qop or "auth")
    matches = hmac.compare_digest(expected.encode(), creds.response.encode())

    if canonical is None or canonical not in allowed:
        return Verdict(Outcome.WRONG, "algorithm")
    if creds.qop != "auth" or not creds.nc or not creds.cnonce:
        return Verdict(Outcome.WRONG, "qop")
    if not NONCE_COUNT.fullmatch(creds.nc):
        return Verdict(Outcome.WRONG, "nc")
    if creds.opaque != opaque:
        return Verdict(Outcome.WRONG, "opaque")
    if creds.uri != request_uri:
        return Verdict(Outcome.WRONG, "uri")
    if nonce_state is NonceState.INVALID:
        return Verdict(Outcome.WRONG, "nonce")
    if not (known and matches):
        return Verdict(Outcome.WRONG, "response")
    if nonce_state is NonceState.STALE:
        return Verdict(Outcome.STALE, "stale")
    return Verdict(Outcome.OK, "ok")


def credentials_for_realm(values: Iterable[str], realm: str) -> Credentials | None:
    """The first well-formed Digest credentials for our realm among a request's
    Proxy-Authorization values (RFC 3261 §22.3: other realms belong to other proxies)."""
    for value in values:
        creds = parse_credentials(value)
        if creds is not None and creds.realm.lower() == realm.lower():
            return creds
    return None


def replay_claim(creds: Credentials, nonce_state: NonceState, nonces: Nonces,
                 now: float) -> tuple[str, int] | None:
    """The ("nonce:nc", seconds) a response must claim so that a replay fails on every
    edge (RFC 7616 §3.3: nc counts uses of a nonce): only for a valid nonce of ours and a
    well-formed nc, claimed until the nonce expires. None: nothing to claim (the response
    fails anyway)."""
    if nonce_state is not NonceState.VALID or not creds.nc or \
            not NONCE_COUNT.fullmatch(creds.nc):
        return None
    return f"{creds.nonce}:{creds.nc.lower()}", nonces.remaining(creds.nonce, now)
