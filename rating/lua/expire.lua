-- Sweeper: release the reservation of a call whose finish never came.
-- KEYS: account, open calls, call record, expiry zset, CDR stream.
-- ARGV: call_id account ref (switch/call_id)
local A, O, C, X, S = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local account, ref = ARGV[2], ARGV[3]
local member = account .. '|' .. ref
local deadline = redis.call('ZSCORE', X, member)
local now_ms = math.floor(now_us() / 1000)
if not deadline or tonumber(deadline) > now_ms then return 0 end
redis.call('ZREM', X, member)
if redis.call('HGET', C, 'state') ~= 'open' then return 0 end
local held = num(redis.call('HGET', C, 'reserved'))
if held > 0 and redis.call('EXISTS', A) == 1 then redis.call('HINCRBY', A, 'reserved', istr(-held)) end
redis.call('HDEL', O, ref)
-- Kept (not deleted) so that a late finish still bills the call exactly once.
redis.call('HSET', C, 'state', 'expired', 'disposition', 'EXPIRED', 'cost', 0,
  'ended_at', istr(now_ms))
emit_cdr(S, C)
return 1
