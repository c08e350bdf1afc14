-- counter_create: create a counter unless it exists (NX semantics: 'exists' → HTTP 409).
-- KEYS[1] value   KEYS[2] meta
-- ARGV[1] initial value   ARGV[2] admin key SHA-256 hex ('' = none)   ARGV[3] enable_reset 0/1
-- ARGV[4] update lower bound   ARGV[5] update upper bound   ARGV[6] now, unix seconds (`created`)
-- Returns {'ok', value} or {'exists'}.

if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists'}
end
redis.call('SET', KEYS[1], ARGV[1])
-- A leftover meta (a value key lost some other way) must not lend its admin key to the new owner.
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'created', ARGV[6], 'reset', ARGV[3], 'lb', ARGV[4], 'ub', ARGV[5])
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[2], 'admin', ARGV[2])
end
return {'ok', redis.call('GET', KEYS[1])}
