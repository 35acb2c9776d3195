-- An idle upstream connection lives min(--idle-timeout, 15 s) from the end
-- of its last response, whether the session keeps it for the client's next
-- request or the pool holds it: handing it to the pool does not start its
-- clock again.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")

describe("idle upstream connections", function()
  local origin, proxy

  after_each(function()
    local problem = h.stop_procs({ origin, proxy }, 2)
    origin, proxy = nil, nil
    assert(not problem, problem)
  end)

  it("are closed by the time the idle client is, not a timeout later", function()
    origin = h.start_origin()
    proxy = h.start_proxy({ "--idle-timeout", "2" })
    local baseline = proxy.fd_count()
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("GET", origin.url("/hello"), { "Host: " .. origin.authority })))
    local resp = assert(h.read_response(s))
    assert.are.equal(200, resp.status)
    -- The session keeps the upstream connection for the next request.
    assert.are.equal(baseline + 2, proxy.fd_count())
    -- The client stays idle: the proxy closes it after --idle-timeout.
    assert.is_true(h.is_closed(s, 6), "the idle client was not closed")
    s:close()
    -- Its upstream connection went at the same moment: before, it was
    -- pooled with a fresh clock and stayed open another --idle-timeout.
    local closed = h.wait_for(function() return proxy.fd_count() == baseline end, 1)
    assert(closed, "the upstream connection outlived its idle time: " ..
      tostring(proxy.fd_count()) .. " descriptors, " .. baseline .. " at start")
  end)

  -- A request answered without the upstream (by a script, or refused by
  -- the proxy) leaves the connection the session keeps as it was: kept and
  -- open. Before, the end of that exchange closed it but still counted it
  -- as kept, and the next use of it crashed the worker or left the next
  -- request unsent.
  describe("across a request answered without them", function()
    local function get(s, path, extra)
      local headers = { "Host: " .. origin.authority }
      for _, line in ipairs(extra or {}) do headers[#headers + 1] = line end
      assert(h.send(s, h.request("GET", origin.url(path), headers)))
      return assert(h.read_response(s))
    end

    it("stay kept for the client's next request", function()
      origin = h.start_origin()
      proxy = h.start_proxy(h.hook_args({ "respond" }))
      local s = assert(h.connect(proxy.port))
      local first = get(s, "/conn")
      assert.are.equal(200, first.status)
      local answered = get(s, "/hello", { "X-Respond-In: on_request" })
      assert.are.equal(403, answered.status)
      local again = get(s, "/conn")
      assert.are.equal(200, again.status)
      assert.are.equal(first.body, again.body, "the kept connection was not the one reused")
      s:close()
    end)

    it("go to the pool when the client's connection ends with a refusal", function()
      origin = h.start_origin()
      proxy = h.start_proxy()
      local s = assert(h.connect(proxy.port))
      local first = get(s, "/conn")
      assert.are.equal(200, first.status)
      -- an origin-form target: a 400 that closes the client's connection
      assert(h.send(s, "GET /relative HTTP/1.1\r\nHost: x\r\n\r\n"))
      local refused = assert(h.read_response(s))
      assert.are.equal(400, refused.status)
      assert.is_true(h.is_closed(s, 5), "the client connection stayed open after the 400")
      s:close()
      local other = assert(h.connect(proxy.port))
      local again = get(other, "/conn")
      assert.are.equal(first.body, again.body, "the kept connection did not reach the pool")
      other:close()
    end)

    it("give way to a CONNECT after a script's answer", function()
      origin = h.start_origin()
      proxy = h.start_proxy(h.hook_args({ "respond" },
        { "--connect-ports", tostring(origin.port) }))
      local s = assert(h.connect(proxy.port))
      assert.are.equal(200, get(s, "/conn").status)
      assert.are.equal(403, get(s, "/hello", { "X-Respond-In: on_request" }).status)
      assert(h.send(s, "CONNECT " .. origin.authority .. " HTTP/1.1\r\nHost: "
        .. origin.authority .. "\r\n\r\n"))
      local tunnel = assert(h.read_response(s, { method = "CONNECT" }))
      assert.are.equal(200, tunnel.status)
      -- the tunnel reaches the origin: a request through it is answered
      assert(h.send(s, "GET /hello HTTP/1.1\r\nHost: " .. origin.authority .. "\r\n\r\n"))
      local inside = assert(h.read_response(s))
      assert.are.equal(200, inside.status)
      assert.are.equal("hello\n", inside.body)
      s:close()
    end)
  end)
end)
