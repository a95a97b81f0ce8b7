-- Spooled call detail records go into the stream and the spool segment's offset moves past
-- them in one atomic step: a record is in the stream exactly when the offset says so.
-- KEYS: the stream, the segment's offset key.
-- ARGV: the offset the publisher read, the offset after these records, the stream's MAXLEN,
-- then for each record: how many field and value strings follow, then those strings.
-- Returns 1, or 0 when the offset is no longer the one read (a reply lost after an earlier
-- call succeeded, or another publisher): then nothing is written.
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
local i = 4
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
redis.call('SET', KEYS[2], ARGV[2])
return 1
