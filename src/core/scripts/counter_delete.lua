-- counter_delete: admin only; removes the value, the meta and every time bucket.
-- KEYS[1] value   KEYS[2] meta
-- ARGV[1] auth (see is_admin)   ARGV[2] days of daily buckets to remove (their TTL in days)
-- ARGV[3] hours of hourly buckets to remove (their TTL in hours)   ARGV[4] clock override
-- Returns {'ok'}, {'not_found'} or {'forbidden'}.
--
-- Buckets are found by name, not by SCAN (which no Cluster-safe script may use) nor by a registry
-- of bucket keys (a write on every hit): a bucket older than its TTL is already gone, so naming
-- every day and hour inside the retention windows reaches them all (about 900 DELs, one slot).
-- Idempotency records (`…:i:<id>`) cannot be named; they expire within a day.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'not_found'}
end
if not is_admin(KEYS[2], ARGV[1]) then
  return {'forbidden'}
end
local now = counter_now(ARGV[4])
local prefix = counter_prefix()
local doomed = {KEYS[1], KEYS[2]}

local function flush()
  if #doomed > 0 then
    redis.call('DEL', unpack(doomed))
    doomed = {}
  end
end

local function doom(key)
  doomed[#doomed + 1] = key
  if #doomed >= 200 then
    flush()
  end
end

-- One step past each window on both sides covers buckets written a moment before a TTL refresh.
for i = -1, tonumber(ARGV[2]) + 1 do
  local day = day_label(now - i * 86400)
  doom(prefix .. ':d:' .. day)
  doom(prefix .. ':u:' .. day)
end
for i = -1, tonumber(ARGV[3]) + 1 do
  doom(prefix .. ':h:' .. hour_label(now - i * 3600))
end
flush()
publish(prefix, '"deleted":true')
return {'ok'}
