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
from dataclasses import dataclass
from typing import Any, Protocol

from trunkedge.core.errors import StoreUnavailable
from trunkedge.core.limits import Commit, Scope, bucket_size
from trunkedge.core.views import AccountView, DomainView, Lookup
from trunkedge.settings import RedisSettings
from trunkedge.store.schema import (
    Keys,
    account_entity,
    decode_account,
    decode_domain,
    domain_entity,
)
from trunkedge.store.scripts import COMMIT, EDGE, FAILURE, RELEASE, Script

_COMMITS = {0: Commit.REPLAY, 1: Commit.OK, 2: Commit.OVER_CPS, 3: Commit.OVER_CHANNELS}
CACHE_LIMIT = 200_000  # entries per worker before the cache starts over
MAX_ENTRY_AGE_MS = 1_800_000  # refetched after 30 min: the stale table forgets after 60
ANY = "*"  # the version argument of a vouched fetch: what the cache holds is not at stake
NONE = "-"  # an empty argument (ndb_redis splits commands on spaces)


@dataclass(frozen=True, slots=True)
class LimitWords:
    """The commit script's keys and arguments for a call's limit scopes (Store.limit_words):
    the same for every call of a customer, so the caller may keep them."""

    keys: tuple[str, ...] = ()
    args: tuple[str, ...] = ()


NO_LIMIT_WORDS = LimitWords()


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
                 clock: Callable[[], float] = time.monotonic,
                 on_lookup: Callable[[bool], None] = lambda hit: None) -> None:
        self.keys = Keys(settings.prefix)
        self.no_claim = self.keys.nonce_use(NONE)  # the nonce key of a call without digest
        self.transport = transport
        self.breaker_ms = breaker_ms
        self.breaker = breaker or LocalBreaker()
        self.clock = clock
        self.on_lookup = on_lookup  # told whether each lookup was answered from the cache
        self.version: str | None = None  # {p}version as of the last unvouched fetch
        self.epoch: str | None = None  # the watcher's epoch this cache belongs to
        # name -> (view or None: no such thing, monotonic ms when fetched)
        self.domains: dict[str, tuple[DomainView | None, float]] = {}
        self.accounts: dict[str, tuple[AccountView | None, float]] = {}

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

    def lookup(self, domain: str, username: str, source: str, vouched: str | None = None,
               stale: Callable[[str], float] = lambda entity: 0.0) -> Lookup:
        """The domain's ACLs and the credentials' account (and, from Redis, the source's
        ban). From this worker's cache while the watcher vouches for its epoch (`vouched`)
        and neither entry was touched by a change since it was fetched (`stale`: when the
        watcher last heard of a change to an entity, monotonic ms); else one round trip
        for just what is missing or stale. Unvouched, the cache is only as good as the
        version key says (any change empties it). With a vouched cache the source's ban
        is the caller's to check (the watcher copies bans to every edge; `commit` checks it
        again for what it claims)."""
        if vouched != self.epoch and vouched is not None:
            self.drop_cache(vouched)
        want = ("d" if self.outdated(self.domains, domain, domain_entity(domain), stale) else "")
        if username and self.outdated(self.accounts, username, account_entity(username), stale):
            want += "u"
        hit = vouched is not None and not want
        self.on_lookup(hit)
        if hit:
            return Lookup(self.domains[domain][0],
                          self.accounts[username][0] if username else None)
        return self.fetch(domain, username, source, want, vouched is not None)

    def outdated(self, cache: dict[str, tuple[Any, float]], name: str, entity: str,
                 stale: Callable[[str], float]) -> bool:
        """Not cached, fetched before the entity's last change, or too old to tell."""
        entry = cache.get(name)
        if entry is None:
            return True
        fetched = entry[1]
        return fetched <= stale(entity) or self.clock() * 1000 - fetched > MAX_ENTRY_AGE_MS

    def fetch(self, domain: str, username: str, source: str, want: str,
              vouched: bool) -> Lookup:
        """One round trip: the ban, and the entries wanted (all of them, unvouched, when
        the version key moved on: then this worker's cache is dropped)."""
        fetched = self.clock() * 1000  # before the read: a change after it is newer
        raw = self._run(EDGE, (), (self.keys.prefix, domain, username or NONE,
                                   source or NONE, ANY if vouched else self.version or NONE,
                                   want or NONE))
        answer = json.loads(raw)
        if "ban" in answer:
            return Lookup(None, None, banned_for=int(answer["ban"]))
        if not vouched and answer["v"] != self.version:
            self.drop_cache(self.epoch)
            self.version = answer["v"]
        if len(self.domains) + len(self.accounts) > CACHE_LIMIT:
            self.drop_cache(self.epoch)
        if "dom" in answer:
            self.domains[domain] = (decode_domain(domain, answer["dom"]), fetched)
        if "acct" in answer:
            self.accounts[username] = (decode_account(username, answer["acct"] or ()), fetched)
        dom, acct = self.domains.get(domain), self.accounts.get(username)
        return Lookup(dom[0] if dom else None, acct[0] if acct and username else None)

    def drop_cache(self, epoch: str | None) -> None:
        self.epoch = epoch
        self.domains.clear()
        self.accounts.clear()

    def limit_words(self, scopes: Sequence[Scope]) -> LimitWords:
        """What commit() sends for these scopes: per scope its token bucket and channel
        set, its calls per second ("-": none), bucket size and channels ("-": none)."""
        keys: list[str] = []
        args: list[str] = []
        for scope in scopes:
            keys += [self.keys.cps(scope.name), self.keys.channels(scope.name)]
            cps, channels = scope.limits.cps, scope.limits.channels
            args += [NONE if cps is None else str(cps), str(bucket_size(cps or 0)),
                     NONE if channels is None else str(channels)]
        return LimitWords(tuple(keys), tuple(args))

    def commit(self, source: str, claim: tuple[str, int] | None, limits: LimitWords,
               member: str, lease_ms: int) -> tuple[Commit, int]:
        """An admitted call's one round trip: the source's ban, the claim of its digest
        "nonce:nc" (for `ttl` seconds), and its limits (limit_words), all or nothing.
        Returns what held, and the seconds the source stays banned when BANNED."""
        keys = [self.keys.ban(source or NONE),
                self.keys.nonce_use(claim[0]) if claim else self.no_claim, *limits.keys]
        args = [str(claim[1]) if claim else "0", member, str(lease_ms), *limits.args]
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
