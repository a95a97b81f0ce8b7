"""Kamailio-side implementations of the seams the store and the watcher define: Redis
through ndb_redis, the breaker and the watcher's board in shared memory (htable)."""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import KSR

from trunkedge.core.errors import StoreUnavailable
from trunkedge.core.limits import Held
from trunkedge.kamailio import meter, symbols
from trunkedge.store.scripts import Script

ITERATOR = "te_it"  # htable iterator name (the watcher's process only)


def pv(name: str) -> str:
    """A pseudo-variable as a string ("" when it has no value)."""
    value = KSR.pv.get(name)
    return "" if value is None else str(value)


def remove_headers(names: Iterable[str]) -> None:
    """Remove every header of these names from the message."""
    for name in names:
        KSR.hdr.remove(name)


def guarded(route: Callable[..., None], where: str, *args: object) -> bool:
    """Run a route; an unexpected exception is logged (never a silent, hung worker)."""
    try:
        route(*args)
    except Exception:
        trace = traceback.format_exc().replace("\n", " | ")
        KSR.err(f"trunkedge: internal error in {where}: {trace}\n")
        return False
    return True


class NdbTransport:
    """Redis through Kamailio's ndb_redis (a C client: nearly free per call). The script
    (its SHA or source: hiredis copies a command's text one character at a time, a
    parameter in one go) and the arguments that are not plain tokens travel as %s
    parameters (at most three per command).

    ndb_redis logs every error reply at ERROR, so a script is never run by SHA before this
    worker knows Redis has it: the first run is an EVAL with the source (which also
    caches it in Redis), later ones EVALSHA; a NOSCRIPT (Redis restarted empty, or its
    script cache flushed) sends the source again. The watcher loads every script when it
    connects, so after a restart that one error is rare.

    With Sentinel there is one server per sentinel (symbols.redis_servers), each asking its
    own sentinel whenever it reconnects; a server that fails hands the command over to the
    next one (`_command`), which this worker then keeps using."""

    SAFE = re.compile(r"[A-Za-z0-9_.:+@=,-]+")
    NO_ANSWER = "no answer"  # no reply at all: ndb_redis could not (re)connect
    NOT_A_MASTER = ("READONLY", "MASTERDOWN", "LOADING", "unknown command")
    """Error replies of a server that is no usable master (a replica, a sentinel): ndb_redis
    keeps such a connection, so it is closed (QUIT) and the next use reconnects."""
    QUIT_REPLY = "te_quit"  # QUIT's reply container: REDIS_REPLY keeps the error

    def __init__(self, servers: Sequence[str] = (symbols.REDIS_SERVER,),
                 timeout_s: float = 0.1) -> None:
        self.loaded: set[str] = set()  # SHAs this worker has run successfully
        self.servers = tuple(servers)
        self.server = self.servers[0]
        self.timeout_s = timeout_s  # what a command may spend on servers that fail
        self.answered = True  # the last command was answered (else: one server per command)

    def run(self, script: Script, keys: Sequence[str], args: Sequence[str]) -> Any:
        words = (str(len(keys)), *keys, *args)
        if "" not in words and self.SAFE.fullmatch("".join(words)):  # one match, in C
            tail, params = " ".join(words), list[str]()
        else:
            tail, params = self._unsafe_as_parameters(words)
        if script.sha in self.loaded:
            if self._command(f"EVALSHA %s {tail}", [script.sha, *params]) >= 0:
                return self._value()
            error = self._error()
            if "NOSCRIPT" not in error:
                raise StoreUnavailable(f"redis: {error}")
            self.loaded.discard(script.sha)
        if self._command(f"EVAL %s {tail}", [script.source, *params]) < 0:
            raise StoreUnavailable(f"redis: {self._error()}")
        self.loaded.add(script.sha)
        return self._value()

    @staticmethod
    def _unsafe_as_parameters(words: Sequence[str]) -> tuple[str, list[str]]:
        """Words that are not plain tokens (a space would split one, an empty one would
        vanish, % would be read as a format) travel as parameters."""
        tokens, params = [], []
        for word in words:
            if NdbTransport.SAFE.fullmatch(word):
                tokens.append(word)
            else:
                tokens.append("%s")
                params.append(word)
        return " ".join(tokens), params

    @staticmethod
    def _value() -> Any:
        return KSR.pv.get(f"$redis({symbols.REDIS_REPLY}=>value)")

    @staticmethod
    def _error() -> str:
        return str(KSR.pv.get(f"$redis({symbols.REDIS_REPLY}=>info)") or NdbTransport.NO_ANSWER)

    def _command(self, command: str, params: list[str]) -> int:
        """Run `command` on this worker's server; if that gives no answer, or answers as no
        master does, on the next ones, while the command has spent less than the Redis
        timeout (a dead sentinel fails at once; a wedged master would only be met again).
        While nothing answers, each command tries one server: every reconnect leaves a
        connection to a sentinel open (ndb_redis 5.6.3 never frees it), so an outage costs
        one per circuit breaker pause, not one per server."""
        started = time.monotonic()
        for _ in self.servers if self.answered else self.servers[:1]:
            result = NdbTransport._send(self.server, command, params)
            meter.redis_round_trip(result >= 0)
            if (result >= 0 or not self._moved_on(self._error())
                    or time.monotonic() - started >= self.timeout_s):
                break
        self.answered = result >= 0 or self._error() != self.NO_ANSWER
        return result

    def _moved_on(self, error: str) -> bool:
        """After a failure: True if it was the server's (no answer, or no master: then it
        is closed), and this worker now uses the next server."""
        wrong = any(mark in error for mark in self.NOT_A_MASTER)
        if not wrong and error != self.NO_ANSWER:
            return False
        if wrong:
            KSR.ndb_redis.redis_cmd(self.server, "QUIT", self.QUIT_REPLY)
        self.server = self.servers[(self.servers.index(self.server) + 1) % len(self.servers)]
        return True

    @staticmethod
    def _send(server: str, command: str, params: list[str]) -> int:
        n, reply = KSR.ndb_redis, symbols.REDIS_REPLY
        if not params:
            return n.redis_cmd(server, command, reply)
        if len(params) == 1:
            return n.redis_cmd_p1(server, command, params[0], reply)
        if len(params) == 2:
            return n.redis_cmd_p2(server, command, params[0], params[1], reply)
        if len(params) == 3:
            return n.redis_cmd_p3(server, command, params[0], params[1], params[2], reply)
        raise ValueError(f"too many non-token arguments for ndb_redis: {len(params)}")


class SharedBreaker:
    """The store's circuit breaker state in shared memory: every worker sees it."""

    def get(self) -> int:
        value = KSR.htable.sht_get(symbols.HT_STATE, symbols.STATE_BREAKER)
        return int(value) if value else 0

    def set(self, open_until_ms: int) -> None:
        KSR.htable.sht_seti(symbols.HT_STATE, symbols.STATE_BREAKER, open_until_ms)
        meter.breaker(open_until_ms > 0)


class HtableBoard:
    """The watcher's board: its lease in te_state, the bans it hears of in te_bans, the
    live calls whose channels it renews (te_calls) and the ended ones it releases
    (te_ended)."""

    def lease(self, value: str) -> None:
        KSR.htable.sht_sets(symbols.HT_STATE, symbols.STATE_LEASE, value)

    def withdraw(self) -> None:
        KSR.htable.sht_rm(symbols.HT_STATE, symbols.STATE_LEASE)

    def ban(self, address: str, seconds: int) -> None:
        ban_here(address, seconds)

    def stale(self, entity: str, at_ms: int) -> None:
        KSR.htable.sht_sets(symbols.HT_STALE, entity, str(at_ms))

    def calls(self) -> list[Held]:
        return calls_in(symbols.HT_CALLS)

    def ended(self) -> list[Held]:
        return calls_in(symbols.HT_ENDED)

    def released(self, member: str) -> None:
        KSR.htable.sht_rm(symbols.HT_ENDED, member)


def ban_here(address: str, seconds: int) -> None:
    """This edge's copy of a ban: its requests are dropped until the item expires."""
    KSR.htable.sht_setxi(symbols.HT_BANS, address, 1, seconds)


def is_banned_here(address: str) -> bool:
    return KSR.htable.sht_get(symbols.HT_BANS, address) is not None


def stale_since(entity: str) -> float:
    """When the watcher last heard of a change to a cached entity (monotonic ms; 0: not
    in the last hour)."""
    value = KSR.htable.sht_get(symbols.HT_STALE, entity)
    return float(value) if value else 0.0


def leased() -> object:
    """The watcher's lease as the workers read it (see store.watcher.leased_version)."""
    return KSR.htable.sht_get(symbols.HT_STATE, symbols.STATE_LEASE)


def hold_here(held: Held) -> None:
    """This edge's table of live calls holding channels (the watcher renews them)."""
    KSR.htable.sht_sets(symbols.HT_CALLS, held.member, " ".join(held.scopes))


def end_here(held: Held) -> None:
    """A call ended: off the live table, onto the ended one, which the watcher releases in
    Redis in batches (no round trip on the call's path)."""
    KSR.htable.sht_rm(symbols.HT_CALLS, held.member)
    KSR.htable.sht_sets(symbols.HT_ENDED, held.member, " ".join(held.scopes))


def items_in(table: str) -> list[tuple[str, str]]:
    """Every (name, value) of one of this edge's htables (the watcher's process only)."""
    found = []
    KSR.htable.sht_iterator_start(ITERATOR, table)
    try:
        while KSR.htable.sht_iterator_next(ITERATOR) > 0:
            found.append((pv(f"$shtitkey({ITERATOR})"), pv(f"$shtitval({ITERATOR})")))
    finally:
        KSR.htable.sht_iterator_end(ITERATOR)
    return found


def calls_in(table: str) -> list[Held]:
    """The calls of one of this edge's call tables (member -> its scopes)."""
    return [Held(member, tuple(scopes.split())) for member, scopes in items_in(table)]


def known_source(address: str) -> bool:
    """Admitted lately: a customer's traffic, governed by its limits, not the flood guard."""
    return KSR.htable.sht_get(symbols.HT_KNOWN, address) is not None


def remember_source(address: str) -> None:
    KSR.htable.sht_seti(symbols.HT_KNOWN, address, 1)
