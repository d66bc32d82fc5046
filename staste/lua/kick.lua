-- One kick (or a batch of merged kicks) in one atomic call: expand every combination of
-- axis options server-side and bump its counters in each time bucket.
--
-- KEYS: T*F hashes, family-major (family f's bucket t at (f-1)*T+t), then the years set
--       (when ARGV[3] ~= ''), then one set of stored choices per stored axis.
-- ARGV: T, F, year, A (number of axes),
--       F pairs (field prefix, increment),
--       T ttls in seconds (0: keep forever),
--       for each axis: n options, options... (the first option is '*', every value),
--       for each stored-choices set: n members, members...
-- Returns the number of fields per hash.
local T = tonumber(ARGV[1])
local F = tonumber(ARGV[2])
local year = ARGV[3]
local A = tonumber(ARGV[4])
local i = 5

local prefixes, increments = {}, {}
for f = 1, F do
  prefixes[f] = ARGV[i]
  increments[f] = tonumber(ARGV[i + 1])
  i = i + 2
end

local ttls = {}
for t = 1, T do
  ttls[t] = tonumber(ARGV[i])
  i = i + 1
end

local fields = {''}
for a = 1, A do
  local n = tonumber(ARGV[i])
  i = i + 1
  local expanded = {}
  for _, base in ipairs(fields) do
    for o = 0, n - 1 do
      if a == 1 then
        expanded[#expanded + 1] = ARGV[i + o]
      else
        expanded[#expanded + 1] = base .. '|' .. ARGV[i + o]
      end
    end
  end
  i = i + n
  fields = expanded
end

for f = 1, F do
  local prefix, increment = prefixes[f], increments[f]
  for t = 1, T do
    local key = KEYS[(f - 1) * T + t]
    -- fields[1] is the every-value combination, written by every kick to this hash, so
    -- its new value equals the increment exactly when the hash was just created.
    local first = redis.call('HINCRBY', key, prefix .. fields[1], increment)
    for j = 2, #fields do
      redis.call('HINCRBY', key, prefix .. fields[j], increment)
    end
    if first == increment and ttls[t] > 0 then
      redis.call('EXPIRE', key, ttls[t])
    end
  end
end

local k = T * F + 1
if year ~= '' then
  redis.call('SADD', KEYS[k], year)
  k = k + 1
end
while k <= #KEYS do
  local n = tonumber(ARGV[i])
  redis.call('SADD', KEYS[k], unpack(ARGV, i + 1, i + n))
  i = i + n + 1
  k = k + 1
end
return #fields
