"""The Redis key schema: the only module that knows key names and value layouts.

Both the edge (reads, one Lua round trip per call) and provisioning (writes, MULTI/EXEC)
go through here. `docs/redis-schema.md` documents the same layout for other writers.

    {p}version                   STRING  integer, INCR'd by every change
    {p}domains                   SET     domain names (lower-case)
    {p}domain:{name}             HASH    name, pop (optional: POP for the default form),
                                         algs (optional: digest algorithms, "SHA-256,MD5")
    {p}domain:{name}:acls        SET     ACL names attached to the domain
    {p}acls                      SET     ACL names
    {p}acl:{acl}                 HASH    name, cid_allow, cid_default, cid_policy
    {p}acl:{acl}:nets            SET     CIDR ranges, normalised (e.g. 192.0.2.0/24, 2001:db8::/32)
    {p}acl:{acl}:accounts        SET     usernames of the ACL's accounts
    {p}acl:{acl}:domains         SET     domains the ACL is attached to (reverse index)
    {p}account:{username}        HASH    acl, realm, ha1_md5, ha1_sha256,
                                         cid_allow, cid_default, cid_policy

    {p}ban:{ip}                  STRING  present while the address is banned (EX ban time)
    {p}fail:{ip}                 STRING  failed authentications in the window (EX window)
    {p}nc:{nonce}:{nc}           STRING  a digest (nonce, nc) already used (EX nonce life)
    {p}secret                    STRING  the edges' shared secret when auth.secret is unset
                                         (SET NX by the first `trunkedge run`; a password)

    {p}cdrs                      STREAM  call detail records, published from the edges'
                                         spools (docs/cdr.md)
    {p}cdr:offset:{edge}:{file}  STRING  bytes of that spool segment already in {p}cdrs

    {p}changes                   CHANNEL "version" after every change (with the INCR),
                                         "ban <ip> <seconds>" when an address is banned

Caller IDs (on an ACL, or an account): cid_allow is a comma-separated list of "+E164"
numbers and "+prefix*" ranges; cid_default a "+E164"; cid_policy "reject" or "replace".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trunkedge.core.digest import ALGORITHMS
from trunkedge.core.identity import CallerIds, parse_caller_ids
from trunkedge.core.limits import Limits
from trunkedge.core.names import NetworkSet
from trunkedge.core.views import AccountView, AclView, DomainView

HA1_FIELDS = {"MD5": "ha1_md5", "SHA-256": "ha1_sha256"}
CID_FIELDS = ("cid_allow", "cid_default", "cid_policy")
LIMIT_FIELDS = ("max_cps", "max_channels")
"""A domain's or account's limits (absent: no limit), as non-negative integers."""
assert set(HA1_FIELDS) == set(ALGORITHMS)


KEY_TEMPLATES = {
    "version": "version",
    "domains": "domains",
    "acls": "acls",
    "domain": "domain:{}",
    "domain_acls": "domain:{}:acls",
    "acl": "acl:{}",
    "acl_nets": "acl:{}:nets",
    "acl_accounts": "acl:{}:accounts",
    "acl_domains": "acl:{}:domains",
    "account": "account:{}",
    "ban": "ban:{}",
    "failures": "fail:{}",
    "nonce_use": "nc:{}",
    "changes": "changes",
    "secret": "secret",
    "cps": "cps:{}",
    "channels": "ch:{}",
    "cdrs": "cdrs",
    "cdr_offset": "cdr:offset:{}",
}
"""Every key name after the prefix, defined once: `Keys` formats them for Python, and the
Lua scripts get the same names as functions (store.scripts renders them)."""


@dataclass(frozen=True)
class Keys:
    prefix: str = "trunkedge:"

    def _key(self, kind: str, name: str = "") -> str:
        return self.prefix + KEY_TEMPLATES[kind].format(name)

    @property
    def version(self) -> str:
        return self._key("version")

    @property
    def domains(self) -> str:
        return self._key("domains")

    @property
    def acls(self) -> str:
        return self._key("acls")

    def domain(self, name: str) -> str:
        return self._key("domain", name)

    def domain_acls(self, name: str) -> str:
        return self._key("domain_acls", name)

    def acl(self, name: str) -> str:
        return self._key("acl", name)

    def acl_nets(self, name: str) -> str:
        return self._key("acl_nets", name)

    def acl_accounts(self, name: str) -> str:
        return self._key("acl_accounts", name)

    def acl_domains(self, name: str) -> str:
        return self._key("acl_domains", name)

    def account(self, username: str) -> str:
        return self._key("account", username)

    def ban(self, address: str) -> str:
        return self._key("ban", address)

    def failures(self, address: str) -> str:
        return self._key("failures", address)

    def nonce_use(self, nonce_nc: str) -> str:
        """A digest "nonce:nc" already used."""
        return self._key("nonce_use", nonce_nc)

    def cps(self, scope: str) -> str:
        """A limit scope's token bucket (`d:<domain>`, `u:<username>`): HASH t, ts."""
        return self._key("cps", scope)

    def channels(self, scope: str) -> str:
        """A limit scope's calls in progress: ZSET of call members scored by lease end."""
        return self._key("channels", scope)

    @property
    def cdrs(self) -> str:
        """The stream of call detail records."""
        return self._key("cdrs")

    def cdr_offset(self, edge: str, segment: str) -> str:
        """How many bytes of an edge's spool segment (a file name) are in the stream."""
        return self._key("cdr_offset", f"{edge}:{segment}")

    @property
    def changes(self) -> str:
        """The pub/sub channel that tells the edges' watchers what changed."""
        return self._key("changes")

    @property
    def secret(self) -> str:
        """The secret of the edges that configure none (a password: it signs nonces)."""
        return self._key("secret")


CHANGED = "changed"  # "changed <version> <entity> ...", published with every change
EVERYTHING = "*"  # the entity of a change that may have touched anything (an import)
BAN_MESSAGE = "ban"  # "ban <ip> <seconds>", published by the failure script


def domain_entity(name: str) -> str:
    """What a cached domain is called in change messages (and the edge's stale table)."""
    return f"d:{name}"


def account_entity(username: str) -> str:
    return f"u:{username}"


def changed_message(version: int, touched: Iterable[str] | None) -> str:
    """The message provisioning publishes on Keys.changes in the transaction that makes
    `version` the new {p}version: which cached entities it touched (None: maybe any)."""
    entities = sorted(set(touched)) if touched is not None else [EVERYTHING]
    return " ".join((CHANGED, str(version), *entities))  # none: nothing a cache holds


def parse_changed(message: str) -> tuple[int, tuple[str, ...]] | None:
    """(version, entities) of a change message; None if it is none."""
    words = message.split()
    if len(words) < 2 or words[0] != CHANGED or not words[1].isdigit():
        return None
    return int(words[1]), tuple(words[2:])


def _s(v: bytes | str | None) -> str:
    if v is None:
        return ""
    return v.decode() if isinstance(v, bytes) else v


def decode_domain(name: str, raw: Any) -> DomainView | None:
    """The `dom` part of the edge script's answer (false: no such domain)."""
    if not raw:
        return None
    acls = tuple(
        AclView(
            name=acl,
            networks=NetworkSet(nets or ()),
            has_accounts=int(count) > 0,
            caller_ids=decode_caller_ids(dict(zip(CID_FIELDS, cid, strict=True))),
        )
        for acl, nets, count, *cid in (raw.get("acls") or ())
    )
    return DomainView(name=name, acls=acls, pop=raw.get("pop") or None,
                      algorithms=tuple(raw["algs"].split(",")) if raw.get("algs") else (),
                      limits=decode_limits(dict(zip(LIMIT_FIELDS, raw.get("lim") or (),
                                                    strict=False))))


def decode_account(username: str, flat: Sequence[bytes | str]) -> AccountView | None:
    """An account hash (HGETALL as a flat list) as the edge's AccountView."""
    if not flat:
        return None
    fields = {_s(flat[i]): _s(flat[i + 1]) for i in range(0, len(flat), 2)}
    return AccountView(
        username=username,
        acl=fields.get("acl", ""),
        realm=fields.get("realm", ""),
        ha1={alg: fields[f] for alg, f in HA1_FIELDS.items() if f in fields},
        caller_ids=decode_caller_ids(fields),
        limits=decode_limits(fields),
    )


def decode_limits(fields: Mapping[str, bytes | str | None]) -> Limits:
    """The max_* fields of a domain or account hash (anything but a number: no limit)."""
    cps, channels = (_s(fields.get(f)) for f in LIMIT_FIELDS)
    return Limits(int(cps) if cps.isdigit() else None,
                  int(channels) if channels.isdigit() else None)


def limit_fields(limits: Limits) -> dict[str, str]:
    """The max_* fields as provisioning writes them (a field absent: no limit)."""
    values = (limits.cps, limits.channels)
    return {f: str(v) for f, v in zip(LIMIT_FIELDS, values, strict=True) if v is not None}


def decode_caller_ids(fields: Mapping[str, bytes | str | None]) -> CallerIds:
    """The cid_* fields of an ACL or account hash."""
    allow, default, policy = (fields.get(f) for f in CID_FIELDS)
    return parse_caller_ids(_s(allow).split(",") if allow else (),
                            _s(default) if default else None,
                            _s(policy) if policy else "reject")


def caller_id_fields(ids: CallerIds) -> dict[str, str]:
    """The cid_* fields as provisioning writes them (empty when nothing is configured)."""
    if not ids.configured:
        return {}
    fields = {"cid_allow": ",".join(ids.allow), "cid_policy": ids.policy}
    if ids.default:
        fields["cid_default"] = ids.default
    return fields


def account_fields(acl: str, realm: str, ha1: Mapping[str, str]) -> dict[str, str]:
    """The account hash as provisioning writes it."""
    fields = {"acl": acl, "realm": realm}
    fields.update({HA1_FIELDS[alg]: value for alg, value in ha1.items()})
    return fields


# -- the other hash fields provisioning writes and reads (the layout in the docstring) --
ACCOUNT_ACL_FIELD = "acl"  # the account's ACL: present once the username is taken


def acl_fields(name: str, caller_ids: CallerIds | None = None) -> dict[str, str]:
    """The ACL hash as provisioning writes it (`name` makes the ACL known)."""
    return {"name": name, **(caller_id_fields(caller_ids) if caller_ids is not None else {})}


def domain_pop_field(pop: str | None) -> tuple[str, str | None]:
    """The domain hash's `pop` field and value (None: absent, the edge's default POP)."""
    return "pop", pop or None


def domain_algorithms_field(algorithms: Sequence[str]) -> tuple[str, str | None]:
    """The domain hash's `algs` field and value (None: absent, the edge's algorithms)."""
    return "algs", ",".join(algorithms) or None


def domain_fields(name: str, pop: str | None = None,
                  algorithms: Sequence[str] = ()) -> dict[str, str]:
    """The domain hash as provisioning writes it (`name` makes the domain known)."""
    optional = (domain_pop_field(pop), domain_algorithms_field(algorithms))
    return {"name": name, **{f: v for f, v in optional if v is not None}}


def hash_text(raw: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """An HGETALL answer (a mapping) with its fields and values as text."""
    return {_s(k): _s(v) for k, v in raw.items()}


def decode_domain_fields(fields: Mapping[str, bytes | str | None]) -> tuple[str | None, list[str]]:
    """A domain hash's (pop, algorithms): None and [] where absent (the edge's defaults)."""
    pop, algs = fields.get("pop"), fields.get("algs")
    return _s(pop) or None, _s(algs).split(",") if algs else []


def decode_ha1(fields: Mapping[str, bytes | str | None]) -> dict[str, str]:
    """The ha1_* fields of an account hash, by algorithm."""
    return {alg: _s(fields[f]) for alg, f in HA1_FIELDS.items() if f in fields}


def acl_keys(keys: Keys, name: str) -> Iterable[str]:
    """Every key an ACL owns (accounts are separate keys, see account())."""
    return (keys.acl(name), keys.acl_nets(name), keys.acl_accounts(name), keys.acl_domains(name))


def domain_keys(keys: Keys, name: str) -> Iterable[str]:
    return (keys.domain(name), keys.domain_acls(name))
