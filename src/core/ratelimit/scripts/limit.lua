--[[ edgecount rate limiter: ONE atomic decision for one identity over one or more policies.

KEYS[1]  rl:{<id>}:o     the identity's overrides: a hash, field = policy name, value "L:W" (limit,
                         window ms) or "tier:<name>"
KEYS[2]  rl:{<id>}:deny  exists while the identity is on the deny list
then     each policy's state, at the index its arguments give (every key this script touches is
         named by Rust and declared here, as Redis asks of scripts):
           native   rl:{<id>}:<policy>:state   one string "<algorithm>:<L>:<W>:<fields>" (below)
           upstash-fixed    <prefix>:<id>:<window index>
           upstash-sliding  <prefix>:<id>:<window index>, then <prefix>:<id>:<window index - 1>
           upstash-token    <prefix>:<id>
         Native keys carry the identity's hash tag {<id>}: one Cluster slot with KEYS[1] and [2].
         The upstash-* keys are @upstash/ratelimit's own, which carry no hash tag: like that
         library, they need a Redis that is not a Cluster (or one slot). Their window index comes
         from the caller's clock (ARGV[3]), as the library's comes from the client's Date.now().
last     rl:deny:net     (only when ARGV[5] gives the client's address) the denied addresses and
                         ranges, see deny_networks.lua. It has a slot of its own: on Redis Cluster
                         the caller asks it apart first (mode 'ranges') and passes the answer in
                         ARGV[5] ('-' denied, '' not), without this key.
ARGV[1]  mode: consume | peek | refund | reset, or ranges: KEYS[1] is rl:deny:net alone, ARGV[5]
         the client's address; returns 1 when a live range holds it, else 0 (changes nothing)
ARGV[2]  cost, integer >= 0 (Rust checked it against every configured limit for consume and peek)
ARGV[3]  the caller's clock, ms: what the upstash-* policies decide on (it named their keys)
ARGV[4]  '' in production. Tests only: "now" in ms replacing Redis TIME.
ARGV[5]  the client's address, '' when the decision has none: the family (4, 6) and every bit of
         the address in hex ("4cb007107" is 203.0.113.7); '-' when the ranges were asked apart
         and hold it
then 8 per policy i (i = 1..n), from ARGV[6 + 8(i-1)]:
         name, algorithm, limit L, window W (ms), shadow ('1' decides and reports, never refuses),
         tiers ("<tier>=<algorithm>:<L>:<W>,…": the tiers that set this policy), the index in KEYS
         of its (first) state key, upstash-token refill per window
Returns {now_ms, allowed, denied, deny_left_ms (until the deny ends; 0 when it has no end or
         there is none), then per policy: allowed, remaining, reset_ms, retry_after_ms,
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
configuration no longer has, or any override of a non-native policy, is ignored. A native state
records the algorithm, limit and window it was kept under: a change of algorithm or window starts
from a fresh state, and for token and GCRA a change of limit too (the fixed and sliding counts
still mean the same under another limit).

Rules (all integer arithmetic, exact because the policy check keeps L*W <= 2^50 < 2^53):
  fixed    idx = floor(now/W), elapsed = now - idx*W; state fields idx, count (another idx: 0).
           admit iff count + cost <= L.  remaining = L - count.  reset = W - elapsed if count > 0.
           retry = W - elapsed.  TTL = W - elapsed + grace (clean-up only; the index decides).
  sliding  two-window weighted approximation (Cloudflare's), exact rational, no rounding of the
           previous window's share: state fields idx, curr, prev (kept at idx-1: its curr is
           now prev); with prev, curr the counts of windows idx-1 and idx,
           weight(c) = prev*(W - elapsed) + c*W   (in 1/W units)
           admit iff weight(curr + cost) <= L*W.   remaining = floor((L*W - weight(curr))/W).
           reset = 2W - elapsed if curr > 0, else W - elapsed if prev > 0, else 0.
           retry: the first instant weight(curr + cost) fits, in this window (prev decays) or in
           the next (prev := curr, curr := 0), else the one after.  TTL = 2W - elapsed + grace
           while curr > 0, else W - elapsed + grace.
  token    capacity L tokens kept in 1/W units (level <= L*W), refilled at L units per ms
           (= L/W tokens per ms): level = min(L*W, level + min(now - ts, W)*L).
           admit iff level >= cost*W.  remaining = floor(level/W).  reset = ceil((L*W - level)/L).
           retry = ceil((cost*W - level)/L).  State fields level, ts; a full bucket is deleted;
           TTL = reset + grace.
  gcra     theoretical arrival time tat = tat_ms + tat_rem/L, emission interval T = W/L ms, burst
           tolerance W - T.  debt = clamp((tat - now)*L, 0, L*W) in 1/L-ms units; cost costs cost*W.
           admit iff debt + cost*W <= L*W (i.e. new tat - now <= W).  remaining =
           floor((L*W - debt)/W).  reset = ceil(debt/L) (= tat - now).  retry =
           ceil((debt + cost*W - L*W)/L).  State fields tat_ms, tat_rem; zero debt is deleted;
           TTL = reset + grace.
  token and gcra admit exactly the same sequences (GCRA is the bucket's rule kept as a time);
  they differ in the state they store.
Every native key written gets a TTL in the same command (SET … PX). The grace of 1 s keeps state a
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

-- A native policy's state: "<algorithm>:<L>:<W>:<fields>" in its one key. A state kept under
-- another algorithm or window — for token and gcra, another limit too — is no state.
local function load_state(p)
  local stored = redis.call('GET', p.key)
  local alg, L, W, rest = string.match(stored or '', '^(%a+):(%d+):(%d+):(.+)$')
  if alg ~= p.alg_name or tonumber(W) ~= p.W
    or ((alg == 'token' or alg == 'gcra') and tonumber(L) ~= p.L) then
    return nil
  end
  local fields = {}
  for field in string.gmatch(rest, '[^:]+') do
    fields[#fields + 1] = tonumber(field)
  end
  return fields
end

-- Keep the state for ttl ms (and the grace), or delete it when `keep` is false.
local function store_state(p, keep, ttl, ...)
  if not keep then
    redis.call('DEL', p.key)
    return
  end
  local fields = { p.alg_name, int(p.L), int(p.W) }
  for _, field in ipairs({ ... }) do
    fields[#fields + 1] = int(field)
  end
  redis.call('SET', p.key, table.concat(fields, ':'), 'PX', int(ttl + GRACE_MS))
end

local fixed = {}

function fixed.load(p)
  p.index = idiv(p.now, p.W)
  p.elapsed = p.now - p.index * p.W
  local state = load_state(p)
  p.count = state and state[1] == p.index and state[2] or 0
end

function fixed.check(p, cost)
  if p.count + cost <= p.L then
    return 0
  end
  return p.W - p.elapsed
end

local function fixed_store(p)
  store_state(p, p.count > 0, p.W - p.elapsed, p.index, p.count)
end

function fixed.consume(p, cost)
  p.count = p.count + cost
  fixed_store(p)
end

function fixed.refund(p, cost)
  local back = math.min(cost, p.count)
  if back > 0 then
    p.count = p.count - back
    fixed_store(p)
  end
end

function fixed.report(p)
  local reset = 0
  if p.count > 0 then
    reset = p.W - p.elapsed
  end
  return math.max(0, p.L - p.count), reset
end

local sliding = {}

function sliding.load(p)
  p.index = idiv(p.now, p.W)
  p.elapsed = p.now - p.index * p.W
  p.curr, p.prev = 0, 0
  local state = load_state(p)
  if state and state[1] == p.index then
    p.curr, p.prev = state[2], state[3]
  elseif state and state[1] == p.index - 1 then
    p.prev = state[2]
  end
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

-- The current count matters until the end of the next window, the previous one until this
-- window's end.
local function sliding_store(p)
  local ttl = p.curr > 0 and 2 * p.W - p.elapsed or p.W - p.elapsed
  store_state(p, p.curr + p.prev > 0, ttl, p.index, p.curr, p.prev)
end

function sliding.consume(p, cost)
  p.curr = p.curr + cost
  sliding_store(p)
end

function sliding.refund(p, cost)
  local from_curr = math.min(cost, p.curr)
  local from_prev = math.min(cost - from_curr, p.prev)
  if from_curr + from_prev > 0 then
    p.curr = p.curr - from_curr
    p.prev = p.prev - from_prev
    sliding_store(p)
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

local token = {}

function token.load(p)
  p.capacity = p.L * p.W
  p.level = p.capacity
  p.ts = p.now
  local state = load_state(p)
  if state then
    local level, ts = state[1], state[2]
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
  store_state(p, p.level < p.capacity, ceil_div(p.capacity - p.level, p.L), p.level, p.ts)
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

local gcra = {}

function gcra.load(p)
  p.capacity = p.L * p.W
  p.debt = 0
  local state = load_state(p)
  if state then
    local tat_ms, tat_rem = state[1], state[2]
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
  local ahead_ms = idiv(p.debt, p.L)
  store_state(p, p.debt > 0, ceil_div(p.debt, p.L), p.now + ahead_ms, p.debt - ahead_ms * p.L)
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

-- @upstash/ratelimit's algorithms (2.2.0, src/lua-scripts/single.ts), on its own keys, with its
-- rules: to share one limit with a JavaScript service using that library. Like the library, they
-- run on the caller's clock (`p.now` is ARGV[3] for them), which named their window keys.

local upstash_fixed = {}

function upstash_fixed.load(p)
  p.reset_at = (idiv(p.now, p.W) + 1) * p.W
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

local upstash_sliding = {}

function upstash_sliding.load(p)
  p.reset_at = (idiv(p.now, p.W) + 1) * p.W
  p.prev_key = KEYS[p.first + 1]
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

local upstash_token = {}

function upstash_token.load(p)
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
local caller_now = tonumber(ARGV[3])
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

-- When the last live range of the deny list holding the client's address (ARGV[5]) ends (ms,
-- Redis time; 0 when one never ends), or nil when none holds it.
local ranges = mode == 'ranges' and KEYS[1] or KEYS[#KEYS]
local function address_deny_end(address)
  local family, hex = string.sub(address, 1, 1), string.sub(address, 2)
  local lengths = redis.call('HGET', ranges, '#' .. family)
  if not lengths then
    return nil
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
    return nil
  end
  local last
  for _, expiry in ipairs(redis.call('HMGET', ranges, unpack(fields))) do
    expiry = tonumber(expiry)
    if expiry and (expiry == 0 or expiry > now) then
      last = (expiry == 0 or last == 0) and 0 or math.max(last or 0, expiry)
    end
  end
  return last
end

if mode == 'ranges' then
  return address_deny_end(ARGV[5]) and 1 or 0
end

-- Denied, and until when (Redis time; 0: no end known — a deny without expiry, or the ranges'
-- answer asked apart): the identity's mark and the address's ranges both hold until the later.
local denied, deny_end = false, nil
if mode == 'consume' or mode == 'peek' then
  local mark = redis.call('PTTL', KEYS[2])
  if mark ~= -2 then
    denied, deny_end = true, mark == -1 and 0 or now + mark
  end
  local range_end = ARGV[5] == '-' and 0
    or (ARGV[5] ~= '' and address_deny_end(ARGV[5])) or nil
  if range_end then
    denied = true
    deny_end = (range_end == 0 or deny_end == 0) and 0 or math.max(deny_end or 0, range_end)
  end
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
  local first = tonumber(ARGV[at + 6])
  local p = { L = L, W = W, now = native[alg_name] and now or caller_now, alg = alg,
    alg_name = alg_name, source = source, shadow = ARGV[at + 4] == '1', first = first,
    key = KEYS[first], refill = tonumber(ARGV[at + 7]) }
  alg.load(p)
  if mode == 'reset' then
    redis.call('DEL', p.key, p.prev_key or p.key)
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

local reply = { now, allowed and 1 or 0, denied and 1 or 0,
  (deny_end and deny_end > 0) and deny_end - now or 0 }
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
