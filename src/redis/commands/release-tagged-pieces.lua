--[[
  Incremental saves on Redis Cluster: drops pieces of ONE piece tag from the index of a save
  that the caller saw, in a step before, to be neither pending nor committed (such a save
  never becomes either again, so the check stays true). Each piece counts its holders; a
  piece whose count reaches 0 is unlinked in this same step. Idempotent (a piece no longer
  in the index is skipped). Once the index is empty the holder leaves the tag's holders.
  KEYS[1] tag piece counts (hash)  KEYS[2] tag bytes counter  KEYS[3] tag holders (set)
  KEYS[4] the save's piece index in this tag (set)  KEYS[4+i] piece key of id i
  ARGV[1] holder '<ID>/<saveId>'  ARGV[1+i] piece id i (<hash>-<length>)
  Output: {'OK', unlinked}
  (variable number of keys: registered without a fixed count)
]]
local unlinked = 0
for i = 1, #KEYS - 4 do
  local id = ARGV[1 + i]
  if redis.call('SREM', KEYS[4], id) == 1 then
    if redis.call('HINCRBY', KEYS[1], id, -1) <= 0 then
      redis.call('HDEL', KEYS[1], id)
      if redis.call('DECRBY', KEYS[2], string.match(id, '-(%d+)$')) <= 0 then redis.call('DEL', KEYS[2]) end
      unlinked = unlinked + redis.call('UNLINK', KEYS[4 + i])
    end
  end
end
if redis.call('EXISTS', KEYS[4]) == 0 then redis.call('SREM', KEYS[3], ARGV[1]) end
return {'OK', tostring(unlinked)}
