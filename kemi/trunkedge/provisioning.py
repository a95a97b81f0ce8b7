"""Provisioning: validated, atomic changes to the customer configuration in Redis.

Every change runs as one optimistic transaction: WATCH the schema's version key, read and
validate, then MULTI ... INCR version ... EXEC. A concurrent change retries; a validation
error raises ConfigError before anything is queued, so Redis is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from trunkedge import names
from trunkedge.digest import ALGORITHMS, ha1_all, is_ha1
from trunkedge.errors import ConfigError
from trunkedge.identity import NO_CALLER_IDS, POLICIES, CallerIds, is_pattern
from trunkedge.names import is_e164
from trunkedge.schema import (
    CHANGED,
    CID_FIELDS,
    HA1_FIELDS,
    Keys,
    account_fields,
    acl_keys,
    caller_id_fields,
    decode_caller_ids,
    domain_keys,
)

Pipe = Any  # redis.client.Pipeline: untyped in redis-py 5


@dataclass
class AccountSpec:
    ha1: dict[str, str]  # algorithm -> HA1
    caller_ids: CallerIds = NO_CALLER_IDS


@dataclass
class AclSpec:
    networks: list[str] = field(default_factory=list)
    accounts: dict[str, AccountSpec] = field(default_factory=dict)
    caller_ids: CallerIds = NO_CALLER_IDS


@dataclass
class DomainSpec:
    acls: list[str] = field(default_factory=list)
    pop: str | None = None
    algorithms: list[str] = field(default_factory=list)  # empty: the edge's default


@dataclass
class ConfigSpec:
    """The whole customer configuration (what import writes and export reads)."""

    acls: dict[str, AclSpec] = field(default_factory=dict)
    domains: dict[str, DomainSpec] = field(default_factory=dict)


def _strs(values: set[bytes] | list[bytes]) -> list[str]:
    return sorted(v.decode() for v in values)


class Provisioner:
    def __init__(self, client: redis.Redis, keys: Keys, realm: str) -> None:
        self.r: Any = client  # redis-py's sync/async union types add nothing here
        self.k = keys
        self.realm = realm

    # -- transaction helper -------------------------------------------------------------
    def _change(self, validate_and_queue: Callable[[Pipe], None]) -> None:
        def tx(pipe: Pipe) -> None:
            validate_and_queue(pipe)  # must call pipe.multi() before queuing writes
            pipe.incr(self.k.version)
            pipe.publish(self.k.changes, CHANGED)  # the edges' watchers drop their caches

        self.r.transaction(tx, self.k.version)

    def _need_domain(self, pipe: Pipe, name: str) -> None:
        if not pipe.sismember(self.k.domains, name):
            raise ConfigError("domain", f"{name!r} does not exist")

    def _need_acl(self, pipe: Pipe, name: str) -> None:
        if not pipe.sismember(self.k.acls, name):
            raise ConfigError("acl", f"{name!r} does not exist")

    # -- domains ------------------------------------------------------------------------
    def domain_create(self, name: str) -> None:
        d = names.domain_name(name)

        def q(pipe: Pipe) -> None:
            if pipe.sismember(self.k.domains, d):
                raise ConfigError("domain", f"{d!r} already exists")
            pipe.multi()
            pipe.sadd(self.k.domains, d)
            pipe.hset(self.k.domain(d), "name", d)

        self._change(q)

    def domain_delete(self, name: str) -> None:
        d = names.domain_name(name)

        def q(pipe: Pipe) -> None:
            self._need_domain(pipe, d)
            attached = _strs(pipe.smembers(self.k.domain_acls(d)))
            pipe.multi()
            for acl in attached:
                pipe.srem(self.k.acl_domains(acl), d)
            pipe.delete(*domain_keys(self.k, d))
            pipe.srem(self.k.domains, d)

        self._change(q)

    def domain_list(self) -> list[str]:
        return _strs(self.r.smembers(self.k.domains))

    def domain_show(self, name: str) -> dict[str, Any]:
        d = names.domain_name(name)
        if not self.r.sismember(self.k.domains, d):
            raise ConfigError("domain", f"{d!r} does not exist")
        pop, algs = self.r.hmget(self.k.domain(d), "pop", "algs")
        return {"domain": d, "pop": pop.decode() if pop else None,
                "algorithms": algs.decode().split(",") if algs else None,
                "acls": _strs(self.r.smembers(self.k.domain_acls(d)))}

    def domain_set_algorithms(self, name: str, algorithms: list[str]) -> None:
        """Digest algorithms the domain accepts, most preferred first ([]: the edge's)."""
        d = names.domain_name(name)
        algs = check_algorithms(algorithms, "algorithms")

        def q(pipe: Pipe) -> None:
            self._need_domain(pipe, d)
            pipe.multi()
            if algs:
                pipe.hset(self.k.domain(d), "algs", ",".join(algs))
            else:
                pipe.hdel(self.k.domain(d), "algs")

        self._change(q)

    def domain_set_pop(self, name: str, pop: str | None) -> None:
        """The POP the default form `<name>.sip.<base>` tries first (None: the edge's)."""
        d, p = names.domain_name(name), names.pop_name(pop) if pop else None

        def q(pipe: Pipe) -> None:
            self._need_domain(pipe, d)
            pipe.multi()
            if p:
                pipe.hset(self.k.domain(d), "pop", p)
            else:
                pipe.hdel(self.k.domain(d), "pop")

        self._change(q)

    def domain_attach(self, domain: str, acl: str) -> None:
        d, a = names.domain_name(domain), names.acl_name(acl)

        def q(pipe: Pipe) -> None:
            self._need_domain(pipe, d)
            self._need_acl(pipe, a)
            pipe.multi()
            pipe.sadd(self.k.domain_acls(d), a)
            pipe.sadd(self.k.acl_domains(a), d)

        self._change(q)

    def domain_detach(self, domain: str, acl: str) -> None:
        d, a = names.domain_name(domain), names.acl_name(acl)

        def q(pipe: Pipe) -> None:
            self._need_domain(pipe, d)
            if not pipe.sismember(self.k.domain_acls(d), a):
                raise ConfigError("acl", f"{a!r} is not attached to domain {d!r}")
            pipe.multi()
            pipe.srem(self.k.domain_acls(d), a)
            pipe.srem(self.k.acl_domains(a), d)

        self._change(q)

    # -- ACLs ---------------------------------------------------------------------------
    def acl_create(self, name: str) -> None:
        a = names.acl_name(name)

        def q(pipe: Pipe) -> None:
            if pipe.sismember(self.k.acls, a):
                raise ConfigError("acl", f"{a!r} already exists")
            pipe.multi()
            pipe.sadd(self.k.acls, a)
            pipe.hset(self.k.acl(a), "name", a)

        self._change(q)

    def acl_delete(self, name: str) -> None:
        a = names.acl_name(name)

        def q(pipe: Pipe) -> None:
            self._need_acl(pipe, a)
            attached = _strs(pipe.smembers(self.k.acl_domains(a)))
            if attached:
                raise ConfigError(
                    "acl", f"{a!r} is attached to {', '.join(attached)}: detach it first"
                )
            users = _strs(pipe.smembers(self.k.acl_accounts(a)))
            pipe.multi()
            for u in users:
                pipe.delete(self.k.account(u))
            pipe.delete(*acl_keys(self.k, a))
            pipe.srem(self.k.acls, a)

        self._change(q)

    def acl_list(self) -> list[str]:
        return _strs(self.r.smembers(self.k.acls))

    def acl_show(self, name: str) -> dict[str, Any]:
        a = names.acl_name(name)
        if not self.r.sismember(self.k.acls, a):
            raise ConfigError("acl", f"{a!r} does not exist")
        return {
            "acl": a,
            "ips": _strs(self.r.smembers(self.k.acl_nets(a))),
            "accounts": _strs(self.r.smembers(self.k.acl_accounts(a))),
            "domains": _strs(self.r.smembers(self.k.acl_domains(a))),
        }

    def acl_add_ip(self, acl: str, cidr: str) -> str:
        a, net = names.acl_name(acl), str(names.network(cidr))

        def q(pipe: Pipe) -> None:
            self._need_acl(pipe, a)
            pipe.multi()
            pipe.sadd(self.k.acl_nets(a), net)

        self._change(q)
        return net

    def acl_remove_ip(self, acl: str, cidr: str) -> str:
        a, net = names.acl_name(acl), str(names.network(cidr))

        def q(pipe: Pipe) -> None:
            self._need_acl(pipe, a)
            if not pipe.sismember(self.k.acl_nets(a), net):
                raise ConfigError("cidr", f"{net} is not in ACL {a!r}")
            pipe.multi()
            pipe.srem(self.k.acl_nets(a), net)

        self._change(q)
        return net

    def acl_add_account(self, acl: str, username: str, password: str) -> None:
        a, u = names.acl_name(acl), names.username(username)
        fields = account_fields(a, self.realm, ha1_all(u, self.realm, names.password(password)))

        def q(pipe: Pipe) -> None:
            self._need_acl(pipe, a)
            owner = pipe.hget(self.k.account(u), "acl")
            if owner is not None:
                raise ConfigError(
                    "username", f"{u!r} already exists (in ACL {owner.decode()!r})"
                )
            pipe.multi()
            pipe.hset(self.k.account(u), mapping=fields)
            pipe.sadd(self.k.acl_accounts(a), u)

        self._change(q)

    def acl_remove_account(self, acl: str, username: str) -> None:
        a, u = names.acl_name(acl), names.username(username)

        def q(pipe: Pipe) -> None:
            self._need_acl(pipe, a)
            if not pipe.sismember(self.k.acl_accounts(a), u):
                raise ConfigError("username", f"{u!r} is not an account of ACL {a!r}")
            pipe.multi()
            pipe.delete(self.k.account(u))
            pipe.srem(self.k.acl_accounts(a), u)

        self._change(q)

    def set_caller_ids(self, acl: str, username: str | None, ids: CallerIds) -> None:
        """Replace the caller IDs of an ACL (username None) or of one of its accounts."""
        a = names.acl_name(acl)
        u = names.username(username) if username is not None else None
        check_caller_ids(ids, "caller_ids")
        key = self.k.account(u) if u else self.k.acl(a)

        def q(pipe: Pipe) -> None:
            self._need_acl(pipe, a)
            if u and not pipe.sismember(self.k.acl_accounts(a), u):
                raise ConfigError("username", f"{u!r} is not an account of ACL {a!r}")
            pipe.multi()
            pipe.hdel(key, *CID_FIELDS)
            if ids.configured:
                pipe.hset(key, mapping=caller_id_fields(ids))

        self._change(q)

    # -- whole configuration ------------------------------------------------------------
    def export_config(self) -> ConfigSpec:
        spec = ConfigSpec()
        for a in self.acl_list():
            accounts = {}
            for u in _strs(self.r.smembers(self.k.acl_accounts(a))):
                h = {k.decode(): v.decode() for k, v in self.r.hgetall(self.k.account(u)).items()}
                accounts[u] = AccountSpec({alg: h[f] for alg, f in HA1_FIELDS.items() if f in h},
                                          decode_caller_ids(h))
            acl_hash = {k.decode(): v.decode() for k, v in self.r.hgetall(self.k.acl(a)).items()}
            spec.acls[a] = AclSpec(_strs(self.r.smembers(self.k.acl_nets(a))), accounts,
                                   decode_caller_ids(acl_hash))
        for d in self.domain_list():
            pop, algs = self.r.hmget(self.k.domain(d), "pop", "algs")
            spec.domains[d] = DomainSpec(_strs(self.r.smembers(self.k.domain_acls(d))),
                                         pop.decode() if pop else None,
                                         algs.decode().split(",") if algs else [])
        return spec

    def import_config(self, spec: ConfigSpec) -> None:
        """Replace the whole configuration with `spec` (validated), atomically."""
        _check_references(spec)

        def q(pipe: Pipe) -> None:
            old_domains = _strs(pipe.smembers(self.k.domains))
            old_acls = _strs(pipe.smembers(self.k.acls))
            old_users = [u for a in old_acls for u in _strs(pipe.smembers(self.k.acl_accounts(a)))]
            pipe.multi()
            stale = [self.k.domains, self.k.acls]
            stale += [k for d in old_domains for k in domain_keys(self.k, d)]
            stale += [k for a in old_acls for k in acl_keys(self.k, a)]
            stale += [self.k.account(u) for u in old_users]
            for i in range(0, len(stale), 1000):
                pipe.delete(*stale[i : i + 1000])
            for a, acl in spec.acls.items():
                pipe.sadd(self.k.acls, a)
                pipe.hset(self.k.acl(a), mapping={"name": a, **caller_id_fields(acl.caller_ids)})
                if acl.networks:
                    pipe.sadd(self.k.acl_nets(a), *acl.networks)
                for u, acct in acl.accounts.items():
                    pipe.hset(self.k.account(u), mapping={
                        **account_fields(a, self.realm, acct.ha1),
                        **caller_id_fields(acct.caller_ids)})
                    pipe.sadd(self.k.acl_accounts(a), u)
            for d, dom in spec.domains.items():
                pipe.sadd(self.k.domains, d)
                fields = {"name": d}
                if dom.pop:
                    fields["pop"] = dom.pop
                if dom.algorithms:
                    fields["algs"] = ",".join(dom.algorithms)
                pipe.hset(self.k.domain(d), mapping=fields)
                if dom.acls:
                    pipe.sadd(self.k.domain_acls(d), *dom.acls)
                for a in dom.acls:
                    pipe.sadd(self.k.acl_domains(a), d)

        self._change(q)


def _check_references(spec: ConfigSpec) -> None:
    for d, dom in spec.domains.items():
        for a in dom.acls:
            if a not in spec.acls:
                raise ConfigError(f"domains.{d}.acls", f"ACL {a!r} is not defined under acls")


def parse_config(raw: object, realm: str) -> ConfigSpec:
    """Validate a YAML document (see examples/demo-customer.yaml) into a ConfigSpec.

    Accounts give either `password` (hashed here, never stored) or `ha1` per algorithm
    computed under the file's `realm`, which must be the edge's realm.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError("file", "must hold a mapping with 'acls' and 'domains'")
    unknown = set(raw) - {"realm", "acls", "domains"}
    if unknown:
        raise ConfigError(sorted(unknown)[0], "unknown key (expected realm, acls, domains)")
    file_realm = raw.get("realm", realm)
    if file_realm != realm:
        raise ConfigError("realm", f"{file_realm!r} differs from the edge's realm {realm!r}")

    spec = ConfigSpec()
    seen_users: dict[str, str] = {}
    acls = raw.get("acls") or {}
    if not isinstance(acls, Mapping):
        raise ConfigError("acls", "must map ACL names to {ips, accounts}")
    for a_raw, body in acls.items():
        a = names.acl_name(a_raw, f"acls.{a_raw}")
        body = body or {}
        if not isinstance(body, Mapping) or set(body) - {"ips", "accounts", "caller_ids"}:
            raise ConfigError(f"acls.{a}", "must be a mapping of 'ips', 'accounts', 'caller_ids'")
        ips = body.get("ips") or []
        if not isinstance(ips, list):
            raise ConfigError(f"acls.{a}.ips", "must be a list of addresses or CIDR ranges")
        nets = sorted({str(names.network(ip, f"acls.{a}.ips")) for ip in ips})
        accounts: dict[str, AccountSpec] = {}
        for i, acct in enumerate(body.get("accounts") or []):
            where = f"acls.{a}.accounts[{i}]"
            if not isinstance(acct, Mapping):
                raise ConfigError(where, "must be {username, password} or {username, ha1}")
            u = names.username(acct.get("username"), f"{where}.username")
            if u in seen_users:
                raise ConfigError(f"{where}.username", f"{u!r} is already in ACL {seen_users[u]!r}")
            seen_users[u] = a
            if set(acct) - {"username", "password", "ha1", "caller_ids"}:
                raise ConfigError(where, "keys are username, password or ha1, caller_ids")
            accounts[u] = AccountSpec(_account_ha1(acct, u, realm, where),
                                      _caller_ids(acct.get("caller_ids"), f"{where}.caller_ids"))
        spec.acls[a] = AclSpec(nets, accounts,
                               _caller_ids(body.get("caller_ids"), f"acls.{a}.caller_ids"))

    domains = raw.get("domains") or {}
    if not isinstance(domains, Mapping):
        raise ConfigError("domains", "must map domain names to {acls: [...]}")
    for d_raw, body in domains.items():
        d = names.domain_name(d_raw, f"domains.{d_raw}")
        if d in spec.domains:
            raise ConfigError(f"domains.{d_raw}", f"{d!r} is listed twice (names ignore case)")
        body = body or {}
        if not isinstance(body, Mapping) or set(body) - {"acls", "pop", "algorithms"}:
            raise ConfigError(f"domains.{d}", "must be a mapping of 'acls', 'pop', 'algorithms'")
        attached = body.get("acls") or []
        if not isinstance(attached, list):
            raise ConfigError(f"domains.{d}.acls", "must be a list of ACL names")
        pop = body.get("pop")
        spec.domains[d] = DomainSpec(
            sorted({names.acl_name(x, f"domains.{d}.acls") for x in attached}),
            names.pop_name(pop, f"domains.{d}.pop") if pop is not None else None,
            check_algorithms(body.get("algorithms") or [], f"domains.{d}.algorithms"),
        )
    _check_references(spec)
    return spec


def _account_ha1(acct: Mapping[str, Any], u: str, realm: str, where: str) -> dict[str, str]:
    if "password" in acct:
        return ha1_all(u, realm, names.password(acct["password"], f"{where}.password"))
    given = acct.get("ha1")
    if not isinstance(given, Mapping) or set(given) != set(ALGORITHMS):
        raise ConfigError(where, f"give 'password' or 'ha1' with {', '.join(ALGORITHMS)}")
    for alg, value in given.items():
        if not isinstance(value, str) or not is_ha1(alg, value):
            raise ConfigError(f"{where}.ha1.{alg}", "is not a hex HA1 of the right length")
    return dict(given)


def dump_config(spec: ConfigSpec, realm: str) -> dict[str, Any]:
    """The YAML-ready form of a configuration (HA1s only, never passwords)."""
    return {
        "realm": realm,
        "acls": {
            a: {
                "ips": acl.networks,
                "accounts": [{"username": u, "ha1": acct.ha1, **_dump_ids(acct.caller_ids)}
                             for u, acct in acl.accounts.items()],
                **_dump_ids(acl.caller_ids),
            }
            for a, acl in spec.acls.items()
        },
        "domains": {
            d: {"acls": dom.acls, **({"pop": dom.pop} if dom.pop else {}),
                **({"algorithms": dom.algorithms} if dom.algorithms else {})}
            for d, dom in spec.domains.items()
        },
    }


def check_caller_ids(ids: CallerIds, where: str) -> CallerIds:
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


def _caller_ids(raw: object, where: str) -> CallerIds:
    if raw is None:
        return CallerIds()
    if not isinstance(raw, Mapping) or set(raw) - {"allow", "default", "policy"}:
        raise ConfigError(where, "must be a mapping of 'allow', 'default', 'policy'")
    allow = raw.get("allow") or []
    if not isinstance(allow, list) or not all(isinstance(x, str) for x in allow):
        raise ConfigError(f"{where}.allow", "must be a list of numbers or +prefix* ranges")
    default = raw.get("default")
    if default is not None and not isinstance(default, str):
        raise ConfigError(f"{where}.default", "must be a +E.164 number (quote it in YAML)")
    return check_caller_ids(CallerIds(tuple(allow), default, str(raw.get("policy", "reject"))),
                            where)


def _dump_ids(ids: CallerIds) -> dict[str, Any]:
    if not ids.configured:
        return {}
    out: dict[str, Any] = {"allow": list(ids.allow), "policy": ids.policy}
    if ids.default:
        out["default"] = ids.default
    return {"caller_ids": out}


def check_algorithms(raw: object, where: str) -> list[str]:
    if not isinstance(raw, list) or not all(a in ALGORITHMS for a in raw) or (
            len(set(raw)) != len(raw)):
        raise ConfigError(where, f"must list distinct algorithms of {', '.join(ALGORITHMS)}")
    return [str(a) for a in raw]
