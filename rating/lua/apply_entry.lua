-- Apply one ledger entry (top-up, payment, adjustment) exactly once, in sequence.
-- KEYS: account. ARGV: seq amount kind
local A = KEYS[1]
local seq, amount, kind = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
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
