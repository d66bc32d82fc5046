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


-- A numbered call (staste/numbering.py owns the format and the rules): ARGV[1] is
-- 'number|ttl|prev', or '' for a call not numbered; KEYS[#KEYS] is then the writer's key,
-- holding the number of its last call that ran.  The script's own arguments start at ARGV[2].
-- Answers the reply of a call that must write nothing: -1 when it already ran (a copy sent
-- again), STASTE_GAP when the call it follows has not run or the key is gone; else nil and a
-- function that puts the key back as it was, for a call that takes itself back.
local function numbered()
  if ARGV[1] == '' then
    return nil, function() end
  end
  local numbers = split(ARGV[1])
  local key, number, ttl, prev = KEYS[#KEYS], tonumber(numbers[1]), numbers[2], tonumber(numbers[3])
  local held = call('GET', key)
  local last = tonumber(held)
  if last and last >= number then
    return -1
  end
  if prev and last ~= prev then
    return redis.error_reply('STASTE_GAP ' .. (held or '0'))
  end
  call('SET', key, number, 'EX', ttl)
  return nil, function()
    if held then
      call('SET', key, held, 'EX', ttl)
    else
      call('DEL', key)
    end
  end
end
