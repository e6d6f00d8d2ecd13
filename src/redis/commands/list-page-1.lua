--[[
  Catalog, read only: a batch of catalog entries, the summary fields of each one's state hash
  and the server clock in one round trip (CheckpointCatalog.list on a standalone Redis).
  KEYS[1] catalog index (sorted set: id -> creation ms)
  ARGV[1] highest score ('+inf' or a number, inclusive)  ARGV[2] offset  ARGV[3] count
  ARGV[4] id prefix ('' for all): entries outside it get no state
  ARGV[5], ARGV[6] the state hash of id is ARGV[5] .. id .. ARGV[6] (keys.ts stateKeyAround)
  ARGV[7..] the state hash fields to read (checkpoint-store.ts SUMMARY_STATE_FIELDS)
  Output: one JSON string (cjson), so the client decodes one value instead of thousands:
  {"now": ms, "entries": [id1, score1, id2, score2, ...], "states": [[v1, v2, ...], ...]}
  with the values in ARGV[7..] order, false for a missing field, and 0 instead of the list for
  an entry outside the prefix (an empty entries list is encoded as {}). Reads the state hashes
  without declaring them (it names them from the ids it reads): standalone Redis only; a Cluster
  client lists with separate commands.
]]
--@include _now
local entries = redis.call('ZRANGE', KEYS[1], ARGV[1], '-inf', 'BYSCORE', 'REV', 'LIMIT', ARGV[2], ARGV[3], 'WITHSCORES')
local prefix = ARGV[4]
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
local states = {}
for i = 1, #entries, 2 do
  local id = entries[i]
  if string.sub(id, 1, #prefix) == prefix then
    states[#states + 1] = redis.call('HMGET', ARGV[5] .. id .. ARGV[6], unpack(fields))
  else
    states[#states + 1] = 0
  end
end
return cjson.encode({now = nowMs(), entries = entries, states = states})
