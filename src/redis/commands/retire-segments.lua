--[[
  Moves data keys of a dropped save into the segment pool instead of deleting them, so a
  later save can SET over memory Redis already holds. Each key is renamed to its pool name,
  given the pool TTL (unused pool memory goes back to Redis) and listed in the pool set.
  KEYS[1] pool set  KEYS[2k] data key  KEYS[2k+1] its pool name
  ARGV[1] TTL (ms)
  Output: {'OK', moved}
]]
local ttl = tonumber(ARGV[1])
local moved = 0
for i = 2, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('RENAME', KEYS[i], KEYS[i + 1])
    redis.call('PEXPIRE', KEYS[i + 1], ttl)
    redis.call('SADD', KEYS[1], KEYS[i + 1])
    moved = moved + 1
  end
end
if moved > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return {'OK', tostring(moved)}
