-- Shared helpers, prepended to every ledger script. Lua numbers are doubles: every
-- integer here stays below 2^53 (money in micro-units, curves checked in Python).

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function hash(key)
  local flat = redis.call('HGETALL', key)
  local out = {}
  for i = 1, #flat, 2 do out[flat[i]] = flat[i + 1] end
  return out
end

local function num(v) return tonumber(v or '0') or 0 end

-- Numbers handed to Redis commands: Lua would print them with 14 significant digits
-- ("1.7952576395049e+15", "-0"); money and microsecond clocks need every digit.
local function istr(x)
  if x == 0 then return '0' end
  return string.format('%.0f', x)
end

-- Exact floor division of non-negative integers held in doubles.
local function divmod(a, b)
  local q = math.floor(a / b)
  local r = a - q * b
  if r < 0 then q = q - 1; r = r + b elseif r >= b then q = q + 1; r = r - b end
  return q, r
end

local function round_micro(n, den, q, method)
  local whole, rest = divmod(n, den * q)
  if rest == 0 or method == 'down' then return whole * q end
  if method == 'up' then return (whole + 1) * q end
  if 2 * rest >= den * q then return (whole + 1) * q end
  return whole * q
end

-- A grant curve as encoded by rating.tariff.Curve.encode(): "method,den,connect,q,cap,n,
-- then n x (start,increment,count,per_increment)".
local function read_curve(text)
  local v = {}
  for x in string.gmatch(text or '', '[^,]+') do v[#v + 1] = x end
  local c = {method = v[1], den = tonumber(v[2]), connect = tonumber(v[3]),
             q = tonumber(v[4]), cap = tonumber(v[5]), steps = {}}
  local j = 7
  for k = 1, tonumber(v[6]) do
    c.steps[k] = {tonumber(v[j]), tonumber(v[j + 1]), tonumber(v[j + 2]), tonumber(v[j + 3])}
    j = j + 4
  end
  return c
end

-- Longest duration (<= limit) ending on an increment boundary whose rounded cost fits
-- `avail`, and that cost. The rounded cost fits iff the exact numerator is <= t.
local function afford(c, avail, limit)
  if avail < 0 or limit <= 0 then return 0, 0 end
  local k = divmod(avail, c.q)
  local unit = c.q * c.den
  local t
  if c.method == 'up' then
    t = k * unit
  elseif c.method == 'down' then
    t = (k + 1) * unit - 1
  else
    t = divmod((2 * k + 1) * unit - 1, 2)
  end
  local n = c.connect
  if n > t then return 0, 0 end
  local best_s, best_n = 0, n
  for _, st in ipairs(c.steps) do
    local start, inc, count, per = st[1], st[2], st[3], st[4]
    if start >= limit then break end
    local usable = math.min(count, math.ceil((limit - start) / inc))
    local j = usable
    if per > 0 then
      j = divmod(t - n, per)
      if j > usable then j = usable end
    end
    if j > 0 then best_s = start + j * inc; best_n = n + j * per end
    if j < count or usable < count then break end
    n = n + count * per
  end
  if best_s > limit then best_s = limit end
  if best_s == 0 then return 0, 0 end
  return best_s, round_micro(best_n, c.den, c.q, c.method)
end

-- Append the call record to the CDR stream (same script as the state change).
local function emit_cdr(stream, callkey)
  local flat = redis.call('HGETALL', callkey)
  return redis.call('XADD', stream, '*', unpack(flat))
end

-- The rounded cost of a call of `secs` seconds on curve `c` (the seconds rounded up to the
-- curve's increments, as the deck bills them); 0 for 0 seconds.
local function price(c, secs)
  if secs <= 0 then return 0 end
  local n = c.connect
  for _, st in ipairs(c.steps) do
    local start, inc, count, per = st[1], st[2], st[3], st[4]
    if secs <= start then break end
    local used = math.min(count, math.ceil((secs - start) / inc))
    n = n + used * per
    if used < count then break end
  end
  return round_micro(n, c.den, c.q, c.method)
end

-- The first of the account's bundles (field `bundles`, see rating/bundles.py) that covers a
-- call of `class` to `digits` starting at `at_ms` and has seconds left in `period`: its usage
-- field suffix (`id:period`) and the seconds left; nil, 0 when none.
local function bundle_for(acct, class, digits, period, at_ms)
  for entry in string.gmatch(acct.bundles, '[^;]+') do
    local id, secs, classes, prefixes, from, to, first, first_secs = string.match(entry,
      '^([^|]*)|(%d+)|([^|]*)|([^|]*)|(%d+)|(%d*)|([^|]*)|(%d*)$')
    if id and at_ms >= tonumber(from) and (to == '' or at_ms < tonumber(to))
       and (classes == '' or string.find(',' .. classes .. ',', ',' .. class .. ',', 1, true)) then
      local covered = prefixes == ''
      for p in string.gmatch(prefixes, '[^,]+') do
        if string.sub(digits, 1, #p) == p then covered = true; break end
      end
      if covered then
        local allowance = tonumber(secs)
        if period == first and first_secs ~= '' then allowance = tonumber(first_secs) end
        local key = id .. ':' .. period
        local left = allowance - num(acct['bu:' .. key]) - num(acct['br:' .. key])
        if left > 0 then return key, left end
      end
    end
  end
  return nil, 0
end

-- The allowance in seconds of bundle usage key `id:period` per the account's `bundles`
-- field (0 when the account no longer has that bundle).
local function bundle_allowance(bundles, key)
  local id, period = string.match(key, '^(.*):([^:]*)$')
  for entry in string.gmatch(bundles or '', '[^;]+') do
    local eid, secs, first, first_secs = string.match(entry,
      '^([^|]*)|(%d+)|[^|]*|[^|]*|%d+|%d*|([^|]*)|(%d*)$')
    if eid == id then
      if period == first and first_secs ~= '' then return tonumber(first_secs) end
      return tonumber(secs)
    end
  end
  return 0
end

-- Is a carrier full for one more call? Its open calls (a zset scored by expiry) against
-- `limit`, then its calls per second by GCRA (`cps` a second, bursts of `cps`); 0 = no limit.
-- Returns full and, when counted by cps, the theoretical arrival time to store if taken.
local function carrier_full(key, clock, limit, cps, now, now_ms)
  local full, tat = false, nil
  if key and limit > 0 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms)
    full = redis.call('ZCARD', key) >= limit
  end
  if not full and clock and cps > 0 then
    local interval = 1000000 / cps
    tat = math.max(num(redis.call('GET', clock)), now) + interval
    full = tat - now > cps * interval
  end
  return full, tat
end

-- One ledger entry applied exactly once, in sequence (apply_entry, apply_entries).
local function apply_one(A, seq, amount)
  if redis.call('EXISTS', A) == 0 then return {'NO_ACCOUNT', 0, 0} end
  local last = num(redis.call('HGET', A, 'ledger_seq'))
  if seq <= last then
    -- rewritten unchanged: a replay's WAIT (rating/durable.py) then covers the first run too
    redis.call('HSET', A, 'ledger_seq', redis.call('HGET', A, 'ledger_seq'))
    return {'DUPLICATE', last, num(redis.call('HGET', A, 'balance'))}
  end
  if seq ~= last + 1 then return {'GAP', last, num(redis.call('HGET', A, 'balance'))} end
  local balance = redis.call('HINCRBY', A, 'balance', amount)
  redis.call('HINCRBY', A, 'entries_total', amount)
  redis.call('HSET', A, 'ledger_seq', seq)
  return {'APPLIED', seq, balance}
end
