"""Digest algorithms (RFC 7616, RFC 8760): HA1 derivation for stored credentials."""

from __future__ import annotations

import hashlib

ALGORITHMS = {"MD5": "md5", "SHA-256": "sha256"}
"""Supported digest algorithms: RFC name -> hashlib name."""


def ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """H(username:realm:password) as lower-case hex."""
    h = hashlib.new(ALGORITHMS[algorithm])
    h.update(f"{username}:{realm}:{password}".encode())
    return h.hexdigest()


def ha1_all(username: str, realm: str, password: str) -> dict[str, str]:
    """The HA1 for every supported algorithm, as provisioning stores them."""
    return {alg: ha1(alg, username, realm, password) for alg in ALGORITHMS}


def is_ha1(algorithm: str, value: str) -> bool:
    """A well-formed hex HA1 of the algorithm's length."""
    size = hashlib.new(ALGORITHMS[algorithm]).digest_size * 2
    return len(value) == size and all(c in "0123456789abcdef" for c in value)
