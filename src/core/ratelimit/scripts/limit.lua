--[[ edgecount rate limiter: ONE atomic decision for one identity over one or more policies.

KEYS[1]  rl:{<id>}:o     the identity's overrides: a hash, field = policy name, value "L:W" (limit,
                         window ms) or "tier:<name>"
KEYS[2]  rl:{<id>}:deny  exists while the identity is on the deny list
KEYS[3]  rl:deny:net     (only when ARGV[5] gives the client's address) the denied addresses and
                         ranges, see deny_networks.lua. It has a slot of its own: on Redis Cluster
                         the caller asks it apart first (mode 'ranges') and passes the answer in
                         ARGV[5] ('-' denied, '' not), without KEYS[3].
         Both carry the identity's hash tag {<id>}. Native state keys are derived here from it
         (the window index comes from Redis TIME, the limit and window may come from an
         override), keeping the tag, so they live in the same Cluster slot:
           fixed    rl:{<id>}:<policy>:fixed:<W>          count in  <base>:<window index>
           sliding  rl:{<id>}:<policy>:sliding:<W>        counts in <base>:<index>, <base>:<index-1>
           token    rl:{<id>}:<policy>:token:<L>:<W>      "<level>:<ts_ms>"  in <base>
           gcra     rl:{<id>}:<policy>:gcra:<L>:<W>       "<tat_ms>:<tat_rem>" in <base>
         The upstash-* policies use @upstash/ratelimit's own keys instead (<prefix>:<id>:<window
         index>, <prefix>:<id>), which carry no hash tag: like that library, they need a Redis
         that is not a Cluster (or one slot).
ARGV[1]  mode: consume | peek | refund | reset, or ranges: KEYS[1] is rl:deny:net alone, ARGV[5]
         the client's address; returns 1 when a live range holds it, else 0 (changes nothing)
ARGV[2]  cost, integer >= 0 (Rust checked it against every configured limit for consume and peek)
ARGV[3]  the identity as given (the upstash-* keys hold it verbatim)
ARGV[4]  '' in production. Tests only: "now" in ms replacing Redis TIME.
ARGV[5]  the client's address, '' when the decision has none: the family (4, 6) and every bit of
         the address in hex ("4cb007107" is 203.0.113.7); '-' when the ranges were asked apart
         and hold it
then 8 per policy i (i = 1..n), from ARGV[6 + 8(i-1)]:
         name, algorithm, limit L, window W (ms), shadow ('1' decides and reports, never refuses),
         tiers ("<tier>=<algorithm>:<L>:<W>,…": the tiers that set this policy), upstash key
         prefix, upstash-token refill per window
Returns {now_ms, allowed, denied, then per policy: allowed, remaining, reset_ms, retry_after_ms,
         effective L, effective W, source (0 configured, 1 override, 2 tier)}.
An error reply "ERR edgecount: cost exceeds the limit of policy <i> (<L>)" when an override or
tier made a limit smaller than the cost.

Modes. consume: when EVERY enforcing (non-shadow) policy admits `cost` and the identity is not
denied, consume it in every policy that admits it; otherwise change nothing anywhere
(all-or-nothing). peek: change nothing; `allowed` says whether `cost` would be admitted now.
refund: give back min(cost, L) per policy, never beyond an empty state (remaining never exceeds
L). reset: delete the policy state, then answer like peek. The deny list applies to consume and
peek: a denied identity or address is answered (allowed 0, denied 1) with every policy reported,
nothing consumed. An address is denied when a live range (expiry 0 or after now) of its family
holds it: for each prefix length in use, the address's first len bits name one field. A shadow policy is decided and reported like the others but never makes `allowed` 0.
remaining = how many units could be consumed now; reset_ms = time until the state is empty again
(no usage left) without further traffic, 0 when empty; retry_after_ms = time until `cost` would
be admitted without further traffic, 0 when admitted.

Effective limits: an override "L:W" replaces the policy's limit and window (its algorithm stays);
"tier:<name>" takes that tier's algorithm, limit and window for the policy (from ARGV); a tier the
configuration no longer has, or any override of a non-native policy, is ignored. A change of
limit or window starts from a fresh state for token and GCRA (their key holds L and W).

Rules (all integer arithmetic, exact because the policy check keeps L*W <= 2^50 < 2^53):
  fixed    idx = floor(now/W), elapsed = now - idx*W, count in key idx.
           admit iff count + cost <= L.  remaining = L - count.  reset = W - elapsed if count > 0.
           retry = W - elapsed.  TTL = W - elapsed + grace (clean-up only; the index decides).
  sliding  two-window weighted approximation (Cloudflare's), exact rational, no rounding of the
           previous window's share: with prev, curr the counts of windows idx-1 and idx,
           weight(c) = prev*(W - elapsed) + c*W   (in 1/W units)
           admit iff weight(curr + cost) <= L*W.   remaining = floor((L*W - weight(curr))/W).
           reset = 2W - elapsed if curr > 0, else W - elapsed if prev > 0, else 0.
           retry: the first instant weight(curr + cost) fits, in this window (prev decays) or in
           the next (prev := curr, curr := 0), else the one after.  TTL(curr) = 2W - elapsed + grace.
  token    capacity L tokens kept in 1/W units (level <= L*W), refilled at L units per ms
           (= L/W tokens per ms): level = min(L*W, level + min(now - ts, W)*L).
           admit iff level >= cost*W.  remaining = floor(level/W).  reset = ceil((L*W - level)/L).
           retry = ceil((cost*W - level)/L).  A full bucket is deleted; TTL = reset + grace.
  gcra     theoretical arrival time tat = tat_ms + tat_rem/L, emission interval T = W/L ms, burst
           tolerance W - T.  debt = clamp((tat - now)*L, 0, L*W) in 1/L-ms units; cost costs cost*W.
           admit iff debt + cost*W <= L*W (i.e. new tat - now <= W).  remaining =
           floor((L*W - debt)/W).  reset = ceil(debt/L) (= tat - now).  retry =
           ceil((debt + cost*W - L*W)/L).  Zero debt is deleted; TTL = reset + grace.
  token and gcra admit exactly the same sequences (GCRA is the bucket's rule kept as a time);
  they differ in the state they store.
Every key written gets a TTL in the same command (SET … PX). The grace of 1 s keeps state a
little past its last relevant instant (clock steps between replicas, test clocks).
The Rust model in src/core/ratelimit/model.rs implements exactly these rules; keep them in step. ]]

local GRACE_MS = 1000

-- floor(a / b) for integers below 2^53 (b > 0), correcting the rounding of the double division.
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

local function ceil_div(a, b)
  return -idiv(-a, b)
end

-- Integers as decimal strings: tostring would switch to exponents above 14 digits.
local function int(x)
  return string.format('%d', x)
end

local function split_pair(stored)
  local a, b = string.match(stored, '^(%-?%d+):(%-?%d+)$')
  if not a then
    error('edgecount: malformed rate-limit state ' .. stored)
  end
  return tonumber(a), tonumber(b)
end

-- A count: SET with its TTL, or DEL when nothing is left.
local function put_count(key, count, ttl)
  if count > 0 then
    redis.call('SET', key, int(count), 'PX', int(ttl + GRACE_MS))
  else
    redis.call('DEL', key)
  end
end

local fixed = {}

function fixed.load(p)
  local index = idiv(p.now, p.W)
  p.elapsed = p.now - index * p.W
  p.key = p.base .. ':' .. int(index)
  p.count = tonumber(redis.call('GET', p.key) or 0)
end

function fixed.check(p, cost)
  if p.count + cost <= p.L then
    return 0
  end
  return p.W - p.elapsed
end

function fixed.consume(p, cost)
  p.count = p.count + cost
  put_count(p.key, p.count, p.W - p.elapsed)
end

function fixed.refund(p, cost)
  local back = math.min(cost, p.count)
  if back > 0 then
    p.count = p.count - back
    put_count(p.key, p.count, p.W - p.elapsed)
  end
end

function fixed.report(p)
  local reset = 0
  if p.count > 0 then
    reset = p.W - p.elapsed
  end
  return math.max(0, p.L - p.count), reset
end

function fixed.delete(p)
  redis.call('DEL', p.key)
end

local sliding = {}

function sliding.load(p)
  local index = idiv(p.now, p.W)
  p.elapsed = p.now - index * p.W
  p.key = p.base .. ':' .. int(index)
  p.prev_key = p.base .. ':' .. int(index - 1)
  p.curr = tonumber(redis.call('GET', p.key) or 0)
  p.prev = tonumber(redis.call('GET', p.prev_key) or 0)
end

local function sliding_weight(p, curr)
  return p.prev * (p.W - p.elapsed) + curr * p.W
end

function sliding.check(p, cost)
  local excess = sliding_weight(p, p.curr + cost) - p.L * p.W
  if excess <= 0 then
    return 0
  end
  local to_next = p.W - p.elapsed
  if p.prev > 0 then
    local wait = ceil_div(excess, p.prev)
    if wait < to_next then
      return wait
    end
  end
  -- Next window: the current count becomes the previous one, weighted by (W - e)/W.
  local excess_next = (p.curr + cost - p.L) * p.W
  if excess_next <= 0 then
    return to_next
  end
  return to_next + math.min(ceil_div(excess_next, p.curr), p.W)
end

function sliding.consume(p, cost)
  p.curr = p.curr + cost
  put_count(p.key, p.curr, 2 * p.W - p.elapsed)
end

function sliding.refund(p, cost)
  local from_curr = math.min(cost, p.curr)
  local from_prev = math.min(cost - from_curr, p.prev)
  if from_curr > 0 then
    p.curr = p.curr - from_curr
    put_count(p.key, p.curr, 2 * p.W - p.elapsed)
  end
  if from_prev > 0 then
    p.prev = p.prev - from_prev
    put_count(p.prev_key, p.prev, p.W - p.elapsed)
  end
end

function sliding.report(p)
  local remaining = math.max(0, idiv(p.L * p.W - sliding_weight(p, p.curr), p.W))
  local reset = 0
  if p.curr > 0 then
    reset = 2 * p.W - p.elapsed
  elseif p.prev > 0 then
    reset = p.W - p.elapsed
  end
  return remaining, reset
end

function sliding.delete(p)
  redis.call('DEL', p.key, p.prev_key)
end

local token = {}

function token.load(p)
  p.key = p.base
  p.capacity = p.L * p.W
  p.level = p.capacity
  p.ts = p.now
  local stored = redis.call('GET', p.key)
  if stored then
    local level, ts = split_pair(stored)
    local refill_ms = math.min(math.max(p.now - ts, 0), p.W)
    p.level = math.min(p.capacity, level + refill_ms * p.L)
    p.ts = math.max(ts, p.now)
  end
end

function token.check(p, cost)
  local missing = cost * p.W - p.level
  if missing <= 0 then
    return 0
  end
  return ceil_div(missing, p.L)
end

local function token_store(p)
  if p.level >= p.capacity then
    redis.call('DEL', p.key)
  else
    local ttl = ceil_div(p.capacity - p.level, p.L) + GRACE_MS
    redis.call('SET', p.key, int(p.level) .. ':' .. int(p.ts), 'PX', int(ttl))
  end
end

function token.consume(p, cost)
  p.level = p.level - cost * p.W
  token_store(p)
end

function token.refund(p, cost)
  local level = math.min(p.capacity, p.level + cost * p.W)
  if level ~= p.level then
    p.level = level
    token_store(p)
  end
end

function token.report(p)
  return idiv(p.level, p.W), ceil_div(p.capacity - p.level, p.L)
end

function token.delete(p)
  redis.call('DEL', p.key)
end

local gcra = {}

function gcra.load(p)
  p.key = p.base
  p.capacity = p.L * p.W
  p.debt = 0
  local stored = redis.call('GET', p.key)
  if stored then
    local tat_ms, tat_rem = split_pair(stored)
    local ahead_ms = math.min(tat_ms - p.now, p.W + 1)
    p.debt = math.min(p.capacity, math.max(0, ahead_ms * p.L + tat_rem))
  end
end

function gcra.check(p, cost)
  local excess = p.debt + cost * p.W - p.capacity
  if excess <= 0 then
    return 0
  end
  return ceil_div(excess, p.L)
end

local function gcra_store(p)
  if p.debt <= 0 then
    redis.call('DEL', p.key)
  else
    local ahead_ms = idiv(p.debt, p.L)
    local tat = int(p.now + ahead_ms) .. ':' .. int(p.debt - ahead_ms * p.L)
    redis.call('SET', p.key, tat, 'PX', int(ceil_div(p.debt, p.L) + GRACE_MS))
  end
end

function gcra.consume(p, cost)
  p.debt = p.debt + cost * p.W
  gcra_store(p)
end

function gcra.refund(p, cost)
  local debt = math.max(0, p.debt - cost * p.W)
  if debt ~= p.debt then
    p.debt = debt
    gcra_store(p)
  end
end

function gcra.report(p)
  return idiv(p.capacity - p.debt, p.W), ceil_div(p.debt, p.L)
end

function gcra.delete(p)
  redis.call('DEL', p.key)
end

-- @upstash/ratelimit's algorithms (2.2.0, src/lua-scripts/single.ts), on its own keys, with its
-- rules: to share one limit with a JavaScript service using that library. Its clock is the
-- client's Date.now(); ours is Redis TIME (the two agree on a window's index but at its edges).

local upstash_fixed = {}

function upstash_fixed.load(p)
  local index = idiv(p.now, p.W)
  p.reset_at = (index + 1) * p.W
  p.key = p.prefix .. ':' .. p.id .. ':' .. int(index)
  p.count = tonumber(redis.call('GET', p.key) or 0)
end

-- The library INCRBYs, then admits when the result is at most the limit.
function upstash_fixed.check(p, cost)
  if p.count + cost <= p.L then
    return 0
  end
  return p.reset_at - p.now
end

function upstash_fixed.consume(p, cost)
  p.count = redis.call('INCRBY', p.key, cost)
  if p.count == cost then
    redis.call('PEXPIRE', p.key, p.W)
  end
end

function upstash_fixed.refund(p, cost)
  local back = math.min(cost, p.count)
  if back > 0 then
    p.count = redis.call('INCRBY', p.key, -back)
  end
end

function upstash_fixed.report(p)
  local reset = 0
  if p.count > 0 then
    reset = p.reset_at - p.now
  end
  return math.max(0, p.L - p.count), reset
end

function upstash_fixed.delete(p)
  redis.call('DEL', p.key)
end

local upstash_sliding = {}

function upstash_sliding.load(p)
  local index = idiv(p.now, p.W)
  p.reset_at = (index + 1) * p.W
  p.key = p.prefix .. ':' .. p.id .. ':' .. int(index)
  p.prev_key = p.prefix .. ':' .. p.id .. ':' .. int(index - 1)
  p.curr = tonumber(redis.call('GET', p.key) or 0)
  local prev = tonumber(redis.call('GET', p.prev_key) or 0)
  -- The library's weighting, in the same floating-point steps.
  p.weighted = math.floor((1 - (p.now % p.W) / p.W) * prev)
end

-- The library admits while the weighted usage is below the limit, whatever the cost.
function upstash_sliding.check(p, cost)
  if p.weighted + p.curr < p.L then
    return 0
  end
  return p.reset_at - p.now
end

function upstash_sliding.consume(p, cost)
  p.curr = redis.call('INCRBY', p.key, cost)
  if p.curr == cost then
    redis.call('PEXPIRE', p.key, p.W * 2 + 1000)
  end
end

function upstash_sliding.refund(p, cost)
  local back = math.min(cost, p.curr)
  if back > 0 then
    p.curr = redis.call('INCRBY', p.key, -back)
  end
end

function upstash_sliding.report(p)
  local reset = 0
  if p.curr + p.weighted > 0 then
    reset = p.reset_at - p.now
  end
  return math.max(0, p.L - (p.curr + p.weighted)), reset
end

function upstash_sliding.delete(p)
  redis.call('DEL', p.key, p.prev_key)
end

local upstash_token = {}

function upstash_token.load(p)
  p.key = p.prefix .. ':' .. p.id
  local bucket = redis.call('HMGET', p.key, 'refilledAt', 'tokens')
  if bucket[1] then
    p.refilled_at = tonumber(bucket[1])
    p.tokens = tonumber(bucket[2])
  else
    p.refilled_at = p.now
    p.tokens = p.L
  end
  if p.now >= p.refilled_at + p.W then
    local refills = math.floor((p.now - p.refilled_at) / p.W)
    p.tokens = math.min(p.L, p.tokens + refills * p.refill)
    p.refilled_at = p.refilled_at + refills * p.W
  end
end

function upstash_token.check(p, cost)
  if p.tokens >= cost then
    return 0
  end
  return p.refilled_at + p.W - p.now
end

local function upstash_token_store(p)
  redis.call('HSET', p.key, 'refilledAt', int(p.refilled_at), 'tokens', int(p.tokens))
  local expire = math.ceil((p.L - p.tokens) / p.refill) * p.W
  if expire > 0 then
    redis.call('PEXPIRE', p.key, int(expire))
  end
end

function upstash_token.consume(p, cost)
  p.tokens = p.tokens - cost
  upstash_token_store(p)
end

function upstash_token.refund(p, cost)
  local tokens = math.min(p.L, p.tokens + cost)
  if tokens ~= p.tokens then
    p.tokens = tokens
    upstash_token_store(p)
  end
end

function upstash_token.report(p)
  local reset = 0
  if p.tokens < p.L then
    reset = p.refilled_at + p.W - p.now
  end
  return p.tokens, reset
end

function upstash_token.delete(p)
  redis.call('DEL', p.key)
end

local algorithms = {
  fixed = fixed, sliding = sliding, token = token, gcra = gcra,
  ['upstash-fixed'] = upstash_fixed, ['upstash-sliding'] = upstash_sliding,
  ['upstash-token'] = upstash_token,
}
local native = { fixed = true, sliding = true, token = true, gcra = true }

local mode = ARGV[1]
if mode ~= 'consume' and mode ~= 'peek' and mode ~= 'refund' and mode ~= 'reset'
  and mode ~= 'ranges' then
  return redis.error_reply('ERR edgecount: unknown rate-limit mode ' .. tostring(mode))
end
local cost = tonumber(ARGV[2])
local id = ARGV[3]
local n = (#ARGV - 5) / 8

local now
if ARGV[4] ~= '' then
  now = tonumber(ARGV[4])
else
  -- Redis < 5 needs effects replication to write after a non-deterministic command.
  if redis.replicate_commands then
    redis.replicate_commands()
  end
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- 'rl:{<id>}' from KEYS[1] = 'rl:{<id>}:o'.
local prefix = string.sub(KEYS[1], 1, -3)
-- Whether a live range of the deny list holds the client's address (ARGV[5]).
local ranges = mode == 'ranges' and KEYS[1] or KEYS[3]
local function address_denied(address)
  local family, hex = string.sub(address, 1, 1), string.sub(address, 2)
  local lengths = redis.call('HGET', ranges, '#' .. family)
  if not lengths then
    return false
  end
  local fields = {}
  for len in string.gmatch(lengths, '%d+') do
    len = tonumber(len)
    local whole = math.floor(len / 4)
    local prefix = string.sub(hex, 1, whole)
    local bits = len - whole * 4
    if bits > 0 then
      -- The next hex digit, keeping its first `bits` bits: masks 8, 12, 14.
      local digit = tonumber(string.sub(hex, whole + 1, whole + 1), 16)
      prefix = prefix .. string.format('%x', bit.band(digit, 16 - 2 ^ (4 - bits)))
    end
    fields[#fields + 1] = family .. prefix .. '/' .. len
  end
  if #fields == 0 then
    return false
  end
  for _, expiry in ipairs(redis.call('HMGET', ranges, unpack(fields))) do
    if expiry and (expiry == '0' or tonumber(expiry) > now) then
      return true
    end
  end
  return false
end

if mode == 'ranges' then
  return address_denied(ARGV[5]) and 1 or 0
end

local denied = false
if mode == 'consume' or mode == 'peek' then
  denied = redis.call('EXISTS', KEYS[2]) == 1 or ARGV[5] == '-'
    or (ARGV[5] ~= '' and address_denied(ARGV[5]))
end
local names = {}
for i = 1, n do
  names[i] = ARGV[6 + 8 * (i - 1)]
end
local overrides = redis.call('HMGET', KEYS[1], unpack(names))

-- The algorithm, limit and window a policy has for this identity, and where they came from.
local function effective(i, alg_name, L, W, tiers)
  local override = overrides[i]
  if not override or not native[alg_name] then
    return alg_name, L, W, 0
  end
  local tier = string.match(override, '^tier:(.+)$')
  if tier then
    for name, a, l, w in string.gmatch(tiers, '([^,=]+)=([^:,]+):(%d+):(%d+)') do
      if name == tier then
        return a, tonumber(l), tonumber(w), 2
      end
    end
    return alg_name, L, W, 0
  end
  local l, w = string.match(override, '^(%d+):(%d+)$')
  if l then
    return alg_name, tonumber(l), tonumber(w), 1
  end
  return alg_name, L, W, 0
end

local policies = {}
for i = 1, n do
  local at = 6 + 8 * (i - 1)
  local alg_name, L, W, source = effective(i, ARGV[at + 1], tonumber(ARGV[at + 2]),
    tonumber(ARGV[at + 3]), ARGV[at + 5])
  local alg = algorithms[alg_name]
  if not alg then
    return redis.error_reply('ERR edgecount: unknown rate-limit algorithm ' .. tostring(alg_name))
  end
  if mode ~= 'refund' and cost > L then
    return redis.error_reply('ERR edgecount: cost exceeds the limit of policy ' .. i .. ' (' .. int(L) .. ')')
  end
  local p = { L = L, W = W, now = now, alg = alg, source = source, shadow = ARGV[at + 4] == '1',
    id = id, prefix = ARGV[at + 6], refill = tonumber(ARGV[at + 7]) }
  if native[alg_name] then
    p.base = prefix .. ':' .. names[i] .. ':' .. alg_name .. ':'
    if alg_name == 'token' or alg_name == 'gcra' then
      p.base = p.base .. int(L) .. ':'
    end
    p.base = p.base .. int(W)
  end
  alg.load(p)
  if mode == 'reset' then
    alg.delete(p)
    alg.load(p)
  end
  policies[i] = p
end

local allowed = not denied
for _, p in ipairs(policies) do
  p.retry = 0
  if mode ~= 'refund' then
    p.retry = p.alg.check(p, cost)
  end
  if p.retry > 0 and not p.shadow then
    allowed = false
  end
end

if cost > 0 then
  if mode == 'consume' and allowed then
    for _, p in ipairs(policies) do
      if p.retry == 0 then
        p.alg.consume(p, cost)
      end
    end
  elseif mode == 'refund' then
    for _, p in ipairs(policies) do
      p.alg.refund(p, math.min(cost, p.L))
    end
  end
end

local reply = { now, allowed and 1 or 0, denied and 1 or 0 }
for _, p in ipairs(policies) do
  local remaining, reset = p.alg.report(p)
  reply[#reply + 1] = p.retry == 0 and 1 or 0
  reply[#reply + 1] = remaining
  reply[#reply + 1] = reset
  reply[#reply + 1] = p.retry
  reply[#reply + 1] = p.L
  reply[#reply + 1] = p.W
  reply[#reply + 1] = p.source
end
return reply
