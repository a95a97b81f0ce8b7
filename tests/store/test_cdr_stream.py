"""Publishing the spool to the Redis stream on a real redis-server: each record exactly once
and in order, through Redis outages, lost replies and edge restarts; old segments deleted
once published; the watcher publishes every heartbeat."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
from test_watcher import Board

from harness import RedisServer
from trunkedge.core.errors import StoreUnavailable
from trunkedge.settings import RedisSettings, Settings, parse_settings
from trunkedge.store.cdr_spool import CLOSE_GRACE_S, Spool, encode
from trunkedge.store.cdr_stream import Publisher, publisher_for
from trunkedge.store.schema import Keys
from trunkedge.store.scripts import CDR_PUBLISH
from trunkedge.store.watcher import Watcher

KEYS = Keys("cdr-test:")
EDGE = "e1"
AT = 1_738_332_000.0  # 2025-01-31 14:00 UTC: a segment's hour begins


def spool_of(tmp_path: Path, clock_s: float | None = None) -> Spool:
    return Spool(tmp_path / "spool", EDGE) if clock_s is None else \
        Spool(tmp_path / "spool", EDGE, clock=lambda: clock_s)


def publisher(own_redis: RedisServer, spool: Spool, maxlen: int = 1_000_000) -> Publisher:
    return Publisher(own_redis.client(), KEYS, spool, maxlen)


def append(spool: Spool, first: int, count: int) -> None:
    for n in range(first, first + count):
        spool.append(encode({"kind": "call", "call_id": f"c{n}", "status": 200,
                             "answer_ms": None, "private": False, "edge": EDGE}))


def spooled_ids(spool: Spool) -> list[str]:
    """The id each spooled line gets: "<edge>:<segment>:<offset>", in spool order."""
    ids = []
    for path in spool.segments():
        offset = 0
        for line in path.read_bytes().splitlines(keepends=True):
            ids.append(f"{EDGE}:{path.name}:{offset}")
            offset += len(line)
    return ids


def stream(own_redis: RedisServer) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in fields.items()}
            for _, fields in own_redis.client().xrange(KEYS.cdrs)]


def flush_all(pub: Publisher) -> int:
    total = 0
    while n := pub.flush():
        total += n
    return total


def test_each_record_is_published_once_in_order_with_its_spool_id(
        own_redis: RedisServer, tmp_path: Path) -> None:
    spool = spool_of(tmp_path)
    append(spool, 0, 250)
    pub = publisher(own_redis, spool)
    assert pub.flush() == 250  # two script calls (batches of 200), one flush
    assert pub.flush() == 0
    entries = stream(own_redis)
    assert [e["call_id"] for e in entries] == [f"c{n}" for n in range(250)]
    assert [e["id"] for e in entries] == spooled_ids(spool)
    assert list(entries[0]) == ["kind", "call_id", "answer_ms", "status", "private", "edge",
                                "id"]  # the documented order, values as text
    assert (entries[0]["status"], entries[0]["answer_ms"], entries[0]["private"]) == (
        "200", "", "0")
    (segment,) = spool.segments()
    assert int(own_redis.client().get(KEYS.cdr_offset(EDGE, segment.name))) == \
        segment.stat().st_size
    append(spool, 250, 1)
    assert pub.flush() == 1 and stream(own_redis)[-1]["call_id"] == "c250"


def test_a_flush_publishes_at_most_max_records_and_the_stream_is_capped(
        own_redis: RedisServer, tmp_path: Path) -> None:
    spool = spool_of(tmp_path)
    append(spool, 0, 500)
    pub = publisher(own_redis, spool, maxlen=100)
    assert [pub.flush(max_records=150) for _ in range(4)] == [150, 150, 150, 50]
    assert 100 <= own_redis.client().xlen(KEYS.cdrs) < 500  # MAXLEN ~ trims whole nodes
    assert stream(own_redis)[-1]["call_id"] == "c499"


def test_a_redis_outage_mid_way_publishes_every_record_exactly_once(
        own_redis: RedisServer, tmp_path: Path) -> None:
    spool = spool_of(tmp_path)
    append(spool, 0, 300)
    pub = publisher(own_redis, spool)
    assert pub.flush(max_records=100) == 100
    own_redis.stop(save=True)
    append(spool, 300, 200)  # calls go on ending while Redis is down
    with pytest.raises((StoreUnavailable, redis.RedisError)):
        pub.flush()
    own_redis.start()
    assert flush_all(pub) == 400
    ids = [e["id"] for e in stream(own_redis)]
    assert len(ids) == len(set(ids)) == 500 and ids == spooled_ids(spool)


class LostReply:
    """A client whose script replies never arrive: Redis ran the script, the caller sees an
    error (the worst moment for a publisher to lose its connection)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def evalsha(self, *args: Any) -> Any:
        self.client.evalsha(*args)
        raise redis.ConnectionError("connection lost before the reply")


def test_a_lost_reply_is_never_published_twice(own_redis: RedisServer, tmp_path: Path) -> None:
    spool = spool_of(tmp_path)
    append(spool, 0, 50)
    own_redis.client().script_load(CDR_PUBLISH.source)
    lossy = Publisher(LostReply(own_redis.client()), KEYS, spool, 1_000_000)
    with pytest.raises(StoreUnavailable):
        lossy.flush()
    assert flush_all(publisher(own_redis, spool)) == 0  # the offset moved with the records
    append(spool, 50, 1)
    with pytest.raises(StoreUnavailable):
        lossy.flush()
    assert [e["id"] for e in stream(own_redis)] == spooled_ids(spool)


class Overtaken:
    """A client whose offsets are read just before another publisher publishes."""

    def __init__(self, client: Any, other: Publisher) -> None:
        self.client, self.other = client, other

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def mget(self, *args: Any) -> Any:
        held = self.client.mget(*args)
        self.other.flush()
        return held


def test_two_publishers_of_one_spool_never_publish_a_record_twice(
        own_redis: RedisServer, tmp_path: Path) -> None:
    spool = spool_of(tmp_path)
    append(spool, 0, 40)
    late = Publisher(Overtaken(own_redis.client(), publisher(own_redis, spool)), KEYS, spool, 1000)
    assert late.flush() == 0  # its offsets were stale: the script refused them
    assert [e["id"] for e in stream(own_redis)] == spooled_ids(spool)


def test_a_restarted_edge_resumes_from_the_offsets_in_redis(
        own_redis: RedisServer, tmp_path: Path) -> None:
    append(spool_of(tmp_path), 0, 120)
    assert publisher(own_redis, spool_of(tmp_path)).flush(max_records=70) == 70
    restarted = spool_of(tmp_path)  # a new process: nothing but the spool and Redis
    append(restarted, 120, 10)
    assert flush_all(publisher(own_redis, restarted)) == 60
    assert [e["call_id"] for e in stream(own_redis)] == [f"c{n}" for n in range(130)]


def test_an_old_segment_is_deleted_only_once_all_of_it_is_published(
        own_redis: RedisServer, tmp_path: Path) -> None:
    now = 1738332000.0  # 2025-01-31 14:00 UTC
    append(spool_of(tmp_path, now - 7200), 0, 3)  # 12:00, long closed
    spool = spool_of(tmp_path, now)
    append(spool, 3, 2)
    old, current = spool.segments()
    pub = publisher(own_redis, spool)
    assert pub.flush(max_records=2) == 2
    assert old.exists()  # a record of it still to publish
    assert pub.flush() == 3
    assert not old.exists() and current.exists()
    client = own_redis.client()
    assert client.get(KEYS.cdr_offset(EDGE, old.name)) is None
    assert int(client.get(KEYS.cdr_offset(EDGE, current.name))) == current.stat().st_size
    assert [e["call_id"] for e in stream(own_redis)] == [f"c{n}" for n in range(5)]


def test_a_line_that_is_not_a_record_is_published_as_invalid_not_lost(
        own_redis: RedisServer, tmp_path: Path) -> None:
    spool = spool_of(tmp_path)
    append(spool, 0, 1)
    (segment,) = spool.segments()
    start = segment.stat().st_size
    with segment.open("ab") as f:
        f.write(b'{"kind":"ca\n')
        f.write(json.dumps({"status": 200, "x": [1], "b": True}).encode() + b"\n")
    assert publisher(own_redis, spool).flush() == 3
    _, invalid, nested = stream(own_redis)
    assert invalid == {"kind": "invalid", "raw": '{"kind":"ca',
                       "id": f"{EDGE}:{segment.name}:{start}"}
    assert list(nested.items())[:3] == [("status", "200"), ("b", "1"), ("x", "[1]")]


def test_ids_are_byte_offsets_with_multibyte_text_and_a_closed_segments_partial_line(
        own_redis: RedisServer, tmp_path: Path) -> None:
    spool = spool_of(tmp_path, clock_s=AT)
    spool.append(encode({"kind": "call", "call_id": "c-ü-€", "status": 200}))
    (segment,) = spool.segments()
    with segment.open("ab") as f:
        f.write('{"kind":"call","call_id":"c2-ß"}\n'.encode())
        f.write(b'{"kind":"ca')  # a write that never completed: read once the hour is over
    ids = spooled_ids(spool)  # before the segment, all published and closed, is deleted
    pub = publisher(own_redis, spool)
    assert pub.flush() == 2
    spool.clock = lambda: AT + 3600 + CLOSE_GRACE_S
    assert pub.flush() == 1 and not spool.segments()
    entries = stream(own_redis)
    assert [e.get("call_id", e.get("raw")) for e in entries] == ["c-ü-€", "c2-ß", '{"kind":"ca']
    assert [e["id"] for e in entries] == ids and len(ids) == 3


def test_the_watcher_publishes_the_spool_every_heartbeat(
        own_redis: RedisServer, tmp_path: Path) -> None:
    spool = spool_of(tmp_path)
    append(spool, 0, 5)
    board = Board()
    w = Watcher(RedisSettings(url=own_redis.url, prefix=KEYS.prefix), board,
                publisher=publisher(own_redis, spool))
    w.run_for(0.05)
    assert len(stream(own_redis)) == 5
    append(spool, 5, 2)
    w.run_for(0.15)
    assert len(stream(own_redis)) == 7 and board.value is not None


def test_the_settings_make_the_publisher_of_this_edges_spool(
        own_redis: RedisServer, tmp_path: Path) -> None:
    def settings(**cdr: object) -> Settings:
        return parse_settings({
            "listen": "udp:127.0.0.1:5060", "base_domain": "sip.example.net",
            "pops": {"eu1": ["sip:127.0.0.1:5091"]},
            "redis": {"url": own_redis.url, "prefix": KEYS.prefix},
            "cdr": {"spool_dir": str(tmp_path / "spool"), "edge_name": EDGE, **cdr}})
    pub = publisher_for(settings())
    assert pub is not None and pub.spool.directory.is_dir()
    append(spool_of(tmp_path), 0, 3)
    assert pub.flush() == 3 and len(stream(own_redis)) == 3
    assert publisher_for(settings(enabled=False)) is None
