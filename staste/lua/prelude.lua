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

