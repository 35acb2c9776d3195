-- redirect_host.lua - send one host's traffic to another server.
--
-- Requests for a listed host are connected to the server given instead,
-- for example a development copy of a site on your own machine. Unlike
-- rewrite_urls.lua the request itself is not changed: the URL path and the
-- Host header stay as the client sent them, so the local server sees the
-- request exactly as the real one would. HTTPS (CONNECT) tunnels to a
-- listed host are redirected too, when --connect-ports allows the port
-- they are sent to (the proxy checks the tunnel's final target).
--
-- Run:
--   python3 -m http.server 8000 &          # any local server
--   build/luaproxy -s scripts/redirect_host.lua
--   curl -i -x 127.0.0.1:8080 http://www.example.com/   # served by port 8000

-- Configuration ---------------------------------------------------------
local config = {
  -- host as the client names it -> where to connect instead
  routes = {
    ["www.example.com"] = { host = "127.0.0.1", port = 8000 },
  },
}
-- -----------------------------------------------------------------------

-- before_connect runs after every on_request, just before the proxy looks
-- up and connects to tx.upstream; changing tx.upstream changes only where
-- it connects.
function before_connect(tx)
  -- "WWW.Example.com." names the same site as "www.example.com".
  local to = config.routes[tx.req.host:lower():gsub("%.+$", "")]
  if to then
    tx.upstream.host = to.host
    tx.upstream.port = to.port
  end
end
