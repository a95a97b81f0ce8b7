"""What a valid name, number and address range is: shared by the edge and provisioning."""

from __future__ import annotations

import bisect
import ipaddress
import re
import socket
from collections.abc import Iterable

from trunkedge.core.errors import ConfigError
from trunkedge.core.pops import POP_NAMES

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_DOMAIN = re.compile(r"[0-9A-Za-z]+")
_ACL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
_E164 = re.compile(r"\+?[0-9]{8,15}")


def is_domain_name(name: str) -> bool:
    """SPEC: at least one character, only 0-9 a-z A-Z (compared case-insensitively)."""
    return _DOMAIN.fullmatch(name) is not None and len(name) <= 63


def is_username(name: str) -> bool:
    return _USERNAME.fullmatch(name) is not None


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


class NetworkSet:
    """IPv4/IPv6 ranges with an O(log n) membership test (merged, sorted, bisected), so
    an ACL of 10 000 CIDRs costs a call no more than an ACL of one."""

    def __init__(self, cidrs: Iterable[str | Network]) -> None:
        ranges: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        count = 0
        for c in cidrs:
            span = _span(c) if isinstance(c, str) else None
            if span is None:
                net = c if isinstance(c, ipaddress.IPv4Network | ipaddress.IPv6Network) \
                    else ipaddress.ip_network(c, strict=False)
                span = net.version, int(net.network_address), int(net.broadcast_address)
            ranges[span[0]].append(span[1:])
            count += 1
        self._count = count
        self._ranges = {v: _merged(r) for v, r in ranges.items()}
        self._starts = {v: [a for a, _ in r] for v, r in self._ranges.items()}

    def __contains__(self, address: object) -> bool:
        """An IPv4Address/IPv6Address, or a string (garbage is in no set)."""
        if not self._count:
            return False
        if isinstance(address, str):
            parsed = address_value(address)
            if parsed is None:
                return False
            version, value = parsed
        elif isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            version, value = address.version, int(address)
        else:
            return False
        starts = self._starts[version]
        i = bisect.bisect_right(starts, value) - 1
        return i >= 0 and self._ranges[version][i][1] >= value

    def __len__(self) -> int:
        return self._count


def address_value(text: str) -> tuple[int, int] | None:
    """(IP version, address as an integer) of a textual address, or None: the C parser,
    several times cheaper per call than the ipaddress module."""
    family, version = (socket.AF_INET6, 6) if ":" in text else (socket.AF_INET, 4)
    try:
        return version, int.from_bytes(socket.inet_pton(family, text), "big")
    except (OSError, ValueError):
        return None


def _span(cidr: str) -> tuple[int, int, int] | None:
    """(version, first, last) of "address/length" the quick way; None: let ipaddress
    parse it (and raise on garbage)."""
    address, slash, length = cidr.partition("/")
    parsed = address_value(address)
    if parsed is None or (slash and not length.isdigit()):
        return None
    version, value = parsed
    bits = 32 if version == 4 else 128
    size = int(length) if length else bits
    if size > bits:
        return None
    host = (1 << (bits - size)) - 1
    return version, value & ~host, (value & ~host) | host


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out
