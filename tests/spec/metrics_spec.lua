-- End-to-end specs for /metrics and /status on the admin listener: the
-- Prometheus text passes `promtool check metrics`, needs no token, and its
-- counters add up over all workers; /status says the same as JSON.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local each_test = require("support.each_test")
local a = require("support.admin")

-- name{labels} value lines into a table keyed by "name{labels}".
local function parse_metrics(text)
  local t = {}
  for line in text:gmatch("[^\n]+") do
    if not line:find("^#") then
      local key, value = line:match("^(%S+) (%S+)$")
      if key then t[key] = tonumber(value) end
    end
  end
  return t
end

local function promtool_check(text)
  local path = h.tmpfile(text, "metrics.txt")
  local out, code = h.sh("promtool check metrics < " .. h.shell_quote(path) .. " 2>&1")
  return code, out
end

describe("metrics", function()
  local procs = each_test.processes()
  local origin, echo
  before_each(function()
    origin = procs.origin()
    echo = procs.origin("echo")
  end)

  it("serves Prometheus text that promtool accepts, summed over workers", function()
    local script = h.tmpfile([[
function on_request(tx)
  if tx.req.method == "POST" then tx.req.buffer_body = true end
end
function on_request_chunk(tx, chunk, eof)
  if chunk:find("fail", 1, true) then error("on purpose") end
end
function on_response(tx)
  if tx.req.url:find("/fail", 1, true) then error("on purpose") end
end
]], "count.lua")
    local proxy, adm = procs.add(a.start({ "--workers", "2", "--admin-token", "metrics-token-1",
                                           "--connect-ports", tostring(echo.port), "--script", script }))

    -- before any traffic: valid too
    local resp = a.call(adm, "/metrics", { no_token = true })
    assert.equal(200, resp.status)
    local code, out = promtool_check(resp.body)
    assert.equal(0, code, out)

    for _ = 1, 6 do assert.equal(200, h.get(proxy.port, origin.url("/hello")).status) end
    -- a request body: on_request_chunk runs, and fails on the second
    local function post(body)
      local s = assert(h.connect(proxy.port))
      h.send(s, h.request("POST", origin.url("/echo"), { "Host: " .. origin.authority,
        "Content-Length: " .. #body }, body))
      local r = h.read_response(s)
      s:close()
      return r and r.status
    end
    assert.equal(200, post("hello"))
    assert.equal(500, post("fail"))
    assert.equal(500, h.get(proxy.port, origin.url("/fail")).status)
    local refused = "http://127.0.0.1:" .. h.closed_port() .. "/x"
    assert.equal(502, h.get(proxy.port, refused).status)
    -- a tunnel, open while we look
    local t = assert(h.connect(proxy.port))
    h.send(t, "CONNECT 127.0.0.1:" .. echo.port .. " HTTP/1.1\r\nHost: 127.0.0.1:" .. echo.port .. "\r\n\r\n")
    assert.equal(200, h.read_response(t, { method = "CONNECT" }).status)
    h.send(t, "ping")
    assert.equal("ping", h.recv_exact(t, 4))

    local m
    assert.truthy(h.wait_for(function()
      m = parse_metrics(a.call(adm, "/metrics", { no_token = true }).body)
      return m['luaproxy_requests_total{method="GET",code="2xx"}'] == 6
        and m['luaproxy_tunnels_open'] == 1
    end), "metrics never added up")
    assert.equal(2, m['luaproxy_requests_total{method="GET",code="5xx"}']) -- 500 and 502
    assert.equal(1, m["luaproxy_upstream_connect_errors_total"])
    assert.truthy(m["luaproxy_connections_accepted_total"] >= 9)
    assert.truthy(m["luaproxy_connections_open"] >= 1)
    assert.truthy(m["luaproxy_sent_bytes_total"] >= 6 * 6)
    assert.equal(11, m['luaproxy_hook_calls_total{hook="on_request"}'])
    assert.truthy(m['luaproxy_hook_calls_total{hook="on_request_chunk"}'] >= 2)
    assert.equal(1, m['luaproxy_hook_errors_total{hook="on_request_chunk"}'])
    assert.equal(8, m['luaproxy_hook_calls_total{hook="on_response"}'])
    assert.equal(1, m['luaproxy_hook_errors_total{hook="on_response"}'])
    assert.equal(8, m['luaproxy_hook_duration_seconds_count{hook="on_response"}'])
    assert.equal(8, m['luaproxy_hook_duration_seconds_bucket{hook="on_response",le="+Inf"}'])
    assert.equal(1, m['luaproxy_build_info{version="0.1.0"}'])
    assert.truthy(m["luaproxy_start_time_seconds"] > 1.7e9)
    resp = a.call(adm, "/metrics", { no_token = true })
    code, out = promtool_check(resp.body)
    assert.equal(0, code, out)

    t:close()
    assert.truthy(h.wait_for(function()
      return parse_metrics(a.call(adm, "/metrics", { no_token = true }).body)["luaproxy_tunnels_open"] == 0
    end))
    local tm = parse_metrics(a.call(adm, "/metrics", { no_token = true }).body)
    assert.equal(1, tm['luaproxy_requests_total{method="CONNECT",code="2xx"}'])
    assert.truthy(tm["luaproxy_received_bytes_total"] >= 4)

    -- /status: the same numbers as JSON, plus workers and scripts; it
    -- needs the token
    assert.equal(401, a.call(adm, "/status", { no_token = true }).status)
    local st = a.get_json(adm, "/status")
    assert.equal("0.1.0", st.version)
    assert.equal(2, #st.workers)
    assert.equal(script, st.scripts[1])
    assert.truthy(st.uptime_seconds >= 0)
    assert.equal(6, st.requests_by_class.GET["2xx"])
    assert.equal(1, st.upstream_connect_errors)
    assert.equal(11, st.hooks.on_request.calls)
  end)

  -- An idle keep-alive client closed so a new one can have its slot.
  it("counts idle clients closed at --max-connections to make room", function()
    local proxy, adm = procs.add(a.start({ "--max-connections", "2" }))
    local request = h.request("GET", origin.url("/hello"), { "Host: " .. origin.authority })
    local m = parse_metrics(a.call(adm, "/metrics", { no_token = true }).body)
    assert.equal(0, m["luaproxy_connections_reclaimed_total"])
    assert.equal(0, a.get_json(adm, "/status").connections_reclaimed)

    local clients = {}
    for i = 1, 3 do
      clients[i] = assert(h.connect(proxy.port))
      h.send(clients[i], request)
      assert.equal(200, assert(h.read_response(clients[i])).status)
    end
    assert.is_true(h.is_closed(clients[1], 5), "the longest-idle client was not closed")
    m = parse_metrics(a.call(adm, "/metrics", { no_token = true }).body)
    assert.equal(1, m["luaproxy_connections_reclaimed_total"])
    assert.equal(1, a.get_json(adm, "/status").connections_reclaimed)
    local resp = a.call(adm, "/metrics", { no_token = true })
    assert.truthy(resp.body:find("# TYPE luaproxy_connections_reclaimed_total counter\n", 1, true))
    local code, out = promtool_check(resp.body)
    assert.equal(0, code, out)
    for i = 1, 3 do clients[i]:close() end
  end)

  -- A script's path is the operator's bytes, UTF-8 as a rule: /status
  -- gives it back as it is, not byte by byte as if it were Latin-1.
  it("names scripts with non-ASCII paths as they are in /status", function()
    local script = h.tmpfile("function on_request(tx) end\n", "z\u{e9}ro-\u{1F600}.lua")
    local _, adm = procs.add(a.start({ "--script", script }))
    assert.equal(script, a.get_json(adm, "/status").scripts[1])
  end)
end)
