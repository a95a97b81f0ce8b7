"""`trunkedge cdrs tail` and `cdrs export` on a small stream of a real redis-server, and
docs/cdr.md documenting the fields in the order the CSV has them."""

from __future__ import annotations

import csv
import json
import queue
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import ROOT, VENV_BIN, RedisServer
from trunkedge.cli import main
from trunkedge.store.cdr_spool import Spool, encode
from trunkedge.store.cdr_stream import ENTRY_FIELDS, RECORD_FIELDS, Publisher
from trunkedge.store.schema import Keys

PREFIX = "cdr-cli-test:"
T0 = 1_738_317_600_000  # 2025-01-31T10:00:00Z
MIN = 60_000


def record(call_id: str, kind: str = "call", start: int = T0, end: int | str = "",
           **fields: object) -> dict[str, object]:
    """A record with every documented field (the edge writes them all)."""
    base: dict[str, object] = dict.fromkeys(RECORD_FIELDS, "")
    base.update(kind=kind, call_id=call_id, start_ms=start, end_ms=end, status=200,
                domain="acme", acl="office", source_ip="192.0.2.7", source_port=5060,
                transport="udp", private="0", edge="e1")
    return {**base, **fields}


RECORDS = [
    record("c1", end=T0 + 5 * MIN),  # ends 10:05
    record("c2", start=T0 + 80 * MIN, end=T0 + 90 * MIN, answer_ms=T0 + 81 * MIN,
           duration_ms=9 * MIN, hangup="callee", pop="eu1", gateway="sip:10.0.0.1"),
    record("r1", kind="refused", start=T0 + 105 * MIN, status=403,
           reason="address-not-allowed"),  # refused 11:45
    record("c3", start=T0 + 120 * MIN, end=T0 + 130 * MIN, status=486),  # ends 12:10
]


class Stream:
    """The test's stream: records spooled and published as an edge would."""

    def __init__(self, server: RedisServer, spool_dir: Path) -> None:
        self.url = server.url
        self.publisher = Publisher(server.client(), Keys(PREFIX), Spool(spool_dir, "e1"), 1000)

    def add(self, *records: dict[str, object]) -> None:
        for r in records:
            self.publisher.spool.append(encode(r))  # type: ignore[arg-type]
        assert self.publisher.flush() == len(records)


@pytest.fixture
def stream(redis_server: RedisServer, tmp_path: Path) -> Iterator[Stream]:
    s = Stream(redis_server, tmp_path / "spool")
    s.add(*RECORDS)
    yield s
    client = redis_server.client()
    for key in client.scan_iter(f"{PREFIX}*"):
        client.delete(key)


def cdrs(stream: Stream, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--redis", stream.url, "--prefix", PREFIX, "cdrs", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def call_ids(jsonl: str) -> list[str]:
    return [json.loads(line)["call_id"] for line in jsonl.splitlines()]


def test_tail_prints_the_last_records_as_json_lines(
        stream: Stream, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cdrs(stream, capsys, "tail", "--count", "2")
    assert code == 0 and call_ids(out) == ["r1", "c3"]
    first = json.loads(out.splitlines()[0])
    assert list(first) == list(ENTRY_FIELDS)  # the documented order, then the id
    assert first["reason"] == "address-not-allowed" and first["id"].startswith("e1:cdr-e1-")
    assert call_ids(cdrs(stream, capsys, "tail")[1]) == ["c1", "c2", "r1", "c3"]
    assert cdrs(stream, capsys, "tail", "--count", "0")[1] == ""


def test_export_takes_calls_by_their_end_and_refusals_by_their_start(
        stream: Stream, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cdrs(stream, capsys, "export", "--since", "2025-01-31T10:05:00Z",
                        "--until", "2025-01-31T12:10:00Z")
    assert code == 0 and call_ids(out) == ["c1", "c2", "r1"]  # [since, until)
    _, out, _ = cdrs(stream, capsys, "export", "--since", "2025-01-31T11:00:00",
                     "--until", "2025-01-31T12:00:00+00:00")  # no offset: UTC
    assert call_ids(out) == ["c2", "r1"]
    _, out, _ = cdrs(stream, capsys, "export", "--since", "2025-01-31T12:30:00+01:00",
                     "--until", "2025-01-31T13:00:00+01:00")  # 11:30-12:00 UTC
    assert call_ids(out) == ["c2", "r1"]


def test_export_writes_csv_with_the_documented_header(
        stream: Stream, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "cdrs.csv"
    code, out, err = cdrs(stream, capsys, "export", "--since", "2025-01-31T00:00:00Z",
                          "--until", "2025-02-01T00:00:00Z", "--format", "csv", "-o",
                          str(target))
    assert code == 0 and out == "" and "exported 4 records" in err
    with target.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(ENTRY_FIELDS)
    got = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [r["call_id"] for r in got] == ["c1", "c2", "r1", "c3"]
    assert (got[1]["duration_ms"], got[1]["hangup"], got[1]["answer_ms"]) == (
        str(9 * MIN), "callee", str(T0 + 81 * MIN))
    assert got[0]["answer_ms"] == "" and got[3]["status"] == "486"


@pytest.mark.parametrize(("args", "field"), [
    (("export", "--since", "yesterday", "--until", "2025-01-31T00:00:00Z"), "--since"),
    (("export", "--since", "2025-01-31T00:00:00Z", "--until", "2025-01-30T00:00:00Z"),
     "--until"),
    (("tail", "--count", "-1"), "--count"),
])
def test_bad_options_name_themselves(stream: Stream, capsys: pytest.CaptureFixture[str],
                                     args: tuple[str, ...], field: str) -> None:
    code, _, err = cdrs(stream, capsys, *args)
    assert code == 2 and f"error: {field}:" in err


def test_tail_follow_prints_new_records_as_they_are_published(stream: Stream) -> None:
    proc = subprocess.Popen([str(VENV_BIN / "trunkedge"), "--redis", stream.url, "--prefix",
                             PREFIX, "cdrs", "tail", "--count", "1", "--follow"],
                            stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or ()],
                     daemon=True).start()
    try:
        assert json.loads(lines.get(timeout=15))["call_id"] == "c3"
        stream.add(record("c4", end=T0 + 140 * MIN), record("c5", end=T0 + 141 * MIN))
        assert [json.loads(lines.get(timeout=10))["call_id"] for _ in range(2)] == ["c4", "c5"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_docs_list_the_record_fields_in_the_csv_order() -> None:
    text = (ROOT / "docs" / "cdr.md").read_text()
    section = text.split("## Record fields", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)
    assert tuple(documented) == RECORD_FIELDS


def test_no_redis_is_an_error_not_a_crash(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--redis", "redis://127.0.0.1:1/0", "cdrs", "tail"])
    assert code == 3 and "error: redis:" in capsys.readouterr().err
