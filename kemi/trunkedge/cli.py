"""`trunkedge`: run the edge and provision customers (domains, ACLs, accounts) in Redis."""

from __future__ import annotations

import argparse
import csv
import getpass
import json
import os
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import redis
import yaml

from trunkedge.core.errors import ConfigError, TrunkEdgeError
from trunkedge.core.identity import POLICIES, CallerIds
from trunkedge.provisioning.spec import ConfigSpec
from trunkedge.provisioning.validation import (
    LIMIT_KEYS,
    dump_config,
    edge_realm,
    limit_options,
    parse_config,
)
from trunkedge.provisioning.writer import Provisioner
from trunkedge.settings import (
    REDIS_ENV,
    SETTINGS_ENV,
    RedisSettings,
    Settings,
    load_settings,
)
from trunkedge.store import cdr_stream
from trunkedge.store.client import channels_in_use, connect
from trunkedge.store.schema import Keys

DEFAULT_SETTINGS = Path("/etc/trunkedge/settings.yaml")
CLI_TIMEOUT_S = 5.0  # per Redis command of the command line
REPLICA_WAIT_MS = 1000  # a change is confirmed on a replica within this
# libyaml's safe loader/dumper when PyYAML has it (100 000 domains load in seconds)
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _parser() -> argparse.ArgumentParser:
    # The global options are accepted before or after the subcommand
    # (`trunkedge --config F run` and `trunkedge run --config F`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS,
                        help=f"settings YAML (default ${SETTINGS_ENV} or {DEFAULT_SETTINGS})")
    common.add_argument("--redis", default=argparse.SUPPRESS,
                        help=f"Redis URL (default ${REDIS_ENV} or the settings' redis.url)")
    common.add_argument("--prefix", default=argparse.SUPPRESS,
                        help="Redis key prefix (default: the settings' redis.prefix, "
                             f"else {Keys.prefix})")
    common.add_argument("--realm", default=argparse.SUPPRESS,
                        help="digest realm, needed for accounts "
                             "(default: the settings' base_domain)")

    p = argparse.ArgumentParser(prog="trunkedge", description=__doc__, parents=[common])
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(group: Any, name: str, *positional: str, **kw: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = group.add_parser(name, parents=[common], **kw)
        for arg in positional:
            parser.add_argument(arg)
        return parser

    rundir_help = "the edge's runtime folder (default: per settings file)"
    run = add(sub, "run", help="run Kamailio in the foreground with the edge's routing")
    run.add_argument("--rundir", type=Path, help=rundir_help)
    st = add(sub, "status", help="POPs and gateways (state, calls sent, failovers), counters")
    st.add_argument("--rundir", type=Path, help=rundir_help)
    rl = add(sub, "reload-gateways", help="re-read the settings' pops into the running edge")
    rl.add_argument("--rundir", type=Path, help=rundir_help)
    tls_ops = add(sub, "tls", help="SIP over TLS").add_subparsers(dest="op", required=True)
    add(tls_ops, "reload", help="check the tls section's files and have the running edge "
        "use them for new connections (no restart)").add_argument(
        "--rundir", type=Path, help=rundir_help)

    dom = add(sub, "domain", help="customer domains").add_subparsers(dest="op", required=True)
    for op in ("create", "delete", "show"):
        add(dom, op, "name")
    add(dom, "list")
    for op in ("attach", "detach"):
        add(dom, op, "domain", "acl")
    add(dom, "set-pop", "domain", "pop",
        help="POP that <domain>.sip.<base> tries first (or 'default': the edge's)")
    add(dom, "set-algorithms", "domain", "algorithms",
        help="digest algorithms, preferred first: SHA-256,MD5 (or 'default': the edge's)")
    _limit_options(add(dom, "set-limits", "domain", help="the domain's limits"))

    acl = add(sub, "acl", help="access control lists").add_subparsers(dest="op", required=True)
    for op in ("create", "delete", "show"):
        add(acl, op, "name")
    add(acl, "list")
    for op in ("add-ip", "remove-ip"):
        add(acl, op, "acl", "cidr")
    add(acl, "add-account", "acl", "username",
        help="password from --password, stdin or a prompt").add_argument("--password")
    add(acl, "remove-account", "acl", "username")
    cid = add(acl, "caller-ids", "acl",
              help="replace the caller IDs of the ACL (or of one account, --user)")
    cid.add_argument("--user", help="an account of the ACL")
    cid.add_argument("--allow", action="append", default=[],
                     help="+E164 number or +prefix* range (repeat)")
    cid.add_argument("--default", help="+E164 asserted when the presented one is not allowed")
    cid.add_argument("--policy", choices=POLICIES, default="reject")

    acct = add(sub, "account", help="accounts (see acl add-account)").add_subparsers(
        dest="op", required=True)
    _limit_options(add(acct, "set-limits", "username", help="the account's limits"))

    _cdrs_parser(add(sub, "cdrs", help="call detail records in the Redis stream"), add)

    add(sub, "import", help="replace the whole configuration with a YAML file").add_argument(
        "file", type=Path)
    add(sub, "export", help="write the whole configuration as YAML").add_argument(
        "-o", "--output", type=Path)
    return p


def _cdrs_parser(parser: argparse.ArgumentParser, add: Any) -> None:
    """`cdrs tail [--follow] [--count N]` and `cdrs export --since T --until T`."""
    ops = parser.add_subparsers(dest="op", required=True)
    tail = add(ops, "tail", help="the last records as JSON lines (--follow: then new ones)")
    tail.add_argument("--count", type=int, default=10, help="how many (default 10)")
    tail.add_argument("--follow", action="store_true", help="then wait for new records")
    export = add(ops, "export", help="the records of [--since, --until): calls by their end, "
                                     "refusals by their start")
    for bound in ("--since", "--until"):
        export.add_argument(bound, required=True, help="ISO 8601 time (UTC without an offset)")
    export.add_argument("-o", "--output", type=Path)
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")


def _limit_options(parser: argparse.ArgumentParser) -> None:
    """`--cps N|none` and `--channels N|none` (not given: that limit is left as it is)."""
    what = {"cps": "new calls per second", "channels": "calls in progress"}
    for key in LIMIT_KEYS:
        parser.add_argument(f"--{key}", metavar="N|none",
                            help=f"at most N {what[key]} (0: none admitted; 'none': no limit)")


def _settings(args: argparse.Namespace, required: bool) -> Settings | None:
    path = args.config or os.environ.get(SETTINGS_ENV)
    if not path and DEFAULT_SETTINGS.exists():
        path = str(DEFAULT_SETTINGS)
    if not path:
        if required:
            raise ConfigError("--config", "give the settings file")
        return None
    return load_settings(path)


def _redis_target(args: argparse.Namespace) -> tuple[redis.Redis, Keys, Settings | None]:
    """Redis from --redis, $TRUNKEDGE_REDIS or the settings (needed only without either);
    the prefix from the option, else the settings."""
    url = args.redis or os.environ.get(REDIS_ENV)
    settings = _settings(args, required=not url)
    prefix = args.prefix if args.prefix is not None else (
        settings.redis.prefix if settings else Keys.prefix)
    if url:
        target = RedisSettings(url=url)
    else:
        assert settings is not None  # required without a URL
        target = settings.redis  # its url, or the master its sentinels name
    return connect(target, timeout_s=CLI_TIMEOUT_S), Keys(prefix), settings


def _provisioner(args: argparse.Namespace) -> Provisioner:
    """Redis as `_redis_target` finds it; the realm from the option, else the settings; no
    realm: no accounts."""
    client, keys, settings = _redis_target(args)
    return Provisioner(client, keys, args.realm or (settings.realm if settings else None))


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.username}: ")
    if getpass.getpass("again: ") != first:
        raise ConfigError("password", "the two entries differ")
    return first


def _count(n: int, noun: str) -> str:
    """`1 domain`, `2 ACLs`, `0 accounts`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _import_summary(spec: ConfigSpec) -> str:
    return (f"imported {_count(len(spec.domains), 'domain')}, {_count(len(spec.acls), 'ACL')}, "
            f"{_count(spec.account_count(), 'account')}")


def _print_yaml(data: Any) -> None:
    sys.stdout.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def execute(args: argparse.Namespace) -> None:
    if args.cmd == "run":
        from trunkedge.kamailio.runner import run

        settings = _settings(args, required=True)
        assert settings is not None
        run(settings, args.rundir)
        return
    if args.cmd in ("status", "reload-gateways", "tls"):
        _operate(args)
        return
    if args.cmd == "cdrs":
        _cdrs(args)
        return
    prov = _provisioner(args)
    if args.cmd == "import":
        try:
            with args.file.open() as f:
                raw = yaml.load(f, Loader=_SAFE_LOADER)
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError("file", f"cannot read {args.file}: {e}") from e
        spec = parse_config(raw, prov.realm)
        prov.import_config(spec)
        print(_import_summary(spec))
    elif args.cmd == "export":
        text = yaml.dump(dump_config(prov.export_config(), prov.realm), Dumper=_SAFE_DUMPER,
                         sort_keys=False)
        if args.output:
            args.output.write_text(text)
        else:
            sys.stdout.write(text)
    elif args.cmd == "domain":
        _domain(prov, args)
    elif args.cmd == "account":
        prov.account_set_limits(args.username, _limit_changes(args))
    else:
        _acl(prov, args)
    _confirm_replicated(prov.redis)


def _confirm_replicated(client: Any) -> None:
    """On a master with replicas, wait (up to REPLICA_WAIT_MS) until one has everything
    written so far (Redis WAIT), else warn: replication is asynchronous, so a failover
    before that would undo the change (docs/sentinel.md). A user not allowed INFO or WAIT
    is not told."""
    try:
        if not int(client.info("replication").get("connected_slaves", 0)):
            return
        confirmed = client.wait(1, REPLICA_WAIT_MS)
    except redis.ResponseError:
        return
    if not confirmed:
        print(f"trunkedge: warning: no replica confirmed the change within "
              f"{REPLICA_WAIT_MS} ms: a failover before it does would undo it",
              file=sys.stderr)


def _operate(args: argparse.Namespace) -> None:
    """Commands that talk to a running edge over its JSON-RPC socket."""
    from trunkedge.kamailio import rpc
    from trunkedge.kamailio.runner import default_rundir, render_gateways

    settings = _settings(args, required=True)
    assert settings is not None
    rundir = args.rundir or default_rundir(settings)
    if args.cmd == "reload-gateways":
        render_gateways(settings, rundir)
        rpc.call(rundir, "dispatcher.reload")
        print(f"reloaded {sum(len(g) for g in settings.pops.values())} gateways "
              f"in {len(settings.pops)} POPs")
        return
    if args.cmd == "tls":
        from trunkedge.kamailio import tls

        print(f"reloaded the certificate {tls.reload(settings, rundir).certificate}")
        return
    report = rpc.edge_status(rundir)
    try:  # the edges' shared state: calls in progress per limited domain and account
        report["channels"] = channels_in_use(connect(settings.redis), Keys(settings.redis.prefix))
    except redis.RedisError as e:
        report["channels"] = f"unknown: redis: {e}"
    _print_yaml(report)


def _cdrs(args: argparse.Namespace) -> None:
    """`cdrs tail` and `cdrs export`: the stream's records as JSON lines or CSV."""
    client, keys, _ = _redis_target(args)
    if args.op == "tail":
        _cdrs_tail(client, keys, args.count, args.follow)
        return
    since, until = _instant_ms("--since", args.since), _instant_ms("--until", args.until)
    if until <= since:
        raise ConfigError("--until", "must be later than --since")
    entries = cdr_stream.read_range(client, keys, since, until)
    if args.output is None:
        _write_records(entries, sys.stdout, args.format)
        return
    with args.output.open("w", newline="") as out:
        n = _write_records(entries, out, args.format)
    print(f"exported {_count(n, 'record')} to {args.output}", file=sys.stderr)


def _cdrs_tail(client: redis.Redis, keys: Keys, count: int, follow: bool) -> None:
    """The last `count` records; with `follow`, then every new one until interrupted."""
    if count < 0:
        raise ConfigError("--count", "must be 0 or more")
    last = cdr_stream.tail(client, keys, max(count, 1))
    _write_records(last if count else [], sys.stdout, "jsonl", flush=True)
    if not follow:
        return
    try:
        new = cdr_stream.follow(client, keys, last[-1].stream_id if last else "0-0")
        _write_records(new, sys.stdout, "jsonl", flush=True)
    except KeyboardInterrupt:
        pass


def _instant_ms(option: str, text: str) -> int:
    """An ISO 8601 time (UTC unless it has an offset) in epoch milliseconds."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError as e:
        raise ConfigError(option, f"{text!r} is not an ISO 8601 time such as "
                                  "2025-01-31T00:00:00Z") from e
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _write_records(entries: Iterable[cdr_stream.Entry], out: TextIO, fmt: str,
                   flush: bool = False) -> int:
    """Records as JSON lines (fields in stream order) or CSV (header: the documented
    fields, then `id`), each flushed if `flush`; returns how many."""
    writer = None
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=cdr_stream.ENTRY_FIELDS, extrasaction="ignore")
        writer.writeheader()
    n = 0
    for entry in entries:
        if writer is not None:
            writer.writerow(entry.fields)
        else:
            out.write(json.dumps(entry.fields) + "\n")
        if flush:
            out.flush()
        n += 1
    return n


def _domain(prov: Provisioner, args: argparse.Namespace) -> None:
    op = args.op
    if op == "create":
        prov.domain_create(args.name)
    elif op == "delete":
        prov.domain_delete(args.name)
    elif op == "show":
        _print_yaml(prov.domain_show(args.name))
    elif op == "list":
        print("\n".join(prov.domain_list()))
    elif op == "attach":
        prov.domain_attach(args.domain, args.acl)
    elif op == "detach":
        prov.domain_detach(args.domain, args.acl)
    elif op == "set-pop":
        prov.domain_set_pop(args.domain, None if args.pop == "default" else args.pop)
    elif op == "set-algorithms":
        algs = [] if args.algorithms == "default" else args.algorithms.split(",")
        prov.domain_set_algorithms(args.domain, [a.strip() for a in algs])
    elif op == "set-limits":
        prov.domain_set_limits(args.domain, _limit_changes(args))


def _limit_changes(args: argparse.Namespace) -> dict[str, int | None]:
    """The limits a `set-limits` changes, validated (before any Redis transaction)."""
    return limit_options({key: getattr(args, key) for key in LIMIT_KEYS})


def _acl(prov: Provisioner, args: argparse.Namespace) -> None:
    op = args.op
    if op == "create":
        prov.acl_create(args.name)
    elif op == "delete":
        prov.acl_delete(args.name)
    elif op == "show":
        _print_yaml(prov.acl_show(args.name))
    elif op == "list":
        print("\n".join(prov.acl_list()))
    elif op == "add-ip":
        prov.acl_add_ip(args.acl, args.cidr)
    elif op == "remove-ip":
        prov.acl_remove_ip(args.acl, args.cidr)
    elif op == "add-account":
        edge_realm(prov.realm)  # refused before the password is asked for
        prov.acl_add_account(args.acl, args.username, _password(args))
    elif op == "remove-account":
        prov.acl_remove_account(args.acl, args.username)
    elif op == "caller-ids":
        prov.set_caller_ids(args.acl, args.user,
                            CallerIds(tuple(args.allow), args.default, args.policy))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for option in ("config", "redis", "prefix", "realm"):
        if not hasattr(args, option):
            setattr(args, option, None)
    try:
        execute(args)
    except ConfigError as e:
        print(f"trunkedge: error: {e}", file=sys.stderr)
        return 2
    except redis.RedisError as e:
        print(f"trunkedge: error: redis: {e}", file=sys.stderr)
        return 3
    except TrunkEdgeError as e:
        print(f"trunkedge: error: {e}", file=sys.stderr)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
