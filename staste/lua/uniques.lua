-- Unique ids (HyperLogLogs, one key per bucket and combination: keys.unique_prefix .. field).
--
-- ARGV[1] is the mode:
--
-- 'add' (a buffer flush; see staste/buffer.py): ARGV[2] is 'K' or 'K|seq|ttl|prev': K keys;
--   with seq (and prev: see claim() in prelude.lua), the last key is the writer's string
--   holding the number of its last call written, and a call numbered no higher already ran
--   (its reply was lost and it was sent again): the script answers -1 and writes nothing
--   (kick.lua's rule; PFADD is idempotent anyway, so a call run twice would not count an id
--   twice either).  Then, for each KEYS[k], 'ttl|n'
--   followed by its n ids: they are PFADDed to KEYS[k], which gets the ttl (0: none) when it
--   is created.  Returns the number of ids sent.  The caller bounds the ids of a call.
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
-- call, find, sub, split and claim: prelude.lua
local mode = ARGV[1]

if mode == 'add' then
  local header = split(ARGV[2])
  local K = tonumber(header[1])
  if header[2] then
    local refused = claim(KEYS[#KEYS], header[2], header[3], header[4])
    if refused then
      return refused
    end
  end
  local PIECE = 1000 -- unpack() of too many values overflows Lua's stack
  local ai, sent = 3, 0
  for k = 1, K do
    local spec = split(ARGV[ai])
    local ttl, n = tonumber(spec[1]), tonumber(spec[2])
    local key = KEYS[k]
    local new = call('EXISTS', key) == 0
    for at = ai + 1, ai + n, PIECE do
      call('PFADD', key, unpack(ARGV, at, math.min(at + PIECE - 1, ai + n)))
    end
    if new and ttl > 0 then
      call('EXPIRE', key, ttl)
    end
    sent = sent + n
    ai = ai + 1 + n
  end
  return sent
end

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
local call_limit, offset, wanted = tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4]), tonumber(ARGV[at + 5])

local members, stored = member_slice(KEYS[1], parent, offset, wanted)
if #members * (#KEYS - 1) > call_limit then
  return redis.error_reply('STASTE_RESLICE ' .. #stored)
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
return {members, counts, #stored, #members * (#KEYS - 1)}
