-- wrk.lua - the request script for every wrk run of tests/bench/run.sh.
--
-- wrk has no proxy option, but a forward proxy is just a server that gets
-- an absolute URL in the request line. So wrk connects to the address on
-- its command line (the proxy) and this script sets what it sends:
--
--   BENCH_PATH   the request target: "http://127.0.0.1:PORT/small" through
--                a forward proxy, "/small" straight to a server
--   BENCH_HOST   the Host field (wrk would otherwise name the proxy)
--   BENCH_CLOSE  "1" adds "Connection: close", so every request needs a new
--                connection (wrk reconnects when the server closes)
--
-- done() prints one machine-readable line for run.sh, next to wrk's usual
-- --latency report:
--
--   BENCH requests=N duration_us=N bytes=N connect=N read=N write=N
--         status=N timeout=N p50_us=N p99_us=N
--
-- status counts responses with a status of 400 or more (wrk's "Non-2xx or
-- 3xx responses"); the other error counts are socket errors and timeouts.

wrk.method = "GET"
wrk.path = os.getenv("BENCH_PATH") or "/"
local host = os.getenv("BENCH_HOST")
if host and host ~= "" then
  wrk.headers["Host"] = host
end
if os.getenv("BENCH_CLOSE") == "1" then
  wrk.headers["Connection"] = "close"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
