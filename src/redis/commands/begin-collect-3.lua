--[[
  Starts collecting the superseded saves of a committed checkpoint (gc; docs/format.md,
  "Garbage collection"): saves still indexed that are neither committed nor pending, e.g.
  held by a load pin at their overwrite, or whose drop failed. Refused while a load holds an
  unexpired pin (expired ones are dropped first). Takes the fence only when there is
  something to collect, so the fenced forget-save of each one accepts this token.
  KEYS[1] state hash  KEYS[2] saves set  KEYS[3] pins (sorted set)
  ARGV[1] token
  Output: {'OK', saveId...} | {'FENCED', currentFence} | {'NOT_FOUND'} | {'NOT_COMMITTED'} | {'IN_USE', livePins}
]]
--@include _now
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND'} end
local fence = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
if tonumber(ARGV[1]) <= fence then return {'FENCED', tostring(fence)} end
local state = redis.call('HMGET', KEYS[1], 'committedSaveId', 'pendingSaveId', 'deleting')
if not state[1] or state[3] == '1' then return {'NOT_COMMITTED'} end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', nowMs())
local pins = redis.call('ZCARD', KEYS[3])
if pins > 0 then return {'IN_USE', tostring(pins)} end
local out = {'OK'}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if id ~= state[1] and id ~= state[2] then table.insert(out, id) end
end
if #out > 1 then
  redis.call('HSET', KEYS[1], 'fence', ARGV[1])
  redis.call('HDEL', KEYS[1], 'heldBytes', 'heldPieceBytes')
end
return out
