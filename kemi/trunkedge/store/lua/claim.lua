-- A warm digest call's one round trip (the worker's cache is vouched for): the source
-- address's ban, and the claim of its (nonce, nc) for the nonce's remaining life.
-- KEYS: ban, nonce use; ARGV: ttl. Answers -ttl for a banned address, else 1 (claimed)
-- or 0 (a replay).
local ban = redis.call('TTL', KEYS[1])
if ban > 0 then return -ban end
return redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) and 1 or 0
