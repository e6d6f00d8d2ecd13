--[[
  RedisProcessGroup close: gives up rank 0's claim on its group id, only while the
  claim is still this run's (an expired claim may already belong to a new run).
  KEYS[1] group claim
  ARGV[1] claim value (<runNonce>/<worldSize>)
  Output: {'OK'} | {'NOT_OWNER'}
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'NOT_OWNER'} end
redis.call('DEL', KEYS[1])
return {'OK'}
