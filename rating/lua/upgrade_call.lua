-- Move a call record written before calls carried their switch (call:ACCOUNT:ID) to its
-- switch/call id key, with its open-calls field and expiry member, so that a replay or a
-- late finish of it still finds it (and never bills it a second time).
-- KEYS: legacy record, new record, open calls, expiry zset. ARGV: account call_id switch
local old, new, O, X = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local account, call_id, switch = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', old, 'switch') ~= switch then return 0 end
-- a call with this id came through the new layout meanwhile: it is another call
if redis.call('EXISTS', new) == 1 then return 0 end
redis.call('RENAME', old, new)  -- keeps the record's TTL
local ref = switch .. '/' .. call_id
local held = redis.call('HGET', O, call_id)
if held then
  redis.call('HDEL', O, call_id)
  redis.call('HSET', O, ref, held)
end
local member = account .. '|' .. call_id
local due = redis.call('ZSCORE', X, member)
if due then
  redis.call('ZREM', X, member)
  redis.call('ZADD', X, due, account .. '|' .. ref)
end
return 1
