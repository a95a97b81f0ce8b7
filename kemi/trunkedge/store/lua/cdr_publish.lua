-- Spooled call detail records go into the stream and the spool segment's offset moves past
-- them in one atomic step: a record is in the stream exactly when the offset says so.
-- KEYS: the stream, the segment's offset key.
-- ARGV: the offset the publisher read, the offset after these records, the stream's MAXLEN,
-- the id prefix ("<edge>:<segment>:"), the number of field names, the field names (in
-- their documented order), then the spool's lines from the offset read: each ends in a
-- newline (the last of a closed segment may not), each record's id is its offset.
-- Values are published as text (null: empty, booleans 1/0, nested values as JSON), the
-- documented fields first, any others after them in name order. A line that is no JSON
-- object is published as kind=invalid with the line in `raw`.
-- Returns 1, or 0 when the offset is no longer the one read (a reply lost after an earlier
-- call succeeded, or another publisher): then nothing is written.
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
local maxlen, prefix, nnames = ARGV[3], ARGV[4], tonumber(ARGV[5])
local documented = {}
for n = 6, 5 + nnames do documented[ARGV[n]] = true end
local function text(value)
  if value == cjson.null then return '' end
  if type(value) == 'boolean' then return value and '1' or '0' end
  if type(value) == 'table' then return cjson.encode(value) end
  return tostring(value)
end
local lines, at, pos = ARGV[6 + nnames], tonumber(ARGV[1]), 1
while pos <= #lines do
  local stop = string.find(lines, '\n', pos, true) or (#lines + 1)
  local line = string.sub(lines, pos, stop - 1)
  local ok, record = pcall(cjson.decode, line)
  local fields = {}
  if ok and type(record) == 'table' and record[1] == nil then
    for n = 6, 5 + nnames do
      local value = record[ARGV[n]]
      if value ~= nil then
        fields[#fields + 1] = ARGV[n]
        fields[#fields + 1] = text(value)
      end
    end
    local others = {}
    for name in pairs(record) do
      if not documented[name] and name ~= 'id' then others[#others + 1] = name end
    end
    table.sort(others)
    for _, name in ipairs(others) do
      fields[#fields + 1] = name
      fields[#fields + 1] = text(record[name])
    end
  else
    fields = {'kind', 'invalid', 'raw', line}
  end
  fields[#fields + 1] = 'id'
  fields[#fields + 1] = prefix .. string.format('%d', at)
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', unpack(fields))
  at = at + stop + 1 - pos
  pos = stop + 1
end
redis.call('SET', KEYS[2], ARGV[2])
return 1
