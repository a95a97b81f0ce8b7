-- A failed authentication from an address: count it; at the limit, ban the address
-- (shared by every edge on this Redis) and tell the edges' watchers.
-- KEYS: fail, ban, changes; ARGV: window, limit, ban time, address.
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if n >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', KEYS[3], 'ban ' .. ARGV[4] .. ' ' .. ARGV[3])
  return 1
end
return 0
