-- Sweeper: settle a call whose finish never came, on the best evidence there is.
-- KEYS: account, open calls, call record, expiry zset, CDR stream, open inbound calls.
-- ARGV: call_id account ref (switch/call_id)
-- Returns 0 (not due / not open), 1 (released at cost 0: never seen answered),
-- 2 (seen answered by the session controller: charged its reservation, i.e. up to the
-- dead-man deadline at which Asterisk cut it at the latest).
local A, O, C, X, S, I = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local account, ref = ARGV[2], ARGV[3]
local member = account .. '|' .. ref
local deadline = redis.call('ZSCORE', X, member)
local now_ms = math.floor(now_us() / 1000)
if not deadline or tonumber(deadline) > now_ms then return 0 end
redis.call('ZREM', X, member)
if redis.call('HGET', C, 'state') ~= 'open' then return 0 end
local call = hash(C)
local held = num(call.reserved)
local answered_at = num(call.answered_at)
-- The CDR says which: disposition EXPIRED (no outcome, never seen answered) or
-- EXPIRED_ESTIMATED (no outcome, charged from the controller's answer and the reservation).
local cost, result, evidence, disposition = 0, 1, 'none', 'EXPIRED'
if answered_at > 0 and call.emergency ~= '1' then
  cost, result, evidence, disposition = held, 2, 'controller_answer', 'EXPIRED_ESTIMATED'
end
if redis.call('EXISTS', A) == 1 then
  if held > 0 then redis.call('HINCRBY', A, 'reserved', istr(-held)) end
  if cost > 0 then
    redis.call('HINCRBY', A, 'balance', istr(-cost))
    redis.call('HINCRBY', A, 'spent', istr(cost))
  end
end
-- Its bundle: released if never seen answered, else consumed up to its reservation (as the
-- estimate charges the money reservation); a late finish corrects both.
if (call.bundle or '') ~= '' and redis.call('EXISTS', A) == 1 then
  local bres = num(call.bundle_res)
  redis.call('HINCRBY', A, 'br:' .. call.bundle, istr(-bres))
  if result == 2 and bres > 0 then
    redis.call('HINCRBY', A, 'bu:' .. call.bundle, istr(bres))
    redis.call('HSET', C, 'bundle_seconds', istr(bres))
  end
end
redis.call('HDEL', O, ref)
if I then redis.call('HDEL', I, ref) end
local ended_at = now_ms
if result == 2 then
  ended_at = math.min(now_ms, answered_at + num(call.granted) * 1000)
  redis.call('HSET', C, 'answered', 1, 'billsec', istr(num(call.granted)),
    'rated_cost', istr(cost))
end
-- Kept (not deleted) so that a late finish still settles the call exactly once.
redis.call('HSET', C, 'state', 'expired', 'disposition', disposition, 'cost', istr(cost),
  'ended_at', istr(ended_at), 'evidence', evidence)
emit_cdr(S, C)
return result
