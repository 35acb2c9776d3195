-- Client-side connection reuse (contract: "Keep-alive"). Every test keeps
-- one client socket and reads responses off it with h.read_response, which
-- leaves any over-read bytes for the next call: a response that is framed
-- wrongly shows up as a corrupted *next* response.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local socket = require("socket")

describe("client keep-alive", function()
  local origin, proxy, sock

  before_each(function()
    origin = h.start_origin()
    proxy = h.start_proxy({})
    sock = assert(h.connect(proxy.port))
  end)

  after_each(function()
    if sock then sock:close() end
    local problem = h.stop_procs({ origin, proxy }, 2)
    sock, proxy, origin = nil, nil, nil
    assert(not problem, problem)
  end)

  local function req(method, path, extra, body, version)
    local headers = { "Host: " .. origin.authority }
    for _, x in ipairs(extra or {}) do headers[#headers + 1] = x end
    return h.request(method, origin.url(path), headers, body, version)
  end

  local function read(opts)
    local resp, err = h.read_response(sock, opts)
    assert(resp, "no response: " .. tostring(err))
    return resp
  end

  it("serves several requests in sequence on one connection", function()
    local cases = {
      { "/hello", "hello\n" },
      { "/bytes?n=5000", h.pattern(5000) },
      { "/chunked?n=2&size=3", "xxxxxx" },
      { "/close?size=300", h.pattern(300) },
      { "/status/404", "status 404\n" },
      { "/hello", "hello\n" },
    }
    for i, c in ipairs(cases) do
      assert(h.send(sock, req("GET", c[1])))
      local resp = read()
      assert.are.equal(c[1] == "/status/404" and 404 or 200, resp.status, "request " .. i)
      assert.is_nil(resp.error, "request " .. i)
      assert.is_true(resp.body == c[2], "body of request " .. i .. " (" .. c[1] .. ")")
    end
    assert.is_false(h.is_closed(sock, 0.3))
    assert.are.equal(#cases, #origin.requests())
  end)

  it("answers pipelined requests in order", function()
    -- The slow one first: its answer must still come first.
    assert(h.send(sock, req("GET", "/slow?ms=300") .. req("GET", "/bytes?n=7000")
      .. req("GET", "/chunked?n=3&size=5")))
    local r1, r2, r3 = read(), read(), read()
    assert.are.equal("slow\n", r1.body)
    assert.is_true(r2.body == h.pattern(7000), "second pipelined body")
    assert.are.equal(("x"):rep(15), r3.body)
    assert.are.equal("done", r3.trailers["x-checksum"])

    -- A request with a body in the middle of a pipeline.
    assert(h.send(sock, req("POST", "/echo", { "Content-Length: 5" }, "abcde")
      .. req("GET", "/hello")))
    local r4, r5 = read(), read()
    assert.are.equal(200, r4.status)
    assert.are.equal("abcde", r4.body:sub(-5))
    assert.are.equal("POST /echo HTTP/1.1\r\n", r4.body:sub(1, 21))
    assert.are.equal("hello\n", r5.body)
    assert.is_false(h.is_closed(sock, 0.3))
  end)

  it("closes after a response to Connection: close", function()
    assert(h.send(sock, req("GET", "/hello", { "Connection: close" })))
    local resp = read()
    assert.are.equal(200, resp.status)
    assert.are.equal("hello\n", resp.body)
    assert.is_true(h.is_closed(sock, 3), "connection still open after Connection: close")
  end)

  it("closes an HTTP/1.0 connection after the response", function()
    assert(h.send(sock, req("GET", "/hello", nil, nil, "HTTP/1.0")))
    local resp = read()
    assert.are.equal("HTTP/1.1 200 OK", resp.status_line)
    assert.are.equal("hello\n", resp.body)
    assert.is_true(h.is_closed(sock, 3), "HTTP/1.0 connection still open")
  end)

  it("keeps an HTTP/1.0 connection that asked for keep-alive", function()
    assert(h.send(sock, req("GET", "/hello", { "Connection: keep-alive" }, nil, "HTTP/1.0")))
    local resp = read()
    assert.are.equal("hello\n", resp.body)
    assert.is_false(h.is_closed(sock, 0.3))
    assert(h.send(sock, req("GET", "/bytes?n=10", { "Connection: keep-alive" }, nil, "HTTP/1.0")))
    resp = read()
    assert.are.equal(h.pattern(10), resp.body)
  end)

  it("re-chunks a close-delimited upstream response and keeps the connection", function()
    assert(h.send(sock, req("GET", "/close?size=20000")))
    local resp = read()
    assert.are.equal(200, resp.status)
    assert.are.equal("chunked", resp.framing)
    assert.is_nil(resp.error)
    assert.is_true(resp.body == h.pattern(20000), "re-chunked body differs")
    assert(h.send(sock, req("GET", "/hello")))
    resp = read()
    assert.are.equal("hello\n", resp.body)
  end)

  it("sends a close-delimited response to an HTTP/1.0 client as-is", function()
    assert(h.send(sock, req("GET", "/close?size=3000", nil, nil, "HTTP/1.0")))
    local resp = read()
    assert.are.equal(200, resp.status)
    assert.are.equal(0, h.header_count(resp.headers, "Transfer-Encoding"))
    assert.are.equal("close", resp.framing)
    assert.is_nil(resp.error)
    assert.is_true(resp.body == h.pattern(3000), "body differs")
  end)
end)

-- A script that answers a request hook before the request body is read (a
-- mocked POST): the body is read and dropped, and the connection carries
-- the next request, as when the body goes upstream.
describe("client keep-alive after a script answered before the body", function()
  local origin, proxy, sock
  local MOCK = [[
function on_request(tx)
  if tx.req.path == "/fail" then error("the script fails") end
  if tx.req.method == "POST" then tx:respond(201, "mocked\n") end
end
]]

  before_each(function()
    origin = h.start_origin()
    proxy = h.start_proxy({ "-s", h.tmpfile(MOCK, "mock_post.lua") })
    sock = assert(h.connect(proxy.port))
  end)

  after_each(function()
    if sock then sock:close() end
    local problem = h.stop_procs({ origin, proxy }, 2)
    sock, proxy, origin = nil, nil, nil
    assert(not problem, problem)
  end)

  local function req(method, path, extra, body)
    local headers = { "Host: " .. origin.authority }
    for _, x in ipairs(extra or {}) do headers[#headers + 1] = x end
    return h.request(method, origin.url(path), headers, body)
  end

  it("serves a request pipelined behind the dropped body", function()
    -- The body looks like a request of its own: it must be dropped, not
    -- read as one. Then a chunked POST, and a GET, all in one write.
    local inner = req("GET", "/bytes?n=3")
    assert(h.send(sock, req("POST", "/api", { "Content-Length: " .. #inner }, inner)
      .. req("POST", "/api", { "Transfer-Encoding: chunked" },
        string.format("%x\r\n%s\r\n0\r\n\r\n", #inner, inner))
      .. req("GET", "/hello")))
    for i = 1, 2 do
      local resp = assert(h.read_response(sock))
      assert.are.equal(201, resp.status, "answer " .. i)
      assert.are.equal("mocked\n", resp.body, "answer " .. i)
    end
    local resp = assert(h.read_response(sock))
    assert.are.equal(200, resp.status)
    assert.are.equal("hello\n", resp.body)
    assert.are.equal(1, #origin.requests(), "only the GET reaches the origin")
    assert.is_false(h.is_closed(sock, 0.3))
  end)

  it("waits for a body that comes later, then serves the next request", function()
    assert(h.send(sock, req("POST", "/api", { "Content-Length: 10" }, "12345")))
    local resp = assert(h.read_response(sock))
    assert.are.equal(201, resp.status)
    assert(h.send(sock, "67890" .. req("GET", "/hello")))
    resp = assert(h.read_response(sock))
    assert.are.equal("hello\n", resp.body)
  end)

  it("keeps the connection after a failing script's 500, the body dropped", function()
    assert(h.send(sock, req("POST", "/fail", { "Content-Length: 5" }, "hello") .. req("GET", "/hello")))
    local resp = assert(h.read_response(sock))
    assert.are.equal(500, resp.status)
    resp = assert(h.read_response(sock))
    assert.are.equal("hello\n", resp.body)
  end)

  it("stops dropping a body on SIGTERM: the connection closes, the proxy exits", function()
    assert(h.send(sock, req("POST", "/api", { "Content-Length: 10" }, "12345")))
    local resp = assert(h.read_response(sock))
    assert.are.equal(201, resp.status)
    local t0 = h.now()
    proxy.signal("TERM")
    -- Not held until the shutdown's limit (10 s) for a body nobody needs.
    assert.is_true(h.is_closed(sock, 5), "still open 5 s after SIGTERM")
    assert.are.equal(0, proxy.wait_exit(5), "still running, or a failed exit")
    assert.is_true(h.now() - t0 < 5)
    assert.are.equal(1, select(2, proxy.access_log():gsub(" 201 ", "")))
  end)

  it("closes after dropping 1 MiB of chunked framing, however little data it carried", function()
    -- 300 one-byte chunks, each with a 4,000-byte extension: 300 bytes of
    -- data, 1.2 MB to read. The bound is on what is read.
    local ext = ";" .. string.rep("e", 4000)
    local body = string.rep("1" .. ext .. "\r\nx\r\n", 300) .. "0\r\n\r\n"
    h.send(sock, req("POST", "/api", { "Transfer-Encoding: chunked" }, body) .. req("GET", "/hello"))
    local resp = assert(h.read_response(sock))
    assert.are.equal(201, resp.status)
    assert.is_true(h.is_closed(sock, 5), "the connection was kept")
    assert.are.equal(0, #origin.requests())
  end)

  it("closes after the answer when the chunked body is invalid", function()
    assert(h.send(sock, req("POST", "/api", { "Transfer-Encoding: chunked" }, "zz\r\n")))
    local resp = assert(h.read_response(sock))
    assert.are.equal(201, resp.status)
    assert.is_true(h.is_closed(sock, 5))
    assert.are.equal(0, #origin.requests())
  end)
end)

-- The proxy answers 502 or 504 because the upstream could not be reached
-- (the name does not resolve, the connect is refused or times out) before
-- any of the request body went up: the rest of the body is read and
-- dropped, as after a script's answer, and the connection carries the
-- next request. So does an upstream that answers while the body is still
-- coming (an early 413): its answer is relayed, the body goes on up until
-- the answer is complete, then that upstream connection is closed and
-- the rest of the body dropped. Each test sends the head and half the
-- body, reads the answer (so it came first), then sends the rest of the
-- body with the next request behind it.
describe("client keep-alive after an answer that came before the request body", function()
  local socket = require("socket")
  local origin, proxy, sock, cleanups

  before_each(function()
    origin = h.start_origin()
    proxy = h.start_proxy({ "--connect-timeout", "1" })
    sock = assert(h.connect(proxy.port))
    cleanups = {}
  end)

  after_each(function()
    if sock then sock:close() end
    for _, f in ipairs(cleanups) do f() end
    local problem = h.stop_procs({ origin, proxy }, 2)
    sock, proxy, origin = nil, nil, nil
    assert(not problem, problem)
  end)

  local function post_head(authority, framing)
    return "POST http://" .. authority .. "/upload HTTP/1.1\r\nHost: " .. authority .. "\r\n"
      .. framing .. "\r\n\r\n"
  end

  local function next_request()
    return h.request("GET", origin.url("/hello"), { "Host: " .. origin.authority })
  end

  -- Sends the head and the first half of a 10-byte body, expects
  -- <status> (kept: no Connection: close), then the second half and a
  -- GET, which must be served on the same connection.
  local function answered_then_served(authority, status, chunked, timeout)
    local framing = chunked and "Transfer-Encoding: chunked" or "Content-Length: 10"
    local first = chunked and "5\r\n12345\r\n" or "12345"
    local rest = chunked and "5\r\n67890\r\n0\r\n\r\n" or "67890"
    assert(h.send(sock, post_head(authority, framing) .. first))
    local resp = assert(h.read_response(sock, { timeout = timeout }))
    assert.are.equal(status, resp.status, resp.raw_head)
    assert.are_not.equal("close", resp.headers["connection"], resp.raw_head)
    assert(h.send(sock, rest .. next_request()))
    resp = assert(h.read_response(sock))
    assert.are.equal(200, resp.status, resp.raw_head)
    assert.are.equal("hello\n", resp.body)
    assert.is_false(h.is_closed(sock, 0.3))
    assert.are.equal(1, #origin.requests(), "only the GET reaches the origin")
  end

  it("keeps the connection after a 502 for a refused connect", function()
    answered_then_served("127.0.0.1:" .. h.closed_port(), 502)
  end)

  it("keeps the connection after a 502 for a refused connect, chunked body", function()
    answered_then_served("127.0.0.1:" .. h.closed_port(), 502, true)
  end)

  it("keeps the connection after a 502 for a name that does not resolve", function()
    answered_then_served("nothing-here.invalid", 502, false, 15)
  end)

  it("keeps the connection after a 504 for a connect that timed out", function()
    local lport = h.hanging_port(cleanups)
    if not lport then
      return pending("cannot make a loopback connect hang here (accept queue never fills)")
    end
    answered_then_served("127.0.0.1:" .. lport, 504, false, 8)
  end)

  it("still closes after a 502 when over 1 MiB of the body is left", function()
    local authority = "127.0.0.1:" .. h.closed_port()
    assert(h.send(sock, post_head(authority, "Content-Length: 2000000") .. "12345"))
    local resp = assert(h.read_response(sock))
    assert.are.equal(502, resp.status)
    assert.are.equal("close", resp.headers["connection"], resp.raw_head)
  end)

  -- An upstream that fails while the body is still coming: it reads the
  -- head and the body up to <seen>, then resets the connection (SO_LINGER
  -- 0), or with <fin> only closes it. Nothing of an answer came, so the
  -- proxy answers 502; the rest of the body is read and dropped from where
  -- its forwarding stopped.
  local function upstream_resets(server, seen, fin)
    local up = assert(server:accept())
    h.skip_head(up)
    local got = ""
    while not got:find(seen, 1, true) do
      got = got .. assert(up:receive(1))
    end
    if not fin then assert(up:setoption("linger", { on = true, timeout = 0 })) end
    up:close()
  end

  -- Sends the head and <first>, has the upstream reset after <seen>,
  -- expects a 502 that keeps the connection, then sends <rest> with a GET
  -- behind it, and a second GET after that: each is answered exactly (a
  -- byte of the body left over, or one too many taken, would put another
  -- answer first, or none).
  local function reset_then_served(framing, first, seen, rest, fin)
    local server, _, target = h.raw_listener()
    cleanups[#cleanups + 1] = function() server:close() end
    assert(h.send(sock, post_head(target, framing) .. first))
    upstream_resets(server, seen, fin)
    local resp = assert(h.read_response(sock))
    assert.are.equal(502, resp.status, resp.raw_head)
    assert.matches((fin and "closed" or "reset") .. " the connection before responding", resp.body,
      1, true)
    assert.are_not.equal("close", resp.headers["connection"], resp.raw_head)
    assert(h.send(sock, rest .. next_request()))
    for i = 1, 2 do
      if i == 2 then assert(h.send(sock, next_request())) end
      resp = assert(h.read_response(sock))
      assert.are.equal(200, resp.status, resp.raw_head)
      assert.are.equal("hello\n", resp.body)
    end
    assert.are.equal(2, #origin.requests(), "only the GETs reach the origin")
  end

  it("keeps the connection after a 502 for an upstream reset inside the body", function()
    reset_then_served("Content-Length: 10", "12345", "12345", "67890")
  end)

  it("keeps the connection after a 502 for an upstream that closes inside the body", function()
    reset_then_served("Content-Length: 10", "12345", "12345", "67890", true)
  end)

  it("keeps the connection after a 502 for an upstream reset inside a chunked body", function()
    -- Cut inside a chunk: the dropping goes on in the middle of it.
    reset_then_served("Transfer-Encoding: chunked", "a\r\n12345", "12345",
      "67890\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n")
  end)

  it("drops up to 1 MiB after an upstream reset inside the body, and closes past it", function()
    local server, _, target = h.raw_listener()
    cleanups[#cleanups + 1] = function() server:close() end
    local mib = 1024 * 1024
    -- Exactly 1 MiB left: dropped, the connection is kept.
    assert(h.send(sock, post_head(target, "Content-Length: " .. (5 + mib)) .. "12345"))
    upstream_resets(server, "12345")
    local resp = assert(h.read_response(sock))
    assert.are.equal(502, resp.status, resp.raw_head)
    assert.are_not.equal("close", resp.headers["connection"], resp.raw_head)
    assert(h.send(sock, string.rep("x", mib) .. next_request()))
    resp = assert(h.read_response(sock))
    assert.are.equal(200, resp.status, resp.raw_head)
    -- One byte more: the connection ends with the 502.
    assert(h.send(sock, post_head(target, "Content-Length: " .. (6 + mib)) .. "12345"))
    upstream_resets(server, "12345")
    resp = assert(h.read_response(sock))
    assert.are.equal(502, resp.status, resp.raw_head)
    assert.are.equal("close", resp.headers["connection"], resp.raw_head)
    assert.is_true(h.is_closed(sock, 5), "the connection was kept")
  end)

  -- An upstream that answers without reading the body, and keeps its
  -- connection open: the proxy closes it once the answer is complete.
  local function early_answer(answer, chunked)
    local server, _, target = h.raw_listener()
    cleanups[#cleanups + 1] = function() server:close() end
    local framing = chunked and "Transfer-Encoding: chunked" or "Content-Length: 10"
    local first = chunked and "5\r\n12345\r\n" or "12345"
    local rest = chunked and "5\r\n67890\r\n0\r\n\r\n" or "67890"
    assert(h.send(sock, post_head(target, framing) .. first))
    local up = assert(server:accept())
    cleanups[#cleanups + 1] = function() up:close() end
    h.skip_head(up)
    assert(up:send(answer))
    local resp = assert(h.read_response(sock))
    assert.are_not.equal("close", resp.headers["connection"], resp.raw_head)
    -- The upstream connection is closed, what it got of the body first.
    local got, how = h.recv_until_close(up, 5)
    assert.are.equal("closed", how)
    assert.are.equal(first, got)
    assert(h.send(sock, rest .. next_request()))
    local again = assert(h.read_response(sock))
    assert.are.equal(200, again.status, again.raw_head)
    assert.are.equal("hello\n", again.body)
    assert.is_false(h.is_closed(sock, 0.3))
    return resp
  end

  it("keeps the connection after an early 413 from the upstream", function()
    local resp = early_answer("HTTP/1.1 413 Content Too Large\r\nContent-Length: 4\r\n\r\nbig!")
    assert.are.equal(413, resp.status)
    assert.are.equal("big!", resp.body)
  end)

  it("keeps the connection after an early chunked 200, chunked body", function()
    local resp = early_answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "3\r\nok\n\r\n0\r\n\r\n", true)
    assert.are.equal(200, resp.status)
    assert.are.equal("ok\n", resp.body)
  end)

  it("still closes after an early answer when over 1 MiB of the body is left", function()
    local server, _, target = h.raw_listener()
    cleanups[#cleanups + 1] = function() server:close() end
    assert(h.send(sock, post_head(target, "Content-Length: 2000000") .. "12345"))
    local up = assert(server:accept())
    cleanups[#cleanups + 1] = function() up:close() end
    h.skip_head(up)
    assert(up:send("HTTP/1.1 413 Content Too Large\r\nContent-Length: 4\r\n\r\nbig!"))
    local resp = assert(h.read_response(sock))
    assert.are.equal(413, resp.status)
    assert.are.equal("close", resp.headers["connection"], resp.raw_head)
  end)
end)

-- A connection that ends after its answer (HTTP/1.0, Connection: close)
-- lingers for the client to close (RFC 9112 9.6): 2 s, counted once the
-- answer is all out. Before, they counted from the end of the exchange,
-- with the answer perhaps still queued, and a client that paused before
-- reading a large one lost its end.
describe("a connection ending after a large answer", function()
  local proxy

  after_each(function()
    local problem = h.stop_procs({ proxy }, 2)
    proxy = nil
    assert(not problem, problem)
  end)

  local SIZE = 8 * 1024 * 1024

  -- A proxy whose script answers every request with SIZE bytes (<args>
  -- first), and a client whose request for them in HTTP/<version> has
  -- been answered: the answer is queued whole, its exchange over. (The
  -- body is made once, at load; the hook's time limit is for sanitizer
  -- builds, where copying 8 MiB is slow.)
  local function answered(version, args)
    args = args or {}
    for _, a in ipairs({ "--hook-timeout", "2000", "-s", h.tmpfile(string.format(
      'local body = string.rep("x", %d)\nfunction on_request(tx) tx:respond(200, body) end',
      SIZE), "big.lua") }) do args[#args + 1] = a end
    proxy = h.start_proxy(args)
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, "GET http://127.0.0.1:9/big HTTP/" .. version
      .. "\r\nHost: 127.0.0.1:9\r\n\r\n"))
    assert(proxy.wait_access_log('"GET http://127%.0%.0%.1:9/big HTTP/'
      .. version:gsub("%.", "%%.") .. '" 200'), proxy.access_log())
    return s
  end

  -- The whole answer, then the close.
  local function read_all_then_close(s)
    local resp = h.read_response(s, { timeout = 20 })
    assert(resp, "no answer")
    assert.are.equal(SIZE, #resp.body, "the answer was cut")
    assert.is_true(h.is_closed(s, 5), "the connection stayed open after the answer")
    s:close()
  end

  it("gives a client that pauses before reading all of the answer", function()
    local s = answered("1.0")
    socket.sleep(2.5) -- the client's pause, longer than the linger
    read_all_then_close(s)
  end)

  -- SIGTERM closes a kept-alive client between requests at once, but one
  -- whose last answer is still queued is not between requests yet: it
  -- drains, within the stop's time limit, and then closes.
  it("lets a kept-alive client's queued answer go out when the proxy stops", function()
    local s = answered("1.1")
    proxy.signal("TERM")
    assert(proxy.log_has("no new connections; finishing"), proxy.log())
    read_all_then_close(s)
  end)

  -- While the answer goes out, only the client's reading keeps the
  -- connection: one that never reads, sending a byte now and then (which
  -- the proxy drops), is closed after --idle-timeout all the same.
  it("closes a client that reads nothing, however it keeps sending", function()
    local s = answered("1.0", { "--idle-timeout", "1" })
    -- Once the proxy has closed, a send meets the reset its socket answers.
    local closed = false
    for _ = 1, 40 do
      socket.sleep(0.2) -- the client's pace
      if not s:send("z") then closed = true break end
    end
    assert.is_true(closed, "a client that read nothing was kept for 8 s")
    s:close()
  end)
end)
