-- Unique ids (HyperLogLogs, one key per bucket and combination: keys.unique_prefix .. field),
-- read.  (ids.lua adds them.)
--
-- ARGV[1] is the mode:
--
-- 'count' and 'axis' (queries) take the budget of their batch after the mode (budget.lua: a
--   call whose batch would touch more counters than it allows reads nothing and answers
--   'STASTE_TOO_EXPENSIVE <counters> <limit>'), then their own arguments, from ARGV[A]:
--
-- 'count': the PFCOUNT of the union of KEYS (read.lua's budget gates it: a pipeline holding
--   axis reads sends its PFCOUNTs this way, so that nothing is read past the budget).
--
-- 'axis' (the distinct ids of each stored value of an axis over some buckets): read.lua's
--   'axis' mode with the same arguments, where KEYS[2..] are the buckets' key prefixes
--   (keys.unique_prefix) and the one family is '': each member's count is the PFCOUNT of the
--   union of prefix .. before .. member .. after over all the buckets (so a slice of members
--   always holds every bucket: counts of unions cannot be added up).  Answers {members,
--   counts as read.lua's sums (index, count, 0), stored, HyperLogLogs read}, and the same
--   error STASTE_RESLICE.
--
-- 'years' (query: the distinct ids of each year of all time): KEYS[1] the metrica's years set,
--   ARGV[2] and ARGV[3] what comes before and after the year in its key (the base .. 'u:' and
--   ':' .. field).  Answers {year, count, year, count...}.
-- call, find, sub and split: prelude.lua; within_budget and member_slice: budget.lua
local mode = ARGV[1]

if mode == 'years' then
  local members = call('SMEMBERS', KEYS[1])
  local out = {}
  for _, year in ipairs(members) do
    out[#out + 1] = year
    out[#out + 1] = call('PFCOUNT', ARGV[2] .. year .. ARGV[3])
  end
  return out
end

local at, refused = within_budget()
if not at then
  return refused
end

if mode == 'count' then
  return call('PFCOUNT', unpack(KEYS))
end

-- mode 'axis'
local before, after, parent = ARGV[at], ARGV[at + 1], ARGV[at + 2]
local call_limit = tonumber(ARGV[at + 3])
local part, parts = tonumber(ARGV[at + 4]), tonumber(ARGV[at + 5])
local first, wanted = tonumber(ARGV[at + 6]), tonumber(ARGV[at + 7])

local members, stored = member_slice(KEYS[1], parent, part, parts, first, wanted)
if #members * (#KEYS - 1) > call_limit then
  return redis.error_reply('STASTE_RESLICE ' .. stored)
end
local counts = {}
for i, member in ipairs(members) do
  local names = {}
  for b = 2, #KEYS do
    names[#names + 1] = KEYS[b] .. before .. member .. after
  end
  local count = call('PFCOUNT', unpack(names))
  if count > 0 then
    counts[#counts + 1], counts[#counts + 2], counts[#counts + 3] = i - 1, count, 0
  end
end
return {members, counts, stored, #members * (#KEYS - 1)}
