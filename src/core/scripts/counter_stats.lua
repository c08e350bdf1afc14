-- counter_stats: the total, per-day hits and uniques, per-hour hits, in one read.
-- KEYS[1] value   then per day, oldest first: its hits `…:d:<YYYYMMDD>` and visitors
-- `…:u:<YYYYMMDD>`; then the hours' hits `…:h:<YYYYMMDDHH>`, oldest first (named by Rust).
-- ARGV[1] the number of days D
-- Returns {'ok', total, (hits, uniques) × D, hits × the hours}, or {'not_found'}.

local total = redis.call('GET', KEYS[1])
if not total then
  return {'not_found'}
end
local days = tonumber(ARGV[1])
local out = {'ok', total}
for i = 2, 2 * days, 2 do
  out[#out + 1] = redis.call('GET', KEYS[i]) or '0'
  out[#out + 1] = redis.call('PFCOUNT', KEYS[i + 1])
end
for i = 2 * days + 2, #KEYS do
  out[#out + 1] = redis.call('GET', KEYS[i]) or '0'
end
return out
