"""redis-py for everything but the edge's per-call path: the watcher, tools and tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from trunkedge.core.errors import StoreUnavailable
from trunkedge.settings import RedisSettings
from trunkedge.store.scripts import Script


def connect(settings: RedisSettings) -> redis.Redis:
    """A redis-py client that gives up after `timeout_ms` and never retries on its own."""
    timeout = settings.timeout_ms / 1000
    return redis.Redis.from_url(
        settings.url, socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0), retry_on_timeout=False, health_check_interval=0,
    )


class RedisPyTransport:
    """redis-py, for tools and tests (the edge itself uses ndb_redis)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def run(self, script: Script, keys: Sequence[str], args: Sequence[str]) -> Any:
        try:
            try:
                return self.client.evalsha(script.sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:
                return self.client.eval(script.source, len(keys), *keys, *args)
        except redis.RedisError as e:
            raise StoreUnavailable(f"redis: {type(e).__name__}: {e}") from e
