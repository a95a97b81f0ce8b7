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

    {p}changes                   CHANNEL "version" after every change (with the INCR),
                                         "ban <ip> <seconds>" when an address is banned

Caller IDs (on an ACL, or an account): cid_allow is a comma-separated list of "+E164"
numbers and "+prefix*" ranges; cid_default a "+E164"; cid_policy "reject" or "replace".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trunkedge.digest import ALGORITHMS
from trunkedge.identity import CallerIds, parse_caller_ids
from trunkedge.model import AccountView, AclView, DomainView
from trunkedge.names import NetworkSet

HA1_FIELDS = {"MD5": "ha1_md5", "SHA-256": "ha1_sha256"}
CID_FIELDS = ("cid_allow", "cid_default", "cid_policy")
assert set(HA1_FIELDS) == set(ALGORITHMS)


@dataclass(frozen=True)
class Keys:
    prefix: str = "trunkedge:"

    @property
    def version(self) -> str:
        return f"{self.prefix}version"

    @property
    def domains(self) -> str:
        return f"{self.prefix}domains"

    @property
    def acls(self) -> str:
        return f"{self.prefix}acls"

    def domain(self, name: str) -> str:
        return f"{self.prefix}domain:{name}"

    def domain_acls(self, name: str) -> str:
        return f"{self.prefix}domain:{name}:acls"

    def acl(self, name: str) -> str:
        return f"{self.prefix}acl:{name}"

    def acl_nets(self, name: str) -> str:
        return f"{self.prefix}acl:{name}:nets"

    def acl_accounts(self, name: str) -> str:
        return f"{self.prefix}acl:{name}:accounts"

    def acl_domains(self, name: str) -> str:
        return f"{self.prefix}acl:{name}:domains"

    def account(self, username: str) -> str:
        return f"{self.prefix}account:{username}"

    def ban(self, address: str) -> str:
        return f"{self.prefix}ban:{address}"

    def failures(self, address: str) -> str:
        return f"{self.prefix}fail:{address}"

    def nonce_use(self, nonce_nc: str) -> str:
        """A digest "nonce:nc" already used (EDGE_SCRIPT builds the same name)."""
        return f"{self.prefix}nc:{nonce_nc}"

    @property
    def changes(self) -> str:
        """The pub/sub channel that tells the edges' watchers what changed."""
        return f"{self.prefix}changes"


CHANGED = "version"  # the message provisioning publishes on Keys.changes with each change
BAN_MESSAGE = "ban"  # "ban <ip> <seconds>", published by FAILURE_SCRIPT


# The edge's one round trip per initial request. ARGV: prefix, domain, username, source
# address, the version the caller's cache holds, what it wants ("d" domain, "u" account),
# a digest "nonce:nc" to claim and its expiry ("-" for none/empty). It answers, as JSON:
# {ban: ttl} for a banned address; else {v: version, claimed: 0|1, dom: ..., acct: ...},
# with dom/acct when wanted or when the version moved on (then the cache is stale). Keys
# are derived from ARGV[1] as Keys does: a single-instance script, not Cluster slot-safe.
EDGE_SCRIPT = """
local p, d, u, ip, cv, want, nk, ttl = unpack(ARGV)
local ban = redis.call('TTL', p .. 'ban:' .. ip)
if ban > 0 then return cjson.encode({ban = ban}) end
local out = {v = redis.call('GET', p .. 'version') or '0'}
if nk ~= '-' then
  out.claimed = redis.call('SET', p .. 'nc:' .. nk, '1', 'NX', 'EX', ttl) and 1 or 0
end
if out.v ~= cv then want = 'du' end
if string.find(want, 'd', 1, true) then
  local dom = redis.call('HMGET', p .. 'domain:' .. d, 'name', 'pop', 'algs')
  if dom[1] then
    local acls = {}
    for i, a in ipairs(redis.call('SMEMBERS', p .. 'domain:' .. d .. ':acls')) do
      local k = p .. 'acl:' .. a
      local cid = redis.call('HMGET', k, 'cid_allow', 'cid_default', 'cid_policy')
      acls[i] = {a, redis.call('SMEMBERS', k .. ':nets'), redis.call('SCARD', k .. ':accounts'),
                 cid[1] or '', cid[2] or '', cid[3] or ''}
    end
    out.dom = {pop = dom[2] or '', algs = dom[3] or '', acls = acls}
  else
    out.dom = false
  end
end
if u ~= '-' and string.find(want, 'u', 1, true) then
  out.acct = redis.call('HGETALL', p .. 'account:' .. u)
end
return cjson.encode(out)
"""


def _s(v: bytes | str | None) -> str:
    if v is None:
        return ""
    return v.decode() if isinstance(v, bytes) else v


def decode_domain(name: str, raw: Any) -> DomainView | None:
    """The `dom` part of EDGE_SCRIPT's answer (false: no such domain)."""
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
                      algorithms=tuple(raw["algs"].split(",")) if raw.get("algs") else ())


# A warm digest call's one round trip (the worker's cache is vouched for): the source
# address's ban, and the claim of its (nonce, nc) for the nonce's remaining life.
# KEYS: ban, nonce use; ARGV: ttl. Answers -ttl for a banned address, else 1 (claimed)
# or 0 (a replay).
CLAIM_SCRIPT = """
local ban = redis.call('TTL', KEYS[1])
if ban > 0 then return -ban end
return redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) and 1 or 0
"""


# A failed authentication from an address: count it; at the limit, ban the address
# (shared by every edge on this Redis) and tell the edges' watchers.
# KEYS: fail, ban, changes; ARGV: window, limit, ban time, address.
FAILURE_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if n >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', KEYS[3], 'ban ' .. ARGV[4] .. ' ' .. ARGV[3])
  return 1
end
return 0
"""


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
    )


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


def acl_keys(keys: Keys, name: str) -> Iterable[str]:
    """Every key an ACL owns (accounts are separate keys, see account())."""
    return (keys.acl(name), keys.acl_nets(name), keys.acl_accounts(name), keys.acl_domains(name))


def domain_keys(keys: Keys, name: str) -> Iterable[str]:
    return (keys.domain(name), keys.domain_acls(name))
