-- Apply one ledger entry (top-up, payment, adjustment) exactly once, in sequence.
-- KEYS: account. ARGV: seq amount kind
return apply_one(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
