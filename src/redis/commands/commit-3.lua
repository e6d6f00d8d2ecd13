--[[
  Commits a save: writes the metadata and flips the checkpoint to committed in one
  step. Only the current token holder, with an unexpired lease, for its own save.
  KEYS[1] state hash  KEYS[2] meta string  KEYS[3] saves set
  ARGV[1] token  ARGV[2] saveId  ARGV[3] metadata JSON  ARGV[4] worldSize
  ARGV[5] totalBytes  ARGV[6] itemCount  ARGV[7] step ('' for none)  ARGV[8] metrics JSON ('' for none)
  ARGV[9] storedBytes (bytes the save added to Redis; '' = totalBytes)  ARGV[10] '1' for an incremental save
  (step and metrics are written here, fenced with the commit: they describe the committed save)
  Output: {'OK', createdAt, otherSaveId...} (other saves: their data is now garbage)
          | {'FENCED', currentFence}
          | {'LEASE_EXPIRED', leaseUntil, now} | {'NOT_PENDING', pendingSaveId}
]]
--@include _now
local fence = redis.call('HGET', KEYS[1], 'fence')
if fence ~= ARGV[1] then return {'FENCED', tostring(fence)} end
local pending = redis.call('HGET', KEYS[1], 'pendingSaveId')
if pending ~= ARGV[2] then return {'NOT_PENDING', tostring(pending)} end
local now = nowMs()
local leaseUntil = tonumber(redis.call('HGET', KEYS[1], 'leaseUntil') or '0')
if leaseUntil < now then return {'LEASE_EXPIRED', tostring(leaseUntil), tostring(now)} end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('HDEL', KEYS[1], 'pendingSaveId', 'pendingSince', 'leaseUntil', 'pendingWorldSize', 'pendingBytes', 'step', 'metrics')
local stored = ARGV[9]
if stored == nil or stored == '' then stored = ARGV[5] end
redis.call('HSET', KEYS[1], 'committedSaveId', ARGV[2], 'committedAt', now, 'worldSize', ARGV[4],
  'totalBytes', ARGV[5], 'storedBytes', stored, 'itemCount', ARGV[6])
if ARGV[10] == '1' then redis.call('HSET', KEYS[1], 'incremental', '1') else redis.call('HDEL', KEYS[1], 'incremental') end
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'step', ARGV[7]) end
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'metrics', ARGV[8]) end
local out = {'OK', redis.call('HGET', KEYS[1], 'createdAt')}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if id ~= ARGV[2] then table.insert(out, id) end
end
return out
