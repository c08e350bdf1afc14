-- counter_stats: the total, per-day hits and uniques, per-hour hits, on Redis's clock.
-- KEYS[1] value   ARGV[1] days (1..400, capped by Rust)   ARGV[2] hours   ARGV[3] clock override
-- Returns {'ok', total, n_days, (YYYYMMDD, hits, uniques) × n_days, (YYYYMMDDHH, hits) × hours},
-- oldest first, or {'not_found'}.

local total = redis.call('GET', KEYS[1])
if not total then
  return {'not_found'}
end
local now = counter_now(ARGV[3])
local prefix = counter_prefix()
local days = tonumber(ARGV[1])
local hours = tonumber(ARGV[2])
local out = {'ok', total, days}
for i = days - 1, 0, -1 do
  local day = day_label(now - i * 86400)
  out[#out + 1] = day
  out[#out + 1] = redis.call('GET', prefix .. ':d:' .. day) or '0'
  out[#out + 1] = redis.call('PFCOUNT', prefix .. ':u:' .. day)
end
for i = hours - 1, 0, -1 do
  local hour = hour_label(now - i * 3600)
  out[#out + 1] = hour
  out[#out + 1] = redis.call('GET', prefix .. ':h:' .. hour) or '0'
end
return out
