--[[
  Pins a committed checkpoint for a load, or extends the pin (docs/format.md, "Load pins").
  A pin is a member of the pins sorted set scored with its expiry (Redis clock); the key
  expires with its longest pin, so the pins of a process that died go away by themselves.
  Delete (begin-delete-3.lua) refuses while an unexpired pin exists; an overwrite's commit
  (commit-4.lua) keeps the replaced save, and gc (begin-collect-3.lua) waits.
  KEYS[1] state hash  KEYS[2] pins (sorted set)
  ARGV[1] pinId  ARGV[2] ttlMs
  Output: {'OK', committedSaveId} | {'NOT_FOUND'} | {'NOT_COMMITTED', 'deleting'|'writing'|'incomplete'}
]]
--@include _now
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_FOUND'} end
if redis.call('HGET', KEYS[1], 'deleting') == '1' then return {'NOT_COMMITTED', 'deleting'} end
local committed = redis.call('HGET', KEYS[1], 'committedSaveId')
if not committed then return {'NOT_COMMITTED', 'incomplete'} end
local now = nowMs()
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[2], math.max(1, tonumber(last[2]) - now))
return {'OK', committed}
