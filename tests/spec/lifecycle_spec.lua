-- Process-level behaviour (contract: "Starting", SIGTERM, loop detection):
-- graceful shutdown, CPU and memory use, file descriptor hygiene.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")

describe("proxy lifecycle", function()
  local origin, proxy
  local socks = {}

  before_each(function()
    origin = h.start_origin()
    proxy = h.start_proxy({})
  end)

  after_each(function()
    for _, s in ipairs(socks) do s:close() end
    socks = {}
    local problem = h.stop_procs({ origin, proxy }, 2)
    proxy, origin = nil, nil
    assert(not problem, problem)
  end)

  local function connect()
    local s = assert(h.connect(proxy.port))
    socks[#socks + 1] = s
    return s
  end

  local function get(url)
    local resp, err = h.get(proxy.port, url)
    assert(resp, "no response for " .. url .. ": " .. tostring(err))
    return resp
  end

  it("finishes an in-flight exchange on SIGTERM, refuses new connections, exits 0", function()
    local s = connect()
    assert(h.send(s, h.request("GET", origin.url("/slow?ms=2500"),
      { "Host: " .. origin.authority })))
    -- The exchange is in flight once the origin has the request.
    assert(origin.wait_requests(1), "request never reached the origin")
    proxy.signal("TERM")

    -- The listener goes away promptly; the slow response is still pending.
    local refused = h.wait_for(function()
      local c, err = h.connect(proxy.port, nil, 0.5)
      if c then c:close(); return false end
      return err == "connection refused"
    end, 1.5, 0.05)
    assert.is_true(refused == true, "new connections still accepted after SIGTERM")

    local resp = h.read_response(s, { timeout = 8 })
    assert(resp, "in-flight response lost on SIGTERM")
    assert.are.equal("HTTP/1.1 200 OK", resp.status_line)
    assert.are.equal("slow\n", resp.body)
    assert.are.equal(0, proxy.wait_exit(12))
  end)

  it("logs an exchange the shutdown cuts off at its time limit, and runs its on_done", function()
    proxy.stop()
    local script = h.tmpfile('function on_done(tx) proxy.log("on_done: " .. tostring(tx.error)) end\n',
      "done.lua")
    proxy = h.start_proxy({ "-s", script })
    local s = connect()
    assert(h.send(s, h.request("GET", origin.url("/slow?ms=30000"),
      { "Host: " .. origin.authority })))
    assert(origin.wait_requests(1), "request never reached the origin")
    proxy.signal("TERM")
    -- The response never comes in time: the shutdown closes the connection.
    assert.are.equal(0, proxy.wait_exit(20))
    assert.truthy(proxy.log():find("on_done: closed: the proxy stopped before it ended", 1, true),
      proxy.log())
    assert.truthy(proxy.wait_access_log('"GET http://[^"]*/slow%?ms=30000 HTTP/1%.1" 000 '),
      proxy.access_log())
  end)

  it("refuses to start on an address another process listens on", function()
    -- Its sockets share their port with SO_REUSEPORT (one per worker); a
    -- second proxy on the same address must fail, not take a share.
    local addr = "127.0.0.1:" .. proxy.port
    for _, args in ipairs({
      { "--listen", addr },
      { "--listen", addr, "--workers", "2" },
      { "--listen", "127.0.0.1:0", "--admin", addr },
      { "--listen", "127.0.0.1:0", "--workers", "2", "--admin", addr },
    }) do
      local code, _, err = h.run_proxy(args)
      local what = table.concat(args, " ")
      assert.are.equal(1, code, what .. " started:\n" .. err)
      assert.truthy(err:find("cannot listen on " .. addr .. ": Address already in use", 1, true), err)
    end
    -- The first proxy still gets every connection.
    for _ = 1, 20 do assert.are.equal("hello\n", get(origin.url("/hello")).body) end
  end)

  it("uses no CPU while idle", function()
    assert.are.equal("hello\n", get(origin.url("/hello")).body)
    h.sleep(0.2)   -- let the finished exchange settle before measuring
    local before = proxy.cpu_ticks()
    h.sleep(1.0)   -- the measurement window itself
    local after = proxy.cpu_ticks()
    assert.is_true(after - before <= 2, "idle proxy used " .. (after - before) .. " ticks in 1 s")
  end)

  it("keeps memory bounded while a slow client reads a 200 MiB response", function()
    -- Under AddressSanitizer (make SANITIZE=...) freed blocks sit in a
    -- 256 MB quarantine by default, which would measure ASan, not the
    -- proxy; a small quarantine keeps the check meaningful there too.
    -- The variable is ignored by a normal build.
    proxy.stop()
    local asan = os.getenv("ASAN_OPTIONS")
    proxy = h.start_proxy({}, { env = {
      ASAN_OPTIONS = (asan and asan ~= "" and asan .. ":" or "") .. "quarantine_size_mb=4" } })

    local total = 200 * 1024 * 1024
    local s = connect()
    assert(h.send(s, h.request("GET", origin.url("/bytes?n=" .. total),
      { "Host: " .. origin.authority })))
    local resp = h.read_response(s, { head_only = true, timeout = 10 })
    assert(resp, "no response head")
    assert.are.equal(200, resp.status)
    assert.are.equal(tostring(total), resp.headers["content-length"])

    local expected = h.pattern(2 * 65536 + 64)
    local got, max_rss, samples = 0, 0, 0
    local function sample()
      local rss = proxy.rss_kb()
      if rss and rss > max_rss then max_rss = rss end
      samples = samples + 1
    end
    local function check(data)
      local start = got % 64
      assert(data == expected:sub(start + 1, start + #data), "body corrupt at byte " .. got)
      got = got + #data
    end

    -- Slow phase: 64 KiB every 10 ms for 2.5 s, so the origin races ahead
    -- and the proxy must stop reading it instead of buffering.
    local slow_until = h.now() + 2.5
    local n = 0
    while h.now() < slow_until do
      local data, err = h.recv_exact(s, 65536, 10)
      assert(err == nil, "read failed: " .. tostring(err))
      check(data)
      n = n + 1
      if n % 10 == 0 then sample() end
      h.sleep(0.01)   -- the slowness under test
    end
    -- Fast phase: drain the rest, still sampling.
    n = 0
    while got < total do
      local data, err = h.recv_some(s, 10)
      assert(#data > 0, "read failed after " .. got .. " bytes: " .. tostring(err))
      if got + #data > total then error("more body than Content-Length") end
      check(data)
      n = n + 1
      if n % 100 == 0 then sample() end
    end
    sample()
    assert.are.equal(total, got)
    assert.is_true(samples >= 10)
    assert.is_true(max_rss > 0 and max_rss < 64 * 1024,
      "proxy RSS peaked at " .. max_rss .. " KiB")
    -- Connection still in step for another request.
    assert(h.send(s, h.request("GET", origin.url("/hello"), { "Host: " .. origin.authority })))
    assert.are.equal("hello\n", h.read_response(s).body)
  end)

  it("answers 508 to a request for its own listen address", function()
    local resp = get("http://127.0.0.1:" .. proxy.port .. "/loop")
    local ok, why = h.check_error_response(resp, 508, "Loop Detected")
    assert(ok, why)
    assert.are.equal("hello\n", get(origin.url("/hello")).body)
  end)

  it("answers 508 when a name resolves to its own listen address", function()
    local resp = get("http://localhost:" .. proxy.port .. "/loop")
    local ok, why = h.check_error_response(resp, 508, "Loop Detected")
    assert(ok, why)
  end)

  it("returns to its idle fd count after many connections", function()
    -- Idle upstream connections are pooled for up to --idle-timeout; a
    -- short one lets the pool empty within the test.
    proxy.stop()
    proxy = h.start_proxy({ "--idle-timeout", "1" })
    -- Warm up everything the proxy opens lazily and keeps (resolver,
    -- log files) before taking the baseline.
    assert.are.equal("hello\n", get(origin.url("/hello")).body)
    assert.are.equal("hello\n", get("http://localhost:" .. origin.port .. "/hello").body)
    assert.are.equal(502, get("http://127.0.0.1:" .. h.closed_port() .. "/").status)
    -- The baseline is a count that holds for longer than a pooled
    -- connection can live.
    local base = h.wait_for(function()
      local a = proxy.fd_count()
      h.sleep(1.5)
      return a == proxy.fd_count() and a
    end, 8)
    assert(base, "fd count never settled")

    local host = "Host: " .. origin.authority
    for i = 1, 10 do
      -- complete exchange, client asks to close
      local r = h.send_raw(proxy.port, h.request("GET", origin.url("/hello"),
        { host, "Connection: close" }))
      assert.are.equal("hello\n", r:sub(-6), "exchange " .. i)
    end
    for _ = 1, 10 do
      -- keep-alive connection the client drops after one response
      local s = assert(h.connect(proxy.port))
      h.send(s, h.request("GET", origin.url("/bytes?n=1000"), { host }))
      assert.are.equal(200, h.read_response(s).status)
      s:close()
    end
    for _ = 1, 10 do
      -- connect and leave without a byte
      local s = assert(h.connect(proxy.port))
      s:close()
    end
    for _ = 1, 10 do
      -- half a head, then gone
      local s = assert(h.connect(proxy.port))
      h.send(s, "GET " .. origin.url("/hello") .. " HTTP/1.1\r\nHo")
      s:close()
    end
    for _ = 1, 5 do
      -- client leaves while the upstream response is still pending
      local s = assert(h.connect(proxy.port))
      h.send(s, h.request("GET", origin.url("/slow?ms=300"), { host }))
      s:close()
    end
    for _ = 1, 5 do
      assert.are.equal(502, get("http://127.0.0.1:" .. h.closed_port() .. "/").status)
    end

    local settled = h.wait_for(function() return proxy.fd_count() == base end, 5, 0.1)
    assert(settled, "fd count " .. tostring(proxy.fd_count()) .. " never returned to " .. base)
  end)
end)
