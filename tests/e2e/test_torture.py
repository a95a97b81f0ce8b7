"""End to end: the 49 RFC 4475 torture messages, byte for byte, over UDP to the edge.

After each message the edge must still answer an OPTIONS ping; invalid messages get 400
(505 for an unknown SIP version, as RFC 4475 §3.1.2.16 says) or no answer; nothing is
ever admitted to a gateway; no Kamailio process dies.
"""

from __future__ import annotations

import csv
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import Edge, Gateway, RedisServer, sip_request, status_of

pytestmark = pytest.mark.e2e

def _corpus() -> Path:
    """shared/rfc4475 beside the checkout (as laid for sessions and CI), or the folder
    named by TRUNKEDGE_RFC4475."""
    if os.environ.get("TRUNKEDGE_RFC4475"):
        return Path(os.environ["TRUNKEDGE_RFC4475"])
    for parent in Path(__file__).resolve().parents:
        if (parent / "shared" / "rfc4475").is_dir():
            return parent / "shared" / "rfc4475"
    return Path("shared/rfc4475")


CORPUS = _corpus()
INVALID_ANSWERS = {"badvers.msg": {400, 505}}


def messages() -> list[tuple[str, str]]:
    index = CORPUS / "INDEX.tsv"
    if not index.exists():
        return []
    with index.open() as f:
        return [(row["file"], row["title"]) for row in csv.DictReader(f, delimiter="\t")]


@pytest.fixture(scope="module")
def torture_edge(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer,
                 gateways: dict[str, Gateway]) -> Iterator[Edge]:
    edge = Edge(tmp_path_factory.mktemp("torture"), redis_server.url,
                {p: g.uri for p, g in gateways.items()})
    try:
        edge.start()
        edge.provision({"acls": {"office": {"ips": ["127.0.0.0/8"], "caller_ids": {
            "default": "+31200000000", "policy": "replace"}}},
            "domains": {"acme": {"acls": ["office"]}}})
        yield edge
    finally:
        edge.stop()


def send_raw(edge: Edge, data: bytes, wait: float = 0.4) -> list[str]:
    """Send one datagram from 127.0.0.1; collect whatever comes back within `wait`."""
    answers = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(wait)
        s.sendto(data, (edge.host, edge.port))
        try:
            while True:
                answers.append(s.recv(65535).decode(errors="replace"))
        except TimeoutError:
            pass
    return answers


def test_corpus_is_complete() -> None:
    assert len(messages()) == 49, f"RFC 4475 corpus missing or incomplete at {CORPUS}"


@pytest.mark.parametrize(("name", "title"), messages(), ids=[m[0] for m in messages()])
def test_torture_message(torture_edge: Edge, name: str, title: str) -> None:
    edge = torture_edge
    workers = sorted(edge.children_pids())
    before = edge.status()
    answers = send_raw(edge, (CORPUS / name).read_bytes())
    codes = [int(a.split()[1]) for a in answers if a.startswith("SIP/2.0 ")]
    if name.startswith("invalid/"):
        allowed = INVALID_ANSWERS.get(Path(name).name, {400})
        assert set(codes) <= allowed, f"{title}: answered {codes}"
    # the edge is alive and well: it answers, all its processes are the same ones
    ping = sip_request((edge.host, edge.port), "OPTIONS", f"sip:{edge.address}")
    assert status_of(ping) == 200, f"{title}: no answer to OPTIONS afterwards"
    assert sorted(edge.children_pids()) == workers, f"{title}: a Kamailio process died"
    after = edge.status()
    sent = {p: body["sent"] for p, body in after["pops"].items()}
    assert sent == {p: body["sent"] for p, body in before["pops"].items()}, title
    assert after["admitted"] == before["admitted"], f"{title}: admitted to a gateway"
    (edge.workdir / "torture-answers.tsv").open("a").write(
        f"{name}\t{title}\t{','.join(map(str, codes)) or 'none'}\n")
