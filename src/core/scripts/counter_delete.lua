-- counter_delete: admin only; removes the value, the meta and every time bucket.
-- KEYS[1] value   KEYS[2] meta   KEYS[3…] every daily, uniques and hourly bucket the counter may
--         have: each day and hour inside the retention windows (a bucket older than its TTL is
--         already gone), named by Rust — no SCAN (which no Cluster-safe script may use) and no
--         registry of bucket keys (a write on every hit). About 900 keys, one slot.
-- ARGV[1] auth (see is_admin)
-- Returns {'ok'}, {'not_found'} or {'forbidden'}.
-- Idempotency records (`…:i:<id>`) and abuse tallies (`…:a:…`) cannot be named; they expire
-- within a day and a window.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'not_found'}
end
if not is_admin(KEYS[2], ARGV[1]) then
  return {'forbidden'}
end
-- DEL takes its keys in batches: unpack has a limit on how many values it returns.
for first = 1, #KEYS, 200 do
  redis.call('DEL', unpack(KEYS, first, math.min(first + 199, #KEYS)))
end
publish(counter_prefix(), '"deleted":true')
return {'ok'}
