-- KEYS: account, open calls, call record, expiry zset, CDR stream, open inbound calls (one
--       hash tag).
-- ARGV: call_id account raw e164 class caller switch prefix rate_name deck deck_version
--       day home tz blocked_global ttl_extra_s record_ttl_s cap_s currency curve rdnis ref
--       refuse_unverified presented (the caller's number in E.164, '' if none) direction
--       (direction 'in': a carrier's call to the account's number; only the account's status,
--       limits and credit apply, and a free inbound curve needs no credit)
--       (ref = switch/call_id: a call is its switch's call id, per account)
--       routes hold_ms: '' (no carriers: the single trunk), '!REASON' (no carrier may take
--       the call: refused), else `carrier:endpoint:max_calls:cps` joined by ';' in try
--       order; KEYS[7..] are then each carrier's open-call zset and CPS clock, in turn,
--       when capacity is counted here.
--       period at_ms: the call's month in the account's zone (YYYY-MM) and its start (epoch
--       ms), which pick the plan's bundle and its usage (rating/bundles.py).
local A, O, C, X, S, I = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local call_id, account, raw, e164, class = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local caller, switch, prefix, rate_name = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local deck, deck_version, day, home, tz = ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14]
local blocked_global = ARGV[15] == '1'
local ttl_extra, record_ttl, cap = tonumber(ARGV[16]), tonumber(ARGV[17]), tonumber(ARGV[18])
local currency = ARGV[19]
local rdnis = ARGV[21] or ''  -- ARGV[20] is the curve, read where it is needed
local ref = ARGV[22]
local refuse_unverified = ARGV[23] == '1'
local presented = ARGV[24] or ''
local inbound = ARGV[25] == 'in'
local routes = ARGV[27] or ''
local hold_s = tonumber(ARGV[28] or '0')

-- Idempotent on call_id: a repeated request gets the first answer, nothing moves.
if redis.call('EXISTS', C) == 1 then
  local g = redis.call('HMGET', C, 'decision', 'reason', 'granted', 'reserved', 'detail', 'cli',
    'ring', 'endpoints')
  return {g[1], g[2], num(g[3]), num(g[4]), 1, g[5] or '', g[6] or '', g[7] or '', g[8] or ''}
end

local now = now_us()
local now_ms = math.floor(now / 1000)
local member = account .. '|' .. ref

local function record(decision, reason, granted, reserved, state, detail)
  redis.call('HSET', C, 'call_id', call_id, 'account', account, 'state', state,
    'decision', decision, 'reason', reason, 'detail', detail or '', 'granted', istr(granted),
    'reserved', istr(reserved), 'raw', raw, 'e164', e164, 'class', class, 'caller', caller,
    'switch', switch, 'prefix', prefix, 'rate_name', rate_name, 'deck', deck,
    'deck_version', deck_version, 'currency', currency, 'authorized_at', istr(now_ms),
    'rdnis', rdnis, 'direction', inbound and 'in' or 'out')
end

local function deny(reason, detail)
  record('DENY', reason, 0, 0, 'denied', detail)
  redis.call('HSET', C, 'disposition', 'DENIED', 'cost', 0, 'billsec', 0, 'ended_at', istr(now_ms))
  emit_cdr(S, C)
  redis.call('EXPIRE', C, record_ttl)
  return {'DENY', reason, 0, 0, 0, detail or ''}
end

-- An inbound call: limits, then credit for a paid inbound curve (a free one, the default,
-- needs none: a prepaid account below zero still receives calls).
local acct  -- the account's hash, read below once the account is known to exist
local function inbound_grant()
  if prefix == '' then return deny('NO_RATE') end
  local max_calls = num(acct.max_calls)
  if max_calls > 0 and redis.call('HLEN', O) >= max_calls then return deny('TOO_MANY_CALLS') end
  -- The inbound limits: a carrier (or a Wangiri wave) must not fill the account's lines nor
  -- the switch; counted here, in the script that admits the call, like the outbound ones.
  local in_max = num(acct.inbound_max_calls)
  if in_max > 0 and I and redis.call('HLEN', I) >= in_max then
    return deny('TOO_MANY_CALLS', 'inbound')
  end
  local in_cps = num(acct.inbound_cps)
  if in_cps > 0 then
    local interval = 1000000 / in_cps  -- GCRA, as outbound: in_cps a second, bursts of in_cps
    local tat = math.max(num(acct.in_cps_tat), now) + interval
    if tat - now > in_cps * interval then return deny('RATE_LIMITED', 'inbound_cps') end
    redis.call('HSET', A, 'in_cps_tat', istr(math.ceil(tat)))
  end
  local curve = read_curve(ARGV[20])
  local secs, cost = math.min(cap, curve.cap), 0
  if ARGV[26] ~= '1' then
    local avail = num(acct.balance) + num(acct.credit_limit) - num(acct.reserved)
    secs, cost = afford(curve, avail, math.min(cap, curve.cap))
    if secs <= 0 then return deny('INSUFFICIENT_CREDIT') end
  end
  redis.call('HINCRBY', A, 'reserved', istr(cost))
  redis.call('HSET', O, ref, istr(cost))
  if I then redis.call('HSET', I, ref, 1) end
  record('ALLOW', 'OK', secs, cost, 'open', '')
  -- what the switch rings: the account's active SIP logins
  local ring = acct.sip_logins or ''
  redis.call('HSET', C, 'ring', ring)
  redis.call('ZADD', X, istr(now_ms + (secs + ttl_extra) * 1000), member)
  return {'ALLOW', 'OK', secs, cost, 0, '', '', ring}
end

if class == 'emergency' and not inbound then
  record('ALLOW', 'EMERGENCY', 0, 0, 'open', '')
  redis.call('HSET', C, 'emergency', 1)
  redis.call('ZADD', X, istr(now_ms + (cap + ttl_extra) * 1000), member)
  return {'ALLOW', 'EMERGENCY', 0, 0, 0, ''}
end

if redis.call('EXISTS', A) == 0 then return deny('UNKNOWN_ACCOUNT') end
acct = hash(A)
if acct.status ~= 'active' then return deny('ACCOUNT_SUSPENDED', acct.status or '') end
-- Outbound only: an overdue invoice (§5.3) or an unverified customer blocks calls out,
-- never calls in.
if not inbound and acct.invoice_overdue == '1' then return deny('INVOICE_OVERDUE') end
if not inbound and refuse_unverified and acct.unverified == '1' then
  return deny('CUSTOMER_UNVERIFIED')
end
-- The caller normalised and rated with cached account settings; if they moved, say so.
if (acct.country or '') ~= home or (acct.timezone or '') ~= tz
   or (not inbound and class ~= 'invalid' and (acct.deck or '') ~= deck
       and (acct.deck or '') ~= '') then
  return {'STALE', '', 0, 0, 0, ''}
end
if inbound then
  return inbound_grant()
end
if class == 'invalid' then return deny('INVALID_NUMBER') end
if class == 'premium' and acct.allow_premium ~= '1' then return deny('PREMIUM_BLOCKED') end
if class == 'high_risk' and acct.allow_high_risk ~= '1' then
  return deny('DESTINATION_BLOCKED', 'high_risk')
end
if blocked_global then return deny('DESTINATION_BLOCKED', 'global') end
local digits = string.sub(e164, 2)
for p in string.gmatch(acct.blocked_prefixes or '', '[^,]+') do
  if string.sub(digits, 1, #p) == p then return deny('DESTINATION_BLOCKED', p) end
end
if (acct.deck or '') == '' or prefix == '' then return deny('NO_RATE') end
-- Margin protection and least-cost routing were decided by the caller (decks are not in
-- this slot); only carriers' capacity is counted here, with the account's reservation.
if string.sub(routes, 1, 1) == '!' then return deny(string.sub(routes, 2)) end

local max_calls = num(acct.max_calls)
if max_calls > 0 and redis.call('HLEN', O) >= max_calls then return deny('TOO_MANY_CALLS') end

local cps = num(acct.cps)
if cps > 0 then
  -- GCRA: at most `cps` calls per second, bursts of `cps`.
  local interval = 1000000 / cps
  local tat = math.max(num(acct.cps_tat), now) + interval
  if tat - now > cps * interval then return deny('RATE_LIMITED', 'cps') end
  redis.call('HSET', A, 'cps_tat', istr(math.ceil(tat)))
end

local curve = read_curve(ARGV[20])
local avail = num(acct.balance) + num(acct.credit_limit) - num(acct.reserved)
local budget = avail
local daily_cap = num(acct.daily_cap)
if daily_cap > 0 then
  local spent = 0
  if acct.spent_day == day then spent = num(acct.spent_today) end
  local left = daily_cap - spent - num(acct.reserved)
  if left < budget then budget = left end
end
local limit = math.min(cap, curve.cap)
local secs, cost
-- A plan's bundle pays first: its seconds left are reserved for this call (so parallel
-- calls cannot overrun it), the rest of the grant is overage bought from the balance at
-- the deck's rates (what a longer call costs beyond the price of the bundle's part).
local bkey, bfree = nil, 0
if acct.bundles then bkey, bfree = bundle_for(acct, class, digits, ARGV[29], tonumber(ARGV[30])) end
if bkey then
  if bfree >= limit then
    secs, cost, bfree = limit, 0, limit
  else
    local covered = price(curve, bfree)
    secs, cost = 0, 0
    if budget >= 0 then secs, cost = afford(curve, budget + covered, limit) end
    if secs > bfree then cost = cost - covered else secs, cost = bfree, 0 end
  end
else
  secs, cost = afford(curve, budget, limit)
end
if secs <= 0 then
  if budget < avail and afford(curve, avail, math.min(cap, curve.cap)) > 0 then
    return deny('RATE_LIMITED', 'daily_spend_cap')
  end
  return deny('INSUFFICIENT_CREDIT')
end

-- Carriers at their max calls or calls per second are skipped; the call holds a place on
-- the first one left (the one it goes out through unless that fails) until it finishes or
-- `hold_s` passes, and counts in that one's calls per second.
local names, endpoints, held = {}, {}, nil
local i = 0
for entry in string.gmatch(routes, '[^;]+') do
  i = i + 1
  local name, endpoint, limit, cps = string.match(entry, '^([^:]+):([^:]+):(%d+):(%d+)$')
  local key, clock = KEYS[5 + 2 * i], KEYS[6 + 2 * i]
  local full, tat = carrier_full(key, clock, tonumber(limit), tonumber(cps), now, now_ms)
  if not full then
    if held == nil then held = {name, key, clock, tat} end
    names[#names + 1] = name
    endpoints[#endpoints + 1] = endpoint
  end
end
if routes ~= '' and held == nil then return deny('CARRIERS_BUSY') end
if held ~= nil and held[2] then
  redis.call('ZADD', held[2], istr(now_ms + hold_s * 1000), member)
end
if held ~= nil and held[4] then
  redis.call('SET', held[3], istr(math.ceil(held[4])), 'PX', 60000)
end

-- Spoofing protection: the call presents the number it names only if the account owns it,
-- else the account's caller id ('' = none: the dialplan withholds the number).
local cli = acct.caller_id or ''
if presented ~= '' then
  for n in string.gmatch(acct.numbers or '', '[^,]+') do
    if n == presented then cli = presented end
  end
end

redis.call('HINCRBY', A, 'reserved', istr(cost))
redis.call('HSET', O, ref, istr(cost))
record('ALLOW', 'OK', secs, cost, 'open', '')
redis.call('HSET', C, 'cli', cli)
if bkey then
  redis.call('HINCRBY', A, 'br:' .. bkey, istr(bfree))
  redis.call('HSET', C, 'bundle', bkey, 'bundle_res', istr(bfree), 'bundle_seconds', 0)
end
local tried = table.concat(endpoints, '|')
if held ~= nil then
  redis.call('HSET', C, 'routes', table.concat(names, ','), 'endpoints', tried,
    'carrier', held[1], 'carrier_held', held[2] and 1 or 0)
end
redis.call('ZADD', X, istr(now_ms + (secs + ttl_extra) * 1000), member)
return {'ALLOW', 'OK', secs, cost, 0, '', cli, '', tried}
