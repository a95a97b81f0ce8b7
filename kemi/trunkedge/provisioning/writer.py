"""Provisioning: atomic changes to the customer configuration in Redis.

SPEC.md ("What an operator expects around it"): atomic changes, no half-written customer,
ever. Every change runs as one optimistic transaction: WATCH the schema's version key, read
and check, then MULTI ... INCR version, PUBLISH ... EXEC. A concurrent change retries; an
error raises ConfigError before anything is queued, so Redis is left as it was. The
PUBLISH names what the change touched (schema.changed_message: the domains and accounts
whose cached views it may change, or everything for an import), so the edges drop only
those cache entries. Input is validated by validation.py; every key and hash field comes
from store/schema.py.
Provisioner inherits the reads (list, show, export) from ConfigReader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import redis

from trunkedge.core import names
from trunkedge.core.errors import ConfigError
from trunkedge.core.identity import CallerIds
from trunkedge.provisioning.spec import AccountSpec, AclSpec, ConfigSpec, DomainSpec
from trunkedge.provisioning.validation import (
    check_algorithms,
    check_caller_ids,
    check_limit_changes,
    check_references,
    dump_acl,
    dump_limits,
    edge_realm,
    password_ha1,
)
from trunkedge.store.schema import (
    ACCOUNT_ACL_FIELD,
    CID_FIELDS,
    LIMIT_FIELDS,
    Keys,
    account_entity,
    account_fields,
    acl_fields,
    acl_keys,
    caller_id_fields,
    changed_message,
    decode_caller_ids,
    decode_domain_fields,
    decode_ha1,
    decode_limits,
    domain_algorithms_field,
    domain_entity,
    domain_fields,
    domain_keys,
    domain_pop_field,
    hash_text,
    limit_fields,
)

Pipe = Any  # redis.client.Pipeline: untyped in redis-py 5
Touched = Iterable[str] | None
"""The cached entities a change touched (schema.domain_entity, account_entity); None: any."""
DELETE_BATCH = 1000  # keys per DEL when import_config clears the old configuration


def _strs(values: set[bytes] | list[bytes]) -> list[str]:
    """Set members (SMEMBERS), decoded and sorted."""
    return sorted(v.decode() for v in values)


class ConfigReader:
    """The read side of the commands: list, show, export (plain reads, no transaction)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis: Any = client  # redis-py's sync/async union types add nothing here
        self.keys = keys

    def _need_domain(self, client: Pipe, name: str) -> None:
        if not client.sismember(self.keys.domains, name):
            raise ConfigError("domain", f"{name!r} does not exist")

    def _need_acl(self, client: Pipe, name: str) -> None:
        if not client.sismember(self.keys.acls, name):
            raise ConfigError("acl", f"{name!r} does not exist")

    # -- domains ------------------------------------------------------------------------
    def domain_list(self) -> list[str]:
        return _strs(self.redis.smembers(self.keys.domains))

    def domain_show(self, name: str) -> dict[str, Any]:
        d = names.domain_name(name)
        self._need_domain(self.redis, d)
        domain = self._read_domain(d)
        return {"domain": d, "pop": domain.pop, "algorithms": domain.algorithms or None,
                "acls": domain.acls, **dump_limits(domain.limits)}

    # -- ACLs ---------------------------------------------------------------------------
    def acl_list(self) -> list[str]:
        return _strs(self.redis.smembers(self.keys.acls))

    def acl_show(self, name: str) -> dict[str, Any]:
        """The ACL as export has it (caller IDs included, HA1s left out), and its domains."""
        a = names.acl_name(name)
        self._need_acl(self.redis, a)
        return {"acl": a, **dump_acl(self._read_acl(a), with_ha1=False),
                "domains": _strs(self.redis.smembers(self.keys.acl_domains(a)))}

    # -- whole configuration ------------------------------------------------------------
    def export_config(self) -> ConfigSpec:
        """Everything, as import_config takes it (HA1s, never passwords)."""
        return ConfigSpec({a: self._read_acl(a) for a in self.acl_list()},
                          {d: self._read_domain(d) for d in self.domain_list()})

    def _read_acl(self, a: str) -> AclSpec:
        accounts = {u: self._read_account(u)
                    for u in _strs(self.redis.smembers(self.keys.acl_accounts(a)))}
        fields = hash_text(self.redis.hgetall(self.keys.acl(a)))
        return AclSpec(_strs(self.redis.smembers(self.keys.acl_nets(a))), accounts,
                       decode_caller_ids(fields))

    def _read_account(self, u: str) -> AccountSpec:
        fields = hash_text(self.redis.hgetall(self.keys.account(u)))
        return AccountSpec(decode_ha1(fields), decode_caller_ids(fields), decode_limits(fields))

    def _read_domain(self, d: str) -> DomainSpec:
        fields = hash_text(self.redis.hgetall(self.keys.domain(d)))
        return DomainSpec(_strs(self.redis.smembers(self.keys.domain_acls(d))),
                          *decode_domain_fields(fields), decode_limits(fields))


class Provisioner(ConfigReader):
    """The changes of `trunkedge domain|acl|account|import`: each one atomic transaction.

    `realm` (the edge's digest realm) is needed only to write accounts: None refuses them.
    """

    def __init__(self, client: redis.Redis, keys: Keys, realm: str | None) -> None:
        super().__init__(client, keys)
        self.realm = realm

    # -- transaction helpers ------------------------------------------------------------
    def _change(self, check_and_queue: Callable[[Pipe], Touched]) -> None:
        """Run `check_and_queue` as one WATCH version / MULTI ... EXEC, retried on conflict.

        It reads and checks first, then must call pipe.multi() before queuing its writes,
        and returns the entities it touched (None: maybe any), which the PUBLISH names.
        """

        def then_bump_version(pipe: Pipe) -> None:
            current = int(pipe.get(self.keys.version) or 0)  # WATCHed: stays until EXEC
            touched = check_and_queue(pipe)
            pipe.incr(self.keys.version)
            # the edges' watchers drop the cache entries of what it touched
            pipe.publish(self.keys.changes, changed_message(current + 1, touched))

        self.redis.transaction(then_bump_version, self.keys.version)

    def _acl_domain_entities(self, pipe: Pipe, acl: str) -> list[str]:
        """The domains `acl` is attached to, as entities (read under WATCH, before MULTI):
        their cached views hold the ACL's networks, caller IDs and whether it has accounts."""
        return [domain_entity(d) for d in _strs(pipe.smembers(self.keys.acl_domains(acl)))]

    def _need_account(self, pipe: Pipe, acl: str, username: str) -> None:
        if not pipe.sismember(self.keys.acl_accounts(acl), username):
            raise ConfigError("username", f"{username!r} is not an account of ACL {acl!r}")

    def _need_username(self, pipe: Pipe, username: str) -> None:
        if pipe.hget(self.keys.account(username), ACCOUNT_ACL_FIELD) is None:
            raise ConfigError("username", f"{username!r} does not exist")

    def _set_limits(self, key: str, entity: str, need: Callable[[Pipe], None],
                    changes: Mapping[str, object]) -> None:
        """Change some limits (by LIMIT_KEYS name; None removes) of the domain or account
        hash `key` (cached as `entity`), which `need` checks exists; the others are left
        as they are."""
        checked = check_limit_changes(changes)

        def merge_limits(pipe: Pipe) -> Touched:
            need(pipe)
            now = decode_limits(dict(zip(LIMIT_FIELDS, pipe.hmget(key, *LIMIT_FIELDS),
                                         strict=True)))
            fields = limit_fields(replace(now, **checked))
            pipe.multi()
            pipe.hdel(key, *LIMIT_FIELDS)
            if fields:
                pipe.hset(key, mapping=fields)
            return [entity]

        self._change(merge_limits)

    def _create(self, kind: str, name: str, index: str, key: str,
                fields: dict[str, str], touched: list[str]) -> None:
        """A new domain or ACL: `name` joins the `index` set, its hash `key` is written;
        `touched` is what the edges may have cached of it (a domain's absence)."""

        def add_if_new(pipe: Pipe) -> Touched:
            if pipe.sismember(index, name):
                raise ConfigError(kind, f"{name!r} already exists")
            pipe.multi()
            pipe.sadd(index, name)
            pipe.hset(key, mapping=fields)
            return touched

        self._change(add_if_new)

    # -- domains ------------------------------------------------------------------------
    def domain_create(self, name: str) -> None:
        d = names.domain_name(name)
        self._create("domain", d, self.keys.domains, self.keys.domain(d), domain_fields(d),
                     [domain_entity(d)])

    def domain_delete(self, name: str) -> None:
        d = names.domain_name(name)

        def delete_domain_and_detach_acls(pipe: Pipe) -> Touched:
            self._need_domain(pipe, d)
            attached = _strs(pipe.smembers(self.keys.domain_acls(d)))
            pipe.multi()
            for acl in attached:
                pipe.srem(self.keys.acl_domains(acl), d)
            pipe.delete(*domain_keys(self.keys, d))
            pipe.srem(self.keys.domains, d)
            return [domain_entity(d)]  # its ACLs are cached only inside domain views

        self._change(delete_domain_and_detach_acls)

    def domain_set_algorithms(self, name: str, algorithms: list[str]) -> None:
        """Digest algorithms the domain accepts, most preferred first ([]: the edge's)."""
        d = names.domain_name(name)
        algs = check_algorithms(algorithms, "algorithms")
        self._set_domain_field(d, *domain_algorithms_field(algs))

    def domain_set_pop(self, name: str, pop: str | None) -> None:
        """The POP the default form `<name>.sip.<base>` tries first (None: the edge's)."""
        d, p = names.domain_name(name), names.pop_name(pop) if pop else None
        self._set_domain_field(d, *domain_pop_field(p))

    def _set_domain_field(self, d: str, field: str, value: str | None) -> None:
        key = self.keys.domain(d)

        def set_or_clear_field(pipe: Pipe) -> Touched:
            self._need_domain(pipe, d)
            pipe.multi()
            if value is not None:
                pipe.hset(key, field, value)
            else:
                pipe.hdel(key, field)
            return [domain_entity(d)]

        self._change(set_or_clear_field)

    def domain_set_limits(self, name: str, changes: Mapping[str, object]) -> None:
        """Set (an integer) or remove (None) the domain's `cps` and/or `channels` limit."""
        d = names.domain_name(name)
        self._set_limits(self.keys.domain(d), domain_entity(d),
                         lambda pipe: self._need_domain(pipe, d), changes)

    def domain_attach(self, domain: str, acl: str) -> None:
        d, a = names.domain_name(domain), names.acl_name(acl)

        def link_domain_and_acl(pipe: Pipe) -> Touched:
            self._need_domain(pipe, d)
            self._need_acl(pipe, a)
            pipe.multi()
            pipe.sadd(self.keys.domain_acls(d), a)
            pipe.sadd(self.keys.acl_domains(a), d)
            return [domain_entity(d)]  # the ACL's other domains do not change

        self._change(link_domain_and_acl)

    def domain_detach(self, domain: str, acl: str) -> None:
        d, a = names.domain_name(domain), names.acl_name(acl)

        def unlink_domain_and_acl(pipe: Pipe) -> Touched:
            self._need_domain(pipe, d)
            if not pipe.sismember(self.keys.domain_acls(d), a):
                raise ConfigError("acl", f"{a!r} is not attached to domain {d!r}")
            pipe.multi()
            pipe.srem(self.keys.domain_acls(d), a)
            pipe.srem(self.keys.acl_domains(a), d)
            return [domain_entity(d)]

        self._change(unlink_domain_and_acl)

    # -- ACLs ---------------------------------------------------------------------------
    def acl_create(self, name: str) -> None:
        a = names.acl_name(name)
        self._create("acl", a, self.keys.acls, self.keys.acl(a), acl_fields(a),
                     [])  # nothing cached: no domain has it yet, and no account is in it

    def acl_delete(self, name: str) -> None:
        a = names.acl_name(name)

        def delete_detached_acl_and_accounts(pipe: Pipe) -> Touched:
            self._need_acl(pipe, a)
            attached = _strs(pipe.smembers(self.keys.acl_domains(a)))
            if attached:
                raise ConfigError(
                    "acl", f"{a!r} is attached to {', '.join(attached)}: detach it first"
                )
            users = _strs(pipe.smembers(self.keys.acl_accounts(a)))
            pipe.multi()
            for u in users:
                pipe.delete(self.keys.account(u))
            pipe.delete(*acl_keys(self.keys, a))
            pipe.srem(self.keys.acls, a)
            return [account_entity(u) for u in users]  # no domain: refused while attached

        self._change(delete_detached_acl_and_accounts)

    def acl_add_ip(self, acl: str, cidr: str) -> str:
        a, net = names.acl_name(acl), str(names.network(cidr))

        def add_network(pipe: Pipe) -> Touched:
            self._need_acl(pipe, a)
            touched = self._acl_domain_entities(pipe, a)
            pipe.multi()
            pipe.sadd(self.keys.acl_nets(a), net)
            return touched

        self._change(add_network)
        return net

    def acl_remove_ip(self, acl: str, cidr: str) -> str:
        a, net = names.acl_name(acl), str(names.network(cidr))

        def remove_network(pipe: Pipe) -> Touched:
            self._need_acl(pipe, a)
            if not pipe.sismember(self.keys.acl_nets(a), net):
                raise ConfigError("cidr", f"{net} is not in ACL {a!r}")
            touched = self._acl_domain_entities(pipe, a)
            pipe.multi()
            pipe.srem(self.keys.acl_nets(a), net)
            return touched

        self._change(remove_network)
        return net

    def acl_add_account(self, acl: str, username: str, password: str) -> None:
        a, u, realm = names.acl_name(acl), names.username(username), edge_realm(self.realm)
        fields = account_fields(a, realm, password_ha1(u, realm, password))

        def add_account_if_username_free(pipe: Pipe) -> Touched:
            self._need_acl(pipe, a)
            owner = pipe.hget(self.keys.account(u), ACCOUNT_ACL_FIELD)
            if owner is not None:
                raise ConfigError(
                    "username", f"{u!r} already exists (in ACL {owner.decode()!r})"
                )
            domains = self._acl_domain_entities(pipe, a)  # the ACL may now have accounts
            pipe.multi()
            pipe.hset(self.keys.account(u), mapping=fields)
            pipe.sadd(self.keys.acl_accounts(a), u)
            return [account_entity(u), *domains]

        self._change(add_account_if_username_free)

    def acl_remove_account(self, acl: str, username: str) -> None:
        a, u = names.acl_name(acl), names.username(username)

        def remove_account(pipe: Pipe) -> Touched:
            self._need_acl(pipe, a)
            self._need_account(pipe, a, u)
            domains = self._acl_domain_entities(pipe, a)  # the ACL may now have none
            pipe.multi()
            pipe.delete(self.keys.account(u))
            pipe.srem(self.keys.acl_accounts(a), u)
            return [account_entity(u), *domains]

        self._change(remove_account)

    def set_caller_ids(self, acl: str, username: str | None, ids: CallerIds) -> None:
        """Replace the caller IDs of an ACL (username None) or of one of its accounts."""
        a = names.acl_name(acl)
        u = names.username(username) if username is not None else None
        check_caller_ids(ids, "caller_ids")
        key = self.keys.account(u) if u else self.keys.acl(a)

        def replace_caller_ids(pipe: Pipe) -> Touched:
            self._need_acl(pipe, a)
            if u:
                self._need_account(pipe, a, u)
            touched = [account_entity(u)] if u else self._acl_domain_entities(pipe, a)
            pipe.multi()
            pipe.hdel(key, *CID_FIELDS)
            if ids.configured:
                pipe.hset(key, mapping=caller_id_fields(ids))
            return touched

        self._change(replace_caller_ids)

    # -- accounts -----------------------------------------------------------------------
    def account_set_limits(self, username: str, changes: Mapping[str, object]) -> None:
        """Set (an integer) or remove (None) the account's `cps` and/or `channels` limit."""
        u = names.username(username)
        self._set_limits(self.keys.account(u), account_entity(u),
                         lambda pipe: self._need_username(pipe, u), changes)

    # -- whole configuration ------------------------------------------------------------
    def import_config(self, spec: ConfigSpec) -> None:
        """Replace the whole configuration with `spec` (validated), atomically."""
        check_references(spec)
        if spec.account_count():
            edge_realm(self.realm)  # refused here, before the transaction queues anything

        def replace_configuration(pipe: Pipe) -> Touched:
            stale = self._configuration_keys(pipe)
            pipe.multi()
            for i in range(0, len(stale), DELETE_BATCH):
                pipe.delete(*stale[i : i + DELETE_BATCH])
            for a, acl in spec.acls.items():
                self._queue_acl(pipe, a, acl)
            for d, dom in spec.domains.items():
                self._queue_domain(pipe, d, dom)
            return None  # anything may have changed

        self._change(replace_configuration)

    def _configuration_keys(self, pipe: Pipe) -> list[str]:
        """Every key of the configuration now in Redis (read under WATCH, before MULTI)."""
        domains = _strs(pipe.smembers(self.keys.domains))
        acls = _strs(pipe.smembers(self.keys.acls))
        users = [u for a in acls for u in _strs(pipe.smembers(self.keys.acl_accounts(a)))]
        found = [self.keys.domains, self.keys.acls]
        found += [k for d in domains for k in domain_keys(self.keys, d)]
        found += [k for a in acls for k in acl_keys(self.keys, a)]
        found += [self.keys.account(u) for u in users]
        return found

    def _queue_acl(self, pipe: Pipe, a: str, acl: AclSpec) -> None:
        """Queue (after MULTI) the writes of one ACL and its accounts."""
        pipe.sadd(self.keys.acls, a)
        pipe.hset(self.keys.acl(a), mapping=acl_fields(a, acl.caller_ids))
        if acl.networks:
            pipe.sadd(self.keys.acl_nets(a), *acl.networks)
        for u, acct in acl.accounts.items():
            pipe.hset(self.keys.account(u), mapping={
                **account_fields(a, edge_realm(self.realm), acct.ha1),
                **caller_id_fields(acct.caller_ids), **limit_fields(acct.limits)})
            pipe.sadd(self.keys.acl_accounts(a), u)

    def _queue_domain(self, pipe: Pipe, d: str, dom: DomainSpec) -> None:
        """Queue (after MULTI) the writes of one domain and its ACL links."""
        pipe.sadd(self.keys.domains, d)
        pipe.hset(self.keys.domain(d), mapping={**domain_fields(d, dom.pop, dom.algorithms),
                                                **limit_fields(dom.limits)})
        if dom.acls:
            pipe.sadd(self.keys.domain_acls(d), *dom.acls)
        for a in dom.acls:
            pipe.sadd(self.keys.acl_domains(a), d)
