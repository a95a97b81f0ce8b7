"""The edge's path to Redis: at most one script per initial request (with a cache the
watcher vouches for, only a digest response's claim), a per-worker cache that the
provisioning version key invalidates, bounded timeouts, and a circuit breaker so that a
Redis outage costs one timeout now and then, not one per call.

The store speaks to Redis through a `Transport`: Kamailio's ndb_redis inside the edge
(the adapter provides it: a C client, nearly free per call), redis-py elsewhere
(`store.client`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from trunkedge.core.errors import StoreUnavailable
from trunkedge.core.limits import Commit, Scope, bucket_size
from trunkedge.core.views import AccountView, DomainView, Lookup
from trunkedge.settings import RedisSettings
from trunkedge.store.schema import Keys, decode_account, decode_domain
from trunkedge.store.scripts import COMMIT, EDGE, FAILURE, RELEASE, Script

_COMMITS = {0: Commit.REPLAY, 1: Commit.OK, 2: Commit.OVER_CPS, 3: Commit.OVER_CHANNELS}
CACHE_LIMIT = 200_000  # entries per worker before the cache starts over
NONE = "-"  # an empty argument (ndb_redis splits commands on spaces)


class Transport(Protocol):
    def run(self, script: Script, keys: Sequence[str], args: Sequence[str]) -> Any:
        """EVALSHA (loading the script when Redis lacks it); raise StoreUnavailable."""


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


class Store:
    """The edge's reads and its few writes (bans, nonce use), cached per worker."""

    def __init__(self, settings: RedisSettings, transport: Transport, breaker_ms: int = 500,
                 breaker: Breaker | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.keys = Keys(settings.prefix)
        self.transport = transport
        self.breaker_ms = breaker_ms
        self.breaker = breaker or LocalBreaker()
        self.clock = clock
        self.version: str | None = None
        self.domains: dict[str, DomainView | None] = {}
        self.accounts: dict[str, AccountView | None] = {}

    def _run(self, script: Script, keys: Sequence[str], args: Sequence[str]) -> Any:
        """One Redis round trip; while the breaker is open, fail at once. Once its pause is
        over, the next call tries Redis again and closes it on success."""
        open_until = self.breaker.get()
        if open_until and self.clock() * 1000 < open_until:
            raise StoreUnavailable("redis: circuit open after a recent failure")
        try:
            result = self.transport.run(script, keys, args)
        except StoreUnavailable:
            self.breaker.set(int(self.clock() * 1000) + self.breaker_ms)
            raise
        if open_until:
            self.breaker.set(0)
        return result

    def lookup(self, domain: str, username: str, source: str,
               vouched: str | None = None) -> Lookup:
        """The domain's ACLs and the credentials' account (and, from Redis, the source's
        ban): from this worker's cache when the watcher vouches that Redis holds the
        version the cache holds (`vouched`), else one round trip with little data. With
        a vouched cache the source's ban is the caller's to check (the watcher copies
        bans to every edge; `commit` checks it again for what it claims)."""
        if (vouched is not None and vouched == self.version and domain in self.domains
                and (not username or username in self.accounts)):
            return Lookup(self.domains[domain], self.accounts[username] if username else None)
        want = ("d" if domain not in self.domains else "") + \
            ("u" if username and username not in self.accounts else "")
        raw = self._run(EDGE, (), (self.keys.prefix, domain, username or NONE,
                                   source or NONE, self.version or NONE, want or NONE))
        answer = json.loads(raw)
        if "ban" in answer:
            return Lookup(None, None, banned_for=int(answer["ban"]))
        if answer["v"] != self.version or len(self.domains) + len(self.accounts) > CACHE_LIMIT:
            self.version = answer["v"]
            self.domains.clear()
            self.accounts.clear()
        if "dom" in answer:
            self.domains[domain] = decode_domain(domain, answer["dom"])
        if "acct" in answer:
            self.accounts[username] = decode_account(username, answer["acct"] or ())
        return Lookup(self.domains.get(domain),
                      self.accounts.get(username) if username else None)

    def commit(self, source: str, claim: tuple[str, int] | None, scopes: Sequence[Scope],
               member: str, lease_ms: int) -> tuple[Commit, int]:
        """An admitted call's one round trip: the source's ban, the claim of its digest
        "nonce:nc" (for `ttl` seconds), and its limits, all or nothing. Returns what held,
        and the seconds the source stays banned when BANNED."""
        keys = [self.keys.ban(source or NONE), self.keys.nonce_use(claim[0] if claim else NONE)]
        args = [str(claim[1]) if claim else "0", member, str(lease_ms)]
        for scope in scopes:
            keys += [self.keys.cps(scope.name), self.keys.channels(scope.name)]
            cps, channels = scope.limits.cps, scope.limits.channels
            args += [NONE if cps is None else str(cps), str(bucket_size(cps or 0)),
                     NONE if channels is None else str(channels)]
        code = int(self._run(COMMIT, keys, args))
        if code < 0:
            return Commit.BANNED, -code
        return _COMMITS[code], 0

    def release(self, scopes: Sequence[str], member: str) -> None:
        """A call ended: it leaves the channel sets of its scopes (idempotent). The edge
        releases in batches from its watcher (`watcher.release_ended`)."""
        self._run(RELEASE, [self.keys.channels(s) for s in scopes], [member] * len(scopes))

    def record_failure(self, source: str, limit: int, window_s: int, ban_s: int) -> bool:
        """Count a failed authentication; True if it got the address banned."""
        return bool(int(self._run(
            FAILURE, (self.keys.failures(source), self.keys.ban(source), self.keys.changes),
            (str(window_s), str(limit), str(ban_s), source))))
