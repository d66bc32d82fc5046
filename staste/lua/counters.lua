-- Bump counters a buffer flush merged (see staste/buffer/): each distinct counter of the
-- flush once, by the sum of what its kicks add to it, in every time bucket of its family.
-- The stored-choices decisions were made before (choices.lua), so the fields are final.
--
-- ARGV[1]: the call's numbers (see numbered() in prelude.lua: a call that already ran, or
--   whose predecessor has not, writes nothing).
-- ARGV[2]: 'G|back': G groups; back = 1 takes counters back (adds the negated sums the caller
--   sends, and deletes a counter back at 0: no trace).
-- Then each group: 'n|every|y|year|T|ttl...|k...' followed by n counters, 'amount|field' each
--   (the field may hold '|'s: the amount is what comes before the first); every = 1 when the
--   first is the every-value field (its new value equals its amount exactly when the hash was
--   just created: then the hash gets its ttl, 0: none); KEYS[y] the metrica's years set and
--   the year to add to it (y = 0: none); the T hashes KEYS[k]... of the family's time buckets.
-- Returns the number of HINCRBYs run: the work the caller budgets (staste/buffer/calls.py).
--
-- A counter that would pass Redis' 64-bit limit: everything the call did is taken back (its
-- number too) and it answers 'STASTE_OVERFLOW' (the caller then writes the flush kick by kick,
-- kick.lua refusing exactly the kicks that overflow).  Any other error is answered the same
-- way, after taking back: the call wrote nothing.
-- call, find, sub, split and numbered: prelude.lua

local refused, unclaim = numbered()
if refused then
  return refused
end
local header = split(ARGV[2])
local G, back = tonumber(header[1]), header[2] == '1'

local groups, ai = {}, 3
for g = 1, G do
  local parts = split(ARGV[ai])
  local n, T = tonumber(parts[1]), tonumber(parts[5])
  local group = {n = n, every = parts[2] == '1', year = parts[4], keys = {}, ttls = {}, names = {}, amounts = {}}
  local y = tonumber(parts[3])
  group.years = y > 0 and KEYS[y] or nil
  for t = 1, T do
    group.ttls[t] = tonumber(parts[5 + t])
    group.keys[t] = KEYS[tonumber(parts[5 + T + t])]
  end
  for j = 1, n do
    local counter = ARGV[ai + j]
    local bar = find(counter, '|', 1, true)
    group.amounts[j], group.names[j] = sub(counter, 1, bar - 1), sub(counter, bar + 1)
  end
  groups[g] = group
  ai = ai + 1 + n
end

local at_g, at_t, at_j = 0, 0, 0  -- the HINCRBY write() is at
local added = {}  -- years set, year: what this call added, taken back on failure
local years_seen = {}  -- years set .. '|' .. year: added once a call (groups share their year)

local function write()
  local done = 0
  for g = 1, G do
    local group = groups[g]
    at_g, at_t, at_j = g, 0, 0
    local year_id = group.years and not back and (group.years .. '|' .. group.year)
    if year_id and not years_seen[year_id] then
      years_seen[year_id] = true
      if call('SADD', group.years, group.year) == 1 then
        added[#added + 1], added[#added + 2] = group.years, group.year
      end
    end
    local names, amounts, n = group.names, group.amounts, group.n
    for t = 1, #group.keys do
      at_t = t
      local key = group.keys[t]
      for j = 1, n do
        at_j = j
        local value = call('HINCRBY', key, names[j], amounts[j])
        if back then
          if value == 0 then
            call('HDEL', key, names[j])
          end
        elseif j == 1 and group.every and value == tonumber(amounts[1]) and group.ttls[t] > 0 then
          call('EXPIRE', key, group.ttls[t])
        end
      end
      done = done + n
    end
  end
  return done
end

local ok, result = pcall(write)
if ok then
  return result
end
for g = 1, at_g do
  local group = groups[g]
  for t = 1, (g == at_g) and at_t or #group.keys do
    local key = group.keys[t]
    for j = 1, (g == at_g and t == at_t) and (at_j - 1) or group.n do
      local name, amount = group.names[j], group.amounts[j]
      local back_amount = sub(amount, 1, 1) == '-' and sub(amount, 2) or ('-' .. amount)
      if tonumber(amount) == 0 then
        if call('HGET', key, name) == '0' then
          call('HDEL', key, name)
        end
      elseif call('HINCRBY', key, name, back_amount) == 0 then
        call('HDEL', key, name)
      end
    end
  end
end
for i = 1, #added, 2 do
  call('SREM', added[i], added[i + 1])
end
-- Nothing was written: the same call may be sent again (after a refusal) and must then run.
unclaim()
local message = type(result) == 'table' and result.err or tostring(result)
if find(message, 'overflow', 1, true) then
  return redis.error_reply('STASTE_OVERFLOW')
end
return redis.error_reply(message)
