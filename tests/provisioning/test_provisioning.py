"""Provisioning against a real redis-server: validation, atomicity, import/export."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import yaml

import trunkedge.cli
from harness import VENV_BIN, RedisServer, wait_until
from sentinels import SentinelCluster
from trunkedge.cli import main
from trunkedge.provisioning.validation import parse_config
from trunkedge.provisioning.writer import Provisioner
from trunkedge.settings import REDIS_ENV, SETTINGS_ENV, RedisSettings
from trunkedge.store.client import RedisPyTransport
from trunkedge.store.reads import Store
from trunkedge.store.schema import Keys

REALM = "sip.example.net"
PREFIX = "prov-test:"


@pytest.fixture
def db(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    for key in client.scan_iter(f"{PREFIX}*"):
        client.delete(key)


@pytest.fixture
def cli(redis_server: RedisServer, db: redis.Redis, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """The `trunkedge` command line, run in-process (the e2e tests run the real binary)."""
    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
        argv = ["--redis", redis_server.url, "--prefix", PREFIX, "--realm", REALM, *args]
        code = main(argv)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(argv, code, out.out, out.err)
    return run


def test_the_installed_command_runs_and_refuses_a_bad_name(redis_server: RedisServer) -> None:
    out = subprocess.run([str(VENV_BIN / "trunkedge"), "--redis", redis_server.url,
                          "--prefix", PREFIX, "--realm", REALM, "domain", "create", "x-y"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "error: domain: 'x-y'" in out.stderr


def snapshot(db: redis.Redis) -> dict[bytes, bytes | None]:
    return {k: db.dump(k) for k in sorted(db.scan_iter(f"{PREFIX}*"))}


def seed(cli) -> None:  # type: ignore[no-untyped-def]
    for args in (("domain", "create", "acme"), ("acl", "create", "office"),
                 ("acl", "add-ip", "office", "192.0.2.0/24"),
                 ("acl", "add-account", "office", "31000000", "--password", "pw1"),
                 ("domain", "attach", "acme", "office")):
        r = cli(*args)
        assert r.returncode == 0, (args, r.stderr)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("domain", "create", "ac-me"), "domain"),
        (("domain", "create", "acme"), "domain"),  # exists
        (("domain", "attach", "acme", "nosuch"), "acl"),
        (("domain", "attach", "nosuch", "office"), "domain"),
        (("domain", "detach", "acme", "other"), "acl"),
        (("acl", "add-ip", "office", "192.0.2.1/24"), "cidr"),
        (("acl", "add-ip", "office", "banana"), "cidr"),
        (("acl", "remove-ip", "office", "10.0.0.0/8"), "cidr"),
        (("acl", "add-account", "office", "31000000", "--password", "x"), "username"),
        (("acl", "add-account", "office", "bad user", "--password", "x"), "username"),
        (("acl", "add-account", "office", "31000009", "--password", ""), "password"),
        (("acl", "delete", "office"), "acl"),  # still attached
        (("acl", "create", "office"), "acl"),
        (("domain", "set-pop", "acme", "mars1"), "pop"),
        (("acl", "caller-ids", "office", "--allow", "0201234567"), "caller_ids.allow"),
        (("acl", "caller-ids", "office", "--allow", "+31*5"), "caller_ids.allow"),
        (("acl", "caller-ids", "office", "--default", "+1"), "caller_ids.default"),
        (("acl", "caller-ids", "office", "--policy", "replace"), "caller_ids.default"),
        (("acl", "caller-ids", "office", "--user", "nobody", "--allow", "+31*"), "username"),
        (("domain", "set-pop", "nosuch", "us1"), "domain"),
        (("domain", "set-limits", "acme", "--cps", "-1"), "--cps"),
        (("domain", "set-limits", "acme", "--cps", "2.5"), "--cps"),
        (("domain", "set-limits", "acme", "--cps", "ten"), "--cps"),
        (("domain", "set-limits", "acme", "--channels", "5", "--cps", "1000001"), "--cps"),
        (("domain", "set-limits", "acme", "--cps", "5", "--channels", "1000001"), "--channels"),
        (("domain", "set-limits", "acme"), "--cps"),  # nothing to change
        (("domain", "set-limits", "nosuch", "--cps", "5"), "domain"),
        (("account", "set-limits", "31000000", "--channels", "+3"), "--channels"),
        (("account", "set-limits", "31000000", "--channels", "9" * 5000), "--channels"),
        (("account", "set-limits", "nobody", "--cps", "5"), "username"),
    ],
)
def test_invalid_change_names_the_field_and_leaves_redis_as_it_was(
    cli, db: redis.Redis, args: tuple[str, ...], field: str  # type: ignore[no-untyped-def]
) -> None:
    seed(cli)
    cli("acl", "create", "other")
    before = snapshot(db)
    r = cli(*args)
    assert r.returncode == 2, r
    assert r.stderr.startswith(f"trunkedge: error: {field}: "), r.stderr
    assert snapshot(db) == before


def test_passwords_are_stored_only_as_ha1(cli, db: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    seed(cli)
    r = cli("acl", "add-account", "office", "31000001", stdin="from-stdin-pw\n")
    assert r.returncode == 0, r.stderr
    values = b"".join(v for k in db.scan_iter(f"{PREFIX}*") if db.type(k) == b"hash"
                      for v in db.hgetall(k).values())
    assert b"pw1" not in values and b"from-stdin-pw" not in values
    assert db.hget(f"{PREFIX}account:31000001", "realm") == REALM.encode()


def test_show_and_list_reflect_each_change_and_delete_removes(cli) -> None:  # type: ignore[no-untyped-def]
    seed(cli)
    assert cli("domain", "list").stdout.split() == ["acme"]
    shown = yaml.safe_load(cli("acl", "show", "office").stdout)
    assert shown == {"acl": "office", "ips": ["192.0.2.0/24"],
                     "accounts": [{"username": "31000000"}], "domains": ["acme"]}
    assert yaml.safe_load(cli("domain", "show", "ACME").stdout)["acls"] == ["office"]
    assert cli("domain", "set-pop", "acme", "us2").returncode == 0
    assert yaml.safe_load(cli("domain", "show", "acme").stdout)["pop"] == "us2"
    assert "pop: us2" in cli("export").stdout
    assert cli("domain", "set-pop", "acme", "default").returncode == 0
    assert yaml.safe_load(cli("domain", "show", "acme").stdout)["pop"] is None
    assert cli("domain", "delete", "acme").returncode == 0
    assert cli("acl", "delete", "office").returncode == 0
    assert cli("acl", "list").stdout.split() == []


def test_limits_are_set_shown_and_cleared_on_a_domain_and_an_account(  # type: ignore[no-untyped-def]
        cli, db: redis.Redis) -> None:
    seed(cli)
    assert cli("domain", "set-limits", "ACME", "--cps", "10", "--channels", "30").returncode == 0
    assert cli("domain", "set-limits", "acme", "--cps", "0").returncode == 0  # channels kept
    assert cli("account", "set-limits", "31000000", "--channels", "2").returncode == 0
    assert yaml.safe_load(cli("domain", "show", "acme").stdout)["limits"] == {
        "cps": 0, "channels": 30}
    assert yaml.safe_load(cli("acl", "show", "office").stdout)["accounts"] == [
        {"username": "31000000", "limits": {"channels": 2}}]
    assert db.hget(f"{PREFIX}domain:acme", "max_cps") == b"0"
    assert db.hget(f"{PREFIX}account:31000000", "max_channels") == b"2"
    assert not db.hexists(f"{PREFIX}account:31000000", "max_cps")

    cleared = cli("domain", "set-limits", "acme", "--cps", "none", "--channels", "none")
    assert cleared.returncode == 0, cleared.stderr
    assert cli("account", "set-limits", "31000000", "--channels", "NONE").returncode == 0
    assert "limits" not in yaml.safe_load(cli("domain", "show", "acme").stdout)
    assert "limits" not in cli("acl", "show", "office").stdout
    assert db.hgetall(f"{PREFIX}domain:acme") == {b"name": b"acme"}


def test_set_limits_is_one_announced_change(cli, db: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    seed(cli)
    pubsub = db.pubsub()
    pubsub.subscribe(f"{PREFIX}changes")
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"
    version = int(db.get(f"{PREFIX}version") or 0)
    assert cli("domain", "set-limits", "acme", "--cps", "5", "--channels", "9").returncode == 0
    assert int(db.get(f"{PREFIX}version") or 0) == version + 1
    assert cli("account", "set-limits", "31000000", "--cps", "1").returncode == 0
    assert int(db.get(f"{PREFIX}version") or 0) == version + 2
    messages = [pubsub.get_message(timeout=1) for _ in range(2)]
    assert [m and m["data"] for m in messages] == [
        f"changed {version + 1} d:acme".encode(), f"changed {version + 2} u:31000000".encode()]
    pubsub.close()


def seed_for_changes(cli) -> None:  # type: ignore[no-untyped-def]
    """seed(), plus: office on a second domain, a domain with no ACL, an empty ACL and a
    detached ACL with two accounts."""
    seed(cli)
    for args in (("domain", "create", "globex"), ("domain", "attach", "globex", "office"),
                 ("domain", "create", "initech"), ("acl", "create", "empty"),
                 ("acl", "create", "spare"),
                 ("acl", "add-account", "spare", "32000000", "--password", "pw2"),
                 ("acl", "add-account", "spare", "32000001", "--password", "pw3")):
        r = cli(*args)
        assert r.returncode == 0, (args, r.stderr)


IMPORTED = {"acls": {"office": {"ips": ["192.0.2.0/24"]}}, "domains": {"acme": {}}}
OFFICE_DOMAINS = "d:acme d:globex"


@pytest.mark.parametrize(
    ("change", "touched"),
    [
        (("domain", "create", "umbrella"), "d:umbrella"),
        (("domain", "delete", "acme"), "d:acme"),
        (("domain", "attach", "initech", "office"), "d:initech"),  # the domain only
        (("domain", "detach", "acme", "office"), "d:acme"),
        (("domain", "set-pop", "acme", "us2"), "d:acme"),
        (("domain", "set-pop", "acme", "default"), "d:acme"),
        (("domain", "set-algorithms", "acme", "SHA-256"), "d:acme"),
        (("domain", "set-limits", "ACME", "--cps", "5"), "d:acme"),
        (("acl", "create", "newacl"), ""),  # nothing an edge caches
        (("acl", "delete", "spare"), "u:32000000 u:32000001"),
        (("acl", "delete", "empty"), ""),  # no domain, no account
        (("acl", "add-ip", "office", "198.51.100.0/24"), OFFICE_DOMAINS),
        (("acl", "remove-ip", "office", "192.0.2.0/24"), OFFICE_DOMAINS),
        (("acl", "add-ip", "spare", "198.51.100.0/24"), ""),  # on no domain
        (("acl", "caller-ids", "office", "--allow", "+3120*"), OFFICE_DOMAINS),
        (("acl", "caller-ids", "spare", "--allow", "+3120*"), ""),
        (("acl", "caller-ids", "office", "--user", "31000000", "--allow", "+3120*"),
         "u:31000000"),
        (("acl", "add-account", "office", "31000002", "--password", "p"),
         f"{OFFICE_DOMAINS} u:31000002"),
        (("acl", "add-account", "spare", "32000002", "--password", "p"), "u:32000002"),
        (("acl", "remove-account", "office", "31000000"), f"{OFFICE_DOMAINS} u:31000000"),
        (("account", "set-limits", "31000000", "--channels", "2"), "u:31000000"),
        (("import", "{imported}"), "*"),
        (lambda prov: prov.domain_set_pop("globex", "us1"), "d:globex"),
        (lambda prov: prov.acl_remove_account("spare", "32000001"), "u:32000001"),
        (lambda prov: prov.import_config(parse_config(IMPORTED, REALM)), "*"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else None,
)
def test_each_change_announces_its_version_and_what_it_touched(  # type: ignore[no-untyped-def]
        cli, db: redis.Redis, tmp_path: Path,
        change: tuple[str, ...] | Callable[[Provisioner], None], touched: str) -> None:
    seed_for_changes(cli)
    imported = tmp_path / "imported.yaml"
    imported.write_text(yaml.safe_dump(IMPORTED))
    version = int(db.get(f"{PREFIX}version") or 0)
    pubsub = db.pubsub()
    pubsub.subscribe(f"{PREFIX}changes")
    try:
        assert pubsub.get_message(timeout=1)["type"] == "subscribe"
        if callable(change):
            change(Provisioner(db, Keys(PREFIX), REALM))
        else:
            r = cli(*(arg.format(imported=imported) for arg in change))
            assert r.returncode == 0, r.stderr
        message = pubsub.get_message(timeout=1)
        assert message and message["data"] == f"changed {version + 1} {touched}".strip().encode()
        assert int(db.get(f"{PREFIX}version") or 0) == version + 1
        assert pubsub.get_message(timeout=0.1) is None  # one change, one message
    finally:
        pubsub.close()


def test_concurrent_changes_announce_consecutive_versions(db: redis.Redis) -> None:
    """Retried transactions read the version again: each message names the version its
    EXEC made, in the order of the EXECs."""
    prov = Provisioner(db, Keys(PREFIX), REALM)
    for i in range(2):
        prov.domain_create(f"dom{i}")
        prov.acl_create(f"acl{i}")
        prov.domain_attach(f"dom{i}", f"acl{i}")
    version = int(db.get(f"{PREFIX}version") or 0)
    pubsub = db.pubsub()
    pubsub.subscribe(f"{PREFIX}changes")
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"

    def add_networks(i: int) -> None:
        mine = Provisioner(redis.Redis(**db.connection_pool.connection_kwargs),
                           Keys(PREFIX), REALM)
        for n in range(20):
            mine.acl_add_ip(f"acl{i}", f"10.{i}.{n}.0/24")

    threads = [threading.Thread(target=add_networks, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        data = [m["data"].decode() for m in iter(lambda: pubsub.get_message(timeout=1), None)]
    finally:
        pubsub.close()
    assert [int(d.split()[1]) for d in data] == list(range(version + 1, version + 41))
    assert sorted(d.split(maxsplit=2)[2] for d in data) == ["d:dom0"] * 20 + ["d:dom1"] * 20
    assert int(db.get(f"{PREFIX}version") or 0) == version + 40


def test_a_refused_change_announces_nothing(cli, db: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    seed(cli)
    version = db.get(f"{PREFIX}version")
    pubsub = db.pubsub()
    pubsub.subscribe(f"{PREFIX}changes")
    try:
        assert pubsub.get_message(timeout=1)["type"] == "subscribe"
        assert cli("acl", "delete", "office").returncode == 2  # still attached
        assert pubsub.get_message(timeout=0.2) is None
        assert db.get(f"{PREFIX}version") == version
    finally:
        pubsub.close()


def test_caller_ids_are_kept_per_acl_and_per_account_and_cleared_when_empty(cli) -> None:  # type: ignore[no-untyped-def]
    seed(cli)
    assert cli("acl", "caller-ids", "office", "--allow", "+3120*", "--default",
               "+31200000000", "--policy", "replace").returncode == 0
    assert cli("acl", "caller-ids", "office", "--user", "31000000", "--allow",
               "+31201234567").returncode == 0
    exported = yaml.safe_load(cli("export").stdout)
    office = exported["acls"]["office"]
    assert office["caller_ids"] == {"allow": ["+3120*"], "default": "+31200000000",
                                    "policy": "replace"}
    assert office["accounts"][0]["caller_ids"] == {"allow": ["+31201234567"],
                                                   "policy": "reject"}
    assert cli("acl", "caller-ids", "office").returncode == 0  # nothing: cleared
    assert "caller_ids" not in yaml.safe_load(cli("export").stdout)["acls"]["office"]


def test_acl_show_gives_the_caller_ids_of_the_acl_and_of_each_account(cli) -> None:  # type: ignore[no-untyped-def]
    seed(cli)
    assert cli("acl", "caller-ids", "office", "--allow", "+3120*", "--default",
               "+31200000000", "--policy", "replace").returncode == 0
    assert cli("acl", "caller-ids", "office", "--user", "31000000", "--allow",
               "+31201234567").returncode == 0
    shown = yaml.safe_load(cli("acl", "show", "office").stdout)
    exported = yaml.safe_load(cli("export").stdout)["acls"]["office"]
    assert shown["caller_ids"] == exported["caller_ids"] == {
        "allow": ["+3120*"], "default": "+31200000000", "policy": "replace"}
    assert shown["accounts"] == [{"username": "31000000", "caller_ids": {
        "allow": ["+31201234567"], "policy": "reject"}}]  # never the HA1s
    assert cli("acl", "caller-ids", "office").returncode == 0
    assert cli("acl", "caller-ids", "office", "--user", "31000000").returncode == 0
    assert "caller_ids" not in cli("acl", "show", "office").stdout


@pytest.mark.parametrize(
    ("doc", "summary"),
    [
        ({"acls": {"office": {"accounts": [{"username": "u1", "password": "p"}]}, "pbx": {}},
          "domains": {"acme": {"acls": ["office", "pbx"]}}},
         "imported 1 domain, 2 ACLs, 1 account"),
        ({"acls": {"office": {"accounts": [{"username": "u1", "password": "p"},
                                           {"username": "u2", "password": "p"}]}},
          "domains": {"acme": {}, "globex": {}}},
         "imported 2 domains, 1 ACL, 2 accounts"),
        ({}, "imported 0 domains, 0 ACLs, 0 accounts"),
    ],
)
def test_import_counts_in_the_singular_and_the_plural(  # type: ignore[no-untyped-def]
        cli, tmp_path: Path, doc: dict[str, object], summary: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(doc))
    r = cli("import", str(f))
    assert (r.returncode, r.stdout) == (0, summary + "\n"), r.stderr


Cli = Callable[..., subprocess.CompletedProcess[str]]


def bare_url(server: RedisServer) -> str:
    """A database of its own on the tests' Redis, for the schema's default prefix."""
    return server.url.rsplit("/", 1)[0] + "/9"


@pytest.fixture
def bare_db(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(bare_url(redis_server))
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def bare_cli(redis_server: RedisServer, bare_db: redis.Redis, monkeypatch: pytest.MonkeyPatch,
             tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    """The command line with no settings file anywhere and no --prefix or --realm:
    Redis from --redis, or from $TRUNKEDGE_REDIS with `env=True`."""
    monkeypatch.delenv(SETTINGS_ENV, raising=False)
    monkeypatch.delenv(REDIS_ENV, raising=False)
    monkeypatch.setattr(trunkedge.cli, "DEFAULT_SETTINGS", tmp_path / "no-settings.yaml")
    url = bare_url(redis_server)

    def run(*args: str, env: bool = False) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        if env:
            monkeypatch.setenv(REDIS_ENV, url)
        argv = [*(() if env else ("--redis", url)), *args]
        code = main(argv)
        monkeypatch.delenv(REDIS_ENV, raising=False)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(argv, code, out.out, out.err)

    return run


@pytest.mark.parametrize("env", [False, True], ids=["--redis", "$TRUNKEDGE_REDIS"])
def test_changes_without_accounts_need_only_redis(
        bare_cli: Cli, bare_db: redis.Redis, tmp_path: Path, env: bool) -> None:
    for args in (("domain", "create", "acme"), ("acl", "create", "office"),
                 ("acl", "add-ip", "office", "192.0.2.0/24"),
                 ("acl", "caller-ids", "office", "--allow", "+3120*"),
                 ("domain", "attach", "acme", "office"), ("domain", "set-pop", "acme", "us1")):
        r = bare_cli(*args, env=env)
        assert r.returncode == 0, (args, r.stderr)
    assert bare_cli("domain", "list", env=env).stdout.split() == ["acme"]
    assert yaml.safe_load(bare_cli("acl", "show", "office", env=env).stdout)["domains"] == ["acme"]
    assert bare_db.sismember(f"{Keys.prefix}domains", "acme")
    exported = bare_cli("export", env=env)
    assert exported.returncode == 0, exported.stderr
    assert "realm" not in yaml.safe_load(exported.stdout)
    f = tmp_path / "c.yaml"
    f.write_text(exported.stdout)
    assert bare_cli("import", str(f), env=env).returncode == 0
    assert bare_cli("export", env=env).stdout == exported.stdout


def test_accounts_without_a_realm_are_refused_naming_realm(
        bare_cli: Cli, bare_db: redis.Redis, tmp_path: Path) -> None:
    assert bare_cli("acl", "create", "office").returncode == 0
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"acls": {"office": {"accounts": [
        {"username": "u1", "password": "p"}]}}}))
    before = {k: bare_db.dump(k) for k in bare_db.scan_iter()}
    for args in (("acl", "add-account", "office", "31000000", "--password", "pw"),
                 ("acl", "add-account", "office", "31000000"),  # refused before any prompt
                 ("import", str(f))):
        r = bare_cli(*args)
        assert r.returncode == 2, (args, r)
        assert r.stderr.startswith("trunkedge: error: --realm: give the digest realm"), r.stderr
    assert {k: bare_db.dump(k) for k in bare_db.scan_iter()} == before
    Provisioner(bare_db, Keys(), REALM).acl_add_account("office", "u1", "pw")
    r = bare_cli("export")
    assert r.returncode == 2 and "error: --realm: " in r.stderr, r
    assert bare_cli("--realm", REALM, "export").returncode == 0


def test_an_export_imports_back_to_the_same_configuration(  # type: ignore[no-untyped-def]
        cli, tmp_path: Path, db: redis.Redis) -> None:
    seed(cli)
    assert cli("acl", "caller-ids", "office", "--allow", "+3120*", "--default",
               "+31200000000", "--policy", "replace").returncode == 0
    assert cli("domain", "set-pop", "acme", "apac1").returncode == 0
    assert cli("domain", "set-limits", "acme", "--cps", "25", "--channels", "100").returncode == 0
    assert cli("account", "set-limits", "31000000", "--cps", "0").returncode == 0
    exported = cli("export").stdout
    assert "pw1" not in exported and "ha1" in exported
    doc = yaml.safe_load(exported)
    assert doc["domains"]["acme"]["limits"] == {"cps": 25, "channels": 100}
    assert doc["acls"]["office"]["accounts"][0]["limits"] == {"cps": 0}
    for key in list(db.scan_iter(f"{PREFIX}*")):
        db.delete(key)
    f = tmp_path / "c.yaml"
    f.write_text(exported)
    assert cli("import", str(f)).returncode == 0
    assert cli("export").stdout == exported
    assert db.hget(f"{PREFIX}domain:acme", "max_channels") == b"100"
    assert db.hget(f"{PREFIX}account:31000000", "max_cps") == b"0"


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"acls": {"a": {"ips": ["10.0.0.0/8", "10.1.0.0/33"]}}}, "acls.a.ips"),
        ({"acls": {"a": {}}, "domains": {"x": {"acls": ["b"]}}}, "domains.x.acls"),
        ({"acls": {"a": {"accounts": [{"username": "u1", "password": "p"}]},
                   "b": {"accounts": [{"username": "u1", "password": "p"}]}}},
         "acls.b.accounts[0].username"),
        ({"acls": {"a": {"accounts": [{"username": "u1", "ha1": {"MD5": "zz"}}]}}},
         "acls.a.accounts[0]"),
        ({"domains": {"bad-name": {}}}, "domains.bad-name"),
        ({"domains": {"Acme": {}, "acme": {}}}, "domains.acme"),
        ({"realm": "other.example"}, "realm"),
        ({"customers": {}}, "customers"),
        ({"domains": {"acme": {"pop": "eu3"}}}, "domains.acme.pop"),
        ({"acls": {"a": {"caller_ids": {"allow": ["+31*"], "policy": "replace"}}}},
         "acls.a.caller_ids.default"),
        ({"acls": {"a": {"caller_ids": {"allow": [31201234567]}}}}, "acls.a.caller_ids.allow"),
        ({"domains": {"acme": {"limits": {"cps": -1}}}}, "domains.acme.limits.cps"),
        ({"domains": {"acme": {"limits": {"cps": "10"}}}}, "domains.acme.limits.cps"),
        ({"domains": {"acme": {"limits": {"channels": 1_000_001}}}},
         "domains.acme.limits.channels"),
        ({"domains": {"acme": {"limits": {"calls": 5}}}}, "domains.acme.limits"),
        ({"domains": {"acme": {"limits": 5}}}, "domains.acme.limits"),
        ({"acls": {"a": {"accounts": [{"username": "u1", "password": "p",
                                       "limits": {"channels": True}}]}}},
         "acls.a.accounts[0].limits.channels"),
        ({"acls": {"a": {"accounts": [{"username": "u1", "password": "p",
                                       "limits": {"cps": 2.5}}]}}},
         "acls.a.accounts[0].limits.cps"),
    ],
)
def test_invalid_import_names_the_field_and_changes_nothing(
    cli, db: redis.Redis, tmp_path: Path, doc: dict[str, object], field: str  # type: ignore[no-untyped-def]
) -> None:
    seed(cli)
    before = snapshot(db)
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(doc))
    r = cli("import", str(f))
    assert r.returncode == 2
    assert f"error: {field}: " in r.stderr, r.stderr
    assert snapshot(db) == before


def test_readers_never_see_a_half_written_customer(db: redis.Redis) -> None:
    """Imports flip between two configurations while a reader runs the edge's lookup."""
    prov = Provisioner(db, Keys(PREFIX), REALM)
    configs = [
        parse_config({"acls": {f"acl{i}": {"ips": [f"10.{i}.0.0/16", f"10.{i}.1.0/24"],
                                           "accounts": [{"username": f"u{i}", "password": "p"}]}},
                      "domains": {"acme": {"acls": [f"acl{i}"]}}}, REALM)
        for i in range(2)
    ]
    prov.import_config(configs[0])
    store = Store(RedisSettings(prefix=PREFIX), RedisPyTransport(db))
    stop = threading.Event()
    seen: list[str] = []
    torn: list[object] = []

    def read() -> None:
        while not stop.is_set():
            view = store.lookup("acme", "u0", "192.0.2.1")
            acls = view.domain.acls if view.domain else ()
            if len(acls) != 1 or len(acls[0].networks) != 2 or not acls[0].has_accounts:
                torn.append(view)
            else:
                seen.append(acls[0].name)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(60):
            prov.import_config(configs[n % 2])
    finally:
        stop.set()
        reader.join()
    assert torn == []
    assert {"acl0", "acl1"} <= set(seen)


def test_a_change_no_replica_confirms_is_reported(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """On a master with a replica the CLI waits (WAIT) until the replica has the change; a
    replica that does not answer within 1 s gets a warning (a failover would undo it)."""
    master = RedisServer(tmp_path / "master")
    replica = RedisServer(tmp_path / "replica", args=("--replicaof", "127.0.0.1",
                                                      str(master.port)))
    try:
        master.start()
        replica.start()
        wait_until(lambda: SentinelCluster.link_up(replica), 10, "the replica to sync")
        url = master.url
        assert main(["--redis", url, "--prefix", PREFIX, "domain", "create", "acme"]) == 0
        assert "warning" not in capsys.readouterr().err
        replica.pause()
        assert main(["--redis", url, "--prefix", PREFIX, "domain", "create", "beta"]) == 0
        assert "no replica confirmed the change" in capsys.readouterr().err
    finally:
        replica.resume()
        replica.stop(save=False)
        master.stop(save=False)
