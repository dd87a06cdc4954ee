-- Mirror an account's settings from PostgreSQL; never touches money fields.
-- KEYS: account. ARGV: field value ...
local A = KEYS[1]
for _, f in ipairs({'balance', 'reserved', 'spent', 'entries_total', 'ledger_seq'}) do
  redis.call('HSETNX', A, f, 0)
end
redis.call('HSET', A, unpack(ARGV))
return redis.call('HGET', A, 'ledger_seq')
