-- What a script sets is held to the rules the proxy holds clients to: it
-- can never make the proxy send a message a client could not have made it
-- send, nor take a request where the operator's options forbid. A value
-- that breaks them is the hook's error: 500 with the reason in the log
-- (or, with --hook-errors open, that hook's changes undone).
--
-- One script serves every case: the request's X-Case field names what its
-- hooks do.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local each_test = require("support.each_test")

local SCRIPT = [[
local function case(tx) return tx.req.headers["X-Case"] or "" end

local on_req = {
  -- tx:respond to a CONNECT
  ["respond-200"] = function(tx) tx:respond(200, "mock tunnel") end,
  ["respond-204"] = function(tx) tx:respond(204) end,
  ["respond-299"] = function(tx) tx:respond(299, "mock tunnel") end,
  ["respond-101"] = function(tx) tx:respond(101) end,
  ["respond-403"] = function(tx) tx:respond(403, "not this one\n") end,
  ["intercept-fail"] = function(tx)
    tx:intercept(true)
    error("intercept then fail on purpose")
  end,
  ["respond-raw-200"] = function(tx)   -- around tx:respond, to its table
    tx:respond(403, "not this one\n")
    rawget(tx, "_respond").status = 200
  end,
  ["respond-raw-fields"] = function(tx) -- around tx:respond: no list at all
    tx:respond(200, "not this one\n")
    rawget(tx, "_respond").headers = "X-Evil: 1"
  end,
  -- Host, target and method
  ["host-space"] = function(tx) tx.req.headers["Host"] = "a b" end,
  ["host-comma"] = function(tx) tx.req.headers["Host"] = "a,b" end,
  ["host-empty"] = function(tx) tx.req.headers["Host"] = "" end,
  ["host-bad-port"] = function(tx) tx.req.headers["Host"] = "x.invalid:99999" end,
  ["host-userinfo"] = function(tx) tx.req.headers:set("Host", "@evil.invalid") end,
  ["host-raw"] = function(tx)     -- around the methods, into the list read back
    local hd = tx.req.headers
    hd["X-Touched"] = "1"         -- a change, so the list is read back
    local _ = hd["Host"]          -- a read makes the list a plain table
    for i = 1, rawlen(hd), 2 do
      if rawget(hd, i) == "Host" then rawset(hd, i + 1, "a b") end
    end
  end,
  ["host-other"] = function(tx) tx.req.headers["Host"] = "other.example:8080" end,
  ["path-fragment"] = function(tx) tx.req.path = "/a#frag" end,
  ["path-non-ascii"] = function(tx) tx.req.path = "/caf\233" end,
  ["url-fragment"] = function(tx) tx.req.url = "http://" .. tx.req.headers["Host"] .. "/a#frag" end,
  ["path-raw"] = function(tx)     -- around the setter, to the data itself
    pairs(tx.req); local d = rawget(tx.req, 2)
    d.path = "/caf\233"
    tx.req.headers["X-Touched"] = "1"
  end,
  ["path-ok"] = function(tx) tx.req.path = "/echo?a=%C3%A9&b=/c" end,
  ["method-long"] = function(tx) tx.req.method = string.rep("X", 100000) end,
  ["method-ok"] = function(tx) tx.req.method = "PROPFIND" end,
  -- a CONNECT's target
  ["connect-port"] = function(tx) tx.req.port = tonumber(tx.req.headers["X-Port"]) end,
  ["connect-url"] = function(tx) tx.req.url = "http://127.0.0.1/x" end,
  ["connect-path"] = function(tx) tx.req.path = "/x" end,
  ["connect-raw-path"] = function(tx)
    pairs(tx.req); local d = rawget(tx.req, 2)
    d.path = "/x"
    tx.req.headers["X-Touched"] = "1"
  end,
}

function before_connect(tx)
  if case(tx) == "connect-upstream-port" then
    tx.upstream.port = tonumber(tx.req.headers["X-Port"])
  end
end

function on_request(tx)
  local f = on_req[case(tx)]
  if f then f(tx) end
end

local on_res = {
  ["reason-127"] = function(tx) tx.res.reason = string.rep("R", 127) end,
  ["reason-long"] = function(tx) tx.res.reason = string.rep("R", 200000) end,
  ["reason-raw"] = function(tx)   -- around the setter, to the data itself
    pairs(tx.res); local d = rawget(tx.res, 2)
    d.reason = string.rep("R", 128)
    tx.res.headers["X-Touched"] = "1"
  end,
}

function on_response(tx)
  local f = on_res[case(tx)]
  if f then f(tx) end
end
]]

describe("values set by scripts", function()
  local procs = each_test.processes()
  local origin, echo
  before_each(function()
    origin = procs.origin()
    echo = procs.origin("echo")
  end)

  local function start(args)
    local full = { "-s", h.tmpfile(SCRIPT, "values.lua"), "--connect-ports", tostring(echo.port) }
    for _, a in ipairs(args or {}) do full[#full + 1] = a end
    return procs.proxy(full)
  end

  -- Waits (bounded) for a line of the proxy's log holding <text>.
  local function wait_log(proxy, text)
    return h.wait_for(function()
      for line in proxy.log():gmatch("[^\n]+") do
        if line:find(text, 1, true) then return line end
      end
    end)
  end

  local SCRIPT_FAILED = "500 Internal Server Error: a script failed while handling this request\n"

  -- CONNECT to <target> (default: the echo server) with X-Case <case> and
  -- X-Port <port>; the answer, read as an answer to CONNECT, and, with
  -- <keep>, the socket (else closed: the proxy need not linger for it).
  local function connect(proxy, case, keep, target, port)
    target = target or "127.0.0.1:" .. echo.port
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("CONNECT", target, { "Host: " .. target, "X-Case: " .. case,
                                                   "X-Port: " .. (port or 0) })))
    local resp = assert(h.read_response(s, { method = "CONNECT" }))
    if not keep then
      s:close()
      return resp
    end
    return resp, s
  end

  -- GET <path> on the origin with X-Case <case>; the answer.
  local function get(proxy, case, path)
    return h.get(proxy.port, origin.url(path or "/echo"), { "X-Case: " .. case })
  end

  -- <case> is the hook's error: 500, the log says <why>, and nothing
  -- reaches the origin.
  local function refused(case, why, path)
    it(case .. " is the hook's error", function()
      local proxy = start()
      local resp = get(proxy, case, path)
      assert(h.check_error_response(resp, 500, "Internal Server Error"))
      assert.truthy(wait_log(proxy, why), proxy.log())
      assert.equal(0, #origin.requests())
    end)
  end

  describe("the Host field", function()
    refused("host-space", "invalid Host 'a b'")
    refused("host-comma", "invalid Host 'a,b'")
    refused("host-empty", "invalid Host ''")
    refused("host-bad-port", "invalid Host 'x.invalid:99999'")
    refused("host-userinfo", "invalid Host '@evil.invalid'")
    refused("host-raw", "invalid Host 'a b'")

    it("a valid one names the site to the origin, as set", function()
      local proxy = start()
      local resp = get(proxy, "host-other")
      assert.equal(200, resp.status)
      assert.truthy(resp.body:find("\r\nHost: other.example:8080\r\n", 1, true), resp.body)
    end)

    it("with --hook-errors open, a bad one is undone with the rest of its hook", function()
      local proxy = start({ "--hook-errors", "open" })
      local resp = get(proxy, "host-space")
      assert.equal(200, resp.status)
      assert.truthy(resp.body:find("\r\nHost: " .. origin.authority .. "\r\n", 1, true), resp.body)
    end)

    it("through a parent, Host is the absolute URL's authority", function()
      local parent = procs.add(h.start_parent())
      local proxy = start({ "--upstream", parent.url() })
      local resp = h.get(proxy.port, "http://good.invalid/x", { "X-Case: host-other" })
      assert.equal("GET http://good.invalid/x HTTP/1.1\n", resp.body)
      local head = parent.wait_requests(1)[1]
      assert.equal(1, select(2, head:gsub("\r\n[Hh]ost:", "")), head)
      assert.truthy(head:find("\r\nHost: good.invalid\r\n", 1, true), head)
    end)
  end)

  describe("the request line", function()
    refused("path-fragment", "path must start with / and hold only visible ASCII")
    refused("path-non-ascii", "path must start with / and hold only visible ASCII")
    refused("url-fragment", "path must start with / and hold only visible ASCII")
    refused("path-raw", "invalid method or path")
    refused("method-long", "the request line would be")

    it("a valid path and method go out as set", function()
      local proxy = start()
      local resp = get(proxy, "path-ok", "/elsewhere")
      assert.equal(200, resp.status)
      assert.truthy(resp.body:find("^GET /echo%?a=%%C3%%A9&b=/c HTTP/1%.1\r\n"), resp.body)
      resp = get(proxy, "method-ok")
      assert.truthy(resp.body:find("^PROPFIND /echo HTTP/1%.1\r\n"), resp.body)
    end)
  end)

  describe("the reason phrase", function()
    it("goes out as set up to 127 bytes", function()
      local proxy = start()
      local resp = get(proxy, "reason-127", "/hello")
      assert.equal("HTTP/1.1 200 " .. string.rep("R", 127), resp.status_line)
    end)

    for _, case in ipairs({ "reason-long", "reason-raw" }) do
      it(case .. ": a longer one is the hook's error", function()
        local proxy = start()
        local resp = get(proxy, case, "/hello")
        assert(h.check_error_response(resp, 500, "Internal Server Error"))
        assert.truthy(wait_log(proxy, case == "reason-long" and "reason must be at most 127 bytes"
                                        or "invalid reason phrase (at most 127 bytes"), proxy.log())
      end)
    end
  end)

  describe("a CONNECT's target", function()
    local function connect_to(proxy, target, case, port, keep)
      return connect(proxy, case, keep, target, port)
    end

    for _, case in ipairs({ "connect-port", "connect-upstream-port" }) do
      it(case .. ": a script may not move it to a port --connect-ports does not allow", function()
        local proxy = start()
        -- The client may not go there itself...
        local resp = connect_to(proxy, "127.0.0.1:" .. origin.port, "none", 0)
        assert(h.check_error_response(resp, 403, "Forbidden"))
        -- ...nor through a script that moves an allowed CONNECT there.
        resp = connect_to(proxy, "127.0.0.1:" .. echo.port, case, origin.port)
        assert(h.check_error_response(resp, 403, "Forbidden"))
        assert.truthy(resp.body:find("a script moved this CONNECT to port " .. origin.port, 1, true),
          resp.body)
        assert.truthy(wait_log(proxy, "a script moved a CONNECT to 127.0.0.1:" .. origin.port),
          proxy.log())
        assert.equal(0, #origin.requests())
      end)
    end

    it("a script may move it to a port that is allowed", function()
      local proxy = start({ "--connect-ports", "443" })
      local resp, s = connect_to(proxy, "127.0.0.1:443", "connect-port", echo.port, true)
      assert.equal("HTTP/1.1 200 Connection Established", resp.status_line)
      assert(h.send(s, "moved"))
      assert.equal("moved", h.recv_exact(s, 5))
      s:close()
    end)

    for _, c in ipairs({ { "connect-url", "tx.req.url cannot be set for a CONNECT" },
                         { "connect-path", "tx.req.path cannot be set for a CONNECT" },
                         { "connect-raw-path", "a CONNECT has a host and a port, no URL or path" } }) do
      it(c[1] .. " is the hook's error: a CONNECT has no URL or path", function()
        local proxy = start()
        local resp = connect_to(proxy, "127.0.0.1:" .. echo.port, c[1], 0)
        assert(h.check_error_response(resp, 500, "Internal Server Error"))
        assert.truthy(wait_log(proxy, c[2]), proxy.log())
      end)
    end
  end)

  describe("the answer of tx:respond", function()
    -- Its fields were read as a list whatever they were: a string there
    -- crashed the worker.
    refused("respond-raw-fields", "a header list must be a table, not a string")
  end)

  describe("tx:respond to a CONNECT", function()
    for _, case in ipairs({ "respond-200", "respond-204", "respond-299" }) do
      it(case .. " is the hook's error: a 2xx would open a tunnel the proxy never opened", function()
        local proxy = start()
        local resp, s = connect(proxy, case, true)
        assert(h.check_error_response(resp, 500, "Internal Server Error"))
        assert.equal(SCRIPT_FAILED, resp.body)
        assert.truthy(wait_log(proxy, "a CONNECT cannot be answered with"), proxy.log())
        -- A refused CONNECT ends its connection: what the client sends
        -- next, meant for a tunnel, is never read as a request.
        assert.equal("close", resp.headers["connection"])
        h.send(s, h.request("GET", origin.url("/inside"), { "Host: " .. origin.authority }))
        local data, how = h.recv_until_close(s, 5)
        assert.equal("", data)
        assert.equal("closed", how)
        s:close()
        assert.equal(0, #origin.requests())
      end)
    end

    it("a 1xx is the hook's error as for any request", function()
      local proxy = start()
      local resp = connect(proxy, "respond-101")
      assert(h.check_error_response(resp, 500, "Internal Server Error"))
      assert.truthy(wait_log(proxy, "status must be an integer from 200 to 599"), proxy.log())
    end)

    it("an error status goes out as the script made it", function()
      local proxy = start()
      local resp = connect(proxy, "respond-403")
      assert.equal(403, resp.status)
      assert.equal("not this one\n", resp.body)
    end)

    it("a 2xx put in around tx:respond is refused when the answer is written", function()
      local proxy = start()
      local resp = connect(proxy, "respond-raw-200")
      assert.equal(500, resp.status)
      assert.truthy(wait_log(proxy, "would open the tunnel"), proxy.log())
    end)

    it("with --hook-errors open, a failing hook's tx:intercept is undone with it", function()
      local proxy = start({ "--hook-errors", "open", "--ca-dir", h.new_ca_dir() })
      local resp, s = connect(proxy, "intercept-fail", true)
      assert.equal("HTTP/1.1 200 Connection Established", resp.status_line)
      -- Passed through as without the hook: the echo server answers, not
      -- a TLS handshake of the proxy's.
      assert(h.send(s, "through"))
      assert.equal("through", h.recv_exact(s, 7))
      s:close()
      assert.truthy(wait_log(proxy, "intercept then fail on purpose"), proxy.log())
    end)

    it("with --hook-errors open, the answer is undone and the proxy opens the tunnel", function()
      local proxy = start({ "--hook-errors", "open" })
      local resp, s = connect(proxy, "respond-200", true)
      assert.equal("HTTP/1.1 200 Connection Established", resp.status_line)
      assert(h.send(s, "through"))
      assert.equal("through", h.recv_exact(s, 7))
      s:close()
    end)
  end)
end)
