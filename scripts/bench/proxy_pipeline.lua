-- wrk script: `POST /pipeline` carrying N INCRs per request (default 100), Bearer auth.
-- Commands/s = requests/s × N. Env: EDGECOUNT_BENCH_TOKEN, EDGECOUNT_BENCH_KEY,
-- EDGECOUNT_BENCH_PIPELINE.
local token = os.getenv("EDGECOUNT_BENCH_TOKEN") or error("EDGECOUNT_BENCH_TOKEN is not set")
local key = os.getenv("EDGECOUNT_BENCH_KEY") or "bench:pipeline"
local n = tonumber(os.getenv("EDGECOUNT_BENCH_PIPELINE") or "100")

local commands = {}
for i = 1, n do
  commands[i] = '["INCR","' .. key .. '"]'
end

wrk.method = "POST"
wrk.path = "/pipeline"
wrk.body = "[" .. table.concat(commands, ",") .. "]"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/json"
