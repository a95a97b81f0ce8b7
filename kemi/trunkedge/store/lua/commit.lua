-- An admitted call's one round trip for what must be shared by every edge: the source's
-- ban, the claim of its digest (nonce, nc), and its limits. Nothing changes unless all
-- of it holds.
-- KEYS: ban, nonce use, then per limit scope: its token bucket, its channel set.
-- ARGV: nonce ttl (0: no claim), call member, lease ms, then per scope:
--       cps ('-': none), bucket size, max channels ('-': none).
-- Answers: -ttl banned, 0 replay, 2 over cps, 3 over channels, 1 admitted.
local nttl, member, lease = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local ban = redis.call('TTL', KEYS[1])
if ban > 0 then return -ban end
if nttl > 0 and not redis.call('SET', KEYS[2], '1', 'NX', 'EX', nttl) then return 0 end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local scopes = (#KEYS - 2) / 2
local tokens = {}
for i = 1, scopes do
  local a, bucket, calls = 4 + (i - 1) * 3, KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  local cps, size, max = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  if cps then
    local state = redis.call('HMGET', bucket, 't', 'ts')
    local have = tonumber(state[1]) or size
    local since = now - (tonumber(state[2]) or now)
    have = math.min(size, have + since * cps / 1000)
    if cps == 0 or have < 1 then return 2 end
    tokens[i] = have
  end
  if max then
    redis.call('ZREMRANGEBYSCORE', calls, '-inf', now)
    if redis.call('ZCARD', calls) >= max then return 3 end
  end
end
for i = 1, scopes do
  local a, bucket, calls = 4 + (i - 1) * 3, KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  if tokens[i] then
    redis.call('HSET', bucket, 't', tokens[i] - 1, 'ts', now)
    redis.call('PEXPIRE', bucket, 60000)
  end
  if tonumber(ARGV[a + 2]) then redis.call('ZADD', calls, now + lease, member) end
end
return 1
