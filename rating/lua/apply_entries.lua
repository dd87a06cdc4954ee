-- Apply many ledger entries, each as apply_entry does: a bill run's fees and roundings for
-- a batch in one call (one per hash slot on a cluster) instead of one per entry.
-- KEYS: the account of each entry (an account's entries in sequence). ARGV: seq amount
-- of each entry. Returns apply_entry's reply for each entry.
local out = {}
for i = 1, #KEYS do
  out[i] = apply_one(KEYS[i], tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i]))
end
return out
