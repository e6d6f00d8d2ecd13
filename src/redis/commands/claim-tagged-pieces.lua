--[[
  Incremental saves on Redis Cluster: records pieces of ONE piece tag that a save will
  reference in the save's index for that tag, BEFORE it writes or uses them, and tells
  which already exist. Every key shares the tag's hash slot. The save's state lives in
  another slot, so this script cannot check that the save is pending: the caller checked
  (record-keys on the save's tag set, refused unless pending) and a late claim of a dead
  save is released by gc's sweep (docs/format.md, "Redis Cluster").
  KEYS[1] tag piece counts (hash)  KEYS[2] tag bytes counter  KEYS[3] tag holders (set)
  KEYS[4] the save's piece index in this tag (set)  KEYS[4+i] piece key of id i
  ARGV[1] holder '<ID>/<saveId>'  ARGV[1+i] piece id i (<hash>-<length>)
  Output: {'OK', s1, s2, ...}: '1' stored; '0' missing and this claim counted it first (the
  caller writes it and counts its bytes); '2' missing, already counted by a claim before
  (the caller writes it too, in case that claimer never does, but does not count it)
  (variable number of keys: registered without a fixed count)
]]
redis.call('SADD', KEYS[3], ARGV[1])
local out = {'OK'}
for i = 1, #KEYS - 4 do
  local id = ARGV[1 + i]
  local first = false
  if redis.call('SADD', KEYS[4], id) == 1 then
    if redis.call('HINCRBY', KEYS[1], id, 1) == 1 then
      redis.call('INCRBY', KEYS[2], string.match(id, '-(%d+)$'))
      first = true
    end
  end
  if redis.call('EXISTS', KEYS[4 + i]) == 1 then out[i + 1] = '1' elseif first then out[i + 1] = '0' else out[i + 1] = '2' end
end
return out
