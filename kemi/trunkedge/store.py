"""The edge's path to Redis: one client per worker process, bounded timeouts, and a
circuit breaker so that a Redis outage costs one timeout now and then, not one per call."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from trunkedge.errors import StoreUnavailable
from trunkedge.model import Lookup
from trunkedge.schema import FAILURE_SCRIPT, LOOKUP_SCRIPT, Keys, decode_lookup
from trunkedge.settings import RedisSettings

T = TypeVar("T")


class Breaker(Protocol):
    """Where the circuit breaker keeps its state: `open_until` in monotonic ms (0: closed).
    The adapter shares it between Kamailio's workers, so all recover together."""

    def get(self) -> int: ...

    def set(self, open_until_ms: int) -> None: ...


class LocalBreaker:
    """A breaker for one process (tests, tools)."""

    def __init__(self) -> None:
        self.value = 0

    def get(self) -> int:
        return self.value

    def set(self, open_until_ms: int) -> None:
        self.value = open_until_ms


def connect(settings: RedisSettings) -> redis.Redis:
    """A client that gives up after `timeout_ms` and never retries behind our back."""
    timeout = settings.timeout_ms / 1000
    return redis.Redis.from_url(
        settings.url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
    )


class Store:
    """The edge's reads and its few writes (bans, nonce use), per forked worker."""

    def __init__(self, settings: RedisSettings, breaker_ms: int = 500,
                 breaker: Breaker | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.breaker_ms = breaker_ms
        self.breaker = breaker or LocalBreaker()
        self.clock = clock
        self._pid = 0
        self._client: Any = None
        self._lookup: Any = None
        self._failure: Any = None

    def _connected(self) -> None:
        if self._client is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._client = connect(self.settings)
            self._lookup = self._client.register_script(LOOKUP_SCRIPT)
            self._failure = self._client.register_script(FAILURE_SCRIPT)

    def _call(self, what: Callable[[], T]) -> T:
        """Run one Redis operation; while the breaker is open, fail at once. Once its
        pause is over, the next call tries Redis again and closes it on success."""
        open_until = self.breaker.get()
        if open_until and self.clock() * 1000 < open_until:
            raise StoreUnavailable("redis: circuit open after a recent failure")
        try:
            self._connected()
            result = what()
        except redis.RedisError as e:
            self.breaker.set(int(self.clock() * 1000) + self.breaker_ms)
            raise StoreUnavailable(f"redis: {type(e).__name__}: {e}") from e
        if open_until:
            self.breaker.set(0)
        return result

    def lookup(self, domain: str, username: str, source: str = "") -> Lookup:
        """The domain's ACLs, the credentials' account and the source's ban: one round trip."""
        raw = self._call(lambda: self._lookup(
            keys=[], args=[self.keys.prefix, domain, username, source]))
        return decode_lookup(raw, domain, username)

    def claim_nonce_use(self, nonce: str, nc: str, ttl: int) -> bool:
        """Atomically record a (nonce, nc) use; False if any edge already saw it (replay)."""
        return bool(self._call(lambda: self._client.set(
            self.keys.nonce_use(nonce, nc), "1", nx=True, ex=ttl)))

    def record_failure(self, source: str, limit: int, window_s: int, ban_s: int) -> bool:
        """Count a failed authentication; True if it got the address banned."""
        return bool(self._call(lambda: self._failure(
            keys=[self.keys.failures(source), self.keys.ban(source)],
            args=[window_s, limit, ban_s])))
