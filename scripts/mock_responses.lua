-- mock_responses.lua - answer some URLs with canned responses.
--
-- Useful to develop against an API that does not exist yet, or to make a
-- server "fail" on purpose. A mock matches a URL exactly (url = ...) or by
-- a Lua pattern (pattern = ...); the first mock that matches answers, and
-- the real server is never contacted. In a pattern mock, %1, %2, ... in
-- the body stand for the pattern's captures. Other requests pass through.
-- The URL is matched with its host in lower case and without trailing
-- dots, however the client wrote it (http://API.Example./health too), and
-- an address in one spelling (http://[::1]/, http://127.0.0.1/), so write
-- the host that way in the mocks.
--
-- Run:
--   build/luaproxy -s scripts/mock_responses.lua
--   curl -i -x 127.0.0.1:8080 http://api.example/users/42
--   curl -i -x 127.0.0.1:8080 http://api.example/health

-- Configuration ---------------------------------------------------------
local config = {
  mocks = {
    { url = "http://api.example/health", status = 200, body = "ok\n" },
    { pattern = "^http://api%.example/users/(%d+)$", status = 200,
      body = '{"id": %1, "name": "User %1"}\n',
      headers = { ["Content-Type"] = "application/json" } },
    { pattern = "^http://api%.example/broken", status = 503,
      body = "mocked outage\n", headers = { ["Retry-After"] = "30" } },
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

-- Returns the mock for <url> and the pattern's captures, or nil.
local function find_mock(url)
  for _, mock in ipairs(config.mocks) do
    if mock.url == url then return mock, {} end
    if mock.pattern then
      local captures = { url:match(mock.pattern) }
      if captures[1] then return mock, captures end
    end
  end
end

function on_request(tx)
  if tx.req.method == "CONNECT" then return end
  local mock, captures = find_mock(url_of(tx.req))
  if not mock then return end
  local body = (mock.body or ""):gsub("%%(%d)", function(i)
    return captures[tonumber(i)] or ""
  end)
  -- The proxy adds Content-Length; Content-Type defaults to text/plain.
  tx:respond(mock.status or 200, body, mock.headers)
end
