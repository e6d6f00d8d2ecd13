--[[
  Records data keys of a save in its key index before they are written. Refused unless
  the save is the pending one: ranks of an aborted or superseded save write nothing.
  KEYS[1] state hash  KEYS[2] the save's data-key index (set)
  ARGV[1] saveId  ARGV[2..] data keys
  Output: {'OK'} | {'NOT_PENDING', pendingSaveId}
]]
local pending = redis.call('HGET', KEYS[1], 'pendingSaveId')
if pending ~= ARGV[1] then return {'NOT_PENDING', tostring(pending)} end
for i = 2, #ARGV, 1000 do
  redis.call('SADD', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return {'OK'}
