-- counter_import: recreate one exported counter, unless it exists (then nothing changes, so an
-- import can be repeated: idempotent).
-- KEYS[1] value   KEYS[2] meta
-- ARGV[1] value   ARGV[2] created (unix s; '' = now)   ARGV[3] enable_reset 0/1   ARGV[4] lb   ARGV[5] ub
-- ARGV[6] admin key hash ('' = none)   ARGV[7] number of daily buckets D
-- then D × (YYYYMMDD, hits, HyperLogLog bytes in hex or '', expire-at unix s) — hex because the
-- REST API carries command arguments as JSON strings, which cannot hold arbitrary bytes —
-- then (YYYYMMDDHH, hits, expire-at unix s) for the hourly buckets.
-- Rust checked every field (labels, numbers, HyperLogLog structure) before the first import.
-- A bucket whose expiry has passed is gone at once (EXPIREAT in the past deletes), as it would
-- have been where it came from.
-- Returns {'imported'} or {'skipped'}.

if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'skipped'}
end
local prefix = counter_prefix()
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
local created = ARGV[2] ~= '' and ARGV[2] or counter_now('')
redis.call('HSET', KEYS[2], 'created', created, 'reset', ARGV[3], 'lb', ARGV[4], 'ub', ARGV[5])
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[2], 'admin', ARGV[6])
end
local at = 8
for _ = 1, tonumber(ARGV[7]) do
  local day_key = prefix .. ':d:' .. ARGV[at]
  redis.call('SET', day_key, ARGV[at + 1])
  redis.call('EXPIREAT', day_key, ARGV[at + 3])
  if ARGV[at + 2] ~= '' then
    local uniques_key = prefix .. ':u:' .. ARGV[at]
    local hll = string.gsub(ARGV[at + 2], '..', function(pair)
      return string.char(tonumber(pair, 16))
    end)
    redis.call('SET', uniques_key, hll)
    redis.call('EXPIREAT', uniques_key, ARGV[at + 3])
  end
  at = at + 4
end
while ARGV[at] do
  local hour_key = prefix .. ':h:' .. ARGV[at]
  redis.call('SET', hour_key, ARGV[at + 1])
  redis.call('EXPIREAT', hour_key, ARGV[at + 2])
  at = at + 3
end
return {'imported'}
