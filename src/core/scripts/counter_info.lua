-- counter_info: value and metadata in one read.
-- KEYS[1] value   KEYS[2] meta
-- Returns {'ok', value, ttl of the value key, created, enable_reset, lower bound, upper bound}
-- (missing meta fields are nil) or {'not_found'}.

local value = redis.call('GET', KEYS[1])
if not value then
  return {'not_found'}
end
local meta = redis.call('HMGET', KEYS[2], 'created', 'reset', 'lb', 'ub')
return {'ok', value, redis.call('TTL', KEYS[1]), meta[1], meta[2], meta[3], meta[4]}
