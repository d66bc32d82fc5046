-- What every read script (read.lua, uniques.lua) checks before it reads anything: the work
-- budget of the whole batch it belongs to.  scripts.source() puts this after prelude.lua.
--
-- The reads of one pipeline (an admin page reading several breakdowns at once) each cost what
-- their axis holds, which only Redis knows; so every call of the batch is given the same
-- description of all of them and counts their sum itself, before reading anything.  Every
-- call counts the same sum, so either all of them read or none does.
--
-- ARGV[2]: the most counters the batch may touch (0: no bound); ARGV[3]: the number of terms;
-- then three arguments a term: a key, a parent and a weight.  A term of weight 0 is a hash of
-- which every field is read (HLEN); any other is an axis' set of stored values, of which each
-- child of the parent (see is_child_of) and the overflow part cost weight counters.

-- Whether the stored value ``member`` is a child of ``parent``: '' for a flat axis (every
-- value), '*' for the root of a hierarchical axis, else the node's path part ('=out/se').
-- The one member filter: the budget counts with it what the axis reads of read.lua ('axis',
-- 'scan') and uniques.lua ('axis') read with it.
local function is_child_of(parent, member)
  if parent == '' then
    return true
  end
  if parent == '*' then
    return find(member, '/', 1, true) == nil
  end
  local head = parent .. '/'
  if sub(member, 1, #head) ~= head then
    return false
  end
  return find(member, '/', #head + 1, true) == nil
end

-- The reverse of the `bits` low bits of x (an SSCAN cursor walks bucket indexes so).
local function reversed_bits(x, bits)
  local y = 0
  for _ = 1, bits do
    y = y * 2 + x % 2
    x = math.floor(x / 2)
  end
  return y
end

-- Every member of the hashtable set `set` whose bucket index ends in the bits `part` (of
-- `parts`, a power of two): one part of a partition of the set that does not depend on the
-- size of its table.
--
-- Why it works: SSCAN's cursor is a bucket index walked in reverse-binary order (the high bits
-- fastest), so the buckets whose index ends in `part` come in one run, from cursor `part` to
-- the first cursor of the next part; and a member's bucket index ends in the same low bits of
-- its hash whatever the table's size (at least `parts`), resizes and rehashing between calls
-- included.  A page of SSCAN may run past the run's end: such a page is read again in smaller
-- pages, down to one bucket at a time (COUNT 1 stops at the first bucket holding members), and
-- a bucket past the run is left out.  Costs the part's buckets: a whole read costs the set
-- once, however many parts.
local function part_members(set, part, parts)
  local bits = 0
  while 2 ^ bits < parts do
    bits = bits + 1
  end
  local run = reversed_bits(part, bits)
  local next_part = run + 1 < parts and reversed_bits(run + 1, bits) or 0
  local members, seen = {}, {}
  local cursor, count = tostring(part), 100
  while true do
    local page = call('SSCAN', set, cursor, 'COUNT', count)
    local after = tonumber(page[1])
    local inside = after ~= 0 and after % parts == part
    if inside or after == next_part then
      for _, member in ipairs(page[2]) do
        if not seen[member] then  -- (a shrinking table may give a member twice)
          seen[member] = true
          members[#members + 1] = member
        end
      end
      if not inside then
        return members
      end
      cursor = page[1]
    elseif count > 1 then
      count = math.floor(count / 4)  -- this page ran past the part: read it again in smaller ones
    else
      return members  -- the bucket it found is past the part
    end
  end
end

-- The members of the stored-choices set `set` that one call of an axis read counts, and the
-- number of members stored.  The set is cut into `parts` parts (a power of two; 1: the whole
-- set) and each part, sorted, into slices: this call counts members `first` + 1 to `first` +
-- `wanted` of part `part` (wanted = 0: to the last, and then, in the last part, the overflow
-- member), those that are children of `parent`.
--
-- Why parts: a call costs what its part holds, not the whole set, so reading an axis of n
-- values costs n once (a slice of the sorted set cost n log n a call: n² over the read).  A
-- compact set (intset or listpack, at most set-max-*-entries members) and a set too small for
-- its parts (planned for a size it no longer has) are cut by rank instead.
local function member_slice(set, parent, part, parts, first, wanted)
  local size = call('SCARD', set)
  local pool
  if parts == 1 then
    pool = call('SMEMBERS', set)
  elseif size >= 5 * parts and call('OBJECT', 'ENCODING', set) == 'hashtable' then
    -- (a table holds at least a fifth of a member a bucket, so it has at least `parts` buckets)
    pool = part_members(set, part, parts)
  else
    local all = call('SMEMBERS', set)
    table.sort(all)
    pool = {}
    for i = part + 1, #all, parts do
      pool[#pool + 1] = all[i]
    end
  end
  if first > 0 or wanted > 0 then
    table.sort(pool)  -- slices of a part need one order for all
  end
  local members = {}
  local last = wanted > 0 and first + wanted or #pool
  for i = first + 1, math.min(last, #pool) do
    if is_child_of(parent, pool[i]) then
      members[#members + 1] = pool[i]
    end
  end
  if wanted == 0 and part == parts - 1 then  -- the last slice of members
    members[#members + 1] = (parent == '' or parent == '*') and '!' or ('!' .. sub(parent, 2))
  end
  return members, size
end

-- The values of `set` a read of `parent`'s children costs.  Counting a node's children lists
-- the set, and every call of a batch counts: so past CHILDREN_LISTED members the whole set is
-- charged instead (SCARD, an upper bound read at once; the read scans that many members
-- anyway), and no call lists a large set.
local CHILDREN_LISTED = 4096
local function children_of(set, parent)
  local size = call('SCARD', set)
  if parent == '' or size > CHILDREN_LISTED then
    return size
  end
  local n = 0
  for _, member in ipairs(call('SMEMBERS', set)) do
    if is_child_of(parent, member) then
      n = n + 1
    end
  end
  return n
end

-- The counters the batch's terms will touch, and the index of the first argument after them.
local function batch_work()
  local after = 4 + 3 * tonumber(ARGV[3])
  local work = 0
  for i = 4, after - 1, 3 do
    local weight = tonumber(ARGV[i + 2])
    if weight == 0 then
      work = work + call('HLEN', ARGV[i])
    else
      work = work + (children_of(ARGV[i], ARGV[i + 1]) + 1) * weight
    end
  end
  return work, after
end

-- The index of the first argument after the budget, or nil and the error reply to return:
-- 'STASTE_TOO_EXPENSIVE <counters> <limit>'.
local function within_budget()
  local limit = tonumber(ARGV[2])
  if limit == 0 then
    return 4 + 3 * tonumber(ARGV[3])
  end
  local work, after = batch_work()
  if work > limit then
    return nil, redis.error_reply('STASTE_TOO_EXPENSIVE ' .. work .. ' ' .. limit)
  end
  return after
end
