"""Customer limits: new calls per second and calls in progress, per domain and per account,
shared by every edge of one Redis. Pure: the values, which limits apply to a call, and
what the answer is when one is reached (the counting is atomic in Redis, store.reads).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

BURST_S = 0.25
"""A CPS limit admits a burst of this many seconds' worth of calls (at least one)."""


@dataclass(frozen=True)
class Limits:
    cps: int | None = None  # new calls per second (None: no limit)
    channels: int | None = None  # calls in progress (None: no limit)

    @property
    def limited(self) -> bool:
        return self.cps is not None or self.channels is not None


NO_LIMITS = Limits()


def bucket_size(cps: int) -> int:
    """The token bucket's capacity for a CPS limit: the small burst it allows."""
    return max(1, math.ceil(cps * BURST_S))


@dataclass(frozen=True)
class Scope:
    """One limited thing a call counts against: `d:<domain>` or `u:<username>`."""

    name: str
    limits: Limits


def scopes_of(domain: str, domain_limits: Limits, username: str | None,
              account_limits: Limits) -> tuple[Scope, ...]:
    """The scopes an admitted call counts against (an account only when authenticated)."""
    found = []
    if domain_limits.limited:
        found.append(Scope(f"d:{domain}", domain_limits))
    if username is not None and account_limits.limited:
        found.append(Scope(f"u:{username}", account_limits))
    return tuple(found)


class Commit(enum.StrEnum):
    """What the store answered when an admitted call claimed its nonce and its limits."""

    OK = "ok"
    BANNED = "banned"  # the source was banned meanwhile (on any edge)
    REPLAY = "replay"  # the digest (nonce, nc) was used before
    OVER_CPS = "over-cps"
    OVER_CHANNELS = "over-channels"


@dataclass(frozen=True)
class Held:
    """The channels an admitted call holds until it ends: its member in each channel set
    (`<edge id>:<call hash>`) and the scopes whose channels it counts against."""

    member: str
    scopes: tuple[str, ...]

    def encode(self) -> str:
        """As kept with the dialog (and in the edge's table of live calls)."""
        return " ".join((self.member, *self.scopes))

    @classmethod
    def decode(cls, value: str) -> Held | None:
        """None for anything but a member and at least one scope (e.g. "": no hold)."""
        words = value.split()
        return cls(words[0], tuple(words[1:])) if len(words) > 1 else None


def channel_scopes(scopes: tuple[Scope, ...]) -> tuple[str, ...]:
    """The scopes whose calls in progress are limited (a call holds a channel in each)."""
    return tuple(s.name for s in scopes if s.limits.channels is not None)
