-- The buffered writer's script as it was at commit 957f8bd (staste/lua/kick.lua then), kept
-- verbatim as the baseline benchmarks/previous.py measures the buffered writer against, in the
-- same run on the same Redis.  Not used by staste; do not edit.
--
-- Write a batch of kicks (one for a plain kick(), many for a buffer flush) in one atomic
-- call: for each kick, expand every combination of axis options server-side and bump its
-- counters in each time bucket.
--
-- Arguments are few and '|'-separated (no part, prefix or number can hold a '|': values are
-- escaped): every argument costs the client and the server more than splitting one does.
-- ARGV[1]: N, the number of kicks, or 'N|seq|ttl' for a buffered writer's call: then the
--   last key is that writer's string, holding the number of its last call written, and a
--   call numbered no higher already ran (its reply was lost and the writer sent it again):
--   the script answers -1 and writes nothing. Then, for each kick, 3 + A arguments:
--   'T|A|year': time buckets, axes, and the year ('' when no year bucket);
--   'prefix|increment|...': the F counter families, their field prefix and increment;
--   'ttl|...': T ttls in seconds (0: keep forever), split only when a hash is created;
--   for each axis, 'cap|option|...': its options (the first is '*', every value):
--     cap -1: the axis stores no choices;
--     cap  0: its options (after the first) are added to its set of stored choices;
--     cap  k: likewise, but once the set holds k members a new value is counted under an
--             overflow part instead (and is not stored): '!' for a value (or the top node
--             of a path), '!' .. the parent's path for a deeper node of a hierarchical
--             value (so '=out/se' overflowing below '=out' counts under '!out'); the
--             deeper levels of that path are not counted at all.
-- KEYS, per kick in the same order: T*F hashes (family f's bucket t at (f-1)*T+t), the years
-- set when year ~= '', then one stored-choices set per axis whose cap >= 0.
-- Returns the number of counters bumped.
--
-- A kick that would push a counter past Redis' 64-bit limit is taken back entirely (its
-- counters, and the stored values and year it added) and the others are still written; the
-- script then answers the error 'STASTE_OVERFLOW <kick numbers>' naming the refused kicks.
--
-- Hot path: every redis.call costs more than the Lua around it, so a member already
-- stored costs one SISMEMBER (no SADD), increments stay strings (no number formatting per
-- HINCRBY) and each family's field names are built once, not once per bucket.
local call = redis.call
local find, sub = string.find, string.sub

-- 'a|b||c' -> {'a', 'b', '', 'c'}, 4
local function split(text)
  local out, n, at = {}, 0, 1
  while true do
    local bar = find(text, '|', at, true)
    n = n + 1
    if not bar then
      out[n] = sub(text, at)
      return out, n
    end
    out[n] = sub(text, at, bar - 1)
    at = bar + 1
  end
end

local N, seq, writer_ttl = string.match(ARGV[1], '^(%d+)|?(%d*)|?(%d*)$')
N = tonumber(N)
if seq ~= '' then
  local last = call('GET', KEYS[#KEYS])
  if last and tonumber(last) >= tonumber(seq) then
    return -1
  end
  call('SET', KEYS[#KEYS], seq, 'EX', writer_ttl)
end
local ai, ki = 2, 0
local bumped = 0
local refused = {}

-- Where write() is: the family, bucket and field of the HINCRBY it is doing.
local failed_f, failed_t, failed_j

-- Bump one kick's counters: every field in every bucket of every family.
local function write(hash_base, families, ttls, T, F, fields, count)
  for f = 1, F do
    failed_f = f
    local prefix, increment = families[2 * f - 1], families[2 * f]
    local named = fields
    if prefix ~= '' then
      named = {}
      for j = 1, count do
        named[j] = prefix .. fields[j]
      end
    end
    local every, amount = named[1], tonumber(increment)
    for t = 1, T do
      failed_t, failed_j = t, 1
      local key = KEYS[hash_base + (f - 1) * T + t]
      -- named[1] is the every-value combination, written by every kick to this hash, so
      -- its new value equals the increment exactly when the hash was just created.
      local first = call('HINCRBY', key, every, increment)
      for j = 2, count do
        failed_j = j
        call('HINCRBY', key, named[j], increment)
      end
      if first == amount then
        local ttl = tonumber((split(ttls))[t])
        if ttl > 0 then
          call('EXPIRE', key, ttl)
        end
      end
    end
  end
end

local function negated(increment)
  if string.sub(increment, 1, 1) == '-' then
    return string.sub(increment, 2)
  end
  return '-' .. increment
end

for k = 1, N do
  local T, A, year = string.match(ARGV[ai], '^(%d+)|(%d+)|(.*)$')
  T, A = tonumber(T), tonumber(A)
  local families, pairs2 = split(ARGV[ai + 1])
  local F = pairs2 / 2
  local ttls = ARGV[ai + 2]
  ai = ai + 3
  local hash_base = ki
  ki = ki + T * F
  local added = nil  -- set, member, set, member... this kick added: taken back if it overflows
  if year ~= '' then
    ki = ki + 1
    if call('SADD', KEYS[ki], year) == 1 then
      added = {KEYS[ki], year}
    end
  end

  local fields, count = {''}, 1
  for a = 1, A do
    local given, size = split(ARGV[ai])  -- the cap, then the n options
    local n, cap = size - 1, tonumber(given[1])
    local options = {given[2]}
    if cap < 0 then
      for o = 2, n do
        options[o] = given[o + 1]
      end
    else
      ki = ki + 1
      local set = KEYS[ki]
      for o = 2, n do
        local member = given[o + 1]
        if cap == 0 then
          if call('SADD', set, member) == 1 then
            added = added or {}
            added[#added + 1], added[#added + 2] = set, member
          end
        elseif call('SISMEMBER', set, member) == 0 then
          if call('SCARD', set) < cap then
            call('SADD', set, member)
            added = added or {}
            added[#added + 1], added[#added + 2] = set, member
          else
            options[o] = (o == 2) and '!' or ('!' .. sub(options[o - 1], 2))
            break
          end
        end
        options[o] = member
      end
    end
    ai = ai + 1
    if a == 1 then
      fields, count = options, #options
    else
      local expanded, e = {}, 0
      for j = 1, count do
        local head = fields[j] .. '|'
        for _, option in ipairs(options) do
          e = e + 1
          expanded[e] = head .. option
        end
      end
      fields, count = expanded, e
    end
  end

  -- HINCRBY refuses (and leaves alone) a counter it would overflow: the error ends write()
  -- at the counter in (failed_f, failed_t, failed_j), so what it bumped can be taken back.
  -- (pcall costs once per kick; checking each HINCRBY's reply would cost once per counter.)
  failed_f, failed_t, failed_j = nil, nil, nil
  local ok, err = pcall(write, hash_base, families, ttls, T, F, fields, count)
  if ok then
    failed_f = nil
  end

  if failed_f then
    for f = 1, failed_f do
      local prefix, increment = families[2 * f - 1], families[2 * f]
      local back = negated(increment)
      for t = 1, (f == failed_f) and failed_t or T do
        local key = KEYS[hash_base + (f - 1) * T + t]
        for j = 1, (f == failed_f and t == failed_t) and (failed_j - 1) or count do
          local name = prefix .. fields[j]
          if tonumber(increment) == 0 then
            if call('HGET', key, name) == '0' then
              call('HDEL', key, name)  -- absent reads as 0: leave no trace
            end
          elseif call('HINCRBY', key, name, back) == 0 then
            call('HDEL', key, name)
          end
        end
      end
    end
    for i = 1, added and #added or 0, 2 do
      call('SREM', added[i], added[i + 1])
    end
    -- Redis 7 raises the error reply as a table, Redis 6 as its text.
    local message = type(err) == 'table' and err.err or tostring(err)
    if not string.find(message, 'overflow', 1, true) then
      return redis.error_reply(message)  -- e.g. WRONGTYPE: this kick taken back, not retried
    end
    refused[#refused + 1] = k
  else
    bumped = bumped + F * T * count
  end
end
if #refused > 0 then
  return redis.error_reply('STASTE_OVERFLOW ' .. table.concat(refused, ' '))
end
return bumped
