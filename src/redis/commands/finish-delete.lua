--[[
  Removes a checkpoint's control keys once its data keys are gone.
  KEYS[1] state hash  KEYS[2] meta  KEYS[3] saves set  KEYS[4] pins (expired ones)
  KEYS[5..] data-key indexes and piece-tag sets (Cluster incremental saves) of the saves
  ARGV[1] token
  Output: {'OK'} | {'FENCED', currentFence}
  (variable number of keys: registered without a fixed count)
]]
local fence = redis.call('HGET', KEYS[1], 'fence')
if fence ~= ARGV[1] then return {'FENCED', tostring(fence)} end
redis.call('DEL', unpack(KEYS))
return {'OK'}
