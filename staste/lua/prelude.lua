-- The prelude of every staste script: scripts.source() puts it before each one, since a Redis
-- script cannot load another (and Redis 6.2 has no functions).
local call = redis.call
local find, sub = string.find, string.sub

-- 'a|b||c' -> {'a', 'b', '', 'c'}, 4: arguments are '|'-joined (escaped values hold no '|').
local function split(text)
  local out, n, at = {}, 0, 1
  while true do
    local bar = find(text, '|', at, true)
    n = n + 1
    if not bar then
      out[n] = sub(text, at)
      return out, n
    end
    out[n] = sub(text, at, bar - 1)
    at = bar + 1
  end
end


-- A numbered call of a writer (staste/buffer.py, staste/writers.py): `key` holds the number
-- of the writer's last call that ran, `seq` is this call's number, `prev` (optional) the
-- number of the call it follows.  A buffer sends calls before the replies of the calls before
-- them came back, so a call must not run when the one before it did not (it was refused, or
-- failed and took itself back: it will be sent again, then this one after it).  Answers the
-- script's reply when the call must write nothing: -1 when a call numbered no lower already
-- ran (this one's reply was lost and it was sent again), STASTE_GAP when the call before it
-- has not run; else nil, having claimed the number.  The second value is the number the key
-- held before (nil: none, or forgotten after `ttl` seconds without a call).
local function claim(key, seq, ttl, prev)
  local last = call('GET', key)
  if last and tonumber(last) >= tonumber(seq) then
    return -1, last
  end
  -- (a missing key with a predecessor is a gap too: the predecessor was refused before it
  -- wrote its number, or Redis lost the key; only the writer can tell which)
  if prev and tonumber(prev) > 0 and (not last or tonumber(last) < tonumber(prev)) then
    return redis.error_reply('STASTE_GAP ' .. (last or '0')), last
  end
  call('SET', key, seq, 'EX', ttl)
  return nil, last
end
