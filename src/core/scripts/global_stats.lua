-- global_stats: the service-wide figures (`GET /stats`) in one command, where one script may read
-- every shard (standalone Redis, Upstash, Valkey). On Redis Cluster the shards live in different
-- slots: there the caller reads them one by one (`global_stats_commands`).
-- KEYS: every shard's HyperLogLog of counter names, then every shard's hits of the day.
-- Returns {counters (the count of the HyperLogLogs' union: a name lives in one shard), hits today
-- (the sum)}.

local shards = #KEYS / 2
local hits = 0
for i = shards + 1, #KEYS do
  hits = hits + tonumber(redis.call('GET', KEYS[i]) or '0')
end
return {redis.call('PFCOUNT', unpack(KEYS, 1, shards)), hits}
