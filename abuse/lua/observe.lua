-- Events' effect on accounts' sliding windows, and the figures the detectors read, for a
-- batch of events run in order (one call per stream read: what one call costs is paid once).
-- KEYS: every key of the batch (one hash tag). ARGV[1]: a JSON list of events, each
-- [event_id, at_ms, seen_keep_ms, seen_ttl_s, keymap, ops]: keymap lists the KEYS index of
-- the event's own keys (its first is its account's "seen" set of event ids), ops a list of
-- operations [name, key_index, args...] whose key indices point into keymap. An event
-- already seen changes nothing (a re-delivered entry is not counted twice) but still
-- answers every read, so its findings can be stored again. Answers {fresh, out} per event.
local function digits(n) return string.format('%.0f', n) end

local ttls = {}  -- key -> longest TTL asked for: one EXPIRE per key and batch
local function touch(k, ttl)
  if (ttls[k] or 0) < ttl then ttls[k] = ttl end
end

local BATCH_KEYS = KEYS

local function observe(event)
local id, at = event[1], tonumber(event[2])
local KEYS = {}
for i, ki in ipairs(event[5]) do KEYS[i] = BATCH_KEYS[ki] end
local fresh = not redis.call('ZSCORE', KEYS[1], id)
if fresh then
  redis.call('ZADD', KEYS[1], at, id)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. digits(at - tonumber(event[3])))
  touch(KEYS[1], tonumber(event[4]))
end

local out = {}
for _, o in ipairs(event[6]) do
  local op, k = o[1], KEYS[o[2]]
  if op == 'add' then
    -- member score keep_ms ttl_s: a call in a window (a sorted set scored by time)
    if fresh then
      redis.call('ZADD', k, o[4], o[3])
      redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. digits(o[4] - o[5]))
      touch(k, o[6])
    end
  elseif op == 'count' then
    -- low high: members in a window
    out[#out + 1] = redis.call('ZCOUNT', k, digits(o[3]), digits(o[4]))
  elseif op == 'bump' then
    -- bucket keep_buckets ttl_s {name: amount}: sums per time bucket (a hash)
    if fresh then
      local n = 0
      for name, amount in pairs(o[6]) do
        redis.call('HINCRBY', k, o[3] .. ':' .. name, amount)
        n = n + 1
      end
      touch(k, o[5])
      if redis.call('HLEN', k) > 2 * (o[4] + 1) * n then
        for _, f in ipairs(redis.call('HKEYS', k)) do
          local b = tonumber(string.match(f, '^(%d+):'))
          if b and b < o[3] - o[4] then redis.call('HDEL', k, f) end
        end
      end
    end
  elseif op == 'agg' then
    -- sums_key field member score keep_ms ttl_s: a call ("id|v1|v2...") in a window kept
    -- for exactly keep_ms, with the window's running count and sums of v1, v2... kept in one
    -- hash field ("count,sum1,sum2..."): each call is added once and taken out once.
    local h, field, member, score = KEYS[o[3]], o[4], o[5], o[6]
    local sums = {}
    -- the sums hash outlives a window whose calls all expired: then its sums are stale
    local kept = redis.call('EXISTS', k) == 1 and redis.call('HGET', h, field)
    if kept then
      for v in string.gmatch(kept, '[^,]+') do sums[#sums + 1] = tonumber(v) end
    end
    local function apply(m, sign)
      local j = 1
      sums[1] = (sums[1] or 0) + sign
      for v in string.gmatch(m, '|(%-?%d+)') do
        j = j + 1
        sums[j] = (sums[j] or 0) + sign * tonumber(v)
      end
    end
    if fresh then
      local changed = redis.call('ZADD', k, score, member) == 1
      if changed then apply(member, 1) end
      local cutoff = '(' .. digits(score - o[7])
      local old = redis.call('ZRANGEBYSCORE', k, '-inf', cutoff)
      if #old > 0 then
        for _, m in ipairs(old) do apply(m, -1) end
        redis.call('ZREMRANGEBYSCORE', k, '-inf', cutoff)
        changed = true
      end
      if changed then
        local text = {}
        for j = 1, #sums do text[j] = digits(sums[j]) end
        redis.call('HSET', h, field, table.concat(text, ','))
      end
      touch(k, o[8])
      touch(h, o[8])
    end
    out[#out + 1] = sums
  elseif op == 'sums' then
    -- field: the running count and sums of an 'agg' window, read only
    local sums = {}
    local kept = redis.call('EXISTS', k) == 1 and redis.call('HGET', KEYS[o[3]], o[4])
    if kept then
      for v in string.gmatch(kept, '[^,]+') do sums[#sums + 1] = tonumber(v) end
    end
    out[#out + 1] = sums
  elseif op == 'total' then
    -- fields names: the sums of each name over the given bucket fields
    local fields, names = o[3], o[4]
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
    local ids = KEYS[o[3]]
    local member, n, keep, cap = o[4], tonumber(o[4]), o[6], o[8]
    if fresh then
      local old = redis.call('ZRANGEBYSCORE', k, '-inf', '(' .. digits(at - keep))
      if #old > 0 then
        redis.call('ZREM', k, unpack(old))
        redis.call('HDEL', ids, unpack(old))
      end
      redis.call('ZADD', k, at, member)
      redis.call('HSET', ids, member, o[5])
      touch(k, o[7])
      touch(ids, o[7])
    end
    local function present(x)
      local s = redis.call('ZSCORE', k, digits(x))
      return s and tonumber(s) >= at - keep
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
    local start, stop = o[4], o[5]
    if fresh then
      redis.call('ZADD', k, stop, o[3])
      redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. digits(stop - o[6]))
      touch(k, o[7])
    end
    local n = 0
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', k, digits(start), '+inf')) do
      local s = tonumber(string.match(m, '^[^|]*|(%d+)|'))
      if s and s <= stop then n = n + 1 end
    end
    out[#out + 1] = n
  else
    error('unknown operation ' .. tostring(op))
  end
end
return {fresh and 1 or 0, out}
end

local replies = {}
for i, event in ipairs(cjson.decode(ARGV[1])) do replies[i] = observe(event) end
for k, ttl in pairs(ttls) do redis.call('EXPIRE', k, ttl) end
return replies
