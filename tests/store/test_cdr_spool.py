"""The local spool of call detail records: whole lines from concurrent writers, hourly UTC
segments per edge, a folder made when missing, and settings that name it."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from trunkedge.core.errors import ConfigError
from trunkedge.settings import CdrSettings, parse_settings
from trunkedge.store.cdr_spool import CLOSE_GRACE_S, Spool, SpoolError, encode, lines_in

AT = 1738332000.5  # 2025-01-31 14:00:00.5 UTC
WRITERS, PER_WRITER = 4, 500


def call(n: int, **extra: object) -> bytes:
    """A record's line as the edge writes one (the fields of docs/cdr.md, a few of them)."""
    return encode({"kind": "call", "call_id": f"c{n}@pbx", "start_ms": 1_738_332_000_000 + n,
                   "answer_ms": "", "status": 200, "private": "0", "edge": "e1",
                   **extra})  # type: ignore[dict-item]


def test_a_record_is_one_compact_sorted_line_in_its_utc_hour_segment(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "e1", clock=lambda: AT)
    path = spool.append(encode({"status": 486, "kind": "call", "answer_ms": None}))
    assert path == tmp_path / "cdr-e1-2025013114.jsonl"
    assert path.read_bytes() == b'{"answer_ms":null,"kind":"call","status":486}\n'
    spool.clock = lambda: AT + 3600
    assert spool.append(call(1)).name == "cdr-e1-2025013115.jsonl"
    assert spool.segments() == [path, tmp_path / "cdr-e1-2025013115.jsonl"]


def test_records_must_be_flat_and_leave_id_to_the_stream(tmp_path: Path) -> None:
    for bad in ({"nested": {"a": 1}}, {"list": [1]}, {"id": "x"}, {"nan": float("nan")}):
        with pytest.raises(ValueError):
            encode(bad)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


def _write_many(directory: str, writer: int) -> None:
    spool = Spool(directory, "e1")
    for i in range(PER_WRITER):  # ~1.5 KB lines: interleaved writes would show
        spool.append(call(i, writer=writer, seq=i, pad="x" * (1000 + writer * 100)))


def test_concurrent_processes_append_whole_lines(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_many, args=(str(tmp_path), w)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = b"".join(p.read_bytes() for p in Spool(tmp_path, "e1").segments()).splitlines()
    records = [json.loads(line) for line in lines]  # every line whole
    assert len(records) == WRITERS * PER_WRITER
    for w in range(WRITERS):  # each writer's records, all of them, in its order
        mine = [r for r in records if r["writer"] == w]
        assert [r["seq"] for r in mine] == list(range(PER_WRITER))
        assert all(r["pad"] == "x" * (1000 + w * 100) for r in mine)


def test_a_missing_folder_is_created_0750_and_an_unusable_one_is_refused(
        tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        spool = Spool(tmp_path / "a" / "spool", "e1")
    finally:
        os.umask(old)
    assert stat.S_IMODE(spool.directory.stat().st_mode) == 0o750
    spool.directory.rmdir()  # removed under a running edge: the next record makes it again
    spool.append(call(1))
    assert len(spool.segments()) == 1
    (tmp_path / "file").write_text("")
    for unusable in (tmp_path / "file", tmp_path / "file" / "spool"):
        with pytest.raises(SpoolError, match="cdr spool"):
            Spool(unusable, "e1")


def test_a_segment_deleted_under_its_open_file_is_made_again(tmp_path: Path) -> None:
    """The spool keeps its segment open between records; a record after someone deleted
    the file (or the whole folder) must not go into the deleted file."""
    spool = Spool(tmp_path / "spool", "e1", clock=lambda: AT)
    first = spool.append(call(1))
    first.unlink()
    assert spool.append(call(2)) == first
    assert [json.loads(x)["call_id"] for x in first.read_bytes().splitlines()] == ["c2@pbx"]
    first.unlink()
    spool.directory.rmdir()
    spool.append(call(3))
    assert [json.loads(x)["call_id"] for x in first.read_bytes().splitlines()] == ["c3@pbx"]


def test_segments_are_this_edges_only(tmp_path: Path) -> None:
    Spool(tmp_path, "a-b", clock=lambda: AT).append(call(1))
    (tmp_path / "cdr-a-notes.jsonl").write_text("")
    spool = Spool(tmp_path, "a", clock=lambda: AT)
    assert spool.segments() == []
    spool.append(call(2))
    assert [p.name for p in spool.segments()] == ["cdr-a-2025013114.jsonl"]


def test_a_partial_last_line_is_read_only_once_its_segment_is_closed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "e1", clock=lambda: AT)
    path = spool.append(call(1))
    first = path.read_bytes()
    with path.open("ab") as f:
        f.write(b'{"kind":"ca')  # a write that never completed
    assert spool.read(path, 0, 10) == first
    assert spool.read(path, len(first), 10) == b""
    assert not spool.finished(path, len(first))
    spool.clock = lambda: AT + 3600 + CLOSE_GRACE_S
    assert spool.read(path, len(first), 10) == b'{"kind":"ca'
    assert (lines_in(first + b'{"kind":"ca'), lines_in(first), lines_in(b"")) == (2, 1, 0)
    assert spool.finished(path, path.stat().st_size)


def test_cdr_settings_name_the_spool_and_the_edge() -> None:
    base = {"listen": "udp:127.0.0.1:5060", "base_domain": "sip.example.net",
            "pops": {"eu1": ["sip:127.0.0.1:5091"]}}
    assert parse_settings(base).cdr == CdrSettings()
    cdr = parse_settings({**base, "cdr": {"spool_dir": "/srv/cdr", "edge_name": "ams-1.edge",
                                          "stream_maxlen": 5000, "enabled": False}}).cdr
    assert (cdr.spool_dir, cdr.edge, cdr.stream_maxlen, cdr.enabled) == (
        "/srv/cdr", "ams-1.edge", 5000, False)
    assert CdrSettings().edge  # the host name, as a valid edge name
    for bad in ({"edge_name": "a:b"}, {"edge_name": "x" * 65}, {"spool_dir": "spool"},
                {"stream_maxlen": 0}, {"enabled": "yes"}):
        with pytest.raises(ConfigError) as e:
            parse_settings({**base, "cdr": bad})
        assert e.value.field == f"cdr.{next(iter(bad))}"
