-- Write a batch of kicks (one for a plain kick(), many for a buffer flush) in one atomic
-- call: for each kick, expand every combination of axis options server-side and bump its
-- counters in each time bucket.
--
-- ARGV[1]: N, the number of kicks. Then, for each kick, a segment:
--   T (time buckets), F (counter families), year ('' when no year bucket), A (axes),
--   F pairs (field prefix, increment),
--   T ttls in seconds (0: keep forever),
--   for each axis: n, n options (the first is '*', every value), cap
--     cap -1: the axis stores no choices;
--     cap  0: its options (after the first) are added to its set of stored choices;
--     cap  k: likewise, but once the set holds k members a new value is counted under the
--             overflow part '!' instead (and is not stored).
-- KEYS, per kick in the same order: T*F hashes (family f's bucket t at (f-1)*T+t), the years
-- set when year ~= '', then one stored-choices set per axis whose cap >= 0.
-- Returns the number of counters bumped.
local N = tonumber(ARGV[1])
local ai, ki = 2, 0
local bumped = 0

for _ = 1, N do
  local T, F, year, A = tonumber(ARGV[ai]), tonumber(ARGV[ai + 1]), ARGV[ai + 2], tonumber(ARGV[ai + 3])
  ai = ai + 4
  local prefixes, increments, ttls = {}, {}, {}
  for f = 1, F do
    prefixes[f], increments[f] = ARGV[ai], tonumber(ARGV[ai + 1])
    ai = ai + 2
  end
  for t = 1, T do
    ttls[t] = tonumber(ARGV[ai])
    ai = ai + 1
  end
  local hash_base = ki
  ki = ki + T * F
  if year ~= '' then
    ki = ki + 1
    redis.call('SADD', KEYS[ki], year)
  end

  local fields = {''}
  for a = 1, A do
    local n = tonumber(ARGV[ai])
    local options = {}
    for o = 1, n do
      options[o] = ARGV[ai + o]
    end
    local cap = tonumber(ARGV[ai + n + 1])
    ai = ai + n + 2
    if cap >= 0 then
      ki = ki + 1
      local set = KEYS[ki]
      local kept, overflowed = {options[1]}, false
      for o = 2, n do
        local member = options[o]
        if overflowed then
          -- deeper levels of a hierarchical value whose node overflowed: counted in '!' already
        elseif cap == 0 or redis.call('SISMEMBER', set, member) == 1 or redis.call('SCARD', set) < cap then
          redis.call('SADD', set, member)
          kept[#kept + 1] = member
        else
          overflowed = true
          kept[#kept + 1] = '!'
        end
      end
      options = kept
    end
    local expanded = {}
    for _, base in ipairs(fields) do
      for _, option in ipairs(options) do
        if a == 1 then
          expanded[#expanded + 1] = option
        else
          expanded[#expanded + 1] = base .. '|' .. option
        end
      end
    end
    fields = expanded
  end

  for f = 1, F do
    local prefix, increment = prefixes[f], increments[f]
    for t = 1, T do
      local key = KEYS[hash_base + (f - 1) * T + t]
      -- fields[1] is the every-value combination, written by every kick to this hash, so
      -- its new value equals the increment exactly when the hash was just created.
      local first = redis.call('HINCRBY', key, prefix .. fields[1], increment)
      for j = 2, #fields do
        redis.call('HINCRBY', key, prefix .. fields[j], increment)
      end
      if first == increment and ttls[t] > 0 then
        redis.call('EXPIRE', key, ttls[t])
      end
    end
  end
  bumped = bumped + F * T * #fields
end
return bumped
