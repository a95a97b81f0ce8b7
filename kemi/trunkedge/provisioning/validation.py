"""Validation of provisioning input (YAML documents, command-line values) into specs.

Pure: no Redis. Every error is a ConfigError naming the offending field by its path in
the document (`acls.office.accounts[0].username`), as the README's "Provisioning" promises.
The YAML format is the one examples/demo-customer.yaml shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from trunkedge.core import names
from trunkedge.core.digest import ALGORITHMS, ha1_all, is_ha1
from trunkedge.core.errors import ConfigError
from trunkedge.core.identity import POLICIES, CallerIds, is_pattern
from trunkedge.core.limits import NO_LIMITS, Limits
from trunkedge.core.names import is_e164
from trunkedge.provisioning.spec import AccountSpec, AclSpec, ConfigSpec, DomainSpec

LIMIT_KEYS = tuple(f.name for f in fields(Limits))
"""The limits' names: Limits' attributes, the YAML's `limits` keys, `--cps`/`--channels`."""
MAX_LIMIT = 1_000_000
"""The largest limit accepted (new calls per second, or calls in progress)."""


# -- YAML import ------------------------------------------------------------------------
def parse_config(raw: object, realm: str | None) -> ConfigSpec:
    """Validate a YAML document (see examples/demo-customer.yaml) into a ConfigSpec.

    Accounts give either `password` (hashed here, never stored) or `ha1` per algorithm
    computed under the file's `realm`, which must be the edge's realm. Without the edge's
    realm (None) only a document without accounts is valid.
    """
    doc = _document(raw, realm)
    spec = ConfigSpec()
    seen_users: dict[str, str] = {}  # username -> ACL: usernames are unique edge-wide
    acls = doc.get("acls") or {}
    if not isinstance(acls, Mapping):
        raise ConfigError("acls", "must map ACL names to {ips, accounts}")
    for a_raw, body in acls.items():
        a = names.acl_name(a_raw, f"acls.{a_raw}")
        spec.acls[a] = _parse_acl(a, body, realm, seen_users)

    domains = doc.get("domains") or {}
    if not isinstance(domains, Mapping):
        raise ConfigError("domains", "must map domain names to {acls: [...]}")
    for d_raw, body in domains.items():
        d = names.domain_name(d_raw, f"domains.{d_raw}")
        if d in spec.domains:
            raise ConfigError(f"domains.{d_raw}", f"{d!r} is listed twice (names ignore case)")
        spec.domains[d] = _parse_domain(d, body)
    check_references(spec)
    return spec


def _document(raw: object, realm: str | None) -> Mapping[Any, Any]:
    """The top level: a mapping of realm, acls and domains, under the edge's realm (if known)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError("file", "must hold a mapping with 'acls' and 'domains'")
    unknown = set(raw) - {"realm", "acls", "domains"}
    if unknown:
        raise ConfigError(sorted(unknown)[0], "unknown key (expected realm, acls, domains)")
    file_realm = raw.get("realm", realm)
    if realm is not None and file_realm != realm:
        raise ConfigError("realm", f"{file_realm!r} differs from the edge's realm {realm!r}")
    return raw


def _parse_acl(a: str, body: object, realm: str | None, seen_users: dict[str, str]) -> AclSpec:
    """`acls.<a>`: ips, accounts and caller_ids (records its usernames in seen_users)."""
    body = _mapping_of(body or {}, ("ips", "accounts", "caller_ids"), f"acls.{a}")
    ips = _list_of(body.get("ips") or [], f"acls.{a}.ips", "addresses or CIDR ranges")
    nets = sorted({str(names.network(ip, f"acls.{a}.ips")) for ip in ips})
    accounts: dict[str, AccountSpec] = {}
    for i, acct in enumerate(body.get("accounts") or []):
        u, account = _parse_account(acct, f"acls.{a}.accounts[{i}]", a, realm, seen_users)
        accounts[u] = account
    return AclSpec(nets, accounts, _caller_ids(body.get("caller_ids"), f"acls.{a}.caller_ids"))


def _parse_account(acct: object, where: str, acl: str, realm: str | None,
                   seen_users: dict[str, str]) -> tuple[str, AccountSpec]:
    """One entry of `acls.<acl>.accounts`: its username and account (HA1s under `realm`)."""
    realm = edge_realm(realm)
    if not isinstance(acct, Mapping):
        raise ConfigError(where, "must be {username, password} or {username, ha1}")
    u = names.username(acct.get("username"), f"{where}.username")
    if u in seen_users:
        raise ConfigError(f"{where}.username", f"{u!r} is already in ACL {seen_users[u]!r}")
    seen_users[u] = acl
    if set(acct) - {"username", "password", "ha1", "caller_ids", "limits"}:
        raise ConfigError(where, "keys are username, password or ha1, caller_ids, limits")
    return u, AccountSpec(_account_ha1(acct, u, realm, where),
                          _caller_ids(acct.get("caller_ids"), f"{where}.caller_ids"),
                          _limits(acct.get("limits"), f"{where}.limits"))


def _account_ha1(acct: Mapping[str, Any], u: str, realm: str, where: str) -> dict[str, str]:
    if "password" in acct:
        return password_ha1(u, realm, acct["password"], f"{where}.password")
    given = acct.get("ha1")
    if not isinstance(given, Mapping) or set(given) != set(ALGORITHMS):
        raise ConfigError(where, f"give 'password' or 'ha1' with {', '.join(ALGORITHMS)}")
    for alg, value in given.items():
        if not isinstance(value, str) or not is_ha1(alg, value):
            raise ConfigError(f"{where}.ha1.{alg}", "is not a hex HA1 of the right length")
    return dict(given)


def _parse_domain(d: str, body: object) -> DomainSpec:
    """`domains.<d>`: the ACLs attached, the POP, the digest algorithms and the limits."""
    body = _mapping_of(body or {}, ("acls", "pop", "algorithms", "limits"), f"domains.{d}")
    attached = _list_of(body.get("acls") or [], f"domains.{d}.acls", "ACL names")
    pop = body.get("pop")
    return DomainSpec(
        sorted({names.acl_name(x, f"domains.{d}.acls") for x in attached}),
        names.pop_name(pop, f"domains.{d}.pop") if pop is not None else None,
        check_algorithms(body.get("algorithms") or [], f"domains.{d}.algorithms"),
        _limits(body.get("limits"), f"domains.{d}.limits"),
    )


def _caller_ids(raw: object, where: str) -> CallerIds:
    if raw is None:
        return CallerIds()
    raw = _mapping_of(raw, ("allow", "default", "policy"), where)
    allow = raw.get("allow") or []
    if not isinstance(allow, list) or not all(isinstance(x, str) for x in allow):
        raise ConfigError(f"{where}.allow", "must be a list of numbers or +prefix* ranges")
    default = raw.get("default")
    if default is not None and not isinstance(default, str):
        raise ConfigError(f"{where}.default", "must be a +E.164 number (quote it in YAML)")
    return check_caller_ids(CallerIds(tuple(allow), default, str(raw.get("policy", "reject"))),
                            where)


def _limits(raw: object, where: str) -> Limits:
    """`limits: {cps, channels}` of a domain or an account (a key absent: no such limit)."""
    if raw is None:
        return NO_LIMITS
    raw = _mapping_of(raw, LIMIT_KEYS, where)
    return Limits(**{k: check_limit(raw.get(k), f"{where}.{k}") for k in LIMIT_KEYS})


def _mapping_of(raw: object, keys: tuple[str, ...], where: str) -> Mapping[Any, Any]:
    """`raw` as a mapping of no keys but `keys` (the error lists them in this order)."""
    if not isinstance(raw, Mapping) or set(raw) - set(keys):
        raise ConfigError(where, "must be a mapping of " + ", ".join(f"'{k}'" for k in keys))
    return raw


def _list_of(raw: object, where: str, what: str) -> list[Any]:
    if not isinstance(raw, list):
        raise ConfigError(where, f"must be a list of {what}")
    return raw


# -- checks shared with the command line (Provisioner runs them before its transaction) --
def edge_realm(realm: str | None) -> str:
    """The edge's digest realm, which accounts need (their HA1s are computed under it)."""
    if not realm:
        raise ConfigError("--realm", "give the digest realm (the edge's base_domain) or --config")
    return realm


def check_references(spec: ConfigSpec) -> None:
    """Every ACL a domain lists is defined under `acls`."""
    for d, dom in spec.domains.items():
        for a in dom.acls:
            if a not in spec.acls:
                raise ConfigError(f"domains.{d}.acls", f"ACL {a!r} is not defined under acls")


def password_ha1(username: str, realm: str, password: object,
                 where: str = "password") -> dict[str, str]:
    """The HA1 per algorithm of a valid password (SPEC.md: passwords are never stored)."""
    return ha1_all(username, realm, names.password(password, where))


def check_caller_ids(ids: CallerIds, where: str) -> CallerIds:
    """Caller IDs (SPEC.md, "Caller identity"): +E.164 or +prefix* ranges, a policy."""
    for p in ids.allow:
        if not is_pattern(p):
            raise ConfigError(f"{where}.allow", f"{p!r} is not +E.164 or a +prefix* range")
    if ids.default is not None and not (ids.default.startswith("+") and is_e164(ids.default)):
        raise ConfigError(f"{where}.default", f"{ids.default!r} is not a +E.164 number")
    if ids.policy not in POLICIES:
        raise ConfigError(f"{where}.policy", f"must be one of {', '.join(POLICIES)}")
    if ids.policy == "replace" and not ids.default:
        raise ConfigError(f"{where}.default", "policy 'replace' needs a default caller ID")
    return ids


def check_algorithms(raw: object, where: str) -> list[str]:
    """Digest algorithms, distinct, of core.digest.ALGORITHMS (most preferred first)."""
    if not isinstance(raw, list) or not all(a in ALGORITHMS for a in raw) or (
            len(set(raw)) != len(raw)):
        raise ConfigError(where, f"must list distinct algorithms of {', '.join(ALGORITHMS)}")
    return [str(a) for a in raw]


def check_limit(value: object, where: str) -> int | None:
    """One limit: None (no limit) or an integer from 0 (refuses every call) to MAX_LIMIT."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)
                         and 0 <= value <= MAX_LIMIT):
        return value
    raise ConfigError(where, f"must be an integer from 0 to {MAX_LIMIT} (0 refuses every call)")


def check_limit_changes(changes: Mapping[str, object]) -> dict[str, int | None]:
    """The limits a `set-limits` changes, by LIMIT_KEYS name (None: remove that limit)."""
    unknown = set(changes) - set(LIMIT_KEYS)
    if unknown:
        raise ConfigError(sorted(unknown)[0], f"unknown limit (expected {', '.join(LIMIT_KEYS)})")
    return {k: check_limit(v, k) for k, v in changes.items()}


def limit_options(options: Mapping[str, str | None]) -> dict[str, int | None]:
    """`--cps`/`--channels` (keyed by LIMIT_KEYS name) as check_limit_changes takes them:
    N, or `none` (no limit); an option not given (None) leaves that limit as it is."""
    given = {k: text for k, text in options.items() if text is not None}
    if not given:
        raise ConfigError("--cps", "give --cps, --channels or both (N, or none)")
    return {k: _limit_option(text, f"--{k}") for k, text in given.items()}


def _limit_option(text: str, where: str) -> int | None:
    if text.lower() == "none":
        return None
    digits = text.isascii() and text.isdigit() and len(text) <= len(str(MAX_LIMIT))
    return check_limit(int(text) if digits else text, where)


# -- YAML export ------------------------------------------------------------------------
def dump_config(spec: ConfigSpec, realm: str | None) -> dict[str, Any]:
    """The YAML-ready form of a configuration (HA1s only, never passwords).

    Accounts need the edge's realm (their HA1s hold only under it); without accounts the
    realm may be unknown (None), and the document then names none.
    """
    if spec.account_count():
        realm = edge_realm(realm)
    return {
        **({"realm": realm} if realm else {}),
        "acls": {a: dump_acl(acl) for a, acl in spec.acls.items()},
        "domains": {d: _dump_domain(dom) for d, dom in spec.domains.items()},
    }


def _dump_domain(dom: DomainSpec) -> dict[str, Any]:
    """One domain as `domains.<name>` of the YAML: acls, pop, algorithms, limits (if any)."""
    return {"acls": dom.acls, **({"pop": dom.pop} if dom.pop else {}),
            **({"algorithms": dom.algorithms} if dom.algorithms else {}),
            **dump_limits(dom.limits)}


def dump_acl(acl: AclSpec, with_ha1: bool = True) -> dict[str, Any]:
    """One ACL as `acls.<name>` of the YAML: ips, accounts, caller_ids (when configured).

    Without `with_ha1` (`acl show`) the accounts are their usernames, caller IDs and limits.
    """
    accounts = [{"username": u, **({"ha1": acct.ha1} if with_ha1 else {}),
                 **_dump_ids(acct.caller_ids), **dump_limits(acct.limits)}
                for u, acct in acl.accounts.items()]
    return {"ips": acl.networks, "accounts": accounts, **_dump_ids(acl.caller_ids)}


def _dump_ids(ids: CallerIds) -> dict[str, Any]:
    if not ids.configured:
        return {}
    out: dict[str, Any] = {"allow": list(ids.allow), "policy": ids.policy}
    if ids.default:
        out["default"] = ids.default
    return {"caller_ids": out}


def dump_limits(limits: Limits) -> dict[str, Any]:
    """`limits: {cps, channels}` with the limits set; nothing without any."""
    given = {k: getattr(limits, k) for k in LIMIT_KEYS if getattr(limits, k) is not None}
    return {"limits": given} if given else {}
