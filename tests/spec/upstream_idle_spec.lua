-- An idle upstream connection lives min(--idle-timeout, 15 s) from the end
-- of its last response, whether the session keeps it for the client's next
-- request or the pool holds it: handing it to the pool does not start its
-- clock again.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local raw_origin = require("support.raw_origin")

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

  -- An idle upstream connection that speaks out of turn (a server that
  -- sends a second response nobody asked for, or closes) is unusable: its
  -- bytes would be read as the answer to the next request sent on it. The
  -- proxy notices by the socket's readable event. Here that event and the
  -- next request arrive in the same turn of the proxy's loop, the request
  -- handled first: the proxy is stopped (SIGSTOP) while the origin sends
  -- its stray response and the client its next request, and both wait in
  -- the proxy's sockets when it goes on (p.pause): the request's event,
  -- the later, is handled first.
  describe("that spoke out of turn", function()
    local raw
    local STRAY = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstray\n"
    local GOOD = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\ngood\n"

    after_each(function()
      if raw then raw.close() end
      raw = nil
    end)

    -- The first exchange over <s>, the upstream connection it used left idle
    -- (kept by the session, or parked in the pool once <s> closes).
    local function first_exchange(s)
      assert(h.send(s, h.request("GET", "http://" .. raw.authority .. "/first",
        { "Host: " .. raw.authority })))
      local conn, req = raw.next_request(5)
      assert(conn, "the first request did not reach the origin")
      assert.are.equal("/first", req.target)
      assert(conn.send(GOOD))
      local resp = assert(h.read_response(s))
      assert.are.equal("good\n", resp.body)
      return conn
    end

    -- While the proxy is stopped: <conn> sends its stray response, then
    -- <send_next> the next request; the proxy goes on once both wait in
    -- its sockets. Returns the answer <s> gets, the origin given GOOD for
    -- whatever request reaches it.
    local function next_exchange(s, conn, send_next)
      proxy.pause()
      assert(conn.send(STRAY))
      local _, proxy_side = conn.sock:getpeername()
      assert(h.wait_unread(tonumber(proxy_side), raw.port),
        "the stray response did not reach the proxy's socket")
      send_next()
      local _, client_port = s:getsockname()
      assert(h.wait_unread(proxy.port, tonumber(client_port)),
        "the next request did not reach the proxy's socket")
      proxy.go_on()
      local next_conn, req = raw.next_request(5)
      if next_conn then
        assert.are.equal("/next", req.target)
        assert(next_conn.send(GOOD))
      end
      return assert(h.read_response(s)), next_conn
    end

    -- After: the client's next request is answered on the connection that
    -- replaced the one that spoke, with nothing left over on either side.
    local function carries_on(s, conn)
      assert(h.send(s, h.request("GET", "http://" .. raw.authority .. "/again",
        { "Host: " .. raw.authority })))
      local again_conn, req = raw.next_request(5)
      assert(again_conn, "the next request did not reach the origin")
      assert.are.equal("/again", req.target)
      assert.are.equal(conn, again_conn, "the clean connection was not reused")
      assert(again_conn.send(GOOD))
      local resp = assert(h.read_response(s))
      assert.are.equal("good\n", resp.body)
      assert.are.equal("", again_conn.extra(), "bytes left over upstream")
      assert.are.equal("", (h.recv_some(s, 0.2)), "bytes left over for the client")
    end

    it("is not reused by the session that kept it", function()
      raw = raw_origin.new()
      proxy = h.start_proxy()
      local s = assert(h.connect(proxy.port))
      local conn = first_exchange(s)
      local resp, next_conn = next_exchange(s, conn, function()
        assert(h.send(s, h.request("GET", "http://" .. raw.authority .. "/next",
          { "Host: " .. raw.authority })))
      end)
      assert.are.equal("good\n", resp.body, "the stray response reached the client")
      assert.are_not.equal(conn, next_conn, "the request went out on the connection that spoke")
      carries_on(s, next_conn)
      s:close()
    end)

    it("is not taken from the pool by another client", function()
      raw = raw_origin.new()
      proxy = h.start_proxy()
      local s = assert(h.connect(proxy.port))
      local conn = first_exchange(s)
      -- Once the proxy has seen the client go, the connection is in the
      -- pool; once it has accepted the next one, that one's request is
      -- the only event it waits for from it.
      local open = proxy.fd_count()
      s:close()
      assert(h.wait_for(function() return proxy.fd_count() == open - 1 end, 5),
        "the proxy did not notice the client leave")
      local other = assert(h.connect(proxy.port))
      assert(h.wait_for(function() return proxy.fd_count() == open end, 5),
        "the proxy did not accept the next client")
      local resp, next_conn = next_exchange(other, conn, function()
        assert(h.send(other, h.request("GET", "http://" .. raw.authority .. "/next",
          { "Host: " .. raw.authority })))
      end)
      assert.are.equal("good\n", resp.body, "the stray response reached another client")
      assert.are_not.equal(conn, next_conn, "the request went out on the connection that spoke")
      carries_on(other, next_conn)
      other:close()
    end)
  end)
end)
