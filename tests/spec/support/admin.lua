-- Helpers for specs of the admin listener (--admin): find its address and
-- token in the proxy's log, and make requests to it.
--
-- What it owns: an HTTP/1.1 client for the admin API (one connection per
-- call) and a JSON decoder (lua-cjson). What it doesn't: any assertion.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local cjson = require("cjson")

local a = {}

a.json = cjson

-- Waits for "admin interface: http://HOST:PORT/?token=TOKEN" in <proxy>'s
-- stderr; returns {host=, port=, token=} or nil. With <given>, the token
-- passed by --admin-token, which the line does not show.
function a.admin_of(proxy, given)
  return h.wait_for(function()
    local host, port, rest = proxy.stderr():match(
      "admin interface: http://%[?([%w%.:]-)%]?:(%d+)/(%S*)")
    local token = given or (rest and rest:match("^%?token=(%S+)"))
    return port and token and { host = host, port = tonumber(port), token = token }
  end, 5)
end

-- The value of --admin-token in <args>, if any.
function a.given_token(args)
  for i, x in ipairs(args or {}) do
    if x == "--admin-token" then return args[i + 1] end
  end
end

-- Starts a proxy with --admin 127.0.0.1:0 (plus <args>); returns proxy, admin.
function a.start(args, opts)
  local full = { "--admin", "127.0.0.1:0" }
  for _, x in ipairs(args or {}) do full[#full + 1] = x end
  local proxy = h.start_proxy(full, opts)
  local adm = a.admin_of(proxy, a.given_token(args))
  assert(adm, "no admin interface line in the log:\n" .. proxy.stderr())
  return proxy, adm
end

-- One request to the admin listener. <opts>: method, headers (list of
-- "Name: value"; Host and the bearer token are added unless given or
-- opts.no_token), body. Returns the response (see harness read_response).
function a.call(adm, path, opts)
  opts = opts or {}
  local headers = {}
  local has_host = false
  for _, x in ipairs(opts.headers or {}) do
    headers[#headers + 1] = x
    if x:lower():match("^host:") then has_host = true end
  end
  if not has_host then headers[#headers + 1] = "Host: 127.0.0.1:" .. adm.port end
  if not opts.no_token then headers[#headers + 1] = "Authorization: Bearer " .. adm.token end
  if opts.body then headers[#headers + 1] = "Content-Length: " .. #opts.body end
  headers[#headers + 1] = "Connection: close"
  local s = assert(h.connect(adm.port))
  h.send(s, h.request(opts.method or "GET", path, headers, opts.body))
  local resp, err = h.read_response(s, { method = opts.method, timeout = opts.timeout })
  s:close()
  return resp, err
end

-- GET <path>, expecting 200 and JSON; returns the decoded value.
function a.get_json(adm, path)
  local resp, err = a.call(adm, path)
  assert(resp, "no response: " .. tostring(err))
  assert(resp.status == 200, "status " .. tostring(resp.status) .. ": " .. tostring(resp.body))
  return cjson.decode(resp.body)
end

-- A flow id as it goes into a path (JSON numbers decode as floats).
function a.id(n)
  return string.format("%d", n)
end

-- Percent-encodes a query value.
function a.escape(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

return a
