--[[
  Drops the index of a save whose data keys were removed. Never the committed save.
  KEYS[1] state hash  KEYS[2] saves set  KEYS[3] the save's data-key index
  ARGV[1] token  ARGV[2] saveId
  Output: {'OK'} | {'FENCED', currentFence} | {'COMMITTED'}
]]
local fence = redis.call('HGET', KEYS[1], 'fence')
if fence ~= ARGV[1] then return {'FENCED', tostring(fence)} end
if redis.call('HGET', KEYS[1], 'committedSaveId') == ARGV[2] then return {'COMMITTED'} end
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[3])
return {'OK'}
