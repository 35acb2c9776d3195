-- demo.lua - a harmless tour of the hooks; `make run` starts the proxy with it.
--
-- What it does:
--   * on_request: counts requests, and answers http://luaproxy.demo/ itself
--     with a page about this demo (that host does not exist anywhere else);
--   * on_response: adds an "X-Luaproxy-Demo" header to every response
--     that comes from a server;
--   * on_done: logs one line per finished exchange.
-- Everything else passes through untouched.
--
-- Run:
--   make run        (or: build/luaproxy --script scripts/demo.lua)
--   curl -x 127.0.0.1:8080 http://luaproxy.demo/
--   curl -s -D - -o /dev/null -x 127.0.0.1:8080 http://example.com/   # see X-Luaproxy-Demo

-- Configuration ---------------------------------------------------------
local config = {
  demo_host = "luaproxy.demo",
  header = "X-Luaproxy-Demo",
}
-- -----------------------------------------------------------------------

-- Top-level variables live as long as the script is loaded: across all
-- requests and connections, until the proxy exits or reloads the scripts
-- (SIGHUP starts them afresh).
local requests = 0
local loaded_at = proxy.now()

local function demo_page()
  return string.format([[<!doctype html>
<html><head><meta charset="utf-8"><title>luaproxy demo</title></head>
<body>
<h1>luaproxy %s: the demo script is running</h1>
<p>This page was made by <code>scripts/demo.lua</code> inside the proxy; no
server was contacted. The script also adds an <code>%s</code> header to
every response from a real server, and logs each exchange on the proxy's
standard error.</p>
<p>Requests seen since the script was loaded %d seconds ago: %d</p>
<p>Copy a script from <code>scripts/</code> and start your own with
<code>build/luaproxy -s yours.lua</code>; <code>scripts/README.md</code>
describes every hook.</p>
</body></html>
]], proxy.version, config.header, math.floor(proxy.now() - loaded_at), requests)
end

function on_request(tx)
  requests = requests + 1
  -- proxy.canonical_host: LuaProxy.Demo. is luaproxy.demo too.
  if tx.req.method == "CONNECT" or proxy.canonical_host(tx.req.host) ~= config.demo_host then
    return
  end
  if tx.req.path == "/" then
    tx:respond(200, demo_page(), {
      ["Content-Type"] = "text/html; charset=utf-8",
      [config.header] = "local page",
    })
  else
    tx:respond(404, "Only http://" .. config.demo_host .. "/ exists.\n",
      { [config.header] = "local page" })
  end
end

function on_response(tx)
  tx.res.headers[config.header] = "this response passed through demo.lua"
end

function on_done(tx)
  proxy.log(string.format("#%d %s %s -> %d (%d bytes, %.0f ms)%s", tx.id, tx.req.method,
    tx.req.url, tx.status, tx.bytes_sent, tx.duration * 1000,
    tx.error and (", " .. tx.error) or ""))
end
