--[[ edgecount concurrency limit (leases): ONE atomic step for one identity under one policy.

KEYS[1]  rl:{<id>}:<policy>:lease  sorted set: member = lease id, score = its expiry (ms since the
                                   epoch, Redis TIME); a lease is held while its score > now
KEYS[2]  rl:{<id>}:deny            exists while the identity is on the deny list
         Both carry the identity's hash tag {<id>}: one Cluster slot.
ARGV[1]  mode: acquire | release | renew
ARGV[2]  the lease id (Rust generated it for acquire, validated it for release and renew)
ARGV[3]  limit L: most leases held at once
ARGV[4]  ttl T (ms): a lease expires T after it was acquired or last renewed
ARGV[5]  shadow: '1' admits beyond the limit (and the caller reports that it would not have)
ARGV[6]  absent in production. Tests only: "now" in ms replacing Redis TIME (as limit.lua's
         ARGV[4]), so a test drives time by argument instead of sleeping.
Returns {now_ms, ok, denied, holders, earliest_expiry_ms, expires_ms}:
  ok        acquire: the lease was taken; release: it was held and is no more; renew: it was
            held and now expires at expires_ms
  denied    acquire only: the identity is on the deny list (then nothing at all is written)
  holders   leases held after this step
  earliest  the soonest expiry among them (when a slot frees at the latest), 0 when none
  expires   this lease's expiry, 0 when it is not held

acquire: drop the expired leases; admit iff holders < L (or always when shadow); add the lease
         with expiry now + T.
release: drop the expired leases; remove this lease. Only its holder knows its id (128 random
         bits), so nobody else can free a slot they do not hold; an expired lease is not held.
renew:   drop the expired leases; a lease still held gets the expiry now + T; an expired one stays
         gone (its slot may have been taken since: renewing it would exceed the limit).
The deny list stops acquire only: a holder can always give its slot back, and renewing never
adds a holder.

Exactness: every lease admitted at time t saw fewer than L leases with expiry > t, and a lease
never comes back once expired, so at any instant at most L leases are live.
The set expires (PEXPIRE) at its furthest lease's expiry + a grace, refreshed with every write:
a holder that crashes leaves nothing behind but a member that expires with it. ]]

local GRACE_MS = 1000

local mode = ARGV[1]
local lease = ARGV[2]
local limit = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local key = KEYS[1]
-- Before anything is written: a script that errors keeps what it wrote.
if mode ~= 'acquire' and mode ~= 'release' and mode ~= 'renew' then
  return redis.error_reply('ERR edgecount: unknown lease mode ' .. tostring(mode))
end

local now
if ARGV[6] and ARGV[6] ~= '' then
  now = tonumber(ARGV[6])
else
  -- Redis < 5 needs effects replication to write after a non-deterministic command.
  if redis.replicate_commands then
    redis.replicate_commands()
  end
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- Integers as decimal strings: tostring would switch to exponents above 14 digits.
local function int(x)
  return string.format('%d', x)
end

local live = '(' .. int(now)

-- {now, ok, denied, holders, earliest, expires}; reads only live leases, so it also holds
-- for a denied acquire that removed nothing.
local function answer(ok, denied, expires)
  local first = redis.call('ZRANGEBYSCORE', key, live, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  return { now, ok and 1 or 0, denied and 1 or 0, redis.call('ZCOUNT', key, live, '+inf'),
    tonumber(first[2] or 0), expires }
end

-- After a write: the set lives as long as its furthest lease, and a grace.
local function keep()
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', key, int(tonumber(last[2]) - now + GRACE_MS))
  end
end

if mode == 'acquire' and redis.call('EXISTS', KEYS[2]) == 1 then
  return answer(false, true, 0)
end
redis.call('ZREMRANGEBYSCORE', key, '-inf', int(now))
if mode == 'release' then
  local held = redis.call('ZREM', key, lease) == 1
  keep()
  return answer(held, false, 0)
end
-- acquire: a free slot (a shadow policy always has one); renew: the lease is still held.
local ok
if mode == 'acquire' then
  ok = ARGV[5] == '1' or redis.call('ZCARD', key) < limit
else
  ok = redis.call('ZSCORE', key, lease) ~= false
end
if not ok then
  return answer(false, false, 0)
end
local expires = now + ttl
redis.call('ZADD', key, int(expires), lease)
keep()
return answer(true, false, expires)
