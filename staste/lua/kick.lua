-- Write kicks (one for a plain kick(); a batch for the buffer's overflow fallback, or a test
-- that decides stored choices in order) in one atomic call: for each kick, expand every
-- combination of axis options server-side and bump its counters in each time bucket, kick by
-- kick, so that a kick that would overflow a counter is refused alone.  (Merging the counters
-- of many kicks is the buffer's job, in Python: staste/kicks.py, then counters.lua.)
--
-- Arguments are few and '|'-separated (no part, prefix or number can hold a '|': values are
-- escaped): every argument costs the client and the server more than splitting one does.
-- KEYS are listed once each, in any order; arguments name them by their index in KEYS.
-- ARGV[1]: the call's numbers (see numbered() in prelude.lua: a call that already ran, or whose
--   predecessor has not, writes nothing).
-- ARGV[2]: 'N|G', N kicks and G counter groups.
-- Then G groups, one argument each, 'prefix|ttl|...|k|...': one counter family in T time
--   buckets: its fields start with prefix, its T ttls in seconds (0: keep forever) are set
--   when a hash is created, and its T hashes are KEYS[k]... (groups share keys: kicks of
--   two minutes share their hour, day... buckets).
-- Then, for each kick, 1 + A arguments (one more when its metrica keeps only some
--   combinations, and 2 + T + n more with unique ids):
--   'A|y|year|g|increment|g|increment...': its A axes (written 'Ac' when its metrica keeps
--     only some combinations of axes, 'Au' when the kick has unique ids, 'Acu' both: they
--     follow its axes, see below); KEYS[y] its metrica's years set and
--     the year to add to it (y = 0 and year '' when no year bucket); the groups it bumps,
--     each by its increment;
--   for each axis, 'cap|s|option|...': KEYS[s] the axis' stored-choices set (s = 0 when it
--     stores none), then its options (the first is '*', every value):
--     cap -1: the axis stores no choices;
--     cap  0: its options (after the first) are added to its set of stored choices;
--     cap  k: likewise, but once the set holds k members a new value is counted under an
--             overflow part instead (and is not stored): '!' for a value (or the top node
--             of a path), '!' .. the parent's path for a deeper node of a hierarchical
--             value (so '=out/se' overflowing below '=out' counts under '!out'); the
--             deeper levels of that path are not counted at all.  Kicks are decided in
--             their order in the batch, against the set as the earlier kicks left it.
--   with kept combinations ('c'): 'mask|mask...', the sets of axes whose fields are kept
--     (staste/combinations.py), each a text of A '0'/'1' (1: the axis is fixed), the empty
--     set first (its field, every value, is the first written: see write()); only the
--     fields of those sets are counted.  Without 'c', every combination is.
--   with unique ids ('u'): 'T|n|ttl...', then the sets of axes that keep HyperLogLogs
--     ('mask|mask...' as above; '': the fields counted), then T key prefixes
--     (keys.unique_prefix: the buckets that keep uniques), then n ids.  Once the kick's
--     counters are written, the ids are PFADDed to the HyperLogLog prefix .. field of each
--     of its kept combinations (as decided above, overflow parts included) in each of those
--     buckets; a key created gets its ttl
--     (0: none).  These keys are built here from their prefixes, not listed in KEYS: they
--     share the metrica's hash tag, so they are in the slot of every other key of the call.
--     A kick refused (overflow) adds no id.  PFADD is idempotent: a batch written again
--     kick by kick adds nothing twice.
-- Returns the number of HINCRBYs run.
--
-- A kick that would push a counter past Redis' 64-bit limit is taken back entirely (its
-- counters, and the stored values and year it added) and the others are still written; the
-- script then answers the error 'STASTE_OVERFLOW <kick numbers>' naming the refused kicks.
--
-- Hot path: every redis.call costs more than the Lua around it, so a member already
-- stored costs one SISMEMBER (no SADD).
-- call, find, sub, split and numbered: prelude.lua

local refused = numbered()
if refused then
  return refused
end
local header = split(ARGV[2])
local N, G = tonumber(header[1]), tonumber(header[2])

local groups = {}  -- g -> {prefix = ..., keys = {key...}, ttls = {ttl...}}
for g = 1, G do
  local parts, n = split(ARGV[2 + g])
  local T = (n - 1) / 2
  local group = {prefix = parts[1], keys = {}, ttls = {}}
  for t = 1, T do
    group.ttls[t] = tonumber(parts[1 + t])
    group.keys[t] = KEYS[tonumber(parts[1 + T + t])]
  end
  groups[g] = group
end
local FIRST_KICK = G + 3

-- A kick's axis count, how many arguments its kept combinations take (0: every one is
-- kept, 1) and its unique ids (0: none), after its axes.
local function kick_shape(parts, ai)
  local head = parts[1]
  local _, _, digits, flags = find(head, '^(%d+)(%a*)$')
  local A = tonumber(digits)
  local C = find(flags, 'c', 1, true) and 1 or 0
  if not find(flags, 'u', 1, true) then
    return A, C, 0
  end
  local spec = split(ARGV[ai + 1 + A + C])
  return A, C, 2 + tonumber(spec[1]) + tonumber(spec[2])
end

local byte, concat = string.byte, table.concat
local ONE = byte('1')

-- The fields of the kept sets of axes `masks` ('mask|mask...', see the header; nil: every
-- combination), given each axis' options (the first '*', every value).
local function expand(all_options, A, masks)
  if masks == nil then
    local fields, count = {''}, 1
    for a = 1, A do
      local options = all_options[a]
      if a == 1 then
        fields, count = {}, #options
        for o = 1, count do
          fields[o] = options[o]
        end
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
    return fields, count
  end
  local fields, count = {}, 0
  -- Every axis one value besides '*' (flat axes, each given): a kept set's field is one concat
  -- of its pieces, without the intermediate strings and tables of the general expansion below
  -- (which a synchronous kick of a wide metrica otherwise spends most of its Lua time on).
  local flat = true
  for a = 1, A do
    if #all_options[a] ~= 2 then
      flat = false
      break
    end
  end
  if flat then
    local pieces = {}
    for _, mask in ipairs((split(masks))) do
      for a = 1, A do
        pieces[a] = all_options[a][byte(mask, a) == ONE and 2 or 1]
      end
      count = count + 1
      fields[count] = concat(pieces, '|', 1, A)
    end
    return fields, count
  end
  for _, mask in ipairs((split(masks))) do
    local partial, n = {''}, 1
    for a = 1, A do
      local options = all_options[a]
      local glue = (a == 1) and '' or '|'
      local expanded, e = {}, 0
      if sub(mask, a, a) == '1' then
        for j = 1, n do
          local head = partial[j] .. glue
          for o = 2, #options do
            e = e + 1
            expanded[e] = head .. options[o]
          end
        end
      else
        local star = glue .. options[1]
        for j = 1, n do
          expanded[j] = partial[j] .. star
        end
        e = n
      end
      partial, n = expanded, e
    end
    for j = 1, n do
      count = count + 1
      fields[count] = partial[j]
    end
  end
  return fields, count
end

-- PFADD a kick's ids (its spec argument at ui) to each kept combination's HyperLogLog.
local ID_PIECE = 1000  -- unpack() of too many values overflows Lua's stack
local function add_uniques(ui, all_options, A, counted, counted_count)
  local spec = split(ARGV[ui])
  local T, n = tonumber(spec[1]), tonumber(spec[2])
  local fields, count = counted, counted_count
  if ARGV[ui + 1] ~= '' then
    fields, count = expand(all_options, A, ARGV[ui + 1])
  end
  ui = ui + 1
  local first_id, last_id = ui + T + 1, ui + T + n
  for t = 1, T do
    local prefix, ttl = ARGV[ui + t], tonumber(spec[2 + t])
    for j = 1, count do
      local key = prefix .. fields[j]
      local new = call('EXISTS', key) == 0
      for at = first_id, last_id, ID_PIECE do
        call('PFADD', key, unpack(ARGV, at, math.min(at + ID_PIECE - 1, last_id)))
      end
      if new and ttl > 0 then
        call('EXPIRE', key, ttl)
      end
    end
  end
end

-- The options of one axis argument, deciding what is stored; `added` collects the members
-- the kick added (set, member, set, member...), to take them back if it is refused.
local function axis_options(text, added)
  local given, size = split(text)  -- cap, set index, then the options
  local cap, n = tonumber(given[1]), size - 2
  local options = {given[3]}
  if cap < 0 then
    for o = 2, n do
      options[o] = given[o + 2]
    end
    return options
  end
  local set = KEYS[tonumber(given[2])]
  for o = 2, n do
    local member = given[o + 2]
    local stored
    if cap == 0 then
      if call('SADD', set, member) == 1 then
        added[#added + 1], added[#added + 2] = set, member
      end
      stored = true
    elseif call('SISMEMBER', set, member) == 1 then
      stored = true
    elseif call('SCARD', set) < cap then
      call('SADD', set, member)
      added[#added + 1], added[#added + 2] = set, member
      stored = true
    else
      stored = false
    end
    if not stored then
      options[o] = (o == 2) and '!' or ('!' .. sub(options[o - 1], 2))
      break
    end
    options[o] = member
  end
  return options
end

-- The kept combinations of a kick's axis options: its field names (before the group
-- prefix), and each axis' options (for its HyperLogLogs).
local function kick_fields(ai, A, C, added)
  local all_options = {}
  for a = 1, A do
    all_options[a] = axis_options(ARGV[ai + a], added)
  end
  local fields, count = expand(all_options, A, C > 0 and ARGV[ai + A + 1] or nil)
  return fields, count, all_options
end

local function add_year(parts, added)
  local y, year = tonumber(parts[2]), parts[3]
  if y == 0 or year == '' then
    return
  end
  if call('SADD', KEYS[y], year) == 1 then
    added[#added + 1], added[#added + 2] = KEYS[y], year
  end
end

local function take_back_members(added)
  for i = 1, #added, 2 do
    call('SREM', added[i], added[i + 1])
  end
end

local function negated(increment)
  if sub(increment, 1, 1) == '-' then
    return sub(increment, 2)
  end
  return '-' .. increment
end

-- Take back `amount` (a string) from one counter; a counter back at 0 leaves no trace.
local function take_back(key, name, amount)
  if tonumber(amount) == 0 then
    if call('HGET', key, name) == '0' then
      call('HDEL', key, name)  -- absent reads as 0
    end
  elseif call('HINCRBY', key, name, negated(amount)) == 0 then
    call('HDEL', key, name)
  end
end

-- The counter write() is at: the group (of the kick's list), bucket and field.
local at_f, at_t, at_j

-- Bump one kick's counters: every field in every bucket of every group it names.
local function write(parts, F, fields, count)
  for f = 1, F do
    at_f = f
    local group, increment = groups[tonumber(parts[2 + 2 * f])], parts[3 + 2 * f]
    local prefix, amount = group.prefix, tonumber(increment)
    local named = fields
    if prefix ~= '' then
      named = {}
      for j = 1, count do
        named[j] = prefix .. fields[j]
      end
    end
    for t = 1, #group.keys do
      at_t, at_j = t, 1
      local key = group.keys[t]
      -- named[1] is the every-value combination, written by every kick to this hash, so
      -- its new value equals the increment exactly when the hash was just created.
      local first = call('HINCRBY', key, named[1], increment)
      for j = 2, count do
        at_j = j
        call('HINCRBY', key, named[j], increment)
      end
      if first == amount then
        local ttl = group.ttls[t]
        if ttl > 0 then
          call('EXPIRE', key, ttl)
        end
      end
    end
  end
end

-- Kick by kick: each refused whole when it would overflow a counter.
local function exact()
  local ai, bumped, refused = FIRST_KICK, 0, {}
  for k = 1, N do
    local parts, size = split(ARGV[ai])
    local A, C, U = kick_shape(parts, ai)
    local F = (size - 3) / 2
    local added = {}
    add_year(parts, added)
    local fields, count, all_options = kick_fields(ai, A, C, added)
    local ui = ai + 1 + A + C
    ai = ui + U
    -- HINCRBY refuses (and leaves alone) a counter it would overflow: the error ends
    -- write() at the counter in (at_f, at_t, at_j), so what it bumped can be taken back.
    -- (pcall costs once per kick; checking each HINCRBY's reply would cost once per counter.)
    at_f = nil
    local ok, err = pcall(write, parts, F, fields, count)
    if ok then
      for f = 1, F do
        bumped = bumped + #groups[tonumber(parts[2 + 2 * f])].keys * count
      end
      if U > 0 then
        add_uniques(ui, all_options, A, fields, count)
      end
    else
      for f = 1, at_f or 0 do
        local group, increment = groups[tonumber(parts[2 + 2 * f])], parts[3 + 2 * f]
        local last_t = (f == at_f) and at_t or #group.keys
        for t = 1, last_t do
          local key = group.keys[t]
          for j = 1, (f == at_f and t == at_t) and (at_j - 1) or count do
            take_back(key, group.prefix .. fields[j], increment)
          end
        end
      end
      take_back_members(added)
      -- Redis 7 raises the error reply as a table, Redis 6 as its text.
      local message = type(err) == 'table' and err.err or tostring(err)
      if not find(message, 'overflow', 1, true) then
        return redis.error_reply(message)  -- e.g. WRONGTYPE: this kick taken back, not retried
      end
      refused[#refused + 1] = k
    end
  end
  if #refused > 0 then
    return redis.error_reply('STASTE_OVERFLOW ' .. table.concat(refused, ' '))
  end
  return bumped
end

return exact()
