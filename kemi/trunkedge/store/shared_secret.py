"""The secret the edges of one Redis share when none is configured: created once,
atomically, by the first edge to ask, and kept in `Keys.secret` (runner.edge_secret asks for it)."""

from __future__ import annotations

import secrets
import time
from typing import Any

import redis

from trunkedge.core.errors import ConfigError

SECRET_RETRY_S = 0.5


def agree_on_secret(client: redis.Redis, key: str) -> tuple[str, bool]:
    """The secret in `key`, created (random) by the first edge to ask; True if it was us.

    One MULTI/EXEC (`SET NX`, `GET`): every edge of the Redis gets the same value."""
    pipe: Any = client.pipeline(transaction=True)  # redis.client.Pipeline: untyped
    pipe.set(key, secrets.token_hex(16), nx=True)
    pipe.get(key)
    created, value = pipe.execute()
    text = value.decode(errors="replace") if isinstance(value, bytes) else ""
    if not text or any(c in text for c in '!"\\') or not text.isprintable():
        raise ConfigError("auth.secret", f"not set, and Redis key {key} holds no usable "
                          "secret: delete it (the edges make a new one) or set auth.secret")
    return text, bool(created)


def shared_secret(client: redis.Redis, key: str, wait_s: float,
                  retry_s: float = SECRET_RETRY_S) -> tuple[str, bool]:
    """agree_on_secret, retried while Redis does not answer, for up to `wait_s`."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return agree_on_secret(client, key)
        except (redis.ConnectionError, redis.TimeoutError) as e:
            if time.monotonic() + retry_s > deadline:
                raise ConfigError("auth.secret", (
                    f"not set, and Redis did not answer for {wait_s:g} s ({type(e).__name__}):"
                    f" edges without auth.secret share the one kept in Redis ({key}); start "
                    "Redis, or set auth.secret (the same on every edge)")) from e
            time.sleep(retry_s)
        except redis.RedisError as e:
            raise ConfigError("auth.secret", f"not set, and Redis refused to share the one "
                              f"in {key}: {e}") from e
