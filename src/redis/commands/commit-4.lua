--[[
  Commits a save: writes the metadata and flips the checkpoint to committed in one
  step. Only the current token holder, with an unexpired lease, for its own save.
  While a load holds an unexpired pin (docs/format.md, "Load pins") the other saves are
  held, not returned as garbage: a load that read the replaced metadata still reads them.
  KEYS[1] state hash  KEYS[2] meta string  KEYS[3] saves set  KEYS[4] pins (sorted set)
  ARGV[1] token  ARGV[2] saveId  ARGV[3] metadata JSON  ARGV[4] worldSize
  ARGV[5] totalBytes  ARGV[6] itemCount  ARGV[7] step ('' for none)  ARGV[8] metrics JSON ('' for none)
  ARGV[9] storedBytes (bytes the save added to Redis; '' = totalBytes)  ARGV[10] '1' for an incremental save
  (step and metrics are written here, fenced with the commit: they describe the committed save)
  Output: {'OK', createdAt, otherSaveId...} (other saves: their data is now garbage)
          | {'HELD', createdAt, livePins} (committed; the other saves stay until no pin is left)
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
-- The save being replaced, for the held bytes (usage counts what held saves occupy).
local prev = redis.call('HMGET', KEYS[1], 'committedSaveId', 'totalBytes', 'storedBytes', 'incremental')
redis.call('SET', KEYS[2], ARGV[3])
redis.call('HDEL', KEYS[1], 'pendingSaveId', 'pendingSince', 'leaseUntil', 'pendingWorldSize', 'pendingBytes', 'step', 'metrics')
local stored = ARGV[9]
if stored == nil or stored == '' then stored = ARGV[5] end
redis.call('HSET', KEYS[1], 'committedSaveId', ARGV[2], 'committedAt', now, 'worldSize', ARGV[4],
  'totalBytes', ARGV[5], 'storedBytes', stored, 'itemCount', ARGV[6])
if ARGV[10] == '1' then redis.call('HSET', KEYS[1], 'incremental', '1') else redis.call('HDEL', KEYS[1], 'incremental') end
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'step', ARGV[7]) end
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'metrics', ARGV[8]) end
local createdAt = redis.call('HGET', KEYS[1], 'createdAt')
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local pins = redis.call('ZCARD', KEYS[4])
if pins > 0 then
  if prev[1] and prev[1] ~= ARGV[2] then
    if prev[4] == '1' then
      redis.call('HINCRBY', KEYS[1], 'heldPieceBytes', prev[3] or prev[2] or '0')
    else
      redis.call('HINCRBY', KEYS[1], 'heldBytes', prev[2] or '0')
    end
  end
  return {'HELD', createdAt, tostring(pins)}
end
redis.call('HDEL', KEYS[1], 'heldBytes', 'heldPieceBytes')
local out = {'OK', createdAt}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if id ~= ARGV[2] then table.insert(out, id) end
end
return out
