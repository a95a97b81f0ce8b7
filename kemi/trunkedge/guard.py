"""Cheap first-line filters: SIP scanners, and who is exempt from flood limits. Pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def is_scanner(user_agent: str | None, signatures: Iterable[str]) -> bool:
    """A User-Agent naming a well-known scanner (signatures are lower-case substrings)."""
    if not user_agent:
        return False
    ua = user_agent.lower()
    return any(sig in ua for sig in signatures)


class Networks:
    """A set of CIDR ranges with a membership test that tolerates garbage input."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        self.nets = tuple(ipaddress.ip_network(c) for c in cidrs)

    def __contains__(self, address: str) -> bool:
        if not self.nets:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.nets)
