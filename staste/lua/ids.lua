-- Add the unique ids of a buffer flush (kick(unique=...), see staste/buffer/) to their
-- HyperLogLogs: one key per bucket and combination (keys.unique_prefix .. field).  Reading
-- them is uniques.lua's job.
--
-- ARGV[1]: the call's numbers (see numbered() in prelude.lua: a call that already ran, or whose
--   predecessor has not, writes nothing; PFADD is idempotent anyway, so a call run twice would
--   not count an id twice either, but the calls after it must still wait for it).
-- ARGV[2]: K, the number of HyperLogLogs; then, for each KEYS[k], 'ttl|n' followed by its n
--   ids: they are PFADDed to KEYS[k], which gets the ttl (0: none) when it is created.
-- Returns the number of ids sent: the work the caller budgets (staste/buffer/calls.py).
-- call, find, sub, split and numbered: prelude.lua

local refused = numbered()
if refused then
  return refused
end
local PIECE = 1000 -- unpack() of too many values overflows Lua's stack
local ai, sent = 3, 0
for k = 1, tonumber(ARGV[2]) do
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
