-- The baseline of benchmarks/large_axis.py: read.lua's 'axis' mode as it was at commit 37783c7,
-- for a flat axis, its member_slice (then in budget.lua) kept verbatim: every call lists the
-- whole set (SMEMBERS) and sorts it to take its slice of 2,000 members, so a read of n values
-- in n / 2,000 calls costs n² log n / 2,000.  The budget check is left out (for a flat axis it
-- was one SCARD a call).
--
-- KEYS[1]: the axis' set of stored members, KEYS[2..]: bucket hashes.  ARGV[1], ARGV[2]: the
-- field text before and after the member; ARGV[3], ARGV[4]: the first member (from 0, in sorted
-- order) and how many (0: to the end); ARGV[5..]: field prefixes (families).  Returns the
-- number of members and of counters present.
local call = redis.call

local function member_slice(set, offset, wanted)
  local stored = call('SMEMBERS', set)
  if offset > 0 or wanted > 0 then
    table.sort(stored)
  end
  local members = {}
  local last = wanted > 0 and offset + wanted or #stored
  for i = offset + 1, math.min(last, #stored) do
    members[#members + 1] = stored[i]
  end
  if wanted == 0 then
    members[#members + 1] = '!'
  end
  return members, stored
end

local before, after = ARGV[1], ARGV[2]
local offset, wanted = tonumber(ARGV[3]), tonumber(ARGV[4])
local prefixes = {unpack(ARGV, 5)}
local members = member_slice(KEYS[1], offset, wanted)
local fields = {}
for _, member in ipairs(members) do
  local combination = before .. member .. after
  for _, prefix in ipairs(prefixes) do
    fields[#fields + 1] = prefix .. combination
  end
end
local present = 0
local PIECE = 4000
for k = 2, #KEYS do
  local first = 1
  while first <= #fields do
    local last = math.min(first + PIECE - 1, #fields)
    for _, value in ipairs(call('HMGET', KEYS[k], unpack(fields, first, last))) do
      if value then
        present = present + 1
      end
    end
    first = last + 1
  end
end
return {#members, present}
