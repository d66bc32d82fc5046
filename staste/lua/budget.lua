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

-- The members of the stored-choices set `set` that one call of an axis read counts: the
-- children of `parent` among the stored members offset + 1 to offset + wanted (wanted = 0: to
-- the last, and then the overflow member after them; slices need one order for all, so the
-- members are sorted when sliced).  Also answers every member stored.
local function member_slice(set, parent, offset, wanted)
  local stored = call('SMEMBERS', set)
  if offset > 0 or wanted > 0 then
    table.sort(stored)
  end
  local members = {}
  local last = wanted > 0 and offset + wanted or #stored
  for i = offset + 1, math.min(last, #stored) do
    if is_child_of(parent, stored[i]) then
      members[#members + 1] = stored[i]
    end
  end
  if wanted == 0 then  -- the last slice of members
    members[#members + 1] = (parent == '' or parent == '*') and '!' or ('!' .. sub(parent, 2))
  end
  return members, stored
end

local function children_of(set, parent)
  if parent == '' then
    return call('SCARD', set)
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
