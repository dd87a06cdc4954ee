-- Extend an open call's grant towards target_s, reserving what the extension costs.
-- KEYS: account, open calls, call record, expiry zset. ARGV: call_id account target_s
--       ttl_extra_s day curve (from the call's start) ref (switch/call_id) refuse_unverified
local A, O, C, X = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local account, ref = ARGV[2], ARGV[7]
local target, ttl_extra, day = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local call = hash(C)
if call.state ~= 'open' then return {'DENY', 'CALL_NOT_OPEN', 0, 0} end
local granted, held = num(call.granted), num(call.reserved)
if call.emergency == '1' then return {'ALLOW', 'EMERGENCY', 0, 0} end
local acct = hash(A)
if acct.status ~= 'active' then return {'DENY', 'ACCOUNT_SUSPENDED', granted, held} end
if acct.invoice_overdue == '1' then return {'DENY', 'INVOICE_OVERDUE', granted, held} end
-- A verification revoked mid-call ends an outbound call at its next slice, as it refuses new ones.
if ARGV[8] == '1' and acct.unverified == '1' and call.direction ~= 'in' then
  return {'DENY', 'CUSTOMER_UNVERIFIED', granted, held}
end
if target <= granted then return {'ALLOW', 'OK', granted, held} end
local curve = read_curve(ARGV[6])
-- This call's own reservation is part of what it may use.
local avail = num(acct.balance) + num(acct.credit_limit) - num(acct.reserved) + held
local daily_cap = num(acct.daily_cap)
if daily_cap > 0 then
  local spent = 0
  if acct.spent_day == day then spent = num(acct.spent_today) end
  local left = daily_cap - spent - num(acct.reserved) + held
  if left < avail then avail = left end
end
-- A call drawing on a bundle buys only what lies beyond the bundle's seconds it reserved.
local covered = 0
if (call.bundle or '') ~= '' then covered = price(curve, num(call.bundle_res)) end
local secs, cost = afford(curve, avail + covered, math.min(target, curve.cap))
cost = math.max(0, cost - covered)
if secs <= granted then return {'DENY', 'INSUFFICIENT_CREDIT', granted, held} end
redis.call('HINCRBY', A, 'reserved', istr(cost - held))
redis.call('HSET', O, ref, istr(cost))
redis.call('HSET', C, 'granted', istr(secs), 'reserved', istr(cost))
local now_ms = math.floor(now_us() / 1000)
local base = num(call.answered_at)
if base == 0 then base = now_ms end
redis.call('ZADD', X, istr(base + (secs + ttl_extra) * 1000), account .. '|' .. ref)
return {'ALLOW', 'OK', secs, cost}
