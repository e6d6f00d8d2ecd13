--[[
  Incremental saves, garbage collection: unlinks stored pieces that no save's piece index
  counts (written by a rank whose save was released before its SET arrived). The count is
  checked in the same step as the unlink, so a piece claimed meanwhile is kept.
  KEYS[1] piece counts (hash)  KEYS[1+i] piece key of id i
  ARGV[i] piece id i (<hash>-<length>)
  Output: {'OK', unlinked}
  (variable number of keys: registered without a fixed count)
]]
local unlinked = 0
for i = 1, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then unlinked = unlinked + redis.call('UNLINK', KEYS[1 + i]) end
end
return {'OK', tostring(unlinked)}
