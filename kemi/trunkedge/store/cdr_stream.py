"""The Redis stream of call detail records: the spool published exactly once, and the
readers behind `trunkedge cdrs`.

The watcher publishes every heartbeat: for each spool segment, oldest first, the complete
lines after the offset Redis holds for it (`{p}cdr:offset:<edge>:<file>`) are XADDed to
`{p}cdrs` and the offset moves past them in one script (`lua/cdr_publish.lua`), which
writes nothing unless the offset is still the one read. So a crash, a timeout or a lost
reply at any point leaves stream and offset in step: no record skipped or published
twice, in spool order per edge. A segment whose hour is over is deleted once all of it is
published (then its offset key). docs/cdr.md describes the records and the stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trunkedge.core import cdr
from trunkedge.settings import Settings
from trunkedge.store.cdr_spool import Spool, SpoolError, lines_in
from trunkedge.store.client import RedisPyTransport, connect
from trunkedge.store.schema import Keys
from trunkedge.store.scripts import CDR_PUBLISH

RECORD_FIELDS = cdr.FIELDS  # in their documented order (docs/cdr.md)
ENTRY_FIELDS = (*RECORD_FIELDS, "id")  # a stream entry's, and the CSV export's columns
INVALID = "invalid"  # the kind of an entry for a spool line that is no JSON object
BATCH = 200  # records per script call: Redis is never busy long with one
SKEW_MS = 300_000  # an edge's clock may run this far ahead of Redis's (export bounds)
PAGE = 1000  # entries per XRANGE


@dataclass(frozen=True)
class Entry:
    """A stream entry: its stream id (Redis's time of publication) and its fields."""

    stream_id: str
    fields: dict[str, str]


class Publisher:
    """Publishes one edge's spool to the stream (run by one watcher per spool)."""

    def __init__(self, client: Any, keys: Keys, spool: Spool, maxlen: int,
                 log: Callable[[str], None] = lambda _: None) -> None:
        self.client, self.keys, self.spool, self.maxlen = client, keys, spool, maxlen
        self.transport = RedisPyTransport(client)
        self.log = log
        self._last_problem = ""

    def flush(self, max_records: int = 1000) -> int:
        """Publish up to `max_records` spooled records, oldest first; how many were. Redis
        errors propagate (StoreUnavailable, redis.RedisError): the rest stays spooled."""
        try:
            done = self._flush(max_records)
        except SpoolError as e:  # nothing is lost: the spool is read again next time
            if str(e) != self._last_problem:
                self.log(f"call records not published: {e}")
            self._last_problem = str(e)
            return 0
        self._last_problem = ""
        return done

    def _flush(self, max_records: int) -> int:
        segments = self.spool.segments()
        held = self.client.mget([self._offset_key(p) for p in segments]) if segments else []
        done = 0
        for path, raw in zip(segments, held, strict=True):
            offset = int(raw or 0)
            while done < max_records and (
                    chunk := self.spool.read(path, offset, min(BATCH, max_records - done))):
                end = offset + len(chunk)
                if not self._publish(path.name, offset, end, chunk):
                    return done  # the offset moved meanwhile: read it again next time
                done, offset = done + lines_in(chunk), end
            if done >= max_records:
                return done
            self._retire(path, offset)
        return done

    def _publish(self, segment: str, offset: int, end: int, chunk: bytes) -> bool:
        """One atomic step: these lines (the bytes from `offset` to `end`, passed as they
        are: Redis splits and decodes them, no per-record work here) into the stream, the
        offset from `offset` to `end`."""
        args: list[str | bytes] = [
            str(offset), str(end), str(self.maxlen), f"{self.spool.edge}:{segment}:",
            str(len(RECORD_FIELDS)), *RECORD_FIELDS, chunk]
        keys = [self.keys.cdrs, self._offset_key(segment)]
        return bool(self.transport.run(CDR_PUBLISH, keys, args))

    def _retire(self, segment: Path, offset: int) -> None:
        """Delete a closed segment all published: the file, then its offset key (a crash in
        between leaves a stray key, never a file published again)."""
        if self.spool.finished(segment, offset):
            self.spool.remove(segment)
            self.client.delete(self._offset_key(segment))

    def _offset_key(self, segment: Path | str) -> str:
        return self.keys.cdr_offset(self.spool.edge, Path(segment).name)


def publisher_for(settings: Settings, log: Callable[[str], None] = lambda _: None,
                  ) -> Publisher | None:
    """The watcher's publisher of this edge's spool (None when records are off)."""
    records = settings.cdr
    if not records.enabled:
        return None
    return Publisher(connect(settings.redis), Keys(settings.redis.prefix),
                     Spool(records.spool_dir, records.edge), records.stream_maxlen, log)


# Readers (`trunkedge cdrs`).

def tail(client: Any, keys: Keys, count: int) -> list[Entry]:
    """The last `count` entries, oldest first."""
    return _entries(client.xrevrange(keys.cdrs, "+", "-", count=count))[::-1]


def follow(client: Any, keys: Keys, after: str = "0-0", block_ms: int = 1000) -> Iterator[Entry]:
    """Every entry after stream id `after`, waiting for new ones (endless)."""
    while True:
        for _, entries in client.xread({keys.cdrs: after}, block=block_ms) or ():
            for entry in _entries(entries):
                yield entry
                after = entry.stream_id


def read_range(client: Any, keys: Keys, since_ms: int, until_ms: int) -> Iterator[Entry]:
    """The entries whose record time (`record_time_ms`) is in [since_ms, until_ms). Reads
    from `since_ms` (less the clock skew) to the stream's end: a record is published when
    its call ends, or later after a Redis outage, never before."""
    start = f"{max(0, since_ms - SKEW_MS)}-0"
    while page := _entries(client.xrange(keys.cdrs, start, "+", count=PAGE)):
        for entry in page:
            at = record_time_ms(entry.fields)
            if at is not None and since_ms <= at < until_ms:
                yield entry
        start = f"({page[-1].stream_id}"


def record_time_ms(fields: Mapping[str, str]) -> int | None:
    """When a record happened: a call's end, a refusal's start (None: neither given)."""
    end, start = fields.get("end_ms", ""), fields.get("start_ms", "")
    at = start if fields.get("kind") == "refused" or not end else end
    return int(at) if at.isdigit() else None


def _entries(raw: Sequence[tuple[bytes, Mapping[bytes, bytes]]]) -> list[Entry]:
    return [Entry(_text(sid), {_text(k): _text(v) for k, v in fields.items()})
            for sid, fields in raw]


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
