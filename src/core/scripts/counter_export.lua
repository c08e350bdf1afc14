-- counter_export: everything needed to rebuild one counter elsewhere, in one read.
-- KEYS[1] value   KEYS[2] meta
-- ARGV[1] days of daily buckets to look at (their TTL in days)   ARGV[2] hours of hourly buckets
-- ARGV[3] clock override ('' = TIME)
-- Returns {'ok', value, created, reset, lb, ub, admin hash, n_days,
--          (YYYYMMDD, hits, uniques count, HyperLogLog bytes or '') × n_days,
--          (YYYYMMDDHH, hits) × the rest}, oldest first, only buckets that exist;
-- or {'not_found'}. The HyperLogLog goes out as its raw string (it is one), so uniques survive
-- an export and import exactly.

local value = redis.call('GET', KEYS[1])
if not value then
  return {'not_found'}
end
local now = counter_now(ARGV[3])
local prefix = counter_prefix()
local meta = redis.call('HMGET', KEYS[2], 'created', 'reset', 'lb', 'ub', 'admin')
local out = {'ok', value, meta[1] or '', meta[2] or '', meta[3] or '', meta[4] or '', meta[5] or ''}
local days = {}
for i = tonumber(ARGV[1]), 0, -1 do
  local day = day_label(now - i * 86400)
  local hits = redis.call('GET', prefix .. ':d:' .. day)
  local hll = redis.call('GET', prefix .. ':u:' .. day)
  if hits or hll then
    days[#days + 1] = day
    days[#days + 1] = hits or '0'
    days[#days + 1] = hll and redis.call('PFCOUNT', prefix .. ':u:' .. day) or 0
    days[#days + 1] = hll or ''
  end
end
out[#out + 1] = #days / 4
for _, field in ipairs(days) do
  out[#out + 1] = field
end
for i = tonumber(ARGV[2]), 0, -1 do
  local hour = hour_label(now - i * 3600)
  local hits = redis.call('GET', prefix .. ':h:' .. hour)
  if hits then
    out[#out + 1] = hour
    out[#out + 1] = hits
  end
end
return out
