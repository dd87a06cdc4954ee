-- KEYS: account, open calls, call record, expiry zset, CDR stream, open inbound calls.
-- ARGV: call_id account answered billsec rated_cost answered_at_ms ended_at_ms disposition
--       cause day record_ttl_s, then fields for a call never authorized here:
--       raw e164 class caller switch prefix rate_name deck deck_version currency, ref
--       (switch/call_id)
local A, O, C, X, S, I = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local call_id, account = ARGV[1], ARGV[2]
local answered, billsec, rated = ARGV[3] == '1', tonumber(ARGV[4]), tonumber(ARGV[5])
local answered_at, ended_at = ARGV[6], ARGV[7]
local disposition, cause, day, record_ttl = ARGV[8], ARGV[9], ARGV[10], tonumber(ARGV[11])
local ref = ARGV[22]
-- the carrier the call went out through last and its attempts (carrier:code;...)
local carrier_used, attempts = ARGV[23] or '', ARGV[24] or ''
-- and its price of the call: buy deck, version, exact cost (micro-units)
local buy_deck, buy_version, buy_cost = ARGV[25] or '', ARGV[26] or '0', ARGV[27] or '0'
-- and the start time and post-dial delay of the attempt on the carrier used (start ms:pdd ms)
local timing = ARGV[28] or ''
-- a call granted from a bundle: the seconds it takes from it (the billable seconds, capped at
-- what it reserved there) and the deck's price of those seconds, which the balance does not pay
local bundle_s, bundle_price = tonumber(ARGV[29] or '0'), tonumber(ARGV[30] or '0')

local state = redis.call('HGET', C, 'state')
if state == 'finished' or state == 'denied' then
  -- rewritten unchanged: a replay's WAIT (rating/durable.py) then covers the first run too
  redis.call('HSET', C, 'state', state)
  return {'DUPLICATE', state, num(redis.call('HGET', C, 'cost'))}
end

local unauthorized = 0
if not state then
  -- Emergency calls skip authorization; anything else here ran without a grant.
  redis.call('HSET', C, 'call_id', call_id, 'account', account, 'raw', ARGV[12],
    'e164', ARGV[13], 'class', ARGV[14], 'caller', ARGV[15], 'switch', ARGV[16],
    'prefix', ARGV[17], 'rate_name', ARGV[18], 'deck', ARGV[19], 'deck_version', ARGV[20],
    'currency', ARGV[21], 'granted', 0, 'reserved', 0)
  if ARGV[14] == 'emergency' then
    redis.call('HSET', C, 'decision', 'ALLOW', 'reason', 'EMERGENCY', 'emergency', 1)
  else
    unauthorized = 1
    redis.call('HSET', C, 'decision', 'NONE', 'reason', 'NOT_AUTHORIZED', 'unauthorized', 1)
  end
end

local call = hash(C)
local cost = rated
if not answered then cost = 0 end
if call.emergency == '1' then cost = 0 end
-- The bundle: an open call releases its reservation there; the seconds used are consumed
-- (a call the sweeper settled had consumed its whole reservation: corrected here).
local bkey = call.bundle or ''
if bkey ~= '' then
  local bres = num(call.bundle_res)
  local used = 0
  if answered and call.emergency ~= '1' then used = math.min(bundle_s, bres) end
  if used > 0 and state == 'expired' and num(call.bundle_seconds) == 0 then
    -- The sweeper released this call's bundle seconds (never seen answered) and other calls
    -- may hold them now: take only what is left. The rest is not charged either: as for
    -- money, what runs beyond what was held is not the customer's to pay.
    local acct_b = redis.call('HMGET', A, 'bundles', 'bu:' .. bkey, 'br:' .. bkey)
    used = math.min(used, math.max(0, bundle_allowance(acct_b[1], bkey) - num(acct_b[2])
      - num(acct_b[3])))
  end
  if answered and call.emergency ~= '1' and bundle_s > 0 then
    cost = math.max(0, cost - bundle_price)
  end
  if redis.call('EXISTS', A) == 1 then
    if state == 'open' then redis.call('HINCRBY', A, 'br:' .. bkey, istr(-bres)) end
    local delta = used - num(call.bundle_seconds)
    if delta ~= 0 then redis.call('HINCRBY', A, 'bu:' .. bkey, istr(delta)) end
  end
  redis.call('HSET', C, 'bundle_seconds', istr(used))
end

local held = 0
if state == 'open' then
  held = num(call.reserved)
  -- Never charge beyond the grant that was reserved: overruns are the switch's fault.
  if cost > held then cost = held end
end
-- The sweeper may have charged an estimate (expire.lua): the real outcome replaces it.
local estimate = 0
if state == 'expired' then
  estimate = num(call.cost)
  -- (a call granted from a bundle alone reserved no money and may owe none beyond it)
  if (num(call.reserved) > 0 or bkey ~= '') and cost > num(call.reserved) then
    cost = num(call.reserved)
  end
end

if redis.call('EXISTS', A) == 1 then
  if held > 0 then redis.call('HINCRBY', A, 'reserved', istr(-held)) end
  local delta = cost - estimate
  if delta ~= 0 then
    redis.call('HINCRBY', A, 'balance', istr(-delta))
    redis.call('HINCRBY', A, 'spent', istr(delta))
    if redis.call('HGET', A, 'spent_day') == day then
      redis.call('HINCRBY', A, 'spent_today', istr(delta))
    else
      redis.call('HSET', A, 'spent_day', day, 'spent_today', istr(delta))
    end
  end
end
redis.call('HDEL', O, ref)
if I then redis.call('HDEL', I, ref) end
redis.call('ZREM', X, account .. '|' .. ref)
redis.call('HSET', C, 'state', 'finished', 'answered', answered and 1 or 0, 'billsec', istr(billsec),
  'rated_cost', istr(rated), 'cost', istr(cost), 'answered_at', answered_at, 'ended_at', ended_at,
  'disposition', disposition, 'hangup_cause', cause, 'prior_state', state or 'none',
  'evidence', 'outcome')
if carrier_used ~= '' or attempts ~= '' then
  redis.call('HSET', C, 'carrier_used', carrier_used, 'attempts', attempts,
    'buy_deck', buy_deck, 'buy_deck_version', buy_version, 'buy_cost', buy_cost,
    'carrier_timing', timing)
end
emit_cdr(S, C)
redis.call('EXPIRE', C, record_ttl)
return {'FINISHED', state or 'none', cost, unauthorized}
