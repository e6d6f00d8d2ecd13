--[[
  RedisProcessGroup heartbeat: pushes the expiry of rank 0's claim on its group id
  forward, only while the claim is still this run's.
  KEYS[1] group claim
  ARGV[1] claim value (<runNonce>/<worldSize>)  ARGV[2] ttlMs
  Output: {'OK'} | {'NOT_OWNER'}
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'NOT_OWNER'} end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {'OK'}
