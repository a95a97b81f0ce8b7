"""The watcher: one process per edge that lets the workers answer from their caches
without a Redis round trip, and still see every change on the next call.

It subscribes to the schema's `changes` channel and reads `{p}version` every heartbeat,
and posts on a `Board` (shared memory in the edge) a lease: "Redis holds version V, vouched
for until T". A worker whose cache holds V answers from it while the lease runs; otherwise
it asks Redis (one script), as it would without a watcher. Provisioning publishes with
every change, so the lease moves on within a fraction of a millisecond; a writer that
forgets to publish is still seen within one heartbeat. Bans published by any edge are
copied to the board. When Redis stops answering (a closed connection, or a heartbeat that
times out) the lease is withdrawn at once: the workers go back to Redis, and answer 503
while it is down, exactly as without a watcher.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, Protocol

import redis

from trunkedge.core.errors import StoreUnavailable
from trunkedge.core.limits import Held
from trunkedge.settings import RedisSettings
from trunkedge.store.cdr_stream import Publisher
from trunkedge.store.client import RedisPyTransport, connect
from trunkedge.store.schema import BAN_MESSAGE, EVERYTHING, Keys, parse_changed
from trunkedge.store.scripts import REFRESH, RELEASE, SCRIPTS, Script

HEARTBEAT_S = 0.1  # how often the version is read (and Redis's health checked)
LEASE_S = 0.5  # a lease outlives a few late heartbeats of a busy watcher, no more
RENEW_BATCH = 500  # channel leases renewed per script call


class Board(Protocol):
    """Where the workers read what the watcher vouches for."""

    def lease(self, value: str) -> None: ...

    def withdraw(self) -> None: ...

    def ban(self, address: str, seconds: int) -> None: ...

    def stale(self, entity: str, at_ms: int) -> None:
        """A provisioning change touched `entity` (schema.domain_entity, account_entity)
        at `at_ms` (monotonic): a worker's entry fetched before is stale."""
        ...

    def calls(self) -> list[Held]:
        """This edge's live calls holding channels."""
        ...

    def ended(self) -> list[Held]:
        """This edge's calls that ended and whose channels are not yet released."""
        ...

    def released(self, member: str) -> None: ...


def format_lease(version: str, until_s: float) -> str:
    return f"{version} {int(until_s * 1000)}"


def leased_version(value: object, now_s: float) -> str | None:
    """The epoch a board's lease vouches for, if it still runs (None: ask Redis)."""
    if not value:
        return None
    version, _, until = str(value).partition(" ")
    return version if until.isdigit() and now_s * 1000 < int(until) else None


class Watcher:
    def __init__(self, settings: RedisSettings, board: Board,
                 log: Callable[[str], None] = lambda _: None,
                 clock: Callable[[], float] = time.monotonic,
                 channel_lease_s: float = 30.0, publisher: Publisher | None = None) -> None:
        self.settings, self.keys, self.board = settings, Keys(settings.prefix), board
        self.publisher = publisher  # of the edge's call records, every heartbeat
        self.records_failing = False
        self.log, self.clock = log, clock
        self.lease_s = channel_lease_s
        self.next_renewal = 0.0
        self.client: Any = None  # redis.Redis (its sync/async union types add nothing here)
        self.pubsub: Any = None
        self.next_beat = self.retry_at = 0.0
        self.up = False
        self.run_id = ""  # Redis's: a Redis that lost its data is another epoch
        self.session = 0  # one more at each (re)connect, or when changes may be missed
        self.covered = 0  # the highest {p}version whose changes reached the board
        self.unexplained = 0  # a version seen with no change message (yet), or 0

    def run_for(self, seconds: float) -> None:
        """Watch for about `seconds`, then return (Kamailio's timer calls again)."""
        deadline = self.clock() + seconds
        while (now := self.clock()) < deadline:
            if now < self.retry_at:
                time.sleep(min(self.retry_at, deadline) - now)
                continue
            try:
                self.step(deadline)
            except (redis.RedisError, OSError, ValueError, StoreUnavailable) as e:
                self.fail(e)

    def step(self, deadline: float) -> None:
        if self.pubsub is None:
            self.connect()
        if self.clock() >= self.next_beat:
            self.beat()
        if self.clock() >= self.next_renewal:
            self.renew_calls()
        message = self.pubsub.get_message(
            timeout=max(0.0, min(self.next_beat, deadline) - self.clock()))
        changed = False
        while message is not None:
            changed |= self.handle(message)
            message = self.pubsub.get_message(timeout=0)
        if changed:
            self.renew_lease()

    def connect(self) -> None:
        client: Any = connect(self.settings)
        self.client, pubsub = client, client.pubsub()
        pubsub.subscribe(self.keys.changes)
        reply = pubsub.get_message(timeout=self.settings.timeout_ms / 1000)
        if not reply or reply.get("type") != "subscribe":
            raise redis.ConnectionError("no confirmation of the subscription")
        self.pubsub = pubsub
        self.run_id = str(client.info("server").get("run_id", ""))
        self.session += 1  # changes made while not listening are unknown: a new epoch
        self.covered = int(client.get(self.keys.version) or 0)
        self.unexplained = 0
        for script in SCRIPTS:  # a restarted Redis has none: spare the workers a NOSCRIPT
            client.script_load(script.source)
        self.copy_bans()
        self.beat()
        if not self.up:
            self.up = True
            self.log("watching Redis: workers answer from their caches")

    def beat(self) -> None:
        """Read the version and renew the lease (a failure withdraws it); free the
        channels of the calls that ended meanwhile; publish the spooled call records."""
        assert self.client is not None
        self.explain(int(self.client.get(self.keys.version) or 0))
        self.renew_lease()
        self.next_beat = self.clock() + HEARTBEAT_S
        self.release_ended()
        self.publish_records()

    def publish_records(self) -> None:
        """Publish the spooled call records. Redis answered the heartbeat just now, so a
        failure here is the stream's own (memory, a wrong key type): logged, and the
        records wait in the spool, but the workers keep their lease."""
        if self.publisher is None:
            return
        try:
            self.publisher.flush()
        except redis.ResponseError as e:
            if not self.records_failing:
                self.log(f"call records not published, kept in the spool: {e}")
            self.records_failing = True
            return
        self.records_failing = False

    def renew_calls(self) -> None:
        """Renew the leases of this edge's live calls, a third of a lease before they run
        out (a dead edge's calls stop counting when theirs do)."""
        self.run_pairs(REFRESH, self.board.calls(), [str(int(self.lease_s * 1000))])
        self.next_renewal = self.clock() + self.lease_s / 3

    def release_ended(self) -> None:
        """Free the channels of the calls that ended since the last heartbeat."""
        ended = self.board.ended()
        self.run_pairs(RELEASE, ended, [])
        for held in ended:
            self.board.released(held.member)

    def run_pairs(self, script: Script, calls: list[Held], head: list[str]) -> None:
        """A script over (channel set, member) pairs: KEYS the sets, ARGV `head` then the
        member of each set, in batches."""
        transport = RedisPyTransport(self.client)
        pairs = [(self.keys.channels(scope), h.member) for h in calls for scope in h.scopes]
        for i in range(0, len(pairs), RENEW_BATCH):
            batch = pairs[i:i + RENEW_BATCH]
            transport.run(script, [k for k, _ in batch], [*head, *(m for _, m in batch)])

    def renew_lease(self) -> None:
        """Vouch for the epoch for another LEASE_S (at once after a change message, so
        the workers see the stale marks it set with a fresh lease)."""
        self.board.lease(format_lease(self.epoch, self.clock() + LEASE_S))

    @property
    def epoch(self) -> str:
        """What the lease vouches for: this Redis (run id) and this run of unbroken
        change messages. Workers whose cache is of another epoch drop it."""
        return f"{self.run_id}.{self.session}"

    def explain(self, version: int) -> None:
        """A version seen a heartbeat ago whose change message has still not come (a writer
        that does not publish): anything may have changed, a new epoch. (A message comes
        within a millisecond of its version: one heartbeat is ample.)"""
        if self.unexplained > self.covered:
            self.session += 1
            self.covered = self.unexplained
        self.unexplained = version if version > self.covered else 0

    def handle(self, message: dict[str, Any]) -> bool:
        """A published message: a ban goes on the board; a change marks what it touched
        stale (only that: the rest of the workers' caches stays warm)."""
        if message.get("type") != "message":
            return False
        data = message.get("data")
        text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
        words = text.split()
        if len(words) == 3 and words[0] == BAN_MESSAGE and words[2].isdigit():
            self.board.ban(words[1], int(words[2]))
            return False
        change = parse_changed(text)
        if change is None:
            return False
        version, entities = change
        if EVERYTHING in entities:
            self.session += 1
        else:
            at_ms = int(self.clock() * 1000)
            for entity in entities:
                self.board.stale(entity, at_ms)
        self.covered = max(self.covered, version)
        return True

    def copy_bans(self) -> None:
        """Bans made while this watcher was not listening."""
        assert self.client is not None
        names = list(self.client.scan_iter(match=self.keys.ban("*"), count=1000))
        if not names:
            return
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.ttl(name)
        start = len(self.keys.ban(""))
        for name, ttl in zip(names, pipe.execute(), strict=True):
            if isinstance(ttl, int) and ttl > 0:
                self.board.ban(name.decode(errors="replace")[start:], ttl)

    def fail(self, error: Exception) -> None:
        self.board.withdraw()
        if self.up:
            self.up = False
            self.log(f"Redis unreachable ({type(error).__name__}: {error}): "
                     f"workers ask Redis on every call")
        for closable in (self.pubsub, self.client):
            if closable is not None:
                with contextlib.suppress(redis.RedisError, OSError):
                    closable.close()
        self.pubsub = self.client = None
        self.retry_at = self.clock() + HEARTBEAT_S
