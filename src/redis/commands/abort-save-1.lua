--[[
  Gives up a save (a rank failed). Needs no fencing token: it only ever affects the
  given save, and after it returns ABORTED that save can never commit (commit requires
  it to be the pending save), so its data keys may be removed by any of its ranks.
  A committed save is left alone.
  KEYS[1] state hash
  ARGV[1] saveId
  Output: {'ABORTED'} (was pending, or already not pending) | {'COMMITTED'}
]]
--@include _now
if redis.call('HGET', KEYS[1], 'committedSaveId') == ARGV[1] then return {'COMMITTED'} end
if redis.call('HGET', KEYS[1], 'pendingSaveId') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'pendingSaveId', 'pendingSince', 'leaseUntil', 'pendingWorldSize', 'pendingBytes')
  -- pcall: HSET is refused when Redis is out of memory (a likely reason to abort); HDEL is not
  redis.pcall('HSET', KEYS[1], 'lastFailedAt', nowMs())
end
return {'ABORTED'}
