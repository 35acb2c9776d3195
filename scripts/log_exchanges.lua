-- log_exchanges.lua - log every exchange, for debugging.
--
-- Writes one line per request to the proxy's log (stderr) once it is over,
-- successful or not:
--   [scripts/log_exchanges.lua] #3 GET http://example.com/ -> 200, 1256 bytes, 48 ms
--   [scripts/log_exchanges.lua] #4 GET http://nowhere.invalid/ -> 502, 120 bytes, 3 ms, error: ...
-- "bytes" are the response body bytes sent to the client. on_done runs
-- for every request, including those answered by a script or refused with
-- an error, and for HTTPS tunnels when they close.
--
-- Run:
--   build/luaproxy -s scripts/log_exchanges.lua
--   curl -s -o /dev/null -x 127.0.0.1:8080 http://example.com/

-- Configuration ---------------------------------------------------------
local config = {
  -- Log only failures (status 400 and up, or an error) and slow exchanges.
  only_problems = false,
  slow_ms = 1000, -- with only_problems: this slow or slower counts as a problem
  -- Also log the bytes of request body forwarded upstream.
  show_request_bytes = false,
}
-- -----------------------------------------------------------------------

function on_done(tx)
  local ms = math.floor(tx.duration * 1000 + 0.5)
  if config.only_problems and tx.status < 400 and not tx.error and ms < config.slow_ms then
    return
  end
  local line = string.format("#%d %s %s -> %d, %d bytes", tx.id, tx.req.method, tx.req.url,
    tx.status, tx.bytes_sent)
  if config.show_request_bytes then
    line = line .. string.format(" (%d bytes up)", tx.bytes_received)
  end
  line = line .. string.format(", %d ms", ms)
  if tx.error then line = line .. ", error: " .. tx.error end
  proxy.log(line)
end
