--[[
  Incremental saves: drops pieces from the piece index of a save that is neither pending nor
  committed (aborted, replaced, deleted: it can never commit or be loaded again). Each piece
  counts the saves whose index holds it; a piece whose count reaches 0 is unlinked in this
  same step (a save claiming it later finds it missing and writes it again). Idempotent:
  a piece no longer in the index is skipped, so a killed release can simply run again.
  KEYS[1] state hash  KEYS[2] the save's piece index (set)  KEYS[3] piece counts (hash)
  KEYS[4] piece bytes counter  KEYS[4+i] piece key of id i
  ARGV[1] saveId  ARGV[1+i] piece id i (<hash>-<length>)
  Output: {'OK', unlinked} | {'COMMITTED'} | {'PENDING'}
  (variable number of keys: registered without a fixed count)
]]
if redis.call('HGET', KEYS[1], 'committedSaveId') == ARGV[1] then return {'COMMITTED'} end
if redis.call('HGET', KEYS[1], 'pendingSaveId') == ARGV[1] then return {'PENDING'} end
local unlinked = 0
for i = 1, #KEYS - 4 do
  local id = ARGV[1 + i]
  if redis.call('SREM', KEYS[2], id) == 1 then
    if redis.call('HINCRBY', KEYS[3], id, -1) <= 0 then
      redis.call('HDEL', KEYS[3], id)
      if redis.call('DECRBY', KEYS[4], string.match(id, '-(%d+)$')) <= 0 then redis.call('DEL', KEYS[4]) end
      unlinked = unlinked + redis.call('UNLINK', KEYS[4 + i])
    end
  end
end
return {'OK', tostring(unlinked)}
