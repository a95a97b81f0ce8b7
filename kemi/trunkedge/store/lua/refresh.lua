-- A live edge's calls are still up: their leases move on. KEYS: channel sets;
-- ARGV: lease ms, then the member of each KEYS entry (ZADD XX: an ended call stays out).
local clock = redis.call('TIME')
local until_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  + tonumber(ARGV[1])
for i, calls in ipairs(KEYS) do redis.call('ZADD', calls, 'XX', until_ms, ARGV[i + 1]) end
return #KEYS
