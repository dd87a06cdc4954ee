-- After Redis lost an account: re-apply the call costs PostgreSQL holds (its CDRs), once.
-- KEYS: account. ARGV: spent (micro-units)
local A = KEYS[1]
if redis.call('EXISTS', A) == 0 or redis.call('HGET', A, 'spent_restored') == '1' then
  return 0
end
if tonumber(redis.call('HGET', A, 'spent') or '0') ~= 0 then return 0 end
local spent = tonumber(ARGV[1])
redis.call('HINCRBY', A, 'balance', istr(-spent))
redis.call('HSET', A, 'spent', istr(spent), 'spent_restored', 1)
return 1
