-- Read, in one call, the counters of every stored year (all time, iterated by year).
--
-- KEYS[1]: the set of stored years ('2010', ...), which only kick.lua and counters.lua (a buffer flush) write, from dates.
-- ARGV[1]: the key prefix of the year hashes (the metrica's base); ARGV[2]: the field.
-- ARGV[3..]: field prefixes to read for each year ('' for the sum, '#' for the count).
-- Returns a flat list: year, value per prefix, year, value per prefix, ...
-- (An absent counter is false, which reaches the client as nil.)
local years = redis.call('SMEMBERS', KEYS[1])
local base, field = ARGV[1], ARGV[2]
local fields = {}
for p = 3, #ARGV do
  fields[#fields + 1] = ARGV[p] .. field
end

local out = {}
for _, year in ipairs(years) do
  local values = redis.call('HMGET', base .. year, unpack(fields))
  out[#out + 1] = year
  for p = 1, #fields do
    out[#out + 1] = values[p] or false
  end
end
return out
