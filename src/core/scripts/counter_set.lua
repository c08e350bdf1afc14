-- counter_set: set the value, answering the old one. Admin, or anyone when the counter has
-- enable_reset.
-- KEYS[1] value   KEYS[2] meta   ARGV[1] new value   ARGV[2] auth (see is_admin)
-- Returns {'ok', old value, new value}, {'not_found'} or {'forbidden'}.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'not_found'}
end
if not is_admin(KEYS[2], ARGV[2]) and redis.call('HGET', KEYS[2], 'reset') ~= '1' then
  return {'forbidden'}
end
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
publish_value(counter_prefix(), ARGV[1])
return {'ok', old, ARGV[1]}
