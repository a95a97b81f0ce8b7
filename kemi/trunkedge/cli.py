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

from trunkedge.errors import ConfigError
from trunkedge.provisioning import Provisioner, dump_config, parse_config
from trunkedge.schema import Keys
from trunkedge.settings import SETTINGS_ENV, Settings, load_settings

DEFAULT_SETTINGS = Path("/etc/trunkedge/settings.yaml")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trunkedge", description=__doc__)
    p.add_argument("--config", help=f"settings YAML (default ${SETTINGS_ENV} or "
                                    f"{DEFAULT_SETTINGS})")
    p.add_argument("--redis", help="Redis URL (default: settings' redis.url)")
    p.add_argument("--prefix", help="Redis key prefix (default: settings' redis.prefix)")
    p.add_argument("--realm", help="digest realm (default: settings' base_domain)")
    sub = p.add_subparsers(dest="cmd", required=True)

    run = sub.add_parser("run", help="run Kamailio in the foreground with the edge's routing")
    run.add_argument("--rundir", type=Path, help="runtime folder (default: per settings file)")

    dom = sub.add_parser("domain", help="customer domains").add_subparsers(
        dest="op", required=True)
    for op in ("create", "delete", "show"):
        dom.add_parser(op).add_argument("name")
    dom.add_parser("list")
    for op in ("attach", "detach"):
        sp = dom.add_parser(op)
        sp.add_argument("domain")
        sp.add_argument("acl")

    acl = sub.add_parser("acl", help="access control lists").add_subparsers(
        dest="op", required=True)
    for op in ("create", "delete", "show"):
        acl.add_parser(op).add_argument("name")
    acl.add_parser("list")
    for op in ("add-ip", "remove-ip"):
        sp = acl.add_parser(op)
        sp.add_argument("acl")
        sp.add_argument("cidr")
    add = acl.add_parser("add-account", help="password from --password, stdin or a prompt")
    add.add_argument("acl")
    add.add_argument("username")
    add.add_argument("--password")
    rm = acl.add_parser("remove-account")
    rm.add_argument("acl")
    rm.add_argument("username")

    imp = sub.add_parser("import", help="replace the whole configuration with a YAML file")
    imp.add_argument("file", type=Path)
    exp = sub.add_parser("export", help="write the whole configuration as YAML")
    exp.add_argument("-o", "--output", type=Path)
    return p


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
    settings = _settings(args, required=not (args.redis and args.realm))
    url = args.redis or os.environ.get("TRUNKEDGE_REDIS") or (settings and settings.redis.url)
    prefix = args.prefix if args.prefix is not None else (
        settings.redis.prefix if settings else Keys.prefix)
    realm = args.realm or (settings.realm if settings else "")
    assert url and realm
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


def _print_yaml(data: Any) -> None:
    sys.stdout.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def execute(args: argparse.Namespace) -> None:
    if args.cmd == "run":
        from trunkedge.runner import run

        settings = _settings(args, required=True)
        assert settings is not None
        run(settings, args.rundir)
        return
    prov = _provisioner(args)
    if args.cmd == "import":
        try:
            raw = yaml.safe_load(args.file.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError("file", f"cannot read {args.file}: {e}") from e
        spec = parse_config(raw, prov.realm)
        prov.import_config(spec)
        print(f"imported {len(spec.domains)} domains, {len(spec.acls)} ACLs, "
              f"{sum(len(a.accounts) for a in spec.acls.values())} accounts")
    elif args.cmd == "export":
        text = yaml.safe_dump(dump_config(prov.export_config(), prov.realm), sort_keys=False)
        if args.output:
            args.output.write_text(text)
        else:
            sys.stdout.write(text)
    elif args.cmd == "domain":
        _domain(prov, args)
    else:
        _acl(prov, args)


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
        prov.acl_add_account(args.acl, args.username, _password(args))
    elif op == "remove-account":
        prov.acl_remove_account(args.acl, args.username)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        execute(args)
    except ConfigError as e:
        print(f"trunkedge: error: {e}", file=sys.stderr)
        return 2
    except redis.RedisError as e:
        print(f"trunkedge: error: redis: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
