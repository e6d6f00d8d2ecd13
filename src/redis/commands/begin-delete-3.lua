--[[
  Starts deleting a checkpoint: takes the fence and marks it deleting, so readers stop
  trusting it before any data key goes. The committed and pending saves are forgotten
  here, so none of them can ever read as committed again, even if a newer save takes
  over the id before this delete finishes (its lock lapsed). Refused while a load holds
  an unexpired pin (docs/format.md, "Load pins"); expired pins are dropped first.
  KEYS[1] state hash  KEYS[2] saves set  KEYS[3] pins (sorted set)
  ARGV[1] token
  Output: {'OK', saveId...} | {'FENCED', currentFence} | {'NOT_FOUND'} | {'IN_USE', livePins}
]]
--@include _now
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND'} end
local fence = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
if tonumber(ARGV[1]) <= fence then return {'FENCED', tostring(fence)} end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', nowMs())
local pins = redis.call('ZCARD', KEYS[3])
if pins > 0 then return {'IN_USE', tostring(pins)} end
redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'deleting', '1')
redis.call('HDEL', KEYS[1], 'committedSaveId', 'committedAt', 'pendingSaveId', 'pendingSince', 'leaseUntil', 'pendingWorldSize')
local out = {'OK'}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do table.insert(out, id) end
return out
