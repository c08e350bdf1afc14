-- counter_update: add an amount (may be negative). Admin, or anyone when the amount lies within
-- the counter's update bounds [lb, ub]; a meta without bounds allows no public update.
-- KEYS[1] value   KEYS[2] meta   ARGV[1] amount (a 64-bit integer, checked by Rust)   ARGV[2] auth
-- Returns {'ok', new value}, {'not_found'}, {'forbidden'} or {'overflow'}.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'not_found'}
end
if not is_admin(KEYS[2], ARGV[2]) then
  -- Bounds are small; comparing as doubles is exact for them and errs only for amounts beyond
  -- 2^53, which no public bound admits anyway.
  local bounds = redis.call('HMGET', KEYS[2], 'lb', 'ub')
  local amount = tonumber(ARGV[1])
  local lower = tonumber(bounds[1] or '0')
  local upper = tonumber(bounds[2] or '0')
  if amount < lower or amount > upper then
    return {'forbidden'}
  end
end
local updated = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(updated) == 'table' and updated.err then
  return {'overflow'}
end
local value = redis.call('GET', KEYS[1])
publish_value(counter_prefix(), value)
return {'ok', value}
