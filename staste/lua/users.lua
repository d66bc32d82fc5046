-- Mark users in the bitmaps of what they did (staste/cohorts/marks.py): a kick(user=...) of a
-- metrica made with users=True, or the marks of a buffer flush.  Every key is under the users
-- base's hash tag (staste/cohorts/layout.py), so this call reaches one hash slot.
--
-- KEYS[1], KEYS[2], KEYS[3]: the id -> position hash, the position -> id hash and the last
--   position given (for ids that are not integers); KEYS[4..3+K]: the bitmaps; KEYS[#KEYS]:
--   the writer's key when the call is numbered.
-- ARGV[1]: the call's numbers (numbered() in prelude.lua).
-- ARGV[2]: 'K|U|cap': K bitmaps, U users, cap the highest position a new id may get.
-- ARGV[3..2+K]: each bitmap's TTL in seconds (0: none), set when this call creates it.
-- Then U users: 'p|position|k|k...' (an integer id: its position, and the KEYS indexes of the
--   bitmaps to set its bit in), or 'i||k|k...' followed by one argument, the id, whose
--   position is read from the mapping, or given (the next one) when the id is new.
-- Every position is found before any bit is set: when new ids would pass `cap`, the call
-- answers 'STASTE_USERS_FULL <cap>' and writes nothing.  SETBIT is idempotent, and an id's
-- position is given once, so a call run twice marks nothing twice.
-- Returns the number of SETBITs run.
-- call, find, sub, split and numbered: prelude.lua

local refused, put_back = numbered()
if refused then
  return refused
end
local head = split(ARGV[2])
local K, U, cap = tonumber(head[1]), tonumber(head[2]), tonumber(head[3])
local ids, positions, last = KEYS[1], KEYS[2], KEYS[3]

local users, new = {}, {}
local at = 3 + K
for u = 1, U do
  local parts, n = split(ARGV[at])
  local user = {spots = {}}
  for s = 3, n do
    user.spots[#user.spots + 1] = tonumber(parts[s])
  end
  if parts[1] == 'p' then
    user.position = tonumber(parts[2])
    at = at + 1
  else
    user.id = ARGV[at + 1]
    user.position = tonumber(call('HGET', ids, user.id))
    if not user.position and not new[user.id] then
      new[#new + 1] = user.id
      new[user.id] = true
    end
    at = at + 2
  end
  users[u] = user
end

if #new > 0 then
  local given = tonumber(call('GET', last) or '0')
  if given + #new > cap then
    put_back()
    return redis.error_reply('STASTE_USERS_FULL ' .. cap)
  end
  for _, id in ipairs(new) do
    given = given + 1
    call('HSET', ids, id, given)
    call('HSET', positions, given, id)
    new[id] = given
  end
  call('SET', last, given)
end

local fresh = {}
for k = 4, 3 + K do
  fresh[k] = call('EXISTS', KEYS[k]) == 0
end
local set = 0
for _, user in ipairs(users) do
  local position = user.position or new[user.id]
  for _, k in ipairs(user.spots) do
    call('SETBIT', KEYS[k], position, 1)
    set = set + 1
  end
end
for k = 4, 3 + K do
  local ttl = tonumber(ARGV[k - 1])
  if fresh[k] and ttl > 0 then
    call('EXPIRE', KEYS[k], ttl)
  end
end
return set
