"""The edge's store on a real redis-server: one round trip, cache and invalidation,
nonce claims, bans, and the circuit breaker."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from harness import RedisServer, free_port
from trunkedge.core.errors import StoreUnavailable
from trunkedge.core.limits import Commit, Limits, Scope
from trunkedge.provisioning.validation import parse_config
from trunkedge.provisioning.writer import Provisioner
from trunkedge.settings import RedisSettings
from trunkedge.store.client import RedisPyTransport, connect
from trunkedge.store.reads import NO_LIMIT_WORDS as UNLIMITED
from trunkedge.store.reads import LocalBreaker, Store
from trunkedge.store.schema import Keys

PREFIX, REALM = "store-test:", "sip.example.net"


def limited(s: Store, member: str, lease_ms: int, *scopes: Scope) -> Commit:
    """What commit answers for a call from 192.0.2.1 without a digest claim."""
    return s.commit("192.0.2.1", None, s.limit_words(scopes), member, lease_ms)[0]


@pytest.fixture
def db(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    prov = Provisioner(client, Keys(PREFIX), REALM)
    prov.import_config(parse_config({
        "acls": {"office": {"ips": ["192.0.2.0/24"]},
                 "roaming": {"accounts": [{"username": "u1", "password": "p"}]}},
        "domains": {"acme": {"acls": ["office", "roaming"], "pop": "us1"}},
    }, REALM))
    yield client
    for key in client.scan_iter(f"{PREFIX}*"):
        client.delete(key)


class Counting(RedisPyTransport):
    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client)
        self.trips: list[int] = []

    def run(self, script, keys, args):  # type: ignore[no-untyped-def]
        answer = super().run(script, keys, args)
        self.trips.append(len(str(answer)))
        return answer


def store(db: redis.Redis) -> tuple[Store, Counting]:
    t = Counting(db)
    return Store(RedisSettings(prefix=PREFIX), t), t


def test_one_round_trip_and_a_warm_cache(db: redis.Redis) -> None:
    s, t = store(db)
    first = s.lookup("acme", "u1", "192.0.2.1")
    assert first.domain is not None and first.domain.pop == "us1"
    assert first.account is not None and first.account.acl == "roaming"
    again = s.lookup("acme", "u1", "192.0.2.1")
    assert again.domain is first.domain and again.account is first.account
    assert len(t.trips) == 2 and t.trips[1] < 40 < t.trips[0]  # the warm answer is tiny
    assert s.lookup("nosuch", "", "192.0.2.1").domain is None
    assert s.lookup("nosuch", "", "192.0.2.1").domain is None


def test_a_provisioning_change_is_seen_on_the_next_lookup(db: redis.Redis) -> None:
    s, _ = store(db)
    assert s.lookup("acme", "", "192.0.2.1").domain is not None
    Provisioner(db, Keys(PREFIX), REALM).domain_delete("acme")
    assert s.lookup("acme", "", "192.0.2.1").domain is None
    Provisioner(db, Keys(PREFIX), REALM).domain_create("acme")
    view = s.lookup("acme", "", "192.0.2.1").domain
    assert view is not None and view.acls == ()


def test_nonce_use_is_claimed_once(db: redis.Redis) -> None:
    a, _ = store(db)
    b, _ = store(db)  # another edge
    assert a.commit("192.0.2.1", ("n1:00000001", 30), UNLIMITED, "e:1", 5000) == (Commit.OK, 0)
    assert b.commit("192.0.2.1", ("n1:00000001", 30), UNLIMITED, "e:2", 5000) == (Commit.REPLAY, 0)
    assert b.commit("192.0.2.1", ("n1:00000002", 30), UNLIMITED, "e:3", 5000) == (Commit.OK, 0)
    assert 0 < db.ttl(f"{PREFIX}nc:n1:00000001") <= 30


def test_a_commit_from_a_banned_source_claims_nothing(db: redis.Redis) -> None:
    a, _ = store(db)
    db.set(f"{PREFIX}ban:192.0.2.66", "1", ex=60)  # banned by another edge just now
    outcome, banned_for = a.commit("192.0.2.66", ("n9:00000001", 30), UNLIMITED, "e:1", 5000)
    assert outcome is Commit.BANNED and 0 < banned_for <= 60
    assert db.get(f"{PREFIX}nc:n9:00000001") is None


def test_channels_are_held_until_released_on_every_edge(db: redis.Redis) -> None:
    a, _ = store(db)
    b, _ = store(db)
    scope = Scope("d:limited", Limits(channels=2))
    assert limited(a, "a:1", 5000, scope) is Commit.OK
    assert limited(b, "b:1", 5000, scope) is Commit.OK
    assert limited(a, "a:2", 5000, scope) is Commit.OVER_CHANNELS
    b.release(("d:limited",), "b:1")
    b.release(("d:limited",), "b:1")  # twice: no harm
    assert limited(a, "a:2", 5000, scope) is Commit.OK
    assert db.zcard(f"{PREFIX}ch:d:limited") == 2
    a.release(("d:limited",), "a:1")
    a.release(("d:limited",), "a:2")
    assert db.zcard(f"{PREFIX}ch:d:limited") == 0


def test_a_dead_edges_channels_expire_with_their_lease(db: redis.Redis) -> None:
    a, _ = store(db)
    scope = Scope("d:leased", Limits(channels=1))
    assert limited(a, "dead:1", 300, scope) is Commit.OK
    assert limited(a, "a:1", 300, scope) is Commit.OVER_CHANNELS
    time.sleep(0.35)
    assert limited(a, "a:1", 300, scope) is Commit.OK
    assert db.zrange(f"{PREFIX}ch:d:leased", 0, -1) == [b"a:1"]
    a.release(("d:leased",), "a:1")


def test_calls_per_second_allow_a_small_burst_then_the_rate(db: redis.Redis) -> None:
    a, _ = store(db)
    scope = Scope("d:paced", Limits(cps=20))  # a burst of 5, then 20 a second
    burst = [limited(a, f"e:{i}", 5000, scope) for i in range(8)]
    assert burst == [Commit.OK] * 5 + [Commit.OVER_CPS] * 3
    time.sleep(0.1)  # two more tokens
    later = [limited(a, f"f:{i}", 5000, scope) for i in range(3)]
    assert later.count(Commit.OK) == 2


def test_a_refused_commit_changes_nothing(db: redis.Redis) -> None:
    a, _ = store(db)
    room = Scope("d:room", Limits(cps=100, channels=5))
    full = Scope("u:full", Limits(channels=0))
    assert limited(a, "e:1", 5000, room, full) is Commit.OVER_CHANNELS
    assert db.zcard(f"{PREFIX}ch:d:room") == 0 and not db.exists(f"{PREFIX}cps:d:room")
    zero = Scope("d:zero", Limits(cps=0))
    assert limited(a, "e:2", 5000, zero) is Commit.OVER_CPS


def test_failures_ban_the_address_for_everyone(db: redis.Redis) -> None:
    a, _ = store(db)
    b, _ = store(db)
    assert [a.record_failure("198.51.100.9", 3, 60, 100) for _ in range(3)] == \
        [False, False, True]
    assert 0 < b.lookup("acme", "", "198.51.100.9").banned_for <= 100
    assert b.lookup("acme", "", "198.51.100.10").banned_for == 0


def test_breaker_fails_fast_then_recovers(db: redis.Redis) -> None:
    now = [1000.0]
    dead = connect(RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0", timeout_ms=50))
    s = Store(RedisSettings(prefix=PREFIX), RedisPyTransport(dead), breaker_ms=500,
              breaker=LocalBreaker(), clock=lambda: now[0])
    with pytest.raises(StoreUnavailable):
        s.lookup("acme", "", "192.0.2.1")
    s.transport = RedisPyTransport(db)  # Redis is back...
    now[0] += 0.2
    with pytest.raises(StoreUnavailable, match="circuit open"):  # ...but the pause is on
        s.lookup("acme", "", "192.0.2.1")
    now[0] += 0.4
    assert s.lookup("acme", "", "192.0.2.1").domain is not None
    assert s.breaker.get() == 0
