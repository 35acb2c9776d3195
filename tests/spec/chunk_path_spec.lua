-- A body's way through on_response_chunk (or an upload's through
-- on_request_chunk) when it is large or slow: pieces read in bites of what
-- has arrived (never held back for more), small chunks handed over
-- together, a hook's string written to the peer straight from Lua, with
-- what a slow peer does not take queued in order, and memory that stays
-- bounded however slowly the peer reads.

package.path = "tests/spec/?.lua;" .. package.path
local socket = require("socket")
local h = require("support.harness")

local SAME = "function on_response_chunk(tx, c, eof) return c end\n"
local SAME_UP = "function on_request_chunk(tx, c, eof) return c end\n"

-- An origin of the spec's own, so the spec decides when it reads and what
-- it answers: a listening socket and its port.
local function own_origin()
  local server = assert(socket.bind("127.0.0.1", 0))
  server:settimeout(h.DEFAULT_TIMEOUT)
  local _, port = server:getsockname()
  return server, port
end

-- Accepts the proxy's connection and reads the request head off it.
local function accept_request(server)
  local up = assert(server:accept())
  up:settimeout(h.DEFAULT_TIMEOUT)
  local head = {}
  repeat
    local line = assert(up:receive("*l"))
    head[#head + 1] = line
  until line == ""
  return up, table.concat(head, "\n")
end

-- A chunked body decoded as it arrives: feed() takes raw bytes and hands
-- each piece of payload to <on_data>; done once the last chunk came.
local function chunked_reader(on_data)
  local r = { buf = "", left = nil, done = false }
  function r.feed(raw)
    r.buf = r.buf .. raw
    while not r.done do
      if r.left == nil then
        local hex, after = r.buf:match("^(%x+)\r\n()")
        if not hex then
          assert(not r.buf:find("\r\n", 1, true) and #r.buf < 32,
            "bad chunk size line: " .. string.format("%q", r.buf:sub(1, 32)))
          return
        end
        r.left = tonumber(hex, 16)
        r.buf = r.buf:sub(after)
        r.last = r.left == 0
      elseif r.last then
        -- no trailers from the proxy here: the blank line ends the body
        if #r.buf < 2 then return end
        assert(r.buf:sub(1, 2) == "\r\n", "no blank line after the last chunk")
        r.buf = r.buf:sub(3)
        r.done = true
      elseif r.left > 0 then
        if #r.buf == 0 then return end
        local take = math.min(r.left, #r.buf)
        on_data(r.buf:sub(1, take))
        r.buf = r.buf:sub(take + 1)
        r.left = r.left - take
      else
        if #r.buf < 2 then return end
        assert(r.buf:sub(1, 2) == "\r\n", "chunk not followed by CRLF")
        r.buf = r.buf:sub(3)
        r.left = nil
      end
    end
  end
  return r
end

-- The proxy with <script> and a small ASan quarantine (see lifecycle_spec),
-- so its RSS measures the proxy.
local function start_measured_proxy(script)
  local asan = os.getenv("ASAN_OPTIONS")
  return h.start_proxy({ "-s", script }, { env = {
    ASAN_OPTIONS = (asan and asan ~= "" and asan .. ":" or "") .. "quarantine_size_mb=4" } })
end

-- A chunked reader that checks each piece of payload against h.pattern at
-- its offset; .got counts the bytes.
local function pattern_reader(what)
  local expected = h.pattern(2 * 65536 + 64)
  local r
  r = chunked_reader(function(data)
    local start = r.got % 64
    assert(data == expected:sub(start + 1, start + #data), what .. " corrupt at byte " .. r.got)
    r.got = r.got + #data
  end)
  r.got = 0
  return r
end

-- Samples <proxy>'s RSS each time .sample() is called; .max is the peak (KiB).
local function rss_peak(proxy)
  local peak = { max = 0 }
  function peak.sample()
    local rss = proxy.rss_kb()
    if rss and rss > peak.max then peak.max = rss end
  end
  return peak
end

-- The origin's answer to an upload, and the client reading it.
local function answer_ok(up, client)
  assert(h.send(up, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"))
  assert.are.equal("ok\n", assert(h.read_response(client)).body)
end

-- "Nothing that arrived waits for more", seen from the receiving end: the
-- chunked body read on <recv_sock> (after <pending>, bytes already read)
-- shows <first> while the sender (<send_sock>) holds back <rest>; then
-- the sender sends the rest and the body must end whole.
local function expect_first_then_rest(recv_sock, send_sock, first, rest, pending, what)
  local got = {}
  local reader = chunked_reader(function(data) got[#got + 1] = data end)
  reader.feed(pending or "")
  while #table.concat(got) < #first do
    local data, err = h.recv_some(recv_sock, 5)
    assert(#data > 0, "the first part is held back: " .. tostring(err))
    reader.feed(data)
  end
  assert.are.equal(first, table.concat(got))
  assert(h.send(send_sock, rest))
  while not reader.done do
    local data, err = h.recv_some(recv_sock, 5)
    assert(#data > 0, "the rest did not come: " .. tostring(err))
    reader.feed(data)
  end
  assert.is_true(table.concat(got) == first .. rest, what .. " came out wrong")
end

describe("the chunk hook's path for large and slow bodies", function()
  local origin, proxy, script

  setup(function() script = h.tmpfile(SAME, "same.lua") end)
  before_each(function() origin = h.start_origin() end)
  after_each(function()
    local problem = h.stop_procs({ origin, proxy }, 2)
    proxy, origin = nil, nil
    assert(not problem, problem)
  end)

  it("keeps memory bounded and the body whole while a slow client reads 64 MiB", function()
    proxy = start_measured_proxy(script)
    local total = 64 * 1024 * 1024
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("GET", origin.url("/bytes?n=" .. total),
      { "Host: " .. origin.authority })))
    local resp = assert(h.read_response(s, { head_only = true, timeout = 10 }))
    assert.are.equal(200, resp.status)
    assert.are.equal("chunked", (resp.headers["transfer-encoding"] or ""):lower())

    local reader, peak = pattern_reader("body"), rss_peak(proxy)

    -- Slow phase: 16 KiB every 10 ms for 1.5 s. The origin races ahead; the
    -- hook's pieces meet a full socket, so they are written in part and
    -- the rest waits in the client's buffer, and the proxy must stop
    -- reading the origin rather than pile up strings.
    local slow_until, n = h.now() + 1.5, 0
    while h.now() < slow_until do
      local data, err = h.recv_exact(s, 16384, 10)
      assert(err == nil, "read failed: " .. tostring(err))
      reader.feed(data)
      n = n + 1
      if n % 10 == 0 then peak.sample() end
      h.sleep(0.01)   -- the slowness under test
    end
    assert.is_true(reader.got < total / 2, "the client was not slow enough to matter")
    while not reader.done do
      local data, err = h.recv_some(s, 10)
      assert(#data > 0, "read failed after " .. reader.got .. " bytes: " .. tostring(err))
      reader.feed(data)
      n = n + 1
      if n % 100 == 0 then peak.sample() end
    end
    peak.sample()
    assert.are.equal(total, reader.got)
    assert.are.equal("", reader.buf, "bytes after the last chunk")
    assert.is_true(peak.max > 0 and peak.max < 48 * 1024, "proxy RSS peaked at " .. peak.max .. " KiB")
    -- The connection is still in step for another request.
    assert(h.send(s, h.request("GET", origin.url("/hello"), { "Host: " .. origin.authority })))
    assert.are.equal("hello\n", h.read_response(s).body)
    s:close()
  end)

  it("passes a body of many small chunks whole, the last piece and eof included", function()
    local counting = h.tmpfile([[
function on_response_chunk(tx, c, eof)
  tx.ctx.calls = (tx.ctx.calls or 0) + 1
  if eof then return c .. "|" .. tx.ctx.calls end
  return c
end
]], "counting.lua")
    proxy = h.start_proxy({ "-s", counting })
    local resp = assert(h.get(proxy.port, origin.url("/chunked?n=3000&size=100")))
    assert.are.equal(200, resp.status)
    assert.falsy(resp.incomplete, resp.error)
    local body, calls = resp.body:match("^(x*)|(%d+)$")
    assert.truthy(body, "unexpected body end: " .. resp.body:sub(-40))
    assert.are.equal(300000, #body)
    -- Chunks that arrive together are one call (how many arrive together
    -- is up to the network); never more calls than chunks, plus eof.
    assert.is_true(tonumber(calls) >= 1 and tonumber(calls) <= 3001, calls)
  end)

  it("sends an upload through on_request_chunk whole, large or in small chunks", function()
    local both = h.tmpfile([[
function on_request_chunk(tx, c, eof)
  tx.ctx.calls = (tx.ctx.calls or 0) + 1
  if eof then return c .. "|" .. tx.ctx.calls end
  return c
end
]], "upload.lua")
    proxy = h.start_proxy({ "-s", both })
    local function upload(body, framing)
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, h.request("POST", origin.url("/hello"),
        { "Host: " .. origin.authority, framing }, body)))
      local resp = assert(h.read_response(s, { timeout = 20 }))
      s:close()
      assert.are.equal(200, resp.status)
    end
    -- 4 MiB by length: the pieces go up from the hook's strings.
    local big = h.pattern(4 * 1024 * 1024)
    upload(big, "Content-Length: " .. #big)
    -- 2,000 chunks of 50 bytes: they reach the hook together.
    local parts = {}
    for i = 1, 2000 do parts[i] = "32\r\n" .. h.pattern(50, i * 50) .. "\r\n" end
    upload(table.concat(parts) .. "0\r\n\r\n", "Transfer-Encoding: chunked")
    assert(origin.wait_requests(2))
    local recs = origin.requests()
    local sent = { big, h.pattern(100000, 50) }
    for i = 1, 2 do
      local body, calls = (recs[i].decoded or ""):match("^(.*)|(%d+)$")
      assert.truthy(body, "upload " .. i .. ": no calls suffix")
      assert.is_true(body == sent[i], "upload " .. i .. " arrived changed")
      assert.is_true(tonumber(calls) >= 2, "upload " .. i .. ": " .. calls .. " calls")
    end
  end)

  it("hands the hook what has arrived without waiting for more", function()
    proxy = h.start_proxy({ "-s", script })
    local server, port = own_origin()
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("GET", "http://127.0.0.1:" .. port .. "/stream",
      { "Host: 127.0.0.1:" .. port })))
    local up = accept_request(server)
    local first, rest = h.pattern(1000), h.pattern(300000, 1000)
    assert(h.send(up, "HTTP/1.1 200 OK\r\nContent-Length: " .. (#first + #rest) .. "\r\n\r\n"
      .. first))

    assert(h.read_response(s, { head_only = true }))
    -- The first part comes through while the origin sends nothing more.
    expect_first_then_rest(s, up, first, rest, h.take_pending(s), "the body")
    up:close()
    server:close()
    s:close()
  end)

  it("hands on_request_chunk what has arrived of an upload without waiting for more", function()
    proxy = h.start_proxy({ "-s", h.tmpfile(SAME_UP, "same_up.lua") })
    local server, port = own_origin()
    local first, rest = h.pattern(1000), h.pattern(300000, 1000)
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("POST", "http://127.0.0.1:" .. port .. "/upload",
      { "Host: 127.0.0.1:" .. port, "Content-Length: " .. (#first + #rest) }) .. first))
    local up, head = accept_request(server)
    assert.truthy(head:lower():find("transfer-encoding: chunked", 1, true), head)

    -- The first part goes up while the client sends nothing more.
    expect_first_then_rest(up, s, first, rest, nil, "the upload")
    answer_ok(up, s)
    up:close()
    server:close()
    s:close()
  end)

  it("keeps memory bounded and the upload whole while a slow origin reads 32 MiB", function()
    proxy = start_measured_proxy(h.tmpfile(SAME_UP, "same_up.lua"))
    local server, port = own_origin()
    local total = 32 * 1024 * 1024
    local block = h.pattern(2 * 65536 + 64)
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("POST", "http://127.0.0.1:" .. port .. "/upload",
      { "Host: 127.0.0.1:" .. port, "Content-Length: " .. total })))
    local up = accept_request(server)

    -- The client offers the body as fast as the proxy takes it: a send that
    -- does not block, from the pattern at its offset.
    local sent = 0
    s:settimeout(0)
    local function offer()
      while sent < total do
        local start = sent % 64
        local piece = block:sub(start + 1, start + math.min(65536, total - sent))
        local last, err, partial = s:send(piece)
        local n = last or partial or 0
        sent = sent + n
        if err == "timeout" or n < #piece then return end
        assert(not err, "sending the upload failed: " .. tostring(err))
      end
    end
    local reader, peak = pattern_reader("upload"), rss_peak(proxy)

    -- Slow phase: the origin takes 16 KiB every 10 ms for 1 s. The proxy
    -- must stop reading the client rather than pile up the upload.
    local slow_until, n = h.now() + 1, 0
    while h.now() < slow_until do
      offer()
      local data, err = h.recv_exact(up, 16384, 10)
      assert(err == nil, "the origin's read failed: " .. tostring(err))
      reader.feed(data)
      n = n + 1
      if n % 10 == 0 then peak.sample() end
      h.sleep(0.01)   -- the slowness under test
    end
    -- The client was held back: without backpressure the proxy would have
    -- read the whole upload in that second. (What it got to send is what
    -- the kernel's buffers on the way took: on loopback, with autotuning,
    -- anywhere from 10 to over 20 MiB, so half the upload was no bound.)
    assert.is_true(sent < total, "the origin was not slow enough to matter")
    while not reader.done do
      offer()
      local data, err = h.recv_some(up, 10)
      assert(#data > 0, "the origin's read failed after " .. reader.got .. " bytes: " .. tostring(err))
      reader.feed(data)
      n = n + 1
      if n % 100 == 0 then peak.sample() end
    end
    peak.sample()
    assert.are.equal(total, reader.got)
    assert.is_true(peak.max > 0 and peak.max < 48 * 1024, "proxy RSS peaked at " .. peak.max .. " KiB")
    s:settimeout(h.DEFAULT_TIMEOUT)
    answer_ok(up, s)
    -- Both connections are still in step: the next request goes up the
    -- kept upstream connection, nothing of the upload before it.
    assert(h.send(s, h.request("GET", "http://127.0.0.1:" .. port .. "/next",
      { "Host: 127.0.0.1:" .. port })))
    assert.are.equal("GET /next HTTP/1.1", assert(up:receive("*l")))
    repeat
      local line = assert(up:receive("*l"))
    until line == ""
    assert(h.send(up, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnext\n"))
    assert.are.equal("next\n", assert(h.read_response(s)).body)
    up:close()
    server:close()
    s:close()
  end)
end)
