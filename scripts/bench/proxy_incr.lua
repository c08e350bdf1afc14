-- wrk script: one Upstash REST command per request, `POST /` with body ["INCR",KEY] and Bearer
-- auth, like the official SDKs send it. Env: EDGECOUNT_BENCH_TOKEN, EDGECOUNT_BENCH_KEY.
local token = os.getenv("EDGECOUNT_BENCH_TOKEN") or error("EDGECOUNT_BENCH_TOKEN is not set")
local key = os.getenv("EDGECOUNT_BENCH_KEY") or "bench:proxy"

wrk.method = "POST"
wrk.body = '["INCR","' .. key .. '"]'
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/json"
