-- Hooks that wait without blocking the worker: proxy.http to another
-- service (from on_request and from a chunk hook), proxy.sleep in a chunk
-- hook throttling a download, and the limits on waiting. The assertions
-- are about the order of events (who was answered while whom waited), not
-- about how long anything took, except for the throttle's rate, measured
-- loosely.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local each_test = require("support.each_test")
local socket = require("socket")
local dead_address = require("support.dead_address")

describe("calls out from hooks", function()
  local procs = each_test.processes()
  local origin, proxy
  before_each(function() origin = procs.origin() end)

  local function script(body)
    return h.tmpfile((body:gsub("ORIGIN", origin.authority)), "calls.lua")
  end

  it("serves other clients while a hook waits on proxy.http", function()
    proxy = procs.proxy({ "-s", script([[
      function on_request(tx)
        if tx.req.path ~= "/gate" then return end
        local res, err = proxy.http{ url = "http://ORIGIN/slow?ms=1500", timeout = 20 }
        if not res then return tx:respond(502, "auth service: " .. err) end
        tx:respond(200, "gate says " .. res.status .. " " .. res.body)
      end
    ]]) })
    -- A: waits on the slow service through its hook
    local a = assert(h.connect(proxy.port))
    assert(h.send(a, h.request("GET", origin.url("/gate"), { "Host: " .. origin.authority })))
    -- its hook is waiting once the slow service has the call out
    assert.is_truthy(origin.wait_requests(1))
    -- B: served completely while A still has no byte of its answer
    local b = h.get(proxy.port, origin.url("/hello"))
    assert.are.equal("hello\n", b.body)
    assert.are.equal("timeout", select(2, h.recv_some(a, 0)))
    -- then A gets the service's answer
    local resp = assert(h.read_response(a, { timeout = 20 }))
    a:close()
    assert.are.equal(200, resp.status)
    assert.are.equal("gate says 200 slow\n", resp.body)
  end)

  it("cancels the call when the client leaves while its hook waits", function()
    proxy = procs.proxy({ "-s", script([[
      function on_request(tx)
        if tx.req.path == "/gate" then proxy.http{ url = "http://ORIGIN/hang", timeout = 30 } end
      end
      function on_response_chunk(tx, chunk, eof)
        if tx.req.path:find("^/bytes") then proxy.sleep(5) end
      end
    ]]) })
    for _, path in ipairs({ "/gate", "/bytes?n=100000" }) do
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, h.request("GET", origin.url(path), { "Host: " .. origin.authority })))
      assert.is_truthy(origin.wait_requests(path == "/gate" and 1 or 2))
      s:close()
    end
    -- the worker is fine and serves the next client
    assert.are.equal("hello\n", h.get(proxy.port, origin.url("/hello")).body)
    assert.is_true(proxy.alive())
  end)

  it("waits in on_done (proxy.http, proxy.sleep); the later scripts' on_done run after it", function()
    local second = h.tmpfile((([[
      function on_done(tx)
        if tx.req.path == "/first" then proxy.http{ url = "http://ORIGIN/hello?second=1", timeout = 20 } end
      end
    ]]):gsub("ORIGIN", origin.authority)), "second.lua")
    proxy = procs.proxy({ "-s", script([[
      function on_done(tx)
        if tx.req.path ~= "/first" then return end
        local res, err = proxy.http{ url = "http://ORIGIN/slow?ms=200", timeout = 20 }
        proxy.sleep(0.01)
        local seen = res and (res.status .. "_" .. res.body:gsub("%s", "")) or err
        proxy.http{ url = "http://ORIGIN/hello?seen=" .. seen .. "&path=" .. tx.req.path, timeout = 20 }
      end
    ]]), "-s", second })
    assert.are.equal(404, h.get(proxy.port, origin.url("/first")).status)
    -- /first, the call to /slow, the one that reports, then the second script's
    local reqs = assert(origin.wait_requests(4))
    local seen, after
    for i, r in ipairs(reqs) do
      if r.target:find("seen=", 1, true) then seen = i; assert.are.equal("/hello?seen=200_slow&path=/first", r.target) end
      if r.target:find("second=1", 1, true) then after = i end
    end
    assert.is_truthy(seen)
    assert.is_truthy(after)
    assert.is_true(after > seen)
    assert.is_true(proxy.alive())
  end)

  it("lets the connection go on, and close, while on_done waits", function()
    proxy = procs.proxy({ "-s", script([[
      function on_done(tx)
        if tx.req.path == "/first" then proxy.http{ url = "http://ORIGIN/hang", timeout = 30 } end
      end
    ]]) })
    local c = assert(h.connect(proxy.port))
    assert(h.send(c, h.request("GET", origin.url("/first"), { "Host: " .. origin.authority })))
    assert.are.equal(404, assert(h.read_response(c, { timeout = 20 })).status)
    -- on_done waits on a service that never answers ...
    assert.is_truthy(origin.wait_requests(2))
    -- ... and the same connection is served meanwhile
    assert(h.send(c, h.request("GET", origin.url("/hello"), { "Host: " .. origin.authority })))
    assert.are.equal("hello\n", assert(h.read_response(c, { timeout = 20 })).body)
    c:close()
    assert.are.equal("hello\n", h.get(proxy.port, origin.url("/hello")).body)
    assert.is_true(proxy.alive())
    -- stopping the proxy ends the waiting on_done, and it exits cleanly
    assert.are.equal(0, proxy.stop())
  end)

  it("keeps the connection to a service for the next call (the proxy's pool)", function()
    proxy = procs.proxy({ "-s", script([[
      function on_request(tx)
        if tx.req.path ~= "/twice" then return end
        local a = proxy.http{ url = "http://ORIGIN/conn", timeout = 20 }
        local b = proxy.http{ url = "http://ORIGIN/conn", timeout = 20 }
        local c = proxy.http{ url = "http://ORIGIN/conn", method = "POST", body = "x", timeout = 20 }
        tx:respond(200, a.body .. b.body .. c.body)
      end
    ]]) })
    local res = h.get(proxy.port, origin.url("/twice"))
    -- the first call's connection serves the second; a POST (not to be
    -- repeated on a stale connection) takes a new one
    assert.are.equal("conn 1\nconn 1\nconn 2\n", res.body)
    assert.is_nil(origin.requests()[1].headers["connection"])
  end)

  -- An HTTP/1.0 answer without keep-alive ends its connection: the
  -- server may well not read a second request on it (this one does not),
  -- so the connection is not parked for the next call or request.
  it("does not keep the connection of an HTTP/1.0 answer for the next call", function()
    local server = assert(socket.bind("127.0.0.1", 0))
    server:settimeout(5)
    local _, port = server:getsockname()
    proxy = procs.proxy({ "-s", script(([[
      function on_request(tx)
        if tx.req.path ~= "/twice" then return end
        local a = proxy.http{ url = "http://127.0.0.1:PORT/one", timeout = 20 }
        local b, err = proxy.http{ url = "http://127.0.0.1:PORT/two", timeout = 20 }
        tx:respond(200, a.body .. (b and b.body or tostring(err)))
      end
    ]]):gsub("PORT", tostring(port))) })
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("GET", origin.url("/twice"), { "Host: " .. origin.authority })))
    local conns = {}
    for i = 1, 2 do
      local c, err = server:accept()
      assert(c, "call " .. i .. " never came on a connection of its own: " .. tostring(err))
      conns[#conns + 1] = c
      c:settimeout(5)
      repeat local line = assert(c:receive("*l")) until line == ""
      -- answered, and left open: an HTTP/1.0 server that is slow to close
      assert(c:send("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n" .. i .. "."))
    end
    local res = assert(h.read_response(s))
    s:close()
    for _, c in ipairs(conns) do c:close() end
    server:close()
    assert.are.equal("1.2.", res.body)
  end)

  -- A call never asks to upgrade: after a 101 the connection speaks
  -- another protocol, and what follows is not a response to the call
  -- (nor a connection to keep for the next one).
  it("returns nil and a reason for a 101, and does not read on past it", function()
    local server = assert(socket.bind("127.0.0.1", 0))
    server:settimeout(5)
    local _, port = server:getsockname()
    proxy = procs.proxy({ "-s", script(([[
      function on_request(tx)
        if tx.req.path ~= "/upgrade" then return end
        local res, err = proxy.http{ url = "http://127.0.0.1:PORT/", timeout = 20,
                                     headers = { Upgrade = "websocket" } }
        tx:respond(200, res and ("got " .. res.status .. " " .. res.body) or err)
      end
    ]]):gsub("PORT", tostring(port))) })
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("GET", origin.url("/upgrade"), { "Host: " .. origin.authority })))
    local c = assert(server:accept())
    c:settimeout(5)
    repeat local line = assert(c:receive("*l")) until line == ""
    assert(c:send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
      .. "Connection: Upgrade\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"))
    local res = assert(h.read_response(s))
    s:close()
    c:close()
    server:close()
    assert.are.equal("the server switched protocols without being asked", res.body)
  end)

  -- As the relay: at most 100 interim responses before the final one.
  it("takes 100 interim responses before the answer, and gives up past that", function()
    local server = assert(socket.bind("127.0.0.1", 0))
    server:settimeout(5)
    local _, port = server:getsockname()
    proxy = procs.proxy({ "-s", script(([[
      function on_request(tx)
        local n = tx.req.path:match("^/interim/(%d+)$")
        if not n then return end
        local res, err = proxy.http{ url = "http://127.0.0.1:PORT/" .. n, timeout = 20 }
        tx:respond(200, res and ("got " .. res.status .. " " .. res.body) or err)
      end
    ]]):gsub("PORT", tostring(port))) })
    for _, case in ipairs({ { 100, "got 200 ok" }, { 101, "too many interim (1xx) responses" } }) do
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, h.request("GET", origin.url("/interim/" .. case[1]),
        { "Host: " .. origin.authority })))
      local c = assert(server:accept())
      c:settimeout(5)
      repeat local line = assert(c:receive("*l")) until line == ""
      c:send(("HTTP/1.1 100 Continue\r\n\r\n"):rep(case[1])
        .. "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
      local res = assert(h.read_response(s))
      s:close()
      c:close()
      assert.are.equal(case[2], res.body)
    end
    server:close()
  end)

  -- As for relayed requests: an address that never answers is given up
  -- once it has had its share of the call's time, for the next one.
  it("tries the next address of a name when one never answers", function()
    local d, why = dead_address.open()
    if not d then return pending(why) end
    proxy = procs.proxy({ "-s", script(([[
      function on_request(tx)
        local res, err = proxy.http{ url = "http://twice.test:PORT/", timeout = 2 }
        tx:respond(200, res and res.body or ("failed: " .. tostring(err)))
      end
    ]]):gsub("PORT", tostring(d.port))) }, { prefix = d.prefix })
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("GET", origin.url("/call"), { "Host: " .. origin.authority })))
    local ok, err = pcall(function()
      assert(dead_address.answer(d))
      local resp = assert(h.read_response(s, { timeout = 8 }))
      assert.are.equal("yes", resp.body)
    end)
    s:close()
    d.close()
    assert(ok, err)
  end)

  it("returns nil and a reason: timeout, refused, body too large, bad url", function()
    proxy = procs.proxy({ "-s", script(([[
      local function try(opts)
        local res, err = proxy.http(opts)
        return res and ("status " .. res.status) or err
      end
      function on_request(tx)
        if tx.req.path ~= "/try" then return end
        tx:respond(200, table.concat({
          try{ url = "http://ORIGIN/hang", timeout = 0.3 },
          try{ url = "http://127.0.0.1:CLOSED/" },
          try{ url = "http://ORIGIN/bytes?n=5000", max_body = 100 },
          try{ url = "ftp://ORIGIN/" },
          -- what would write a request of its own into the request line
          try{ url = "http://ORIGIN/hello HTTP/1.1\r\nHost: x\r\n\r\nGET /smuggled" },
          try{ url = "http://ORIGIN/a b" },
          -- a NUL would cut the URL short: to the host before it
          try{ url = "http://ORIGIN\0.elsewhere.invalid/hello" },
          try{ url = "http://ORIGIN/hello", method = "HEAD" },
        }, "|"))
      end
    ]]):gsub("CLOSED", tostring(h.closed_port()))) })
    local resp = h.get(proxy.port, origin.url("/try"))
    local bad_url = "invalid url (http://host[:port]/path or https://...)"
    local bad_byte = "invalid url: only visible ASCII goes in a request (percent-encode spaces, "
      .. "control and non-ASCII bytes)"
    assert.are.equal("timeout|connection refused|response body larger than max_body|"
      .. bad_url .. "|" .. bad_byte .. "|" .. bad_byte .. "|" .. bad_url .. "|status 200", resp.body)
    for _, r in ipairs(origin.requests()) do
      assert.is_nil(r.request_line:find("smuggled", 1, true), r.request_line)
    end
  end)

  -- A call's URL goes into its request line as it is: as for tx.req.path,
  -- only visible ASCII may, and the rest must come percent-encoded (RFC
  -- 3986 2.1). A raw UTF-8 byte would reach the server as one that no
  -- request target may hold (RFC 9112 3.2), read differently by each.
  it("refuses a URL with a non-ASCII byte, and sends a percent-encoded one", function()
    proxy = procs.proxy({ "-s", script([[
      local function try(url)
        local res, err = proxy.http{ url = url, timeout = 20 }
        return res and ("status " .. res.status) or err
      end
      function on_request(tx)
        if tx.req.path ~= "/try" then return end
        tx:respond(200, table.concat({
          try("http://ORIGIN/caf\xc3\xa9"),
          try("http://ORIGIN/echo?q=\xff"),
          try("http://ORIGIN/del\x7f"),
          try("http://ORIGIN/caf%C3%A9"),
          -- a fragment is not sent, whatever it holds
          try("http://ORIGIN/frag#caf\xc3\xa9"),
        }, "|"))
      end
    ]]) })
    local resp = h.get(proxy.port, origin.url("/try"))
    local bad = "invalid url: only visible ASCII goes in a request (percent-encode spaces, "
      .. "control and non-ASCII bytes)"
    assert.are.equal(bad .. "|" .. bad .. "|" .. bad .. "|status 404|status 404", resp.body)
    local lines = {}
    for _, r in ipairs(origin.requests()) do lines[#lines + 1] = r.request_line end
    assert.are.same({ "GET /caf%C3%A9 HTTP/1.1", "GET /frag HTTP/1.1" }, lines)
  end)

  -- The body ends as a Lua string, so it can never be longer than
  -- --lua-memory: a larger max_body is taken as that, and the C side never
  -- held more (it held all of a 500 MB body, outside the cap).
  it("holds no more of a response body than --lua-memory allows, whatever max_body says", function()
    proxy = procs.proxy({ "-s", script([[
      function on_request(tx)
        local n, kind = tx.req.path:match("^/big/(%d+)/(%a+)$")
        if not n then return end
        local url = kind == "chunked" and ("http://ORIGIN/chunked?size=65536&n=" .. n // 65536)
          or ("http://ORIGIN/bytes?n=" .. n)
        local res, err = proxy.http{ url = url, timeout = 20,
                                     max_body = kind == "huge" and math.huge or 2^40 }
        tx:respond(200, res and ("got " .. #res.body) or err)
      end
    ]]), "--lua-memory", "16" })
    local before = assert(proxy.peak_rss_kb())
    assert.are.equal("got 4194304", h.get(proxy.port, origin.url("/big/4194304/length")).body)
    assert.are.equal("got 4194304", h.get(proxy.port, origin.url("/big/4194304/huge")).body)
    for _, kind in ipairs({ "length", "chunked" }) do
      local resp = h.get(proxy.port, origin.url("/big/209715200/" .. kind), nil, { timeout = 30 })
      assert.are.equal("response body larger than max_body", resp.body, kind)
    end
    -- Held whole, either body would add 200 MB (more with a sanitizer);
    -- within the cap, the Lua heap and the buffers around it add a few
    -- times 16 MB at most.
    local grew = assert(proxy.peak_rss_kb()) - before
    assert.is_truthy(grew < 150 * 1024, ("the worker grew by %d KiB"):format(grew))
  end)

  -- Each body is within its max_body, but every body ends in the same Lua
  -- state: calls in flight together may hold no more than --lua-memory,
  -- however many there are (they held that each).
  it("holds no more than --lua-memory for all its calls in flight together", function()
    proxy = procs.proxy({ "-s", script([[
      function on_request(tx)
        local res, err = proxy.http{ url = "http://ORIGIN/bytes?hang=1&n=6291456",
                                     timeout = 3, max_body = 2^40 }
        tx:respond(200, res and ("got " .. #res.body) or err)
      end
    ]]), "--lua-memory", "16" })
    local socks = {}
    for i = 1, 4 do
      socks[i] = assert(h.connect(proxy.port))
      assert(h.send(socks[i], h.request("GET", origin.url("/call/" .. i), { "Host: " .. origin.authority })))
    end
    local answers = {}
    for i, s in ipairs(socks) do
      local resp = assert(h.read_response(s, { timeout = 10 }))
      answers[resp.body] = (answers[resp.body] or 0) + 1
      s:close()
      socks[i] = nil
    end
    local full = "the responses of the proxy.http calls in flight would hold more than --lua-memory"
    local seen = {}
    for body, n in pairs(answers) do seen[#seen + 1] = n .. " x " .. body end
    seen = table.concat(seen, "; ")
    -- 4 x 6 MB against 16: one at least is refused, the others wait.
    assert.is_truthy(answers[full], "no call was refused: " .. seen)
    assert.are.equal(4, answers[full] + (answers.timeout or 0), seen)
  end)

  it("speaks https, verifying the server's certificate", function()
    local tls_origin = procs.add(h.start_https_origin())
    local pki = h.test_pki()
    local src = ([[
      function on_request(tx)
        if tx.req.path ~= "/tls" then return end
        local res, err = proxy.http{ url = "URL", timeout = 10 }
        tx:respond(200, res and (res.status .. " " .. res.body) or ("error: " .. err))
      end
    ]]):gsub("URL", tls_origin.url("/hello"))
    proxy = procs.proxy({ "-s", h.tmpfile(src, "tls.lua"), "--upstream-ca", pki.ca })
    assert.are.equal("200 hello\n", h.get(proxy.port, origin.url("/tls")).body)
    proxy.stop()
    -- without the test CA the certificate is not trusted
    proxy = procs.proxy({ "-s", h.tmpfile(src, "tls.lua") })
    assert.is_truthy(h.get(proxy.port, origin.url("/tls")).body:find("^error: "))
  end)

  -- RFC 9112 9.8: a body the server's close ends is whole over TLS only
  -- after its close_notify; without one, a script gets no part of it.
  it("over https, takes a body the close ends only after the server's close_notify", function()
    local bare = procs.add(h.start_https_origin())
    local notify = procs.add(h.start_https_origin({ close_notify = true }))
    local src = ([[
      function on_request(tx)
        local url = tx.req.path == "/bare" and "BARE" or "NOTIFY"
        local res, err = proxy.http{ url = url, timeout = 10 }
        tx:respond(200, res and (res.status .. " " .. res.body) or ("error: " .. err))
      end
    ]]):gsub("BARE", bare.url("/close?size=300")):gsub("NOTIFY", notify.url("/close?size=300"))
    proxy = procs.proxy({ "-s", h.tmpfile(src, "tls.lua"), "--upstream-ca", h.test_pki().ca })
    assert.are.equal("error: the server's TLS connection ended without close_notify: the body "
      .. "may be cut short", h.get(proxy.port, origin.url("/bare")).body)
    assert.are.equal("200 " .. h.pattern(300), h.get(proxy.port, origin.url("/notify")).body)
  end)

  it("sends the method, headers and body it is given", function()
    proxy = procs.proxy({ "-s", script([[
      function on_request(tx)
        if tx.req.path ~= "/post" then return end
        local res = assert(proxy.http{ url = "http://ORIGIN/echo", method = "PUT",
          headers = { ["X-Token"] = "abc" }, body = "payload" })
        tx:respond(200, res.body)
      end
    ]]) })
    local body = h.get(proxy.port, origin.url("/post")).body
    assert.is_truthy(body:find("^PUT /echo HTTP/1.1\r\n"))
    assert.is_truthy(body:find("\r\nX%-Token: abc\r\n"))
    assert.is_truthy(body:find("\r\nContent%-Length: 7\r\n"))
    assert.is_truthy(body:find("\r\n\r\npayload$"))
  end)

  -- The rule of tx.req.method: a token, a known method in upper case
  -- (servers differ on whether "get" is a GET); and never CONNECT, which
  -- went out as "CONNECT /echo HTTP/1.1".
  it("refuses CONNECT and a known method in lower case, as tx.req.method does", function()
    proxy = procs.proxy({ "-s", script([[
      function on_request(tx)
        if tx.req.path ~= "/methods" then return end
        local out = {}
        for _, m in ipairs({ "CONNECT", "connect", "get", "Post", "GET /x", "PURGE", "purge" }) do
          local ok, res = pcall(proxy.http, { url = "http://ORIGIN/echo", method = m })
          out[#out + 1] = m .. ": " .. (ok and ("sent " .. res.body:match("^(%S+)"))
            or tostring(res):gsub("^.-:%d+: ", ""))
        end
        tx:respond(200, table.concat(out, "\n"))
      end
    ]]) })
    assert.are.equal(table.concat({
      "CONNECT: proxy.http: CONNECT opens a tunnel, which a call out cannot use",
      "connect: proxy.http: methods are case-sensitive: write CONNECT",
      "get: proxy.http: methods are case-sensitive: write GET",
      "Post: proxy.http: methods are case-sensitive: write POST",
      "GET /x: proxy.http: method must be a token such as GET",
      "PURGE: sent PURGE",
      "purge: sent purge",
    }, "\n"), h.get(proxy.port, origin.url("/methods")).body)
  end)

  it("calls out from on_request_chunk and rewrites the body with the answer", function()
    proxy = procs.proxy({ "-s", script([[
      function on_request_chunk(tx, chunk, eof)
        if #chunk == 0 then return end
        local res = proxy.http{ url = "http://ORIGIN/hello" }
        return chunk:upper() .. ":" .. (res and res.body or "?")
      end
    ]]) })
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("POST", origin.url("/echo"),
      { "Host: " .. origin.authority, "Content-Length: 5" }, "hello")))
    local resp = assert(h.read_response(s))
    s:close()
    assert.are.equal("HELLO:hello\n", h.decode_chunked(resp.body:match("\r\n\r\n(.*)$")))
  end)

  it("throttles a download with proxy.sleep in on_response_chunk, others at full speed", function()
    local RATE = 256 * 1024
    proxy = procs.proxy({ "-s", script([[
      function on_response_chunk(tx, chunk, eof)
        if tx.req.path:find("^/bytes") and #chunk > 0 then proxy.sleep(#chunk / ]] .. RATE .. [[) end
      end
    ]]) })
    local n = 768 * 1024
    local slow = assert(h.connect(proxy.port))
    assert(h.send(slow, h.request("GET", origin.url("/bytes?n=" .. n), { "Host: " .. origin.authority })))
    local started = socket.gettime()
    local head = assert(h.read_response(slow, { head_only = true }))
    assert.are.equal(200, head.status)
    -- while the download crawls, another client is answered in full
    assert.are.equal("hello\n", h.get(proxy.port, origin.url("/hello")).body)
    local resp_body = h.take_pending(slow)
    local body
    h.wait_for(function()
      local d = h.recv_some(slow, 0.2)
      if d then resp_body = resp_body .. d end
      body = h.decode_chunked(resp_body)
      return body and #body == n
    end, 20)
    local took = socket.gettime() - started
    slow:close()
    assert.are.equal(n, body and #body or -1)
    -- loosely: at least half the nominal time (3 s at the rate), never instant
    assert.is_truthy(took > (n / RATE) * 0.5, "took " .. took .. " s")
  end)

  it("bounds a wait with --hook-wait-timeout", function()
    proxy = procs.proxy({ "-s", script([[
      function on_request(tx)
        if tx.req.path == "/wait" then proxy.http{ url = "http://ORIGIN/hang", timeout = 60 } end
      end
    ]]), "--hook-wait-timeout", "0.3" })
    local resp = h.get(proxy.port, origin.url("/wait"), nil, { timeout = 10 })
    assert.are.equal(500, resp.status)
    assert.is_truthy(proxy.log_has("waited longer than --hook-wait-timeout"), proxy.log())
  end)

  it("does not count waiting against --hook-timeout", function()
    proxy = procs.proxy({ "-s", script([[
      function on_request(tx)
        if tx.req.path ~= "/sleepy" then return end
        for _ = 1, 3 do proxy.sleep(0.1) end
        tx:respond(200, "rested")
      end
    ]]), "--hook-timeout", "50" })
    assert.are.equal("rested", h.get(proxy.port, origin.url("/sleepy")).body)
  end)
end)
