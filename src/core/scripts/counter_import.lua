-- counter_import: recreate one exported counter, unless it exists (then nothing changes, so an
-- import can be repeated: idempotent).
-- KEYS[1] value   KEYS[2] meta   then per daily bucket its hits `…:d:<YYYYMMDD>` and visitors
-- `…:u:<YYYYMMDD>`, then the hourly buckets `…:h:<YYYYMMDDHH>` (named by Rust)
-- ARGV[1] value   ARGV[2] created (unix s)   ARGV[3] enable_reset 0/1   ARGV[4] lb   ARGV[5] ub
-- ARGV[6] admin key hash ('' = none)   ARGV[7] number of daily buckets D
-- then D × (hits, HyperLogLog bytes in hex or '', expire-at unix s) — hex because the REST API
-- carries command arguments as JSON strings, which cannot hold arbitrary bytes — then
-- (hits, expire-at unix s) per hourly bucket, in the order of KEYS.
-- Rust checked every field (labels, numbers, HyperLogLog structure) before the first import.
-- A bucket whose expiry has passed is gone at once (EXPIREAT in the past deletes), as it would
-- have been where it came from.
-- Returns {'imported'} or {'skipped'}.

if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'skipped'}
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'created', ARGV[2], 'reset', ARGV[3], 'lb', ARGV[4], 'ub', ARGV[5])
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[2], 'admin', ARGV[6])
end
local at = 8
local days = tonumber(ARGV[7])
for i = 3, 2 * days + 1, 2 do
  redis.call('SET', KEYS[i], ARGV[at])
  redis.call('EXPIREAT', KEYS[i], ARGV[at + 2])
  if ARGV[at + 1] ~= '' then
    local hll = string.gsub(ARGV[at + 1], '..', function(pair)
      return string.char(tonumber(pair, 16))
    end)
    redis.call('SET', KEYS[i + 1], hll)
    redis.call('EXPIREAT', KEYS[i + 1], ARGV[at + 2])
  end
  at = at + 3
end
for i = 2 * days + 3, #KEYS do
  redis.call('SET', KEYS[i], ARGV[at])
  redis.call('EXPIREAT', KEYS[i], ARGV[at + 1])
  at = at + 2
end
return {'imported'}
