-- Failover: the carrier at position `failed` of the grant's routes failed; the call moves its
-- place (max calls) from the carrier it holds to the first candidate with room, and counts
-- in that one's calls per second, as authorize.lua does for the first.
-- KEYS: call record, then (when capacity is counted here) the held carrier's open calls and
--       each candidate's open calls and CPS clock, in turn.
-- ARGV: failed (1-based position in the grant's routes) member hold_s candidates
--       (`position:carrier:endpoint:max_calls:cps` joined by ';', in try order) and the
--       carrier whose open calls KEYS[2] names (the caller read the record before)
-- Returns {status, position, carrier, endpoint}: MOVED (a place taken, or none needed),
-- NONE (no candidate has room: the call ends), REPEAT (this failure was handled: its
-- answer again, nothing moves), GONE (the call is not open).
-- Idempotent on call + failed position: a switch that asks twice moves nothing twice.
-- STALE: the held carrier changed since the caller read it (ask again).
local C = KEYS[1]
local failed, member, hold_s = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local candidates, read_carrier = ARGV[4] or '', ARGV[5] or ''

if redis.call('HGET', C, 'state') ~= 'open' then return {'GONE', 0, '', ''} end
local seen = redis.call('HGET', C, 'failover:' .. failed)
if seen then
  local pos, name, endpoint = string.match(seen, '^(%d+):([^:]*):([^:]*)$')
  return {'REPEAT', tonumber(pos), name, endpoint}
end
-- a failure of a position the call already moved past (a late, reordered report) moves
-- nothing either
if failed <= num(redis.call('HGET', C, 'failed_at')) then
  return {'REPEAT', 0, '', ''}
end

if (redis.call('HGET', C, 'carrier') or '') ~= read_carrier then
  return {'STALE', 0, '', ''}
end

local now = now_us()
local now_ms = math.floor(now / 1000)
local held = KEYS[2]
if held and redis.call('HGET', C, 'carrier_held') == '1' then
  redis.call('ZREM', held, member)
end

local chosen = nil
local i = 0
for entry in string.gmatch(candidates, '[^;]+') do
  i = i + 1
  local pos, name, endpoint, limit, cps = string.match(entry, '^(%d+):([^:]+):([^:]+):(%d+):(%d+)$')
  local key, clock = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  local full, tat = carrier_full(key, clock, tonumber(limit), tonumber(cps), now, now_ms)
  if not full then
    chosen = {tonumber(pos), name, endpoint, key, clock, tat}
    break
  end
end

redis.call('HSET', C, 'failed_at', istr(failed))
if chosen == nil then
  redis.call('HSET', C, 'carrier_held', 0, 'failover:' .. failed, '0::')
  return {'NONE', 0, '', ''}
end
if chosen[4] then
  redis.call('ZADD', chosen[4], istr(now_ms + hold_s * 1000), member)
end
if chosen[6] then
  redis.call('SET', chosen[5], istr(math.ceil(chosen[6])), 'PX', 60000)
end
redis.call('HSET', C, 'carrier', chosen[2], 'carrier_held', chosen[4] and 1 or 0,
  'failover:' .. failed, chosen[1] .. ':' .. chosen[2] .. ':' .. chosen[3])
return {'MOVED', chosen[1], chosen[2], chosen[3]}
