-- add_latency.lua - slow requests down, to see how a client copes.
--
-- Every request waits before it is sent on: `default` seconds, or the
-- number given for its host. The wait holds up only that request; the
-- proxy keeps serving everything else meanwhile (proxy.sleep does not
-- block the proxy). The host is the one in the URL; for HTTPS it is the
-- CONNECT target, so the wait happens once, before the tunnel opens, and
-- once more for each request inside the tunnel if the proxy intercepts it
-- (--intercept), since those run every hook.
--
-- Run:
--   build/luaproxy -s scripts/add_latency.lua
--   time curl -s -o /dev/null -x 127.0.0.1:8080 http://example.com/   # about 2 s more

-- Configuration ---------------------------------------------------------
local config = {
  default = 0.5,              -- seconds added to every request; 0 for none
  hosts = {                   -- per host, instead of the default
    ["example.com"] = 2,
    ["localhost"] = 0,
  },
}
-- -----------------------------------------------------------------------

-- The configured hosts in one spelling (proxy.canonical_host), so that
-- "Example.COM." in the table names example.com, and "[::1]" ::1.
local delays = {}
for host, delay in pairs(config.hosts) do
  delays[proxy.canonical_host(host) or host] = delay
end

function on_request(tx)
  -- A request's host in the same spelling: "Example.COM." is example.com.
  local host = proxy.canonical_host(tx.req.host) or tx.req.host
  local delay = delays[host] or config.default
  -- In short sleeps: one sleep may not last longer than
  -- --hook-wait-timeout (30 s), and a delay to test a client's own
  -- timeout may well be longer.
  while delay > 0 do
    local step = math.min(delay, 0.1)
    proxy.sleep(step) -- allowed in every hook
    delay = delay - step
  end
end
