--[[
  Gives up a save in progress (a rank failed). The committed checkpoint, if any, stays.
  KEYS[1] state hash
  ARGV[1] token  ARGV[2] saveId
  Output: {'OK'} | {'FENCED', currentFence}
]]
--@include _now
local fence = redis.call('HGET', KEYS[1], 'fence')
if fence ~= ARGV[1] then return {'FENCED', tostring(fence)} end
if redis.call('HGET', KEYS[1], 'pendingSaveId') == ARGV[2] then
  redis.call('HDEL', KEYS[1], 'pendingSaveId', 'pendingSince', 'leaseUntil', 'pendingWorldSize')
  redis.call('HSET', KEYS[1], 'lastFailedAt', nowMs())
end
return {'OK'}
