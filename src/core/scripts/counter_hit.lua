-- counter_hit: one hit, atomically, in one round trip.
-- KEYS[1] value `ec:{ns:key}:v`   KEYS[2] meta `…:m`   KEYS[3] (optional) idempotency `…:i:<id>`
-- ARGV[1] '1' counts the hit; '0' only reads (bots, HEAD, prefetch, the owner): counted = 0
-- ARGV[2] visitor hashes per candidate day, 'YYYYMMDD=hex,YYYYMMDD=hex,…' ('' = no uniques). Rust
--         computes HMAC(secret, ip|ua|ns|day) for the days around its own clock; the script uses
--         the one for Redis's day, so the IP never reaches Redis and the day is Redis's.
-- ARGV[3] hourly bucket TTL (s)   ARGV[4] daily bucket and HLL TTL (s)   ARGV[5] idempotency TTL (s)
-- ARGV[6], ARGV[7] update bounds written to the meta of a counter this hit creates
-- ARGV[8] clock override (tests only; '' = TIME)
-- ARGV[9] abuse limit 'client=limit/window_s' ('' = off): at most `limit` counted hits per client
--         (a hash of its IP, never the IP) per fixed window on this counter; more are answered
--         with the current value, uncounted and flagged limited, and change nothing (their tally
--         included: only counted hits add to it). Kept in this counter's slot
--         (`…:a:<client>:<window>`), so it costs no extra round trip and works on Cluster.
-- Returns {'ok', value, hits today, uniques today, counted 0/1, replay 0/1, created 0/1,
--          limited 0/1} or {'overflow'}.

local now = counter_now(ARGV[8])
local prefix = counter_prefix()
local day = day_label(now)
local day_key = prefix .. ':d:' .. day
local uniques_key = prefix .. ':u:' .. day

local function answer(value, counted, replay, created, limited)
  return {'ok', value, redis.call('GET', day_key) or '0', redis.call('PFCOUNT', uniques_key),
    counted, replay, created, limited or 0}
end

-- A retry of an already counted request answers the original value and counts nothing.
if KEYS[3] then
  local original = redis.call('GET', KEYS[3])
  if original then
    return answer(original, 0, 1, 0)
  end
end

if ARGV[1] ~= '1' then
  return answer(redis.call('GET', KEYS[1]) or '0', 0, 0, 0)
end

-- A client over its limit is refused before anything is written (its own tally included).
local abuse_client, abuse_limit, abuse_window = string.match(ARGV[9] or '', '^(%x+)=(%d+)/(%d+)$')
local abuse_key, window
if abuse_client then
  window = tonumber(abuse_window)
  abuse_key = prefix .. ':a:' .. abuse_client .. ':' .. math.floor(now / window)
  if tonumber(redis.call('GET', abuse_key) or '0') >= tonumber(abuse_limit) then
    return answer(redis.call('GET', KEYS[1]) or '0', 0, 0, 0, 1)
  end
end

local is_new = redis.call('EXISTS', KEYS[1]) == 0
-- The increment comes first so an overflow fails before anything was written.
local incremented = redis.pcall('INCRBY', KEYS[1], 1)
if type(incremented) == 'table' and incremented.err then
  return {'overflow'}
end
local value = redis.call('GET', KEYS[1])

if abuse_key and redis.call('INCR', abuse_key) == 1 then
  redis.call('EXPIRE', abuse_key, window)
end

local created = 0
if is_new or redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[2], 'created', now, 'reset', '0', 'lb', ARGV[6], 'ub', ARGV[7])
  created = is_new and 1 or 0
end

local hour_key = prefix .. ':h:' .. hour_label(now)
redis.call('INCRBY', day_key, 1)
redis.call('EXPIRE', day_key, ARGV[4])
redis.call('INCRBY', hour_key, 1)
redis.call('EXPIRE', hour_key, ARGV[3])

for candidate_day, visitor in string.gmatch(ARGV[2], '(%d+)=(%x+)') do
  if candidate_day == day then
    redis.call('PFADD', uniques_key, visitor)
    redis.call('EXPIRE', uniques_key, ARGV[4])
  end
end

if KEYS[3] then
  redis.call('SET', KEYS[3], value, 'EX', ARGV[5])
end

publish_value(prefix, value)
return answer(value, 1, 0, created)
