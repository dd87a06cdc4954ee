-- After Redis lost an account: re-apply the call costs PostgreSQL holds (its CDRs), once.
-- KEYS: account. ARGV: spent (micro-units)
local A = KEYS[1]
if redis.call('EXISTS', A) == 0 then return 0 end
if redis.call('HGET', A, 'spent_restored') == '1' then
  -- rewritten unchanged: a replay's WAIT (rating/durable.py) then covers the first run too
  redis.call('HSET', A, 'spent_restored', 1)
  return 0
end
if tonumber(redis.call('HGET', A, 'spent') or '0') ~= 0 then return 0 end
local spent = tonumber(ARGV[1])
redis.call('HINCRBY', A, 'balance', istr(-spent))
redis.call('HSET', A, 'spent', istr(spent), 'spent_restored', 1)
return 1
