--[[
  Starts a save: the coordinator, holding the lock with a fresh fencing token, claims
  the checkpoint. Refuses stale tokens; refuses when a committed checkpoint exists
  and overwrite is off.
  KEYS[1] state hash    KEYS[2] saves set
  ARGV[1] token  ARGV[2] saveId  ARGV[3] leaseMs  ARGV[4] worldSize  ARGV[5] overwrite (1|0)
  ARGV[6] plannedBytes (bytes the global plan writes; shown as incomplete data until the commit)
  Output: {'OK', createdAt} | {'FENCED', currentFence} | {'EXISTS'}
]]
--@include _now
local fence = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
if tonumber(ARGV[1]) <= fence then return {'FENCED', tostring(fence)} end
if ARGV[5] == '0' and redis.call('HEXISTS', KEYS[1], 'committedSaveId') == 1 then return {'EXISTS'} end
local now = nowMs()
redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'pendingSaveId', ARGV[2], 'pendingSince', now,
  'leaseUntil', now + tonumber(ARGV[3]), 'pendingWorldSize', ARGV[4], 'pendingBytes', ARGV[6] or '0')
redis.call('HSETNX', KEYS[1], 'createdAt', now)
-- A newer owner replaces an unfinished delete: the deleted saves stay in the saves set and
-- are garbage-collected by this save's commit.
redis.call('HDEL', KEYS[1], 'deleting')
redis.call('SADD', KEYS[2], ARGV[2])
return {'OK', redis.call('HGET', KEYS[1], 'createdAt')}
