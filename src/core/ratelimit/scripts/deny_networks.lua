--[[ edgecount deny list: the client addresses and ranges, in one hash.

KEYS[1]  rl:deny:net. Fields:
           "<family><prefix>/<len>"  one range (family 4 or 6; prefix = the first ceil(len/4) hex
                                     digits of its first address, host bits zero; one address is
                                     the range of its full length) -> when it expires, Unix ms by
                                     Redis TIME, or '0' for never
           "#4", "#6"                the prefix lengths in use per family, comma-separated: a
                                     decision (limit.lua) looks up those lengths only, whatever
                                     the number of ranges
ARGV[1]  op: add | remove | get | list
ARGV[2]  the range's field (add, remove, get)
ARGV[3]  add: time to live in ms, '0' for none
Every call drops the expired ranges first; a call that changes the ranges rewrites "#4" and "#6"
(removed when no range of the family is left).
Returns  add:    1 when the range is new, 0 when it replaced an entry (a new expiry)
         remove: 1 when there was an entry, 0 otherwise
         get:    ms left, -1 without expiry, -2 no entry (like PTTL)
         list:   {field, ms left or -1, ...} ]]

local key = KEYS[1]
local op, field, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])

if redis.replicate_commands then
  redis.replicate_commands()
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local function int(x)
  return string.format('%d', x)
end

local function is_range(name)
  return string.sub(name, 1, 1) ~= '#'
end

-- Drop expired ranges; the live ones as name -> expiry (0 for never).
local live = {}
local changed = false
local all = redis.call('HGETALL', key)
for i = 1, #all, 2 do
  local name, expiry = all[i], tonumber(all[i + 1])
  if is_range(name) then
    if expiry ~= 0 and expiry <= now then
      redis.call('HDEL', key, name)
      changed = true
    else
      live[name] = expiry
    end
  end
end

local function left(expiry)
  if expiry == 0 then
    return -1
  end
  return expiry - now
end

local reply
if op == 'add' then
  reply = live[field] and 0 or 1
  local expiry = 0
  if ttl > 0 then
    expiry = now + ttl
  end
  redis.call('HSET', key, field, int(expiry))
  live[field] = expiry
  changed = true
elseif op == 'remove' then
  reply = redis.call('HDEL', key, field)
  live[field] = nil
  changed = changed or reply == 1
elseif op == 'get' then
  reply = live[field] and left(live[field]) or -2
elseif op == 'list' then
  reply = {}
  for name, expiry in pairs(live) do
    reply[#reply + 1] = name
    reply[#reply + 1] = left(expiry)
  end
else
  return redis.error_reply('ERR edgecount: unknown deny-list operation ' .. tostring(op))
end

if changed then
  for _, family in ipairs({ '4', '6' }) do
    local seen, lengths = {}, {}
    for name in pairs(live) do
      if string.sub(name, 1, 1) == family then
        local len = string.match(name, '/(%d+)$')
        if len and not seen[len] then
          seen[len] = true
          lengths[#lengths + 1] = len
        end
      end
    end
    if #lengths > 0 then
      redis.call('HSET', key, '#' .. family, table.concat(lengths, ','))
    else
      redis.call('HDEL', key, '#' .. family)
    end
  end
end
return reply
