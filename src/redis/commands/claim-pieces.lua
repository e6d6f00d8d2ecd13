--[[
  Incremental saves: records pieces a save will reference in its piece index, BEFORE it
  writes or uses them, and tells which already exist. Counting and the existence check
  happen in one step, so a delete cannot remove a piece between "it exists" and "it is
  claimed". Refused unless the save is the pending one (an aborted save claims nothing).
  KEYS[1] state hash  KEYS[2] the save's piece index (set)  KEYS[3] piece counts (hash)
  KEYS[4] piece bytes counter  KEYS[4+i] piece key of id i
  ARGV[1] saveId  ARGV[1+i] piece id i (<hash>-<length>)
  Output: {'OK', s1, s2, ...}: '1' stored; '0' missing and this claim counted it first (the
          caller writes it and counts its bytes); '2' missing, already counted by a claim before
          (the caller writes it too, in case that claimer never does, but does not count it)
          | {'NOT_PENDING', pendingSaveId}
  (variable number of keys: registered without a fixed count)
]]
local pending = redis.call('HGET', KEYS[1], 'pendingSaveId')
if pending ~= ARGV[1] then return {'NOT_PENDING', tostring(pending)} end
local out = {'OK'}
for i = 1, #KEYS - 4 do
  local id = ARGV[1 + i]
  local first = false
  if redis.call('SADD', KEYS[2], id) == 1 then
    if redis.call('HINCRBY', KEYS[3], id, 1) == 1 then
      redis.call('INCRBY', KEYS[4], string.match(id, '-(%d+)$'))
      first = true
    end
  end
  if redis.call('EXISTS', KEYS[4 + i]) == 1 then out[i + 1] = '1' elseif first then out[i + 1] = '0' else out[i + 1] = '2' end
end
return out
