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
  ["respond-raw-200"] = function(tx)   -- around tx:respond, to its table
    tx:respond(403, "not this one\n")
    rawget(tx, "_respond").status = 200
  end,
}

function on_request(tx)
  local f = on_req[case(tx)]
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

  -- CONNECT to the echo server with X-Case <case>; the answer (read as
  -- an answer to CONNECT) and the socket.
  local function connect(proxy, case)
    local target = "127.0.0.1:" .. echo.port
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("CONNECT", target, { "Host: " .. target, "X-Case: " .. case })))
    local resp = assert(h.read_response(s, { method = "CONNECT" }))
    return resp, s
  end

  describe("tx:respond to a CONNECT", function()
    for _, case in ipairs({ "respond-200", "respond-204", "respond-299" }) do
      it(case .. " is the hook's error: a 2xx would open a tunnel the proxy never opened", function()
        local proxy = start()
        local resp, s = connect(proxy, case)
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

    it("with --hook-errors open, the answer is undone and the proxy opens the tunnel", function()
      local proxy = start({ "--hook-errors", "open" })
      local resp, s = connect(proxy, "respond-200")
      assert.equal("HTTP/1.1 200 Connection Established", resp.status_line)
      assert(h.send(s, "through"))
      assert.equal("through", h.recv_exact(s, 7))
      s:close()
    end)
  end)
end)
