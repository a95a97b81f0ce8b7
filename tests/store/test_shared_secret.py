"""The secret edges without auth.secret share through Redis: waited for, not invented."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis

from harness import RedisServer, free_port
from trunkedge.core.errors import ConfigError
from trunkedge.store.shared_secret import shared_secret


def test_no_secret_and_no_redis_is_refused_after_a_bounded_wait() -> None:
    client = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.1)
    started = time.monotonic()
    with pytest.raises(ConfigError) as refused:
        shared_secret(client, "p:secret", wait_s=0.6, retry_s=0.1)
    assert 0.5 <= time.monotonic() - started < 2
    assert refused.value.field == "auth.secret" and "p:secret" in refused.value.message


def test_the_wait_ends_as_soon_as_redis_answers(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    later = threading.Timer(0.5, server.start)
    later.start()
    try:
        secret, created = shared_secret(server.client(), "p:secret", wait_s=10, retry_s=0.1)
        assert created and server.client().get("p:secret") == secret.encode()
    finally:
        later.join()
        server.stop(save=False)
