-- counter_hit: one hit, atomically, in one command.
-- KEYS[1] value `ec:{ns:key}:v`   KEYS[2] meta `…:m`   KEYS[3] the day's hits `…:d:<YYYYMMDD>`
-- KEYS[4] the hour's hits `…:h:<YYYYMMDDHH>`   KEYS[5] the day's visitors (HyperLogLog) `…:u:<YYYYMMDD>`
--         (the day and hour by the caller's clock, so Rust names every key this script touches)
-- then, where ARGV says: the idempotency record `…:i:<id>`, the client's abuse tally
-- `…:a:<client>:<window>`, and the service-wide figures — this counter's shard of the counter
-- names `ec:global:counters:<s>` (HyperLogLog), of the day's hits `ec:global:hits:<day>:<s>`, and
-- its namespace's registry `ec:{ns}:counters`. Those three live in other Redis Cluster slots: on a
-- Cluster the caller leaves them out and sends them beside the script (`global_hit_commands`).
-- ARGV[1] '1' counts the hit; '0' only reads (bots, HEAD, prefetch, the owner): counted = 0
-- ARGV[2] the visitor's hash for the day, HMAC(secret, ip|ua|ns|day) in hex ('' = no uniques):
--         the IP never reaches Redis
-- ARGV[3] hourly bucket TTL (s)   ARGV[4] daily bucket and HLL TTL (s)   ARGV[5] idempotency TTL (s)
-- ARGV[6], ARGV[7] update bounds written to the meta of a counter this hit creates
-- ARGV[8] now, unix seconds (the meta's `created`)
-- ARGV[9] the abuse limit 'limit/window_s' ('' = off): at most `limit` counted hits per client (a
--         hash of its IP, never the IP) per fixed window on this counter; more are answered with
--         the current value, uncounted and flagged limited, and change nothing (their tally
--         included: only counted hits add to it)
-- ARGV[10] index in KEYS of the idempotency record, ARGV[11] of the abuse tally, ARGV[12] of the
--         first service-wide key (the other two follow it); '' where there is none
-- ARGV[13] when the day's service-wide hits expire (unix seconds; with ARGV[12])
-- Returns {'ok', value, hits today, uniques today, counted 0/1, replay 0/1, created 0/1,
--          limited 0/1} or {'overflow'}. A hit that does not count writes nothing at all.

local function key_at(index)
  local i = tonumber(index)
  return i and KEYS[i]
end

local value_key, meta_key, day_key, hour_key, uniques_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local idempotency_key, abuse_key = key_at(ARGV[10]), key_at(ARGV[11])
local figures = tonumber(ARGV[12])

local function answer(value, counted, replay, created, limited)
  return {'ok', value, redis.call('GET', day_key) or '0', redis.call('PFCOUNT', uniques_key),
    counted, replay, created, limited or 0}
end

-- A retry of an already counted request answers the original value and counts nothing.
if idempotency_key then
  local original = redis.call('GET', idempotency_key)
  if original then
    return answer(original, 0, 1, 0)
  end
end

if ARGV[1] ~= '1' then
  return answer(redis.call('GET', value_key) or '0', 0, 0, 0)
end

-- A client over its limit is refused before anything is written (its own tally included).
local abuse_limit, abuse_window = string.match(ARGV[9], '^(%d+)/(%d+)$')
if abuse_key and tonumber(redis.call('GET', abuse_key) or '0') >= tonumber(abuse_limit) then
  return answer(redis.call('GET', value_key) or '0', 0, 0, 0, 1)
end

local is_new = redis.call('EXISTS', value_key) == 0
-- The increment comes first so an overflow fails before anything was written.
local incremented = redis.pcall('INCRBY', value_key, 1)
if type(incremented) == 'table' and incremented.err then
  return {'overflow'}
end
local value = redis.call('GET', value_key)

if abuse_key and redis.call('INCR', abuse_key) == 1 then
  redis.call('EXPIRE', abuse_key, abuse_window)
end

local created = 0
if is_new or redis.call('EXISTS', meta_key) == 0 then
  redis.call('HSET', meta_key, 'created', ARGV[8], 'reset', '0', 'lb', ARGV[6], 'ub', ARGV[7])
  created = is_new and 1 or 0
end

redis.call('INCRBY', day_key, 1)
redis.call('EXPIRE', day_key, ARGV[4])
redis.call('INCRBY', hour_key, 1)
redis.call('EXPIRE', hour_key, ARGV[3])
if ARGV[2] ~= '' then
  redis.call('PFADD', uniques_key, ARGV[2])
  redis.call('EXPIRE', uniques_key, ARGV[4])
end

if idempotency_key then
  redis.call('SET', idempotency_key, value, 'EX', ARGV[5])
end

local prefix = counter_prefix()
if figures then
  local ns, key = counter_names(prefix)
  redis.call('PFADD', KEYS[figures], ns .. '/' .. key)
  -- The day's key expires at a fixed time (its day's start plus the daily retention).
  if redis.call('INCR', KEYS[figures + 1]) == 1 then
    redis.call('EXPIREAT', KEYS[figures + 1], ARGV[13])
  end
  redis.call('SADD', KEYS[figures + 2], key)
end

publish_value(prefix, value)
return answer(value, 1, 0, created)
