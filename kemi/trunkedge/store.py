"""The edge's read path to Redis: one client per worker process, bounded timeouts."""

from __future__ import annotations

import os

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from trunkedge.errors import StoreUnavailable
from trunkedge.model import Lookup
from trunkedge.schema import LOOKUP_SCRIPT, Keys, decode_lookup
from trunkedge.settings import RedisSettings


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
    """Reads one call's customer view; creates its client lazily in each forked worker."""

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self._pid = 0
        self._lookup: redis.commands.core.Script | None = None

    def _script(self) -> redis.commands.core.Script:
        if self._lookup is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._lookup = connect(self.settings).register_script(LOOKUP_SCRIPT)
        return self._lookup

    def lookup(self, domain: str, username: str) -> Lookup:
        """The domain's ACLs and the credentials' account, in one round trip."""
        try:
            raw = self._script()(keys=[], args=[self.keys.prefix, domain, username])
        except redis.RedisError as e:
            raise StoreUnavailable(f"redis: {type(e).__name__}: {e}") from e
        return decode_lookup(raw, domain, username)
