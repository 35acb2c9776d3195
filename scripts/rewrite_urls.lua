-- rewrite_urls.lua - rewrite request URLs with Lua pattern rules.
--
-- Each rule is { pattern, replacement } as for string.gsub: the pattern is
-- matched against the whole URL ("http://host[:port]/path?query"), and
-- %1, %2, ... in the replacement stand for its captures. The URL's host
-- is in lower case and without trailing dots, however the client wrote
-- it, and an address is in one spelling ([::1], 127.0.0.1): write
-- patterns for it that way. The first rule that matches wins.
-- The request then goes to the new URL: the proxy connects to the new
-- host and the Host header follows it. The client is not told (this is
-- not a redirect).
--
-- Run:
--   build/luaproxy -s scripts/rewrite_urls.lua
--   curl -i -x 127.0.0.1:8080 http://old.example/some/page   # fetched from new.example
--
-- Remember that "." and "-" are magic in Lua patterns: write "%." and "%-".

-- Configuration ---------------------------------------------------------
local config = {
  rules = {
    { "^http://old%.example/(.*)$", "http://new.example/%1" },
    -- any server, with or without a port, http or https (intercepted):
    -- %1 is "scheme://host[:port]"
    { "^(https?://[^/]+)/v1/(.*)$", "%1/v2/%2" },
  },
}
-- -----------------------------------------------------------------------

-- The request's URL with its host written one way (proxy.canonical_host):
-- a name in lower case and without trailing dots, as the server takes it
-- ("http://API.Example./x" names http://api.example/x), an address as the
-- proxy connects to it ("http://[0:0::1]/" is http://[::1]/,
-- "http://127.000.0.01/" is http://127.0.0.1/). tx.req.url keeps the
-- client's spelling.
local function url_of(req)
  local host, kind = proxy.canonical_host(req.host)
  host = host or req.host
  if kind == "ipv6" then host = "[" .. host .. "]" end
  local default_port = req.scheme == "https" and 443 or 80
  local port = req.port ~= default_port and ":" .. req.port or ""
  return req.scheme .. "://" .. host .. port .. req.path
end

function on_request(tx)
  -- A CONNECT tunnel has no URL to rewrite (its target is "host:port").
  if tx.req.method == "CONNECT" then return end
  local url = url_of(tx.req)
  for _, rule in ipairs(config.rules) do
    local new, matched = url:gsub(rule[1], rule[2], 1)
    if matched > 0 then
      proxy.log("rewrote", url, "->", new)
      tx.req.url = new -- host, port, path and the Host header follow
      return
    end
  end
end
