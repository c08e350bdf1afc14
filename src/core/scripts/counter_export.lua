-- counter_export: everything needed to rebuild one counter elsewhere, in one read.
-- KEYS[1] value   KEYS[2] meta   then per day, oldest first: its hits `…:d:<YYYYMMDD>` and
-- visitors `…:u:<YYYYMMDD>`; then the hours' hits `…:h:<YYYYMMDDHH>`, oldest first: every
-- bucket inside the retention windows (named by Rust).
-- ARGV[1] the number of days D
-- Returns {'ok', value, created, reset, lb, ub, admin hash, (hits or '', uniques count,
--          HyperLogLog bytes or '') × D, (hits or '') × the hours}; or {'not_found'}. The
-- HyperLogLog goes out as its raw string (it is one), so uniques survive an export and import
-- exactly.

local value = redis.call('GET', KEYS[1])
if not value then
  return {'not_found'}
end
local meta = redis.call('HMGET', KEYS[2], 'created', 'reset', 'lb', 'ub', 'admin')
local out = {'ok', value, meta[1] or '', meta[2] or '', meta[3] or '', meta[4] or '', meta[5] or ''}
local days = tonumber(ARGV[1])
for i = 3, 2 * days + 1, 2 do
  local hll = redis.call('GET', KEYS[i + 1])
  out[#out + 1] = redis.call('GET', KEYS[i]) or ''
  out[#out + 1] = hll and redis.call('PFCOUNT', KEYS[i + 1]) or 0
  out[#out + 1] = hll or ''
end
for i = 2 * days + 3, #KEYS do
  out[#out + 1] = redis.call('GET', KEYS[i]) or ''
end
return out
