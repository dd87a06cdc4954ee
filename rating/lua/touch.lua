-- Record facts about an open call (its channels, controller heartbeats). Never creates
-- a record and never touches a finished one. KEYS: call record. ARGV: field value ...
local C = KEYS[1]
if redis.call('HGET', C, 'state') ~= 'open' then return 0 end
redis.call('HSET', C, unpack(ARGV))
return 1
