"""Cheap first-line filters: SIP scanners. Pure."""

from __future__ import annotations

from collections.abc import Iterable


def is_scanner(user_agent: str | None, signatures: Iterable[str]) -> bool:
    """A User-Agent naming a well-known scanner (signatures are lower-case substrings)."""
    if not user_agent:
        return False
    ua = user_agent.lower()
    return any(sig in ua for sig in signatures)
