-- Shared by every counter script: prepended to each at compile time (`concat!`), because each
-- EVAL runs alone and cannot load a library.
--
-- Keys. KEYS[1] is always the counter's value key `ec:{ns:key}:v`. Keys Rust can name (value,
-- meta, idempotency record) are declared in KEYS. Time buckets (`:d:`, `:h:`, `:u:`) are named from
-- Redis's clock (TIME), which Rust cannot know when it builds the call, so scripts derive them from
-- the prefix of KEYS[1]. They carry the same `{ns:key}` hash tag, hence live in KEYS[1]'s slot, so
-- this works on Redis Cluster; the Redis docs still ask scripts to declare every key they touch:
-- we keep that rule where we can and knowingly bend it for time buckets (one slot, always).
--
-- Numbers. Counter values and bucket counts are returned as the strings Redis stores, never
-- through tonumber, because Lua numbers are doubles and would round values above 2^53.
--
-- Replication: Redis >= 5 replicates script effects, so TIME inside a write script is safe.

-- Unix seconds from Redis's clock; tests may pass a fixed time instead (production passes '').
local function counter_now(override)
  if override ~= nil and override ~= '' then
    return tonumber(override)
  end
  return tonumber(redis.call('TIME')[1])
end

-- Year, month, day of a day number since 1970-01-01 (H. Hinnant's civil_from_days).
local function civil_from_days(days)
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then
    y = y + 1
  end
  return y, m, d
end

-- 'YYYYMMDD' (UTC) of unix seconds t.
local function day_label(t)
  local y, m, d = civil_from_days(math.floor(t / 86400))
  return string.format('%04d%02d%02d', y, m, d)
end

-- 'YYYYMMDDHH' (UTC) of unix seconds t.
local function hour_label(t)
  return day_label(t) .. string.format('%02d', math.floor((t % 86400) / 3600))
end

-- 'ec:{ns:key}' from KEYS[1] = 'ec:{ns:key}:v'.
local function counter_prefix()
  return string.sub(KEYS[1], 1, -3)
end

-- `auth` is '' (public), '*' (the caller verified the global admin token), or the admin-key hash the
-- caller verified in constant time against this counter's meta. That hash must still be the one
-- stored, so a delete and re-create between the check and this script cannot borrow the old key.
local function is_admin(meta_key, auth)
  if auth == '*' then
    return true
  end
  if auth == '' then
    return false
  end
  return redis.call('HGET', meta_key, 'admin') == auth
end

-- Live updates go to the counter's channel (`/stream/{ns}/{key}`) and to its namespace's
-- (`/ns/{ns}/stream`, `{"key":…,…}`); `body` is the JSON object's inside, e.g. '"value":12'.
-- Names are [A-Za-z0-9_.-], so they need no JSON escaping.
local function publish(prefix, body)
  redis.call('PUBLISH', prefix .. ':live', '{' .. body .. '}')
  local ns, key = string.match(prefix, '^ec:{([^:]+):(.+)}$')
  redis.call('PUBLISH', 'ec:{' .. ns .. '}:live', '{"key":"' .. key .. '",' .. body .. '}')
end

local function publish_value(prefix, value)
  publish(prefix, '"value":' .. value)
end

