--[[
  Catalog, read only: a batch of catalog entries, the state hash of each and the server
  clock in one round trip (CheckpointCatalog.list on a standalone Redis).
  KEYS[1] catalog index (sorted set: id -> creation ms)
  ARGV[1] highest score ('+inf' or a number, inclusive)  ARGV[2] offset  ARGV[3] count
  ARGV[4] id prefix ('' for all): entries outside it get an empty state
  ARGV[5], ARGV[6] the state hash of id is ARGV[5] .. id .. ARGV[6] (keys.ts stateKeyAround)
  Output: one JSON string (cjson), so the client decodes one value instead of thousands:
  {"now": ms, "entries": [id1, score1, id2, score2, ...], "states": [{field: value, ...}, ...]}
  (an empty list or hash is encoded as {}). Reads the state hashes without declaring them (it
  names them from the ids it reads): standalone Redis only; a Cluster client lists with
  separate commands.
]]
--@include _now
local entries = redis.call('ZRANGE', KEYS[1], ARGV[1], '-inf', 'BYSCORE', 'REV', 'LIMIT', ARGV[2], ARGV[3], 'WITHSCORES')
local prefix = ARGV[4]
local states = {}
for i = 1, #entries, 2 do
  local id = entries[i]
  local state = {}
  if string.sub(id, 1, #prefix) == prefix then
    local flat = redis.call('HGETALL', ARGV[5] .. id .. ARGV[6])
    for f = 1, #flat, 2 do state[flat[f]] = flat[f + 1] end
  end
  states[#states + 1] = state
end
return cjson.encode({now = nowMs(), entries = entries, states = states})
