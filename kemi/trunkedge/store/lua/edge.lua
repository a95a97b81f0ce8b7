-- The edge's round trip for an initial request its worker cannot answer from its cache.
-- ARGV: prefix, domain, username, source address, the version the caller's cache holds
-- ("*": its watcher vouches for it, entry by entry), what it wants ("d" domain, "u"
-- account) ("-" for none/empty). Answers, as JSON: {ban = ttl} for a banned address;
-- else {v = version, dom = ..., acct = ...}, with dom/acct when wanted or when the
-- version moved on (then the whole cache is stale). Keys are derived from the
-- key functions below (trunkedge.store.schema.KEY_TEMPLATES): a single-instance script,
-- not Cluster slot-safe.
local p, d, u, ip, cv, want = unpack(ARGV)
--!key-functions
local ban = redis.call('TTL', key_ban(p, ip))
if ban > 0 then return cjson.encode({ban = ban}) end
local out = {v = redis.call('GET', key_version(p)) or '0'}
if cv ~= '*' and out.v ~= cv then want = 'du' end
if string.find(want, 'd', 1, true) then
  local dom = redis.call('HMGET', key_domain(p, d), 'name', 'pop', 'algs', 'max_cps',
                        'max_channels')
  if dom[1] then
    local acls = {}
    for i, a in ipairs(redis.call('SMEMBERS', key_domain_acls(p, d))) do
      local cid = redis.call('HMGET', key_acl(p, a), 'cid_allow', 'cid_default', 'cid_policy')
      acls[i] = {a, redis.call('SMEMBERS', key_acl_nets(p, a)),
                 redis.call('SCARD', key_acl_accounts(p, a)),
                 cid[1] or '', cid[2] or '', cid[3] or ''}
    end
    out.dom = {pop = dom[2] or '', algs = dom[3] or '', acls = acls,
               lim = {dom[4] or '', dom[5] or ''}}
  else
    out.dom = false
  end
end
if u ~= '-' and string.find(want, 'u', 1, true) then
  out.acct = redis.call('HGETALL', key_account(p, u))
end
return cjson.encode(out)
