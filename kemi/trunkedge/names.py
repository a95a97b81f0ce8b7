"""What a valid name, number and address range is: shared by the edge and provisioning."""

from __future__ import annotations

import ipaddress
import re

from trunkedge.errors import ConfigError
from trunkedge.pops import POP_NAMES

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_DOMAIN = re.compile(r"[0-9A-Za-z]+")
_ACL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
_E164 = re.compile(r"\+?[0-9]{8,15}")


def is_domain_name(name: str) -> bool:
    """SPEC: at least one character, only 0-9 a-z A-Z (compared case-insensitively)."""
    return _DOMAIN.fullmatch(name) is not None and len(name) <= 63


def is_e164(user: str) -> bool:
    """The dialled number: digits with an optional leading '+', 8 to 15 digits."""
    return _E164.fullmatch(user) is not None


def domain_name(name: object, field: str = "domain") -> str:
    """Validate and normalise (lower-case) a customer domain name."""
    if not isinstance(name, str) or not is_domain_name(name):
        raise ConfigError(field, f"{name!r} is not a domain name (1-63 of 0-9, a-z, A-Z)")
    return name.lower()


def acl_name(name: object, field: str = "acl") -> str:
    if not isinstance(name, str) or not _ACL.fullmatch(name):
        raise ConfigError(field, f"{name!r} is not an ACL name (1-64 of A-Z a-z 0-9 _ . -)")
    return name


def username(name: object, field: str = "username") -> str:
    if not isinstance(name, str) or not _USERNAME.fullmatch(name):
        raise ConfigError(field, f"{name!r} is not a username (1-64 of A-Z a-z 0-9 _ . + -)")
    return name


def network(text: object, field: str = "cidr") -> Network:
    """Parse an IPv4/IPv6 address or CIDR range; host bits must be zero."""
    if not isinstance(text, str):
        raise ConfigError(field, f"{text!r} is not an IP address or CIDR range")
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as e:
        raise ConfigError(field, f"{text!r} is not an IP address or CIDR range: {e}") from e


def password(text: object, field: str = "password") -> str:
    if not isinstance(text, str) or not text or len(text) > 256 or any(c in text for c in "\r\n"):
        raise ConfigError(field, "must be 1-256 characters on one line")
    return text


def pop_name(text: object, field: str = "pop") -> str:
    if text not in POP_NAMES:
        raise ConfigError(field, f"{text!r} is not a POP ({', '.join(POP_NAMES)})")
    return str(text)
