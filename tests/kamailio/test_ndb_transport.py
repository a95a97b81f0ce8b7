"""NdbTransport's servers (one per sentinel with Sentinel) against a fake ndb_redis: a
server that gives no answer or answers as no master hands over to the next, which the
worker keeps; one that is no master is closed (QUIT); script errors stay where they are;
and while nothing answers each command tries one server only."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import pytest
from fake_ksr import install

install()  # before ksr_io binds `KSR`

from trunkedge.core.errors import StoreUnavailable  # noqa: E402
from trunkedge.kamailio.ksr_io import NdbTransport  # noqa: E402
from trunkedge.kamailio.symbols import redis_servers  # noqa: E402
from trunkedge.store.scripts import SCRIPTS  # noqa: E402

SCRIPT = SCRIPTS[0]


class FakeNdb:
    """ndb_redis with one answer per server: "ok", None (no answer) or an error reply; each
    reply goes to the container named last, as $redis(NAME=>value|info) reads it."""

    def __init__(self, answers: dict[str, str | None]) -> None:
        self.answers, self.sent = answers, []
        self.replies: dict[str, SimpleNamespace] = {}

    def redis_cmd(self, server: str, command: str, *rest: Any) -> int:
        self.sent.append((server, command.split()[0]))
        answer = "OK" if command == "QUIT" else self.answers[server]
        ok = answer in ("ok", "OK")
        self.replies[rest[-1]] = SimpleNamespace(value=1 if ok else None,
                                                 info="OK" if ok else answer)
        return 1 if ok else -1

    redis_cmd_p1 = redis_cmd_p2 = redis_cmd_p3 = redis_cmd

    def pv(self, name: str) -> Any:
        container, _, field = name.removeprefix("$redis(").removesuffix(")").partition("=>")
        reply = self.replies.get(container, SimpleNamespace(value=None, info=None))
        return reply.value if field == "value" else reply.info


@pytest.fixture
def ndb(monkeypatch: pytest.MonkeyPatch) -> FakeNdb:
    fake = FakeNdb({})
    ksr = sys.modules["KSR"]
    monkeypatch.setattr(ksr, "ndb_redis", fake, raising=False)
    monkeypatch.setattr(ksr, "pv", SimpleNamespace(get=fake.pv), raising=False)
    return fake


def test_one_server_without_sentinel_keeps_its_name() -> None:
    assert redis_servers(0) == redis_servers(1) == ("te",)
    assert redis_servers(3) == ("te", "te1", "te2")


def test_a_server_without_answer_hands_over_to_the_next_which_the_worker_keeps(
        ndb: FakeNdb) -> None:
    ndb.answers = {"te": None, "te1": "ok", "te2": "ok"}
    transport = NdbTransport(redis_servers(3))
    assert transport.run(SCRIPT, ["k"], []) == 1
    assert transport.run(SCRIPT, ["k"], []) == 1
    assert ndb.sent == [("te", "EVAL"), ("te1", "EVAL"), ("te1", "EVALSHA")]


@pytest.mark.parametrize("error", ["READONLY You can't write against a read only replica.",
                                   "ERR unknown command 'EVALSHA', with args beginning with: "])
def test_a_server_that_is_no_master_is_closed_and_handed_over(ndb: FakeNdb, error: str) -> None:
    ndb.answers = {"te": error, "te1": "ok"}
    assert NdbTransport(redis_servers(2)).run(SCRIPT, ["k"], []) == 1
    assert ndb.sent == [("te", "EVAL"), ("te", "QUIT"), ("te1", "EVAL")]


def test_the_error_is_the_servers_not_quits(ndb: FakeNdb) -> None:
    ndb.answers = {"te": "READONLY You can't write against a read only replica."}
    with pytest.raises(StoreUnavailable, match="READONLY"):
        NdbTransport(redis_servers(1)).run(SCRIPT, ["k"], [])
    assert ndb.sent == [("te", "EVAL"), ("te", "QUIT")]


def test_a_script_error_is_not_the_servers(ndb: FakeNdb) -> None:
    ndb.answers = {"te": "ERR Error running script", "te1": "ok"}
    with pytest.raises(StoreUnavailable, match="Error running script"):
        NdbTransport(redis_servers(2)).run(SCRIPT, ["k"], [])
    assert ndb.sent == [("te", "EVAL")]


def test_while_nothing_answers_each_command_tries_one_server(ndb: FakeNdb) -> None:
    ndb.answers = {"te": None, "te1": None, "te2": None}
    transport = NdbTransport(redis_servers(3))
    for _ in range(3):
        with pytest.raises(StoreUnavailable, match="no answer"):
            transport.run(SCRIPT, ["k"], [])
    assert [s for s, _ in ndb.sent] == ["te", "te1", "te2", "te", "te1"]
    ndb.answers["te2"] = "ok"  # a master again, through the next server asked
    assert transport.run(SCRIPT, ["k"], []) == 1
    assert transport.server == "te2"


@pytest.mark.parametrize(("args", "command", "params"), [
    (("a", "b:1"), "EVALSHA %s 1 k a b:1", []),  # plain tokens: in the command itself
    (("a b", "c"), "EVALSHA %s 1 k %s c", ["a b"]),  # a space would split a word
    (("", "c"), "EVALSHA %s 1 k %s c", [""]),  # an empty word would vanish
    (('x"y', "%z"), "EVALSHA %s 1 k %s %s", ['x"y', "%z"]),
])
def test_the_script_and_long_or_unsafe_words_travel_as_parameters(
        monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], command: str,
        params: list[str]) -> None:
    sent: list[tuple[str, list[str]]] = []

    def cmd(server: str, text: str, *rest: str) -> int:
        sent.append((text, list(rest[:-1])))
        return 1

    ksr = sys.modules["KSR"]
    monkeypatch.setattr(ksr, "ndb_redis", SimpleNamespace(
        redis_cmd=cmd, redis_cmd_p1=cmd, redis_cmd_p2=cmd, redis_cmd_p3=cmd), raising=False)
    monkeypatch.setattr(ksr, "pv", SimpleNamespace(get=lambda name: 1), raising=False)
    transport = NdbTransport()
    transport.loaded.add(SCRIPT.sha)
    transport.run(SCRIPT, ["k"], args)
    assert sent == [(command, [SCRIPT.sha, *params])]
