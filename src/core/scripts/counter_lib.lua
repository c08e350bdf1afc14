-- Shared by every counter script: prepended to each at compile time (`concat!`), because each
-- EVAL runs alone and cannot load a library.
--
-- Keys. KEYS[1] is always the counter's value key `ec:{ns:key}:v`. Every key a script touches is
-- declared in KEYS, as Redis asks of scripts (Dragonfly refuses undeclared keys, Upstash locks by
-- them): time buckets (`:d:`, `:h:`, `:u:`) are named by the caller's clock, so Rust names them
-- too, and no script reads TIME or builds a key name (only channel names, which are not keys).
-- tests/script_keys.rs proves it under MONITOR for every script and path.
--
-- Numbers. Counter values and bucket counts are returned as the strings Redis stores, never
-- through tonumber, because Lua numbers are doubles and would round values above 2^53.

-- 'ec:{ns:key}' from KEYS[1] = 'ec:{ns:key}:v'.
local function counter_prefix()
  return string.sub(KEYS[1], 1, -3)
end

-- The namespace and key of a counter prefix 'ec:{ns:key}'.
local function counter_names(prefix)
  return string.match(prefix, '^ec:{([^:]+):(.+)}$')
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
  local ns, key = counter_names(prefix)
  redis.call('PUBLISH', 'ec:{' .. ns .. '}:live', '{"key":"' .. key .. '",' .. body .. '}')
end

local function publish_value(prefix, value)
  publish(prefix, '"value":' .. value)
end

