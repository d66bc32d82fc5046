-- Read, in one call, the counters of every stored value of one axis (or of the stored years).
--
-- KEYS[1]: the set of stored members (axis parts such as '=girl', or years such as '2010').
-- ARGV[1]: mode: 'axis' (the counters are in KEYS[2]) or 'years' (in ARGV[2] .. year).
-- ARGV[2]: 'axis': the hash key; 'years': the key prefix of the year hashes.
-- ARGV[3]: the field text before the member, ARGV[4]: the text after it ('axis' mode);
--          in 'years' mode ARGV[3] is unused and ARGV[4] is the field itself.
-- ARGV[5]: the parent path part for hierarchical axes ('' for a flat axis, '*' for the root).
-- ARGV[6..]: field prefixes to read for each member ('' for the sum, '#' for the count).
-- Returns a flat list: member, value per prefix, member, value per prefix, ...
-- (An absent counter is false, which reaches the client as nil.)
local members = redis.call('SMEMBERS', KEYS[1])
local mode, target, before, after, parent = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local prefixes = {}
for p = 6, #ARGV do
  prefixes[#prefixes + 1] = ARGV[p]
end

local function is_child(member)
  if parent == '' then
    return true
  end
  if parent == '*' then
    return string.find(member, '/', 1, true) == nil
  end
  local head = parent .. '/'
  if string.sub(member, 1, #head) ~= head then
    return false
  end
  return string.find(member, '/', #head + 1, true) == nil
end

-- The overflow part (values beyond max_choices) is listed after the stored members when it
-- counted anything: '!' at the top level, '!' .. the parent's path below a node (see kick.lua).
local overflow = nil
if mode == 'axis' then
  overflow = (parent == '' or parent == '*') and '!' or ('!' .. string.sub(parent, 2))
  members[#members + 1] = overflow
end

local out = {}
for _, member in ipairs(members) do
  if member == overflow or is_child(member) then
    local fields = {}
    local key
    if mode == 'years' then
      key = target .. member
      for _, prefix in ipairs(prefixes) do
        fields[#fields + 1] = prefix .. after
      end
    else
      key = target
      for _, prefix in ipairs(prefixes) do
        fields[#fields + 1] = prefix .. before .. member .. after
      end
    end
    local values = redis.call('HMGET', key, unpack(fields))
    if member ~= overflow or values[1] then
      out[#out + 1] = member
      for p = 1, #prefixes do
        out[#out + 1] = values[p] or false
      end
    end
  end
end
return out
