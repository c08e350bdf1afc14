-- counter_reset: admin only; the value becomes 0 (history buckets are kept: they record hits).
-- KEYS[1] value   KEYS[2] meta   ARGV[1] auth (see is_admin)
-- Returns {'ok', '0'}, {'not_found'} or {'forbidden'}.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'not_found'}
end
if not is_admin(KEYS[2], ARGV[1]) then
  return {'forbidden'}
end
redis.call('SET', KEYS[1], '0')
publish_value(counter_prefix(), '0')
return {'ok', '0'}
