-- --trace and -v: the proxy's steps for each exchange, one line each, with
-- the connection and exchange ids, the time since the exchange began and
-- the src/file.c:function that took the step. Every file:function a trace
-- names must exist in that file, so the trace stays an index into the code.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")

-- "... trace c3 #7 +0.123ms src/exchange.c:exchange_begin head complete: ..."
local LINE = "trace (c%d+) ?(#?%d*) %+[%d%.]+ms (src/[%w_]+%.c):([%w_]+) ([^\n]*)"

local function trace_lines(log)
  local out = {}
  for conn, id, file, func, text in log:gmatch(LINE) do
    out[#out + 1] = { conn = conn, id = id, file = file, func = func, text = text }
  end
  return out
end

-- Every src/file.c:function seen in any trace of this file.
local seen = {}

local function remember(lines)
  for _, l in ipairs(lines) do seen[l.file .. ":" .. l.func] = l end
end

-- The lines of one exchange, in order; fails naming the first missing step.
local function expect_steps(lines, steps)
  local at = 1
  for _, step in ipairs(steps) do
    local found
    for i = at, #lines do
      if lines[i].text:find(step) then found = i; break end
    end
    assert(found, "no trace step matching '" .. step .. "' (in order) in:\n" ..
      table.concat((function()
        local t = {}
        for _, l in ipairs(lines) do t[#t + 1] = l.file .. ":" .. l.func .. " " .. l.text end
        return t
      end)(), "\n"))
    at = found + 1
  end
end

describe("--trace", function()
  local origin, proxy

  after_each(function()
    local problem = h.stop_procs({ origin, proxy }, 2)
    origin, proxy = nil, nil
    assert(not problem, problem)
  end)

  -- Waits until the trace shows the connection closed, then returns its lines.
  local function traced(pattern)
    local log = h.wait_for(function()
      local l = proxy.log()
      if l:find(pattern) then return l end
    end)
    assert(log, "the trace never showed '" .. pattern .. "':\n" .. proxy.log())
    local lines = trace_lines(log)
    remember(lines)
    return lines
  end

  -- Starts an origin and a tracing proxy that may tunnel to it, and opens
  -- a CONNECT tunnel through the proxy: the client socket, past the 200.
  local function open_tunnel()
    origin = h.start_origin()
    proxy = h.start_proxy({ "--trace", "--connect-ports", origin.authority:match(":(%d+)$") })
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, "CONNECT " .. origin.authority .. " HTTP/1.1\r\nHost: " .. origin.authority ..
      "\r\n\r\n"))
    local established = h.recv_exact(s, #"HTTP/1.1 200 Connection Established\r\n\r\n")
    assert.truthy(established and established:find("^HTTP/1%.1 200"))
    return s
  end

  it("shows every step of a plain GET, from accept to close", function()
    origin = h.start_origin()
    proxy = h.start_proxy({ "--trace" })
    local out, code, err = h.curl({ "-x", "http://127.0.0.1:" .. proxy.port, origin.url("/hello") })
    assert.are.equal(0, code, err)
    assert.are.equal("hello\n", out)
    local lines = traced("connection closed after 1 exchange")
    expect_steps(lines, {
      "^accepted 127%.0%.0%.1:%d+; allow%-list: allowed",
      "^head complete: %d+ bytes, %d+ fields, HTTP/1%.1: GET http://",
      "^target split: host 127%.0%.0%.1, port %d+, path /hello",
      "^fields: %d+ in, %d+ out; dropped: Proxy%-Connection; added: Via",
      "^127%.0%.0%.1 is an IP address: no DNS",
      "^connect%(%) to 127%.0%.0%.1:%d+ %(address 1 of 1%): fresh connection",
      "^state head %-> connecting",
      "^the socket is writable: connected in",
      "^request head queued upstream: %d+ bytes, GET /hello HTTP/1%.1",
      "^state connecting %-> exchange",
      "^response head complete: %d+ bytes, HTTP/1%.%d 200, body framing in: length",
      "^response head queued for the client: %d+ bytes, 200, body framing out: length",
      "^response body: 6 bytes to the client %(length in, length out%): %d+ by swapping",
      "^keep%-alive: yes",
      "^upstream connection ",
      "^state exchange %-> head: exchange over, connection kept alive",
      "^state head %-> draining",
      "^state draining %-> closed",
      "^connection closed after 1 exchange",
    })
    -- One numbering: every line of the exchange carries c<N> #<M>.
    local conn, id
    for _, l in ipairs(lines) do
      if l.text:find("^head complete") then conn, id = l.conn, l.id end
    end
    assert.truthy(id and id:match("^#%d+$"))
    for _, l in ipairs(lines) do
      if l.text:find("^response head") then
        assert.are.equal(conn, l.conn)
        assert.are.equal(id, l.id)
      end
    end
    -- The access log still gets its line; a trace changes nothing relayed.
    assert.truthy(proxy.wait_access_log('"GET http://'))
  end)

  it("shows each hook with its script, result, time and whether it changed the request", function()
    origin = h.start_origin()
    local edits = h.tmpfile([[
function on_request(tx)
  tx.req.headers["X-Traced"] = "yes"
end
]], "edits.lua")
    local looks = h.tmpfile([[
function on_request(tx)
  local _ = tx.req.headers["Host"]
end
function on_response(tx)
  tx.res.headers["X-Seen"] = "1"
end
]], "looks.lua")
    proxy = h.start_proxy({ "--trace", "--script", edits, "--script", looks })
    local out, code, err = h.curl({ "-s", "-D", "-", "-x", "http://127.0.0.1:" .. proxy.port,
                                    origin.url("/hello") })
    assert.are.equal(0, code, err)
    assert.truthy(out:find("X%-Seen: 1"))
    local lines = traced("connection closed after 1 exchange")
    expect_steps(lines, {
      "^state head %-> hook: request hooks to run",
      "^hook on_request in [^:]*edits%.lua: returned, [%d%.]+ ms running; changed the request: yes",
      "^hook on_request in [^:]*looks%.lua: returned, [%d%.]+ ms running; changed the request: no",
      "^state hook %-> connecting",
      "^response head complete",
      "^hook on_response in [^:]*looks%.lua: returned, [%d%.]+ ms running; changed the response: yes",
      "^response head queued for the client: %d+ bytes, 200, body framing out: %a+ %(rewritten after on_response%)",
    })
    assert.are.equal("yes", origin.requests()[1].headers["x-traced"])
  end)

  it("does not take the first look at tx.req or tx.upstream for a change", function()
    origin = h.start_origin()
    -- The first script to read tx.req makes it, and tx.url and tx.upstream
    -- are made when first read: none of that changes the request.
    local reads = h.tmpfile([[
function on_request(tx)
  local _ = tx.req.url .. tx.req.headers["Host"] .. tx.upstream.host
end
]], "reads.lua")
    proxy = h.start_proxy({ "--trace", "--script", reads })
    local _, code, err = h.curl({ "-s", "-x", "http://127.0.0.1:" .. proxy.port, origin.url("/hello") })
    assert.are.equal(0, code, err)
    expect_steps(traced("connection closed after 1 exchange"), {
      "^hook on_request in [^:]*reads%.lua: returned, [%d%.]+ ms running; changed the request: no",
    })
  end)

  it("shows a script that answers itself", function()
    local mock = h.tmpfile([[
function on_request(tx)
  tx:respond(200, "mocked\n")
end
]], "mock.lua")
    proxy = h.start_proxy({ "--trace", "--script", mock })
    local out, code, err = h.curl({ "-x", "http://127.0.0.1:" .. proxy.port,
                                    "http://127.0.0.1:9/anything" })
    assert.are.equal(0, code, err)
    assert.are.equal("mocked\n", out)
    local lines = traced("connection closed after 1 exchange")
    expect_steps(lines, {
      "^hook on_request in [^:]*mock%.lua: answered itself %(tx:respond%), [%d%.]+ ms running; "
        .. "changed the request: no",
      "^a script answered itself %(tx:respond%): 200, %d+ bytes queued for the client",
      "^keep%-alive: yes",
      "^state hook %-> head",
    })
    for _, l in ipairs(lines) do
      assert.falsy(l.text:find("^connect%(%)"), "nothing may go upstream")
    end
  end)

  it("shows an error: the failed connect and the proxy's own answer", function()
    proxy = h.start_proxy({ "--trace" })
    local port = h.closed_port()
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("GET", "http://127.0.0.1:" .. port .. "/", { "Host: 127.0.0.1:" .. port })))
    local resp = assert(h.read_response(s))
    s:close()
    assert.are.equal(502, resp.status)
    local lines = traced("connection closed after 1 exchange")
    expect_steps(lines, {
      "^connect%(%) to 127%.0%.0%.1:" .. port,
      "connect%(%) failed",
      "^answered by the proxy: 502, the upstream refused the connection",
      "^keep%-alive: ",
    })
    -- The answer names where the failure was decided, not where it was sent.
    for _, l in ipairs(lines) do
      if l.text:find("^answered by the proxy: 502") then
        assert.are.equal("src/upstream.c:try_connect", l.file .. ":" .. l.func)
      end
    end
  end)

  it("shows a CONNECT tunnel: bytes each way and who closed first", function()
    local s = open_tunnel()
    assert(h.send(s, "GET /hello HTTP/1.1\r\nHost: " .. origin.authority .. "\r\nConnection: close\r\n\r\n"))
    local reply = h.recv_until_close(s)
    s:close()
    assert.truthy(reply and reply:find("hello"))
    local lines = traced("connection closed after 1 exchange")
    expect_steps(lines, {
      "^head complete: %d+ bytes, %d+ fields, HTTP/1%.1: CONNECT",
      "^CONNECT answered: 200 Connection Established",
      "^state connecting %-> tunnel",
      "^tunnel over: %d+ bytes client %-> upstream %(%d+ by swapping buffers, %d+ copied, %d+ spliced%), "
        .. "%d+ bytes upstream %-> client %(%d+ by swapping buffers, %d+ copied, %d+ spliced%); "
        .. "first to close: the upstream",
      "^keep%-alive: no, a tunnel ends its connection",
    })
    -- Each way, the ways the bytes moved add up to the bytes moved.
    for _, l in ipairs(lines) do
      local up, us, uc, usp, down, ds, dc, dsp = l.text:match(
        "^tunnel over: (%d+) [^(]*%((%d+) [^,]*, (%d+) copied, (%d+) spliced%), "
        .. "(%d+) [^(]*%((%d+) [^,]*, (%d+) copied, (%d+) spliced%)")
      if up then
        assert.are.equal(tonumber(up), us + uc + usp)
        assert.are.equal(tonumber(down), ds + dc + dsp)
        assert.is_true(tonumber(up) > 0 and tonumber(down) > 0)
      end
    end
  end)

  it("shows a client that resets its tunnel: closed, the upstream reset, the client named first to close",
    function()
    local s = open_tunnel()
    -- A kept-alive request through the tunnel: the origin does not close.
    assert(h.send(s, "GET /hello HTTP/1.1\r\nHost: " .. origin.authority .. "\r\n\r\n"))
    local head = h.recv_exact(s, #"HTTP/1.1 200")
    assert.truthy(head and head:find("^HTTP/1%.1 200"))
    s:setoption("linger", { on = true, timeout = 0 })
    s:close() -- a reset, not a FIN
    local lines = traced("connection closed after 1 exchange")
    expect_steps(lines, {
      "^state connecting %-> tunnel",
      "^state tunnel %-> closed: the tunnel was reset by the client",
      "^tunnel over: .*first to close: the client %(reset%)",
    })
    for _, l in ipairs(lines) do
      assert.is_nil(l.text:find("^state tunnel %-> draining"), "a reset tunnel went on to drain")
    end
  end)

  it("shows each chunk hook call: bytes in and out, result and time", function()
    origin = h.start_origin()
    local upper = h.tmpfile([[
function on_response_chunk(tx, chunk, eof)
  return chunk:upper() .. (eof and "!" or "")
end
function on_request_chunk(tx, chunk, eof)
  return chunk
end
]], "upper.lua")
    proxy = h.start_proxy({ "--trace", "--script", upper })
    local out, code, err = h.curl({ "-x", "http://127.0.0.1:" .. proxy.port,
                                    origin.url("/chunked?n=3&size=10") })
    assert.are.equal(0, code, err)
    assert.are.equal(("X"):rep(30) .. "!", out)
    local lines = traced("connection closed after 1 exchange")
    -- The three 10-byte chunks come as one piece, or as several when they
    -- arrive apart (chunks already buffered are handed over together).
    expect_steps(lines, {
      "^hook on_response_chunk: [123]0 bytes in, [123]0 bytes out, returned, [%d%.]+ ms",
      "^hook on_response_chunk: 0 bytes in %(the body's end%), 1 bytes out, returned, [%d%.]+ ms",
      "^response body: 31 bytes to the client %(chunked in, chunked out%): 0 by swapping "
        .. "buffers, 0 spliced in the kernel, 0 copied, 30 through on_response_chunk",
    })
    -- A request body goes through on_request_chunk the same way.
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("POST", origin.url("/echo"), { "Host: " .. origin.authority,
      "Content-Length: 5", "Connection: close" }, "hello")))
    local resp = assert(h.read_response(s))
    s:close()
    assert.are.equal(200, resp.status)
    lines = traced("connection closed after 1 exchange[^\n]*\n.*connection closed after 1 exchange")
    expect_steps(lines, {
      "^hook on_request_chunk: 5 bytes in, 5 bytes out, returned, [%d%.]+ ms",
      "^hook on_request_chunk: 0 bytes in %(the body's end%), 0 bytes out, returned",
      "request body: 5 bytes %(0 by swapping buffers, 0 copied, 5 through on_request_chunk%)",
    })
  end)

  it("shows a chunk hook that waits, and when it is done", function()
    origin = h.start_origin()
    local slow = h.tmpfile([[
function on_response_chunk(tx, chunk, eof)
  if chunk ~= "" then proxy.sleep(0.01) end
  return chunk
end
]], "slow_chunk.lua")
    proxy = h.start_proxy({ "--trace", "--script", slow })
    local out, code, err = h.curl({ "-x", "http://127.0.0.1:" .. proxy.port, origin.url("/hello") })
    assert.are.equal(0, code, err)
    assert.are.equal("hello\n", out)
    local lines = traced("connection closed after 1 exchange")
    expect_steps(lines, {
      "^hook on_response_chunk: 6 bytes in, 0 bytes out, waits %(the body pauses until it is done%)",
      "^hook on_response_chunk done after waiting: 6 bytes out, [%d%.]+ ms since the piece came",
      "^response body: 6 bytes to the client",
    })
  end)

  it("counts body bytes where they move: swapped, copied or spliced", function()
    origin = h.start_origin()
    proxy = h.start_proxy({ "--trace" })
    local seen_bodies = 0
    -- The "response body:" line of the next exchange, once it is traced.
    local function body_line(url)
      local _, code, err = h.curl({ "-s", "-o", "/dev/null", "-x",
                                    "http://127.0.0.1:" .. proxy.port, url })
      assert.are.equal(0, code, err)
      local lines = h.wait_for(function()
        local found = {}
        for _, l in ipairs(trace_lines(proxy.log())) do
          if l.text:find("^response body: ") then found[#found + 1] = l end
        end
        return #found > seen_bodies and found or nil
      end)
      assert(lines, "no response body line:\n" .. proxy.log())
      seen_bodies = #lines
      remember(lines)
      return lines[#lines].text
    end
    local function counts(text)
      local total, swapped, spliced, copied, filtered = text:match(
        "^response body: (%d+) bytes to the client %([^)]*%): (%d+) by swapping buffers, "
        .. "(%d+) spliced in the kernel, (%d+) copied, (%d+) through")
      assert(total, "no counts in: " .. text)
      return tonumber(total), tonumber(swapped), tonumber(spliced), tonumber(copied),
        tonumber(filtered)
    end
    -- Chunked in and out: every byte is decoded and re-framed, so copied.
    local total, swapped, spliced, copied, filtered = counts(body_line(origin.url("/chunked?n=4&size=100")))
    assert.are.same({ 400, 0, 0, 400, 0 }, { total, swapped, spliced, copied, filtered })
    -- A length passed on unchanged: the buffers are swapped or spliced,
    -- never copied, and the parts add up to the whole.
    total, swapped, spliced, copied, filtered = counts(body_line(origin.url("/bytes?n=1048576")))
    assert.are.equal(1048576, total)
    assert.are.equal(0, filtered)
    assert.are.equal(total, swapped + spliced + copied)
    assert.is_true(swapped + spliced > 0)
  end)

  it("closes at once after a client that asked to close, and lingers while one may still send",
    function()
    origin = h.start_origin()
    proxy = h.start_proxy({ "--trace" })
    local host = "Host: " .. origin.authority
    local function exchange(raw)
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, raw))
      local reply = h.recv_until_close(s) -- the proxy's FIN ends it either way
      s:close()
      assert.truthy(reply and reply:find("^HTTP/1%.1 200"))
    end
    -- Asked to close, nothing more sent: closed without waiting for the FIN.
    exchange(h.request("GET", origin.url("/hello"), { host, "Connection: close" }))
    -- Asked to close, yet more bytes came behind the request: they are read
    -- and dropped until the client closes, so no reset can eat the answer.
    exchange(h.request("GET", origin.url("/hello"), { host, "Connection: close" }) ..
      h.request("GET", origin.url("/hello"), { host }))
    local log = h.wait_for(function()
      local l = proxy.log()
      local _, n = l:gsub("connection closed after", "")
      if n >= 2 then return l end
    end)
    assert(log, "two connections, two closes:\n" .. proxy.log())
    local lines = trace_lines(log)
    remember(lines)
    local by_conn = {}
    for _, l in ipairs(lines) do
      if l.text:find("^state draining %-> closed") then by_conn[#by_conn + 1] = l.text end
    end
    assert.are.same({
      "state draining -> closed: answered: the client asked to close and sent nothing more",
      "state draining -> closed: drained: the client closed",
    }, by_conn)
  end)

  it("gives the reason whenever a connection is not kept", function()
    origin = h.start_origin()
    proxy = h.start_proxy({ "--trace" })
    local function exchange(raw, until_close)
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, raw))
      local reply = until_close and h.recv_until_close(s) or h.read_response(s)
      s:close()
      assert.truthy(reply)
    end
    local url = origin.url("/hello")
    local host = "Host: " .. origin.authority
    exchange(h.request("GET", url, { host, "Connection: close" }))
    exchange(h.request("GET", url, { host }, nil, "HTTP/1.0"))
    exchange(h.request("GET", origin.url("/chunked"), { host, "Connection: keep-alive" }, nil,
      "HTTP/1.0"), true)
    -- A 502 before the body was read keeps the connection when the rest
    -- of the body can be dropped; not when over 1 MiB of it is left.
    exchange(h.request("POST", "http://127.0.0.1:" .. h.closed_port() .. "/", {
      "Host: 127.0.0.1", "Content-Length: 2000000" }, "x"))
    local log = h.wait_for(function()
      local l = proxy.log()
      local _, n = l:gsub("connection closed after", "")
      if n >= 4 then return l end
    end)
    assert(log, "four connections, four closes:\n" .. proxy.log())
    local lines = trace_lines(log)
    remember(lines)
    local reasons = {}
    for _, l in ipairs(lines) do
      if l.text:find("^keep%-alive: no") then
        reasons[#reasons + 1] = l.text
        assert.truthy(l.text:find("^keep%-alive: no, %S"), "a bare keep-alive: no: " .. l.text)
        assert.falsy(l.text:find("no reason was recorded"), l.text)
      end
    end
    local function has(pattern)
      for _, r in ipairs(reasons) do if r:find(pattern) then return true end end
      error("no keep-alive reason matching '" .. pattern .. "' in:\n" .. table.concat(reasons, "\n"))
    end
    has("^keep%-alive: no, the client sent Connection: close$")
    has("^keep%-alive: no, HTTP/1%.0 without Connection: keep%-alive$")
    has("^keep%-alive: no, the body for this HTTP/1%.0 client is close%-delimited")
    has("^keep%-alive: no, an error before the request body was read$")
  end)

  it("names only src/file.c:function places that exist in those files", function()
    assert.truthy(next(seen), "the tests above recorded trace lines")
    for place, l in pairs(seen) do
      local src = h.read_file(l.file)
      assert(src, place .. ": no such file")
      -- A definition: the name at the start of a line's declarator, e.g.
      -- "static int parse_request_head(struct session *s)".
      local found = false
      for line in src:gmatch("[^\n]+") do
        if line:find("^[%a_][%w_ %*]-[ %*]" .. l.func .. "%(") or line:find("^" .. l.func .. "%(") then
          found = true
          break
        end
      end
      assert(found, place .. ": no function " .. l.func .. " defined in " .. l.file)
    end
  end)
end)

describe("README", function()
  it("names only src/file.c:function places that exist in those files", function()
    local readme = assert(h.read_file("README.md"))
    local count = 0
    for file, func in readme:gmatch("(src/[%w_]+%.c):([%w_]+)") do
      if file == "src/file.c" then goto continue end -- the notation itself
      count = count + 1
      local src = h.read_file(file)
      assert(src, "README names " .. file .. ":" .. func .. ", but there is no " .. file)
      local found = false
      for line in src:gmatch("[^\n]+") do
        if line:find("^[%a_][%w_ %*]-[ %*]" .. func .. "%(") or line:find("^" .. func .. "%(") then
          found = true
          break
        end
      end
      assert(found, "README names " .. file .. ":" .. func .. ", not defined in " .. file)
      ::continue::
    end
    assert.is_true(count >= 50, "the walkthrough names the functions of three paths")
  end)
end)

describe("the forwarding code", function()
  -- The walkthrough promises that control goes one way: the layers below
  -- the session return what a step came to and session.c acts on it.
  it("never calls up into the session to change its state or end the exchange", function()
    for _, file in ipairs({ "src/exchange.c", "src/upstream.c", "src/response.c", "src/tunnel.c",
                            "src/https.c" }) do
      local src = assert(h.read_file(file), file)
      for name in src:gmatch("[%w_]*session_[%w_]+%s*%(") do
        assert.falsy(name:find("^session_"), file .. " calls " .. name .. "...)")
      end
      assert.truthy(src:find("exchange_step"), file .. " reports steps")
    end
  end)
end)

describe("-v", function()
  it("writes one line per exchange, and --trace is off by default", function()
    local origin = h.start_origin()
    local proxy = h.start_proxy({ "-v" })
    for _ = 1, 2 do
      local _, code, err = h.curl({ "-x", "http://127.0.0.1:" .. proxy.port, origin.url("/hello") })
      assert.are.equal(0, code, err)
    end
    local log = h.wait_for(function()
      local l = proxy.log()
      local n = select(2, l:gsub(" debug c%d+ #%d+ 127%.0%.0%.1 GET http://[^\n]* %-> 200", ""))
      if n >= 2 then return l end
    end)
    assert(log, "no -v line per exchange:\n" .. proxy.log())
    local debug_lines = select(2, log:gsub("\n[^\n]* debug ", ""))
    assert.are.equal(2, debug_lines, "two exchanges, two debug lines:\n" .. log)
    assert.falsy(log:find(" trace "))
    local problem = h.stop_procs({ origin, proxy }, 2)
    assert(not problem, problem)
  end)
end)

describe("--trace and a script's call out over https", function()
  it("traces its TLS steps under no connection (it belongs to none)", function()
    local origin = h.start_origin()
    local tls_origin = h.start_https_origin()
    local pki = h.test_pki()
    local src = ([[
      function on_request(tx)
        local res, err = proxy.http{ url = "URL", timeout = 10 }
        tx:respond(200, res and res.body or ("error: " .. err))
      end
    ]]):gsub("URL", tls_origin.url("/hello"))
    local proxy = h.start_proxy({ "-s", h.tmpfile(src, "call_out.lua"), "--upstream-ca", pki.ca,
                                  "--trace" })
    assert.equals("hello\n", h.get(proxy.port, origin.url("/x")).body)
    local problem = h.stop_procs({ origin, tls_origin, proxy })
    assert(not problem, problem)
    local log = proxy.stderr() -- whole: the proxy writes what it queued before it exits
    local line = log:match("trace [^\n]-src/tls%.c:tls_connect TLS to the upstream[^\n]*")
    assert(line, "no TLS line in:\n" .. log)
    assert.matches("^trace %- %+0%.000ms ", line)
  end)
end)
