"""`trunkedge`: run the edge and provision customers (domains, ACLs, accounts) in Redis."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

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
from trunkedge.settings import REDIS_ENV, SETTINGS_ENV, Settings, load_settings
from trunkedge.store.client import channels_in_use, connect
from trunkedge.store.schema import Keys

DEFAULT_SETTINGS = Path("/etc/trunkedge/settings.yaml")
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

    add(sub, "import", help="replace the whole configuration with a YAML file").add_argument(
        "file", type=Path)
    add(sub, "export", help="write the whole configuration as YAML").add_argument(
        "-o", "--output", type=Path)
    return p


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


def _provisioner(args: argparse.Namespace) -> Provisioner:
    """Redis from --redis, $TRUNKEDGE_REDIS or the settings (needed only without either);
    the prefix and the realm from the options, else the settings; no realm: no accounts."""
    url = args.redis or os.environ.get(REDIS_ENV)
    settings = _settings(args, required=not url)
    if settings is not None:
        url = url or settings.redis.url
    prefix = args.prefix if args.prefix is not None else (
        settings.redis.prefix if settings else Keys.prefix)
    realm = args.realm or (settings.realm if settings else None)
    assert url
    return Provisioner(redis.Redis.from_url(url, socket_timeout=5), Keys(prefix), realm)


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
    if args.cmd in ("status", "reload-gateways"):
        _operate(args)
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
    report = rpc.edge_status(rundir)
    try:  # the edges' shared state: calls in progress per limited domain and account
        report["channels"] = channels_in_use(connect(settings.redis), Keys(settings.redis.prefix))
    except redis.RedisError as e:
        report["channels"] = f"unknown: redis: {e}"
    _print_yaml(report)


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
