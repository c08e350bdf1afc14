-- wrk script for the worker and ratelimit benchmarks: `POST <the URL's path>` with no body and a
-- browser User-Agent (our worker answers "counted":false to bots). Env: EDGECOUNT_BENCH_UA.
wrk.method = "POST"
wrk.headers["User-Agent"] = os.getenv("EDGECOUNT_BENCH_UA")
  or "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
