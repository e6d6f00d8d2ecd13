--[[
  Extends the lease of the save in progress, after the lock itself was extended.
  KEYS[1] state hash
  ARGV[1] token  ARGV[2] leaseMs
  Output: {'OK'} | {'FENCED', currentFence}
]]
--@include _now
local fence = redis.call('HGET', KEYS[1], 'fence')
if fence ~= ARGV[1] then return {'FENCED', tostring(fence)} end
redis.call('HSET', KEYS[1], 'leaseUntil', nowMs() + tonumber(ARGV[2]))
return {'OK'}
