-- KEYS: call record. ARGV: answered_at_ms. Marks an open call answered (once).
local C = KEYS[1]
local state = redis.call('HGET', C, 'state')
if state ~= 'open' then return state or 'none' end
redis.call('HSETNX', C, 'answered_at', ARGV[1])
return 'open'
