"""The edge's local spool of call detail records: JSON lines in hourly segment files.

Every record is appended here first (by the Kamailio workers, concurrently: one `O_APPEND`
write per record, so lines never interleave); the watcher's publisher (`cdr_stream.py`)
copies them to the Redis stream and deletes a segment once its hour is over and all of it
is published. Nothing here talks to Redis.

    <spool_dir>/cdr-<edge>-<YYYYMMDDHH>.jsonl    one record per line; the UTC hour of writing
"""

from __future__ import annotations

import calendar
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from trunkedge.core.errors import TrunkEdgeError

Value = str | int | float | bool | None
Record = Mapping[str, Value]
"""A call detail record: flat, its values JSON scalars (docs/cdr.md lists its fields)."""

RESERVED_FIELD = "id"  # each stream entry's id, added on publication
DIR_MODE, FILE_MODE = 0o750, 0o640
HOUR_S = 3600
CLOSE_GRACE_S = 60  # past its hour by this much, a segment takes no more appends
READ_SIZE = 65536  # bytes per read of a segment (read() cuts at a line's end)
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


class SpoolError(TrunkEdgeError):
    """The spool cannot take or give records (not writable, disk full): never quietly."""


def lines_in(chunk: bytes) -> int:
    """How many records a chunk of read() holds (a closed segment's last may lack "\\n")."""
    return chunk.count(b"\n") + (0 if not chunk or chunk.endswith(b"\n") else 1)


def encode(record: Record) -> bytes:
    """One spool line: compact JSON with sorted keys, ending in a newline."""
    if RESERVED_FIELD in record:
        raise ValueError(f"call record: the field {RESERVED_FIELD!r} is the stream's")
    for key, value in record.items():
        if not isinstance(value, Value):
            raise ValueError(f"call record field {key!r}: a string, number, bool or None")
    text = json.dumps(record, separators=(",", ":"), sort_keys=True, allow_nan=False)
    return text.encode() + b"\n"


class Spool:
    """One edge's segments in `directory` (created 0750 if missing)."""

    def __init__(self, directory: str | os.PathLike[str], edge: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.directory, self.edge, self.clock = Path(directory), edge, clock
        self._segment = re.compile(re.escape(f"cdr-{edge}-") + r"(\d{10})\.jsonl")
        self._ensure_directory()
        self._fd, self._start_s, self._path = -1, -float(HOUR_S), self.directory  # see append

    def append(self, line: bytes) -> Path:
        """Append one record's line (encode(), or core.cdr.closed), in a single write, to
        the current hour's segment (its file kept open between records while it is still
        the spool's: never a write into a file someone deleted)."""
        now = self.clock()
        if not self._start_s <= now < self._start_s + HOUR_S:
            self._switch(now)
        path = self._path
        try:
            if self._fd < 0 or os.fstat(self._fd).st_nlink == 0:
                self._reopen()
            written = os.write(self._fd, line)
        except OSError as e:
            self._close()
            raise SpoolError(f"cannot append to {path}: {e.strerror}") from e
        if written != len(line):
            raise SpoolError(f"{path}: only {written} of {len(line)} bytes written")
        return path

    def _switch(self, now_s: float) -> None:
        """A new hour: its segment from now on."""
        self._close()
        self._start_s = now_s - now_s % HOUR_S
        self._path = self.directory / self.segment_name(now_s)

    def _reopen(self) -> None:
        self._close()
        self._fd = self._open(self._path)

    def _close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def segment_name(self, now_s: float) -> str:
        """The segment file name for a time (its UTC hour)."""
        return f"cdr-{self.edge}-{time.strftime('%Y%m%d%H', time.gmtime(now_s))}.jsonl"

    def segments(self) -> list[Path]:
        """This edge's segments, oldest first."""
        try:
            names = [e.name for e in os.scandir(self.directory) if self._segment.fullmatch(e.name)]
        except FileNotFoundError:
            return []
        except OSError as e:
            raise SpoolError(f"cannot list {self.directory}: {e.strerror}") from e
        return [self.directory / name for name in sorted(names)]

    def closed(self, segment: Path) -> bool:
        """Whether the segment's hour (and a grace for late writers) is over."""
        match = self._segment.fullmatch(segment.name)
        assert match, segment
        start = calendar.timegm(time.strptime(match.group(1), "%Y%m%d%H"))
        return self.clock() >= start + HOUR_S + CLOSE_GRACE_S

    def read(self, segment: Path, offset: int, limit: int) -> bytes:
        """Up to `limit` lines from byte `offset`, as they are in the file (each line's
        offset follows from the lengths of those before it). A trailing partial line is
        left out, unless the segment is closed (it never grows)."""
        whole = self.closed(segment)
        data = b""
        try:
            with segment.open("rb") as f:
                f.seek(offset)
                while data.count(b"\n") < limit and (more := f.read(READ_SIZE)):
                    data += more  # whole reads: cut at the limit-th line's end below
        except OSError as e:
            raise SpoolError(f"cannot read {segment}: {e.strerror}") from e
        if data.count(b"\n") >= limit:
            cut = -1
            for _ in range(limit):
                cut = data.index(b"\n", cut + 1)
            return data[:cut + 1]
        return data if whole else data[:data.rfind(b"\n") + 1]

    def finished(self, segment: Path, offset: int) -> bool:
        """Whether the segment is closed and `offset` is its end (all of it published)."""
        try:
            return self.closed(segment) and segment.stat().st_size <= offset
        except OSError as e:
            raise SpoolError(f"cannot read {segment}: {e.strerror}") from e

    def remove(self, segment: Path) -> None:
        try:
            segment.unlink(missing_ok=True)
        except OSError as e:
            raise SpoolError(f"cannot delete {segment}: {e.strerror}") from e

    def _open(self, path: Path) -> int:
        try:
            return os.open(path, _OPEN_FLAGS, FILE_MODE)
        except FileNotFoundError:  # the folder went away: make it again, never drop
            self._ensure_directory()
            return os.open(path, _OPEN_FLAGS, FILE_MODE)

    def _ensure_directory(self) -> None:
        """Create the folder (0750, whatever the umask) if missing; it must be writable."""
        try:
            self.directory.mkdir(mode=DIR_MODE, parents=True)
            os.chmod(self.directory, DIR_MODE)
        except FileExistsError:
            pass
        except OSError as e:
            raise SpoolError(f"cdr spool: cannot create {self.directory}: {e.strerror}") from e
        if not self.directory.is_dir() or not os.access(self.directory, os.W_OK | os.X_OK):
            raise SpoolError(f"cdr spool: {self.directory} is not a folder this user "
                             f"(uid {os.geteuid()}) can write")
