"""redis-py for everything but the edge's per-call path: the watcher, tools and tests."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from trunkedge.core.errors import StoreUnavailable
from trunkedge.settings import RedisSettings
from trunkedge.store.schema import Keys
from trunkedge.store.scripts import Script


def connect(settings: RedisSettings, timeout_s: float | None = None) -> redis.Redis:
    """A redis-py client that gives up after `timeout_ms` (or `timeout_s`) and never retries
    on its own: to `url`, or to the master Sentinel names (redis-py's `Sentinel.master_for`:
    each new connection asks the sentinels again, so it follows a failover)."""
    timeout = settings.timeout_ms / 1000 if timeout_s is None else timeout_s
    options: dict[str, Any] = dict(
        socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0), retry_on_timeout=False, health_check_interval=0)
    if not settings.sentinels:
        return redis.Redis.from_url(settings.url, **options)
    sentinels: Any = Sentinel  # (untyped in redis-py)
    master: redis.Redis = sentinels(
        settings.sentinel_addresses, socket_timeout=timeout, socket_connect_timeout=timeout,
    ).master_for(settings.master_name, password=settings.password or None, db=settings.db,
                 **options)  # the sentinels are asked without a password
    return master


def sentinels_answering_first(settings: RedisSettings) -> tuple[str, ...]:
    """redis.sentinels, those that name a master for `master_name` now first, each group in
    the settings' order (the order the edge's ndb_redis connects at start)."""
    timeout = settings.timeout_ms / 1000

    def names_master(address: tuple[str, int]) -> bool:
        try:
            with redis.Redis(*address, socket_timeout=timeout,
                             socket_connect_timeout=timeout) as sentinel:
                return bool(sentinel.sentinel_get_master_addr_by_name(settings.master_name))
        except redis.RedisError:
            return False

    answering = [names_master(a) for a in settings.sentinel_addresses]
    return tuple(s for _, s in sorted(zip(answering, settings.sentinels, strict=True),
                                      key=lambda pair: not pair[0]))


class RedisPyTransport:
    """redis-py, for tools and tests (the edge itself uses ndb_redis)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def run(self, script: Script, keys: Sequence[str], args: Sequence[str | bytes]) -> Any:
        try:
            try:
                return self.client.evalsha(script.sha, len(keys), *keys, *args)  # type: ignore[arg-type]
            except redis.exceptions.NoScriptError:
                return self.client.eval(script.source, len(keys), *keys, *args)  # type: ignore[arg-type]
        except redis.RedisError as e:
            raise StoreUnavailable(f"redis: {type(e).__name__}: {e}") from e


def channels_in_use(client: Any, keys: Keys) -> dict[str, int]:
    """Calls in progress per limit scope (`d:<domain>`, `u:<username>`), across every edge
    of this Redis: the members of each channel set whose lease still runs. (`client`: a
    redis.Redis, whose sync/async union types add nothing here.)"""
    now_ms = int(time.time() * 1000)
    start = len(keys.channels(""))
    found = {}
    for name in client.scan_iter(match=keys.channels("*"), count=1000):
        live = int(client.zcount(name, f"({now_ms}", "+inf"))
        if live:
            found[name.decode(errors="replace")[start:]] = live
    return dict(sorted(found.items()))
