-- Events' effect on accounts' sliding windows, and the figures the detectors read, for a
-- batch of events run in order (one call per stream read: what one call costs is paid once).
-- KEYS: every key of the batch (one hash tag). ARGV: one flat list (no JSON to decode), the
-- number of events, then per event: event_id, at_ms, seen_keep_ms, seen_ttl_s, the number
-- of its keys and their KEYS indices (its first is its account's "seen" set of event ids),
-- the number of items of its operations and the operations one after the other: name,
-- key index (into the event's keys), arguments (`ARITY`; bump and total then name how
-- many more follow). An event already seen changes nothing (a re-delivered entry is not
-- counted twice) but still answers every read, so its findings can be stored again.
-- Answers {fresh, out} per event.
--
-- Cheap by design (this runs for every CDR): a window's old members are trimmed once per
-- key and call (at the latest cutoff asked) instead of at every event, with the same
-- figures as trimming at every event: until the trim, reads start at the pending cutoff,
-- and an event older than it has the trim done first. TTLs are set once per key and call.
local function digits(n) return string.format('%.0f', n) end

local ttls = {}     -- key -> longest TTL asked for: one EXPIRE per key and batch
local pending = {}  -- key -> the cutoff members scored under should have gone by now
local seqs = {}     -- sequence key -> its ids hash (their old members go together)
local function touch(k, ttl)
  ttl = tonumber(ttl)
  if (ttls[k] or 0) < ttl then ttls[k] = ttl end
end
local function flush(k)
  local cutoff = pending[k]
  if not cutoff then return end
  pending[k] = nil
  local below = '(' .. digits(cutoff)
  local ids = seqs[k]
  if ids then
    local old = redis.call('ZRANGEBYSCORE', k, '-inf', below)
    if #old > 0 then
      redis.call('ZREM', k, unpack(old))
      redis.call('HDEL', ids, unpack(old))
    end
  else
    redis.call('ZREMRANGEBYSCORE', k, '-inf', below)
  end
end
-- before putting a member scored `score` in: an older one than the pending cutoff would
-- have survived the trims so far, so they are done now and it stays until the next
local function before(k, score)
  local cutoff = pending[k]
  if cutoff and tonumber(score) < cutoff then flush(k) end
end
local function trim(k, cutoff)
  if (pending[k] or -math.huge) < cutoff then pending[k] = cutoff end
end
local function low(k, from)
  from = tonumber(from)
  local cutoff = pending[k]
  if cutoff and cutoff > from then return cutoff end
  return from
end

-- running sums kept as "count,sum1,sum2..." in one hash field
local function parse(kept)
  local sums = {}
  if kept then
    for v in string.gmatch(kept, '[^,]+') do sums[#sums + 1] = tonumber(v) end
  end
  return sums
end
-- the sums of an 'agg' window written in this call: an account's later events in the call
-- need not read them again (the window exists: it holds at least that call), and they are
-- stored once, when the call ends
local running = {}  -- window, hash, field -> sums
local dirty = {}    -- the same -> {hash, field, sums} to store
local function stored(k, h, field)
  local known = running[k .. '\0' .. h .. '\0' .. field]
  if known then
    local copy = {}  -- a reply is converted when the script returns: never share a table
    for j = 1, #known do copy[j] = known[j] end
    return copy
  end
  -- the sums hash outlives a window whose calls all expired: then its sums are stale
  return parse(redis.call('EXISTS', k) == 1 and redis.call('HGET', h, field))
end
local function apply(sums, m, sign)
  local j = 1
  sums[1] = (sums[1] or 0) + sign
  for v in string.gmatch(m, '|(%-?%d+)') do
    j = j + 1
    sums[j] = (sums[j] or 0) + sign * tonumber(v)
  end
end

local BATCH_KEYS = KEYS
-- arguments after an operation's name (bump and total: then as many more as the last says)
local ARITY = {add = 5, count = 3, bump = 5, agg = 7, sums = 3, total = 4, seq = 7, overlap = 6}
local A = ARGV

-- the event starting at ARGV index p; answers its reply and the index after it
local function observe(p)
local id, at = A[p], tonumber(A[p + 1])
local KEYS = {}
local nkeys = tonumber(A[p + 4])
for j = 1, nkeys do KEYS[j] = BATCH_KEYS[tonumber(A[p + 4 + j])] end
p = p + 5 + nkeys
local last = p + tonumber(A[p])  -- the event's last item
before(KEYS[1], at)
local fresh = redis.call('ZADD', KEYS[1], 'NX', at, id) == 1
if fresh then
  trim(KEYS[1], at - tonumber(A[p - 3 - nkeys]))
  touch(KEYS[1], tonumber(A[p - 2 - nkeys]))
end

local out = {}
local o, i = A, p + 1
while i <= last do
  local op, base = o[i], i - 1
  local k = KEYS[tonumber(o[i + 1])]
  i = i + 1 + (ARITY[op] or 0)
  if op == 'bump' or op == 'total' then i = i + tonumber(o[i - 1]) end
  if op == 'add' then
    -- member score keep_ms ttl_s: a call in a window (a sorted set scored by time)
    if fresh then
      before(k, o[base + 4])
      redis.call('ZADD', k, o[base + 4], o[base + 3])
      trim(k, o[base + 4] - o[base + 5])
      touch(k, o[base + 6])
    end
  elseif op == 'count' then
    -- low high: members in a window
    out[#out + 1] = redis.call('ZCOUNT', k, digits(low(k, o[base + 3])), digits(o[base + 4]))
  elseif op == 'bump' then
    -- bucket keep_buckets ttl_s n name amount ...: sums per time bucket (a hash)
    if fresh then
      local n, grown = tonumber(o[base + 6]), false
      for j = base + 7, base + 6 + n, 2 do
        local amount = tonumber(o[j + 1])
        -- a field at its first amount is new: only then can old buckets be due to go
        if redis.call('HINCRBY', k, o[base + 3] .. ':' .. o[j], amount) == amount then
          grown = true
        end
      end
      touch(k, o[base + 5])
      if grown and redis.call('HLEN', k) > 2 * (o[base + 4] + 1) * (n / 2) then
        for _, f in ipairs(redis.call('HKEYS', k)) do
          local bucket = tonumber(string.match(f, '^(%d+):'))
          if bucket and bucket < o[base + 3] - o[base + 4] then redis.call('HDEL', k, f) end
        end
      end
    end
  elseif op == 'agg' then
    -- sums_key field member score keep_ms ttl_s: a call ("id|v1|v2...") in a window kept
    -- for exactly keep_ms, with the window's running count and sums of v1, v2... kept in one
    -- hash field ("count,sum1,sum2..."): each call is added once and taken out once.
    local h, field = KEYS[tonumber(o[base + 3])], o[base + 4]
    local member, score = o[base + 5], o[base + 6]
    local sums = stored(k, h, field)
    if fresh then
      local changed = redis.call('ZADD', k, score, member) == 1
      if changed then apply(sums, member, 1) end
      local cutoff = '(' .. digits(score - o[base + 7])
      local old = redis.call('ZRANGEBYSCORE', k, '-inf', cutoff)
      if #old > 0 then
        for _, m in ipairs(old) do apply(sums, m, -1) end
        redis.call('ZREMRANGEBYSCORE', k, '-inf', cutoff)
        changed = true
      end
      touch(k, o[base + 8])
      touch(h, o[base + 8])
      local kept = {}
      for j = 1, #sums do kept[j] = sums[j] end
      local id = k .. '\0' .. h .. '\0' .. field
      running[id] = kept
      if changed then dirty[id] = {h, field, kept} end
    end
    out[#out + 1] = sums
  elseif op == 'sums' then
    -- field: the running count and sums of an 'agg' window, read only
    out[#out + 1] = stored(k, KEYS[tonumber(o[base + 3])], o[base + 4])
  elseif op == 'total' then
    -- low_bucket high_bucket n names...: the sums of each name over the buckets low..high
    local from, to, names = tonumber(o[base + 3]), tonumber(o[base + 4]), {}
    for j = base + 6, base + 5 + tonumber(o[base + 5]) do names[#names + 1] = o[j] end
    local fields = {}
    for b = from, to do
      for j = 1, #names do fields[#fields + 1] = b .. ':' .. names[j] end
    end
    local sums = {}
    for j = 1, #names do sums[j] = 0 end
    local values = redis.call('HMGET', k, unpack(fields))
    for x = 1, #values do
      local j = (x - 1) % #names + 1
      sums[j] = sums[j] + (tonumber(values[x]) or 0)
    end
    out[#out + 1] = sums
  elseif op == 'seq' then
    -- ids_key number call_id keep_ms ttl_s cap: the run of consecutive numbers (n-1, n,
    -- n+1...) dialled within keep_ms, whatever their order. Answers {length, first, ids}.
    local ids = KEYS[tonumber(o[base + 3])]
    local member, n = o[base + 4], tonumber(o[base + 4])
    local keep, cap = tonumber(o[base + 6]), tonumber(o[base + 8])
    if fresh then
      seqs[k] = ids
      before(k, at)
      redis.call('ZADD', k, at, member)
      redis.call('HSET', ids, member, o[base + 5])
      trim(k, at - keep)
      touch(k, o[base + 7])
      touch(ids, o[base + 7])
    end
    local since = low(k, at - keep)
    local function present(x)
      local s = redis.call('ZSCORE', k, digits(x))
      return s and tonumber(s) >= since
    end
    local first, last = n, n
    while n - first < cap and present(first - 1) do first = first - 1 end
    while last - n < cap and present(last + 1) do last = last + 1 end
    local list = {}
    if last > first then
      local names = {}
      for x = first, math.min(last, first + 19) do names[#names + 1] = digits(x) end
      for _, v in ipairs(redis.call('HMGET', ids, unpack(names))) do
        if v then list[#list + 1] = v end
      end
    end
    out[#out + 1] = {last - first + 1, digits(first), list}
  elseif op == 'overlap' then
    -- member start_ms end_ms keep_ms ttl_s: calls (member "id|start|end", scored by end)
    -- whose time overlaps this one's, itself included
    local start, stop = tonumber(o[base + 4]), tonumber(o[base + 5])
    if fresh then
      before(k, stop)
      redis.call('ZADD', k, stop, o[base + 3])
      trim(k, stop - o[base + 6])
      touch(k, o[base + 7])
    end
    local n = 0
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', k, digits(low(k, start)), '+inf')) do
      local s = tonumber(string.match(m, '^[^|]*|(%d+)|'))
      if s and s <= stop then n = n + 1 end
    end
    out[#out + 1] = n
  else
    error('unknown operation ' .. tostring(op))
  end
end
return {fresh and 1 or 0, out}, last + 1
end

local replies, p = {}, 2
for e = 1, tonumber(ARGV[1]) do replies[e], p = observe(p) end
for k in pairs(pending) do flush(k) end
for _, d in pairs(dirty) do  -- before the TTLs: EXPIRE on a hash not written yet does nothing
  local text = {}
  for j = 1, #d[3] do text[j] = digits(d[3][j]) end
  redis.call('HSET', d[1], d[2], table.concat(text, ','))
end
for k, ttl in pairs(ttls) do redis.call('EXPIRE', k, ttl) end
return replies
