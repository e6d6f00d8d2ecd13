--[[
  RedisProcessGroup: reads a payload sent to several ranks and stored once; the last of
  its readers deletes it. A missing (expired) payload is reported, not created.
  KEYS[1] shared payload hash (fields v = JSON, left = readers still to come)
  Output: {'OK', json} | {'MISSING'}
]]
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return {'MISSING'} end
if redis.call('HINCRBY', KEYS[1], 'left', -1) <= 0 then redis.call('DEL', KEYS[1]) end
return {'OK', v}
