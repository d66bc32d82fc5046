-- Read counters of many buckets in one call, with the reply as small as the question allows.
-- A query plans its slices so that no call reads more than reads.SLICE_WORK counters (about a
-- millisecond of Redis time), and a scan no more than one hash of reads.SCAN_FIELDS fields
-- (staste/reads.py; docs/queries.md, "What one call is given").
--
-- ARGV[1] is the mode; then the budget of the batch the call belongs to (budget.lua: a call
-- whose batch would touch more counters than it allows reads nothing and answers
-- 'STASTE_TOO_EXPENSIVE <counters> <limit>'); then the mode's arguments, numbered below from
-- A, the first of them:
--
-- 'rows': KEYS are bucket hashes, ARGV[A..] fields.  Returns every field of every key, flat
--   (key 1's fields, then key 2's...); an absent counter is false (nil for the client).
--   A series of 1,441 minutes is one reply of 1,441 values instead of 1,441 replies.
--
-- 'sparse': as 'rows', but returns only the counters present, as triplets: the key's index and
--   the field's (from 0), and the value.  For histograms, whose 102 fields are mostly absent.
--
-- 'sums': KEYS are bucket hashes, ARGV[A..] fields.  Adds each field up over the keys and
--   returns, for each field present in some key, three numbers: its index (from 0) and the
--   sum as low + high * 10^9 (see add below).  Fields absent everywhere are left out.
--
-- 'axis': KEYS[1] is an axis' set of stored members, KEYS[2..] bucket hashes.
--   ARGV[A], ARGV[A+1]: the field text before and after the member; ARGV[A+2]: the parent path
--   part for a hierarchical axis ('' for a flat axis, '*' for the root); ARGV[A+3]: the most
--   counters this call may touch; ARGV[A+4], ARGV[A+5]: the part of the set this call reads
--   and the number of parts (a power of two: budget.lua's member_slice); ARGV[A+6], ARGV[A+7]:
--   the first member of the part (from 0, in sorted order) and how many (0: to the end);
--   ARGV[A+8..]: field prefixes (families).
--   Sums each member's fields over the buckets; returns {members, sums, stored, work} where
--   sums are triplets as in 'sums' (the index counting member by member, family by family),
--   stored the size of the set and work the counters read.  The overflow member ('!' or
--   '!' .. parent) comes after the stored ones, in the last slice.  Reads nothing and answers
--   'STASTE_RESLICE <stored>' when this call would touch more than ARGV[A+3] (the client
--   sliced it for fewer members than the axis now holds), and the client slices it again.
--
-- Members are filtered by budget.lua's is_child_of, as the budget counts them.
--
-- 'work': the counters the budget's terms would touch (a cluster, whose calls go one by one,
--   checks a batch spread over several hash slots first, slot by slot).
local mode = ARGV[1]
if mode == 'work' then
  return (batch_work())
end
local at, refused = within_budget()
if not at then
  return refused
end

-- Lua numbers are doubles: exact up to 2^53.  Counters are 64-bit integers, so a counter of
-- more than 12 digits is split into its last 9 digits and the rest, each summed on its own
-- (exact for any 64-bit counter over thousands of buckets); smaller ones take the fast path.
local lows, highs, seen = {}, {}, {}
local function add(i, text)
  if #text <= 12 then
    lows[i] = (lows[i] or 0) + tonumber(text)
  else
    local sign = 1
    if string.sub(text, 1, 1) == '-' then
      sign, text = -1, string.sub(text, 2)
    end
    local n = #text
    lows[i] = (lows[i] or 0) + sign * tonumber(string.sub(text, n - 8))
    highs[i] = (highs[i] or 0) + sign * tonumber(string.sub(text, 1, n - 9))
  end
  seen[i] = true
end

-- HMGET in pieces: unpack() of too many values overflows Lua's stack.
local PIECE = 4000
local function hmget(key, fields, each)
  local total = #fields
  local first = 1
  while first <= total do
    local last = math.min(first + PIECE - 1, total)
    local values = redis.call('HMGET', key, unpack(fields, first, last))
    for j = 1, #values do
      each(first + j - 1, values[j])
    end
    first = last + 1
  end
end

local function summed(count)
  local out = {}
  for i = 1, count do
    if seen[i] then
      out[#out + 1] = i - 1
      out[#out + 1] = lows[i]
      out[#out + 1] = highs[i] or 0
    end
  end
  return out
end

local function sum_keys(first_key, fields)
  for k = first_key, #KEYS do
    hmget(KEYS[k], fields, function(i, value)
      if value then
        add(i, value)
      end
    end)
  end
end

if mode == 'rows' then
  local fields = {unpack(ARGV, at)}
  local out = {}
  for k = 1, #KEYS do
    hmget(KEYS[k], fields, function(_, value)
      out[#out + 1] = value or false
    end)
  end
  return out
end

if mode == 'sparse' then -- 'rows' of mostly absent counters (histograms): only those present
  local fields = {unpack(ARGV, at)}
  local out = {}
  for k = 1, #KEYS do
    hmget(KEYS[k], fields, function(i, value)
      if value then
        out[#out + 1] = k - 1
        out[#out + 1] = i - 1
        out[#out + 1] = value
      end
    end)
  end
  return out
end

if mode == 'sums' then
  local fields = {unpack(ARGV, at)}
  sum_keys(1, fields)
  return summed(#fields)
end

if mode == 'scan' then
  -- KEYS[1]: one bucket hash of histogram families ('~' and a number).  ARGV[A], ARGV[A+1],
  -- ARGV[A+2]: before, after and parent as in 'axis'; ARGV[A+3]: the most fields to scan,
  -- past which the client reads the values' fields instead ('STASTE_HMGET'); ARGV[A+4..]: the
  -- families.  Sums every field of the hash whose combination is some value of the axis
  -- between before and after: a histogram holds few of its 102 fields per value, so reading
  -- what is there beats asking for every field of every value.  Returns {members, sums, -1,
  -- fields scanned} as 'axis' does.  (The budget counts the whole hash: a term of weight 0.)
  local before, after, parent = ARGV[at], ARGV[at + 1], ARGV[at + 2]
  local scan_max = tonumber(ARGV[at + 3])
  local size = call('HLEN', KEYS[1])
  if size > scan_max then
    return redis.error_reply('STASTE_HMGET ' .. size)
  end
  local family = {}
  local first_family = at + 4
  local families = #ARGV - first_family + 1
  for f = first_family, #ARGV do
    family[ARGV[f]] = f - first_family
  end
  local overflow = (parent == '' or parent == '*') and '!' or ('!' .. string.sub(parent, 2))
  local index, members = {}, {}
  -- Redis' own glob keeps only the fields of this layout (in C, far cheaper than in Lua).
  local function glob(text)
    return (string.gsub(text, '[%*%?%[%]\\]', '\\%0'))
  end
  local pattern = '~*' .. glob(before) .. '*' .. glob(after)
  local all, cursor = {}, '0'
  repeat
    local page = redis.call('HSCAN', KEYS[1], cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = page[1]
    for _, item in ipairs(page[2]) do
      all[#all + 1] = item
    end
  until cursor == '0'
  for i = 1, #all, 2 do
    local name = all[i]
    local prefix = string.match(name, '^~%d+')
    local f = prefix and family[prefix]
    if f then
      local combination = string.sub(name, #prefix + 1)
      if string.sub(combination, 1, #before) == before
        and (after == '' or string.sub(combination, -#after) == after) then
        local member = string.sub(combination, #before + 1, #combination - #after)
        if member ~= '*' and string.find(member, '|', 1, true) == nil
          and (member == overflow or (string.sub(member, 1, 1) ~= '!' and is_child_of(parent, member))) then
          local m = index[member]
          if not m then
            members[#members + 1] = member
            m = #members
            index[member] = m
          end
          add((m - 1) * families + f + 1, all[i + 1])
        end
      end
    end
  end
  return {members, summed(#members * families), -1, size}
end

-- mode 'axis'
local before, after, parent = ARGV[at], ARGV[at + 1], ARGV[at + 2]
local call_limit = tonumber(ARGV[at + 3])
local part, parts = tonumber(ARGV[at + 4]), tonumber(ARGV[at + 5])
local first, wanted = tonumber(ARGV[at + 6]), tonumber(ARGV[at + 7])
local prefixes = {unpack(ARGV, at + 8)}

local members, stored = member_slice(KEYS[1], parent, part, parts, first, wanted)
if #members * #prefixes * (#KEYS - 1) > call_limit then
  return redis.error_reply('STASTE_RESLICE ' .. stored)
end
local fields = {}
for _, member in ipairs(members) do
  local combination = before .. member .. after
  for _, prefix in ipairs(prefixes) do
    fields[#fields + 1] = prefix .. combination
  end
end
sum_keys(2, fields)
return {members, summed(#fields), stored, #fields * (#KEYS - 1)}
