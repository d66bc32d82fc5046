-- Decide which values the stored axes of a buffer flush keep, before its counters are written
-- (the buffered writer merges counters over a whole flush, so it must know first under which
-- part each value counts).  The rule is kick.lua's: a value already stored counts as itself;
-- a new one is added while its axis' set holds fewer than cap members (cap 0: no limit), and
-- past that counts under an overflow part.  Decisions never change afterwards: sets only grow.
--
-- ARGV: one chain a value, in the order of the kicks: 'k|cap|member|member...', KEYS[k] the
--   axis' stored-choices set and the members the value's levels (one, or a hierarchical
--   value's path from its top level down); a level is decided only when its parent is stored.
-- Returns, for each chain, how many of its members are stored (the first level that did not
-- fit is counted under the overflow part; deeper levels are not counted).
-- call, find, sub and split: prelude.lua

local stored = {}
for i = 1, #ARGV do
  local parts, n = split(ARGV[i])
  local set, cap = KEYS[tonumber(parts[1])], tonumber(parts[2])
  local depth = 0
  for o = 3, n do
    local member = parts[o]
    if cap == 0 then
      call('SADD', set, member)
    elseif call('SISMEMBER', set, member) == 0 then
      if call('SCARD', set) >= cap then
        break
      end
      call('SADD', set, member)
    end
    depth = depth + 1
  end
  stored[i] = depth
end
return stored
