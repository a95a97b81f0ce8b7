"""The watcher on a real redis-server: the lease follows provisioning at once, bans are
copied, and an unreachable or wedged Redis withdraws the lease."""

from __future__ import annotations

import time

from harness import RedisServer
from trunkedge.core.limits import Commit, Held
from trunkedge.provisioning.writer import Provisioner
from trunkedge.settings import RedisSettings
from trunkedge.store.client import RedisPyTransport
from trunkedge.store.reads import NO_LIMIT_WORDS as UNLIMITED
from trunkedge.store.reads import Store
from trunkedge.store.schema import Keys
from trunkedge.store.scripts import COMMIT
from trunkedge.store.watcher import LEASE_S, Watcher, format_lease, leased_version

PREFIX, REALM = "watch-test:", "sip.example.net"


class Board:
    def __init__(self) -> None:
        self.value: str | None = None
        self.bans: dict[str, int] = {}
        self.stales: dict[str, int] = {}
        self.live: list[Held] = []
        self.over: dict[str, Held] = {}

    def lease(self, value: str) -> None:
        self.value = value

    def withdraw(self) -> None:
        self.value = None

    def ban(self, address: str, seconds: int) -> None:
        self.bans[address] = seconds

    def stale(self, entity: str, at_ms: int) -> None:
        self.stales[entity] = at_ms

    def calls(self) -> list[Held]:
        return list(self.live)

    def ended(self) -> list[Held]:
        return list(self.over.values())

    def released(self, member: str) -> None:
        self.over.pop(member, None)

    @property
    def version(self) -> str | None:
        return leased_version(self.value, time.monotonic())


def watcher(own_redis: RedisServer) -> tuple[Watcher, Board]:
    board = Board()
    return Watcher(RedisSettings(url=own_redis.url, prefix=PREFIX, timeout_ms=100), board), board


def test_a_change_marks_only_what_it_touched_on_the_next_call(own_redis: RedisServer) -> None:
    w, board = watcher(own_redis)
    w.run_for(0.05)
    epoch = board.version
    assert epoch is not None and epoch.endswith(".1")  # Redis's run id, first session
    prov = Provisioner(own_redis.client(), Keys(PREFIX), REALM)
    prov.domain_create("acme")  # publishes what it touched with the change...
    w.run_for(0.01)  # ...so the very next look, well inside a heartbeat, sees it
    assert list(board.stales) == ["d:acme"] and board.version == epoch  # the rest stays warm
    own_redis.client().incr(f"{PREFIX}version")  # a writer that does not publish...
    w.run_for(0.25)  # ...is seen within two heartbeats: anything may have changed
    assert board.version not in (None, epoch)


def test_a_lease_runs_out_when_the_watcher_stops_renewing_it() -> None:
    renewed = 100.0
    lease = format_lease("7", renewed + LEASE_S)
    assert leased_version(lease, renewed + LEASE_S - 0.01) == "7"
    assert leased_version(lease, renewed + LEASE_S) is None
    assert leased_version(None, 0) is None and leased_version("7 x", 0) is None


def test_bans_reach_the_board(own_redis: RedisServer) -> None:
    client = own_redis.client()
    client.set(f"{PREFIX}ban:198.51.100.1", "1", ex=60)  # banned before the watcher started
    w, board = watcher(own_redis)
    w.run_for(0.05)
    assert 0 < board.bans["198.51.100.1"] <= 60
    store = Store(RedisSettings(prefix=PREFIX), RedisPyTransport(client))
    assert [store.record_failure("198.51.100.2", 2, 60, 300) for _ in range(2)] == [False, True]
    w.run_for(0.05)
    assert board.bans["198.51.100.2"] == 300


def test_a_stopped_redis_withdraws_the_lease_and_a_restarted_one_renews_it(
        own_redis: RedisServer) -> None:
    w, board = watcher(own_redis)
    w.run_for(0.05)
    before = board.version
    own_redis.stop(save=False)
    w.run_for(0.05)
    assert board.value is None
    own_redis.start()  # it may hold anything now (and changes were missed): a new epoch
    w.run_for(0.3)
    assert board.version not in (None, before)


def test_a_wedged_redis_withdraws_the_lease_within_a_heartbeat_and_timeout(
        own_redis: RedisServer) -> None:
    w, board = watcher(own_redis)
    w.run_for(0.05)
    own_redis.pause()
    started = time.monotonic()
    while board.value is not None and time.monotonic() - started < 2:
        w.run_for(0.02)
    assert board.value is None
    assert time.monotonic() - started < 0.35  # heartbeat (0.1 s) + timeout (0.1 s) + slack


def test_the_store_needs_no_round_trip_while_the_lease_vouches_for_its_cache(
        own_redis: RedisServer) -> None:
    client = own_redis.client()
    prov = Provisioner(client, Keys(PREFIX), REALM)
    prov.domain_create("acme")
    trips: list[str] = []

    class Counting(RedisPyTransport):
        def run(self, script, keys, args):  # type: ignore[no-untyped-def]
            trips.append("commit" if script is COMMIT else "script")
            return super().run(script, keys, args)

    s = Store(RedisSettings(prefix=PREFIX), Counting(client))
    assert s.lookup("acme", "", "192.0.2.1", vouched="1").domain is not None  # cold: a trip
    assert s.lookup("acme", "", "192.0.2.1", vouched="1").domain is not None  # warm: none
    assert trips == ["script"]
    # a digest (nonce, nc) is always claimed in Redis, by the commit (a replay fails)
    assert s.commit("192.0.2.1", ("n:00000001", 30), UNLIMITED, "e:1", 5000)[0] is Commit.OK
    assert s.commit("192.0.2.1", ("n:00000001", 30), UNLIMITED, "e:1", 5000)[0] is Commit.REPLAY
    assert 0 < client.ttl(f"{PREFIX}nc:n:00000001") <= 30
    assert trips == ["script", "commit", "commit"]
    del trips[-1]
    assert s.lookup("acme", "", "192.0.2.1").domain is not None  # no lease: a trip
    assert len(trips) == 3
    prov.domain_delete("acme")
    assert s.lookup("acme", "", "192.0.2.1", vouched="2").domain is None  # moved on: a trip
    assert len(trips) == 4


def test_live_calls_keep_their_channels_and_ended_ones_are_released(
        own_redis: RedisServer) -> None:
    client, board = own_redis.client(), Board()
    key = f"{PREFIX}ch:d:acme"
    client.zadd(key, {"e:live": 1, "e:ended": 1})  # leases long run out
    board.live = [Held("e:live", ("d:acme",))]
    board.over = {"e:ended": Held("e:ended", ("d:acme",))}
    w = Watcher(RedisSettings(url=own_redis.url, prefix=PREFIX), board, channel_lease_s=30)
    w.run_for(0.05)
    score = client.zscore(key, "e:live")
    assert score is not None and score > time.time() * 1000 + 25_000  # renewed: 30 s on
    assert client.zscore(key, "e:ended") is None  # released, and off the ended table
    assert board.over == {}
    client.zrem(key, "e:live")  # released elsewhere meanwhile: a renewal does not re-add it
    w.renew_calls()
    assert client.zscore(key, "e:live") is None
