-- Ended calls no longer count in their channel sets. KEYS: the sets; ARGV: the member of
-- each KEYS entry (releasing twice does no harm).
for i, calls in ipairs(KEYS) do redis.call('ZREM', calls, ARGV[i]) end
return #KEYS
