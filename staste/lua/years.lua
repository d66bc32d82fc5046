-- Read the counters of every stored year (all time, iterated by year), within the budget.
--
-- KEYS[1]: the set of stored years ('2010', ...), which only kick.lua and counters.lua (a buffer
-- flush) write, from dates.
-- ARGV[1]: 'years'; then the budget of the batch (budget.lua: the years are counted by Redis,
-- (years + 1) x families, before anything is read; past it 'STASTE_TOO_EXPENSIVE'); then, from
-- ARGV[A]: the key prefix of the year hashes (the metrica's base), the field, the part of the
-- years this call reads and the number of parts (budget.lua's member_slice: up to 9,999 years
-- are read in calls of at most reads.SLICE_WORK counters), the most counters this call may
-- read (past it 'STASTE_RESLICE <years>': the set outgrew the parts), and the field prefixes
-- to read for each year ('' for the sum, '#' for the count).
-- Returns a flat list: year, value per prefix, year, value per prefix, ...
-- (An absent counter is false, which reaches the client as nil.)
local at, refused = within_budget()
if not at then
  return refused
end
local base, field = ARGV[at], ARGV[at + 1]
local part, parts, call_limit = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
local fields = {}
for p = at + 5, #ARGV do
  fields[#fields + 1] = ARGV[p] .. field
end
local years, stored = member_slice(KEYS[1], '', part, parts, 0, 0)
if #years * #fields > call_limit then
  return redis.error_reply('STASTE_RESLICE ' .. stored)
end

local out = {}
for _, year in ipairs(years) do
  if year ~= '!' then  -- (member_slice ends the last part with the overflow member: no year)
    local values = call('HMGET', base .. year, unpack(fields))
    out[#out + 1] = year
    for p = 1, #fields do
      out[#out + 1] = values[p] or false
    end
  end
end
return out
