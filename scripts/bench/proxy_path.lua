-- wrk script: the path form, `GET /INCR/<key>` with Bearer auth (webdis's form, with a token).
-- Env: EDGECOUNT_BENCH_TOKEN.
local token = os.getenv("EDGECOUNT_BENCH_TOKEN") or error("EDGECOUNT_BENCH_TOKEN is not set")

wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. token
