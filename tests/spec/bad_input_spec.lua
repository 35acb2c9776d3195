-- End-to-end specs for input the proxy must refuse, and for a few odd but
-- valid requests it must accept.
--
-- The proxy is the only thing between a client and an origin that may parse
-- the same bytes differently (request smuggling), so every request it cannot
-- read in exactly one way is refused *before* anything goes upstream. For each
-- refused request we check what a client sees (exact status, a fixed cause
-- text that never echoes client bytes, the connection closed because the
-- framing is unknown), what the origin saw (nothing), and that the proxy
-- still serves the next client.
--
-- Each case starts its own origin and proxy: a case that crashes or wedges the
-- proxy must not make the following cases fail for the wrong reason.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local socket = require("socket")

-- Planted in every refused request. An error reply is built from fixed text
-- only, so these bytes must never come back (CVE-2022-40468 in tinyproxy
-- echoed a malformed request line).
local MARK = "Zq7xMARKERx"

-- Long enough for the proxy to answer, short enough that a wrong behaviour
-- (waiting for bytes that never come) fails the case quickly.
local READ_TIMEOUT = 5

-- Every case runs with a header timeout shorter than READ_TIMEOUT, so a
-- proxy that waits instead of refusing shows up as a clear "408, expected
-- 400" instead of a socket timeout.
local BASE_ARGS = { "--header-timeout", "3" }

local REASONS = {
  [200] = "OK",
  [400] = "Bad Request",
  [408] = "Request Timeout",
  [414] = "URI Too Long",
  [431] = "Request Header Fields Too Large",
  [501] = "Not Implemented",
  [502] = "Bad Gateway",
  [505] = "HTTP Version Not Supported",
}

------------------------------------------------------------------------------
-- Local helpers (the harness reads one response from a socket; these cases
-- also need every byte up to the close, to prove nothing else was sent).

-- Replaces {O} with the origin's host:port in a request template.
local function fill(template, origin)
  local authority = "127.0.0.1:" .. origin.port
  return (template:gsub("{O}", function() return authority end))
end

-- Splits a raw reply into its first response and whatever followed it.
-- Error replies are always Content-Length framed (see the contract), so that
-- is all this understands; anything else is returned as unparsed.
local function parse_reply(raw)
  local head_end = raw:find("\r\n\r\n", 1, true)
  if not head_end then return nil, "no complete response head in: " .. string.format("%q", raw) end
  local head = raw:sub(1, head_end + 1)
  local status, reason = head:match("^HTTP/1%.1 (%d%d%d) ([^\r\n]*)\r\n")
  if not status then return nil, "bad status line in: " .. string.format("%q", head) end
  local headers = {}
  for line in head:gmatch("([^\r\n]*)\r\n") do
    local name, value = line:match("^([^:]+):[ \t]*(.-)[ \t]*$")
    if name then headers[name:lower()] = value end
  end
  local rest = raw:sub(head_end + 4)
  local len = tonumber(headers["content-length"] or "")
  local body, after = rest, ""
  if len then
    body, after = rest:sub(1, len), rest:sub(len + 1)
  end
  return { status = tonumber(status), reason = reason, headers = headers,
           body = body, after = after, raw = raw }
end

-- Sends <raw> on a new connection and reads until the proxy closes it.
-- Returns the bytes read and whether the proxy closed (false: still open
-- after READ_TIMEOUT).
local function send_until_close(port, raw, timeout)
  local sock = h.connect(port)
  sock:settimeout(timeout or READ_TIMEOUT)
  assert(sock:send(raw))
  local data, err, partial = sock:receive("*a")
  sock:close()
  -- "closed" comes back as data; a reset (the proxy closed with our bytes
  -- still unread) is a close too, only a rude one.
  return data or partial, data ~= nil or err ~= "timeout", err
end

-- Asserts <reply> is exactly one well-formed error response for <status>
-- whose cause text matches one of <causes> (Lua patterns, lower case), then
-- nothing else, and that the proxy closed the connection.
local function assert_error_reply(raw, closed, status, causes)
  local r, why = parse_reply(raw)
  assert(r, why)
  assert.equal(status, r.status)
  assert.equal(REASONS[status], r.reason)
  assert.equal("text/plain; charset=utf-8", r.headers["content-type"])
  assert.equal(#r.body, tonumber(r.headers["content-length"]))
  assert.equal("close", (r.headers["connection"] or ""):lower())
  -- "NNN Reason: <fixed cause text>\n"
  local prefix = status .. " " .. REASONS[status] .. ": "
  assert.equal(prefix, r.body:sub(1, #prefix), "body: " .. r.body)
  assert.equal("\n", r.body:sub(-1), "body: " .. r.body)
  local cause = r.body:sub(#prefix + 1, -2):lower()
  assert.is_true(#cause > 0, "empty cause text")
  local named = false
  for _, pat in ipairs(causes) do
    if cause:find(pat) then named = true end
  end
  assert.is_true(named, "cause text \"" .. cause .. "\" names none of: " .. table.concat(causes, ", "))
  assert.equal("", r.after, "bytes after the error response")
  assert.is_true(closed, "connection left open after an error with unknown framing")
  return r
end

local function assert_no_mark(raw)
  assert.is_nil(raw:lower():find(MARK:lower(), 1, true),
    "reply echoes client bytes: " .. string.format("%q", raw))
end

-- A fresh client right after must be served normally.
local function assert_serves_hello(proxy, origin)
  local raw, closed = send_until_close(proxy.port, fill(
    "GET http://{O}/hello HTTP/1.1\r\nHost: {O}\r\nConnection: close\r\n\r\n", origin))
  assert.is_true(closed)
  local r = assert(parse_reply(raw))
  assert.equal(200, r.status)
  assert.equal("hello\n", r.body)
end

local function is_hello(rec)
  return rec.head:match("^GET /hello HTTP/1%.1\r\n") ~= nil
end

-- Decodes a chunked body as the origin received it. Returns the data and
-- the list of chunk extensions seen, or nil and why if the body is not a
-- complete chunked body.
local function dechunk(s)
  local out, exts, pos = {}, {}, 1
  while true do
    local hex, ext, data_at = s:match("^(%x+)([^\r\n]*)\r\n()", pos)
    if not hex then return nil, "no chunk-size line at byte " .. pos end
    if ext ~= "" then exts[#exts + 1] = ext end
    local size = tonumber(hex, 16)
    if size == 0 then
      local trailers = s:sub(data_at)
      if trailers == "\r\n" or trailers:match("\r\n\r\n$") then return table.concat(out), exts end
      return nil, "unterminated trailer section"
    end
    out[#out + 1] = s:sub(data_at, data_at + size - 1)
    pos = data_at + size
    if s:sub(pos, pos + 1) ~= "\r\n" then return nil, "no CRLF after chunk data" end
    pos = pos + 2
  end
end

------------------------------------------------------------------------------
-- Refused requests. {O} is the origin's host:port. Each row:
--   name, raw request, expected status, cause (patterns any of which the
--   lower-cased cause text must contain), args (proxy options instead of
--   BASE_ARGS), body_error (the error is in the body, see below).
--
-- Where a smuggled request follows the bad one, its target carries MARK, so
-- the origin record and the reply both show whether it got through.

local SMUGGLED = "GET http://{O}/echo?" .. MARK .. " HTTP/1.1\r\nHost: {O}\r\n\r\n"
local BIG = ("a"):rep(2000)

local function many_fields(n)
  local t = {}
  for i = 1, n do t[i] = "X-F" .. i .. ": v\r\n" end
  return table.concat(t)
end

local REQ_LINE = { "request" }
local HOST = { "host" }
local CL = { "content%-length" }
local TE = { "transfer%-encoding", "coding" }
local FIELD = { "field", "header", "colon", "name" }
local LINE_END = { "cr", "lf", "line end" }
local CHUNK = { "chunk" }

local CASES = {
  -- request line
  { "request line without version",
    "GET http://{O}/" .. MARK .. "\r\nHost: {O}\r\n\r\n", 400, REQ_LINE },
  { "two spaces before the target",
    "GET  http://{O}/" .. MARK .. " HTTP/1.1\r\nHost: {O}\r\n\r\n", 400, REQ_LINE },
  { "two spaces before the version",
    "GET http://{O}/" .. MARK .. "  HTTP/1.1\r\nHost: {O}\r\n\r\n", 400, REQ_LINE },
  -- HTTP-name is case-sensitive (RFC 9112 2.3): this is not a version at all.
  { "lower-case http/1.1",
    "GET http://{O}/" .. MARK .. " http/1.1\r\nHost: {O}\r\n\r\n", 400, REQ_LINE },
  -- A TLS ClientHello sent to the plain-text port.
  { "garbage bytes",
    "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" .. MARK .. "\xff\xfe\r\n\r\n", 400, REQ_LINE },
  { "NUL in the request line",
    "GET http://{O}/x\0" .. MARK .. " HTTP/1.1\r\nHost: {O}\r\n\r\n", 400, REQ_LINE },
  { "HTTP/2.0 version",
    "GET http://{O}/" .. MARK .. " HTTP/2.0\r\nHost: {O}\r\n\r\n", 505, { "version" } },
  { "HTTP/0.9 version",
    "GET http://{O}/" .. MARK .. " HTTP/0.9\r\nHost: {O}\r\n\r\n", 505, { "version" } },
  -- The blank line after it keeps this about the line's shape, not about
  -- how early the proxy decides.
  { "HTTP/0.9-style request line", "GET /" .. MARK .. "\r\n\r\n", 400, REQ_LINE },

  -- Host
  { "HTTP/1.1 without Host",
    "GET http://{O}/" .. MARK .. " HTTP/1.1\r\nX-A: b\r\n\r\n", 400, HOST },
  { "two Host fields",
    "GET http://{O}/hello HTTP/1.1\r\nHost: {O}\r\nHost: " .. MARK .. ".example\r\n\r\n", 400, HOST },
  { "Host with a space",
    "GET http://{O}/hello HTTP/1.1\r\nHost: " .. MARK .. " example\r\n\r\n", 400, HOST },
  { "Host with userinfo",
    "GET http://{O}/hello HTTP/1.1\r\nHost: " .. MARK .. "@example\r\n\r\n", 400, HOST },

  -- Content-Length and Transfer-Encoding together: the textbook smuggling
  -- setup. The body holds a second request that must never reach the origin.
  { "Content-Length then Transfer-Encoding",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nContent-Length: 5\r\n"
      .. "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" .. SMUGGLED, 400, { "content%-length", "transfer%-encoding" } },
  { "Transfer-Encoding then Content-Length",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nTransfer-Encoding: chunked\r\n"
      .. "Content-Length: 5\r\n\r\n0\r\n\r\n" .. SMUGGLED, 400, { "content%-length", "transfer%-encoding" } },

  -- Content-Length values
  { "duplicate Content-Length, same value",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nContent-Length: 11\r\nContent-Length: 11\r\n\r\n"
      .. MARK, 400, CL },
  { "duplicate Content-Length, different values",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nContent-Length: 5\r\nContent-Length: 11\r\n\r\n"
      .. MARK, 400, CL },
  { "Content-Length +5",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nContent-Length: +5\r\n\r\n" .. MARK, 400, CL },
  { "Content-Length -1",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nContent-Length: -1\r\n\r\n" .. MARK, 400, CL },
  { "Content-Length abc",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nContent-Length: abc\r\n\r\n" .. MARK, 400, CL },
  { "Content-Length '5 5'",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nContent-Length: 5 5\r\n\r\n" .. MARK, 400, CL },
  { "Content-Length 0x10",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nContent-Length: 0x10\r\n\r\n" .. MARK, 400, CL },
  { "Content-Length of 20 digits",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nContent-Length: 99999999999999999999\r\n\r\n"
      .. MARK, 400, CL },

  -- field syntax
  { "obs-fold",
    "GET http://{O}/hello HTTP/1.1\r\nHost: {O}\r\nX-Folded: a\r\n " .. MARK .. "\r\n\r\n", 400, { "fold" } },
  { "space before colon",
    "GET http://{O}/hello HTTP/1.1\r\nHost: {O}\r\nX-" .. MARK .. " : v\r\n\r\n", 400, FIELD },
  { "tab before colon",
    "GET http://{O}/hello HTTP/1.1\r\nHost: {O}\r\nX-" .. MARK .. "\t: v\r\n\r\n", 400, FIELD },
  { "bare LF line endings",
    "GET http://{O}/" .. MARK .. " HTTP/1.1\nHost: {O}\n\n", 400, LINE_END },
  { "one bare LF among CRLFs",
    "GET http://{O}/hello HTTP/1.1\r\nHost: {O}\nX-M: " .. MARK .. "\r\n\r\n", 400, LINE_END },
  { "bare CR inside a value",
    "GET http://{O}/hello HTTP/1.1\r\nHost: {O}\r\nX-M: a\r" .. MARK .. "\r\n\r\n", 400, LINE_END },
  { "NUL in a value",
    "GET http://{O}/hello HTTP/1.1\r\nHost: {O}\r\nX-M: a\0" .. MARK .. "\r\n\r\n", 400,
    { "value", "control", "nul" } },

  -- Transfer-Encoding values
  { "Transfer-Encoding gzip",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nTransfer-Encoding: gzip\r\n\r\n" .. MARK, 501, TE },
  { "Transfer-Encoding gzip, chunked",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
      .. "b\r\n" .. MARK .. "\r\n0\r\n\r\n", 501, TE },
  { "Transfer-Encoding chunked, gzip",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
      .. "b\r\n" .. MARK .. "\r\n0\r\n\r\n", 501, TE },
  { "Transfer-Encoding 'chunked,'",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nTransfer-Encoding: chunked,\r\n\r\n"
      .. "b\r\n" .. MARK .. "\r\n0\r\n\r\n", 400, TE },
  { "Transfer-Encoding chunked, chunked",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
      .. "b\r\n" .. MARK .. "\r\n0\r\n\r\n", 400, TE },

  -- chunked bodies: MARK sits after the point of error, so nothing the
  -- proxy may already have relayed contains it.
  { "chunk size zz",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "zz\r\n" .. MARK .. "\r\n0\r\n\r\n", 400, CHUNK, body_error = true },
  { "chunk size overflow",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "fffffffffffffffff1\r\n" .. MARK .. "\r\n0\r\n\r\n", 400, CHUNK, body_error = true },
  { "chunk size with 0x",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "0xb\r\n" .. MARK .. "\r\n0\r\n\r\n", 400, CHUNK, body_error = true },
  { "no CRLF after chunk data",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "5\r\nhello" .. MARK .. "\r\n0\r\n\r\n", 400, CHUNK, body_error = true },
  { "chunk extension ended by bare LF",
    "POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "5;ext=1\nhello\r\n" .. MARK .. "\r\n0\r\n\r\n", 400, CHUNK, body_error = true },

  -- how the request is addressed
  { "origin-form target",
    "GET /" .. MARK .. " HTTP/1.1\r\nHost: {O}\r\n\r\n", 400, { "this is a proxy: send an absolute url" } },
  { "https:// absolute-form",
    "GET https://{O}/" .. MARK .. " HTTP/1.1\r\nHost: {O}\r\n\r\n", 400, { "use connect for https" } },

  -- sizes (limit 1024 bytes, so a 2000-byte field or target is over it)
  { "head larger than --max-header-bytes",
    "GET http://{O}/hello HTTP/1.1\r\nHost: {O}\r\nX-Big: " .. MARK .. BIG .. "\r\n\r\n", 431,
    { "head", "field", "large" }, args = { "--header-timeout", "3", "--max-header-bytes", "1024" } },
  { "target longer than --max-header-bytes",
    "GET http://{O}/" .. MARK .. BIG .. " HTTP/1.1\r\nHost: {O}\r\n\r\n", 414,
    { "uri", "url", "target", "request line", "long" },
    args = { "--header-timeout", "3", "--max-header-bytes", "1024" } },
  { "101 fields",
    "GET http://{O}/hello HTTP/1.1\r\nHost: {O}\r\nX-M: " .. MARK .. "\r\n" .. many_fields(99) .. "\r\n",
    431, { "field", "head" } },

  -- One send holding a bad request and a good one: the good one must not be
  -- served, since the proxy cannot know where the bad one ended.
  { "bad request with a valid one pipelined behind it",
    "GET http://{O}/hello HTTP/1.1\r\nHost: {O}\r\nContent-Length: abc\r\n\r\n" .. SMUGGLED, 400, CL },
}

describe("a request the proxy must refuse", function()
  local origin, proxy

  after_each(function()
    if proxy then proxy.stop(); proxy = nil end
    if origin then origin.stop(); origin = nil end
  end)

  for _, case in ipairs(CASES) do
    local name, template, status, causes = case[1], case[2], case[3], case[4]

    it(name .. " -> " .. status, function()
      origin = h.start_origin()
      proxy = h.start_proxy(case.args or BASE_ARGS)
      local request = fill(template, origin)
      assert.truthy(request:find(MARK, 1, true), "test bug: the request carries no marker")

      local raw, closed = send_until_close(proxy.port, request)
      assert_error_reply(raw, closed, status, causes)
      assert_no_mark(raw)

      -- The probe request also orders things: the origin records a request
      -- before answering it, so once /hello is answered, anything the proxy
      -- forwarded for the bad request (on an earlier connection) is on record.
      assert_serves_hello(proxy, origin)
      local records = origin.requests()
      if not case.body_error then
        assert.equal(1, #records, "the origin saw the refused request")
        assert.is_true(is_hello(records[1]))
      else
        -- A chunked body is relayed as it arrives, so the head may already
        -- be upstream when the bad chunk shows up. What must hold is that the
        -- origin never gets a complete request out of it: the proxy cuts the
        -- upstream connection instead of ending the body.
        for _, rec in ipairs(records) do
          if not is_hello(rec) then
            assert.is_nil((rec.head .. rec.body):find(MARK, 1, true), "bytes after the error went upstream")
            assert.is_nil(dechunk(rec.body), "the origin got a complete body: " .. string.format("%q", rec.body))
          end
        end
      end
    end)
  end

  it("a head that stalls past --header-timeout 1 -> 408 within ~3 s", function()
    origin = h.start_origin()
    proxy = h.start_proxy({ "--header-timeout", "1" })
    local sock = h.connect(proxy.port)
    sock:settimeout(READ_TIMEOUT)
    -- No blank line: the head never completes.
    assert(sock:send(fill("GET http://{O}/hello HTTP/1.1\r\nHost: {O}\r\nX-M: " .. MARK .. "\r\n", origin)))
    local started = socket.gettime()
    local data, err, partial = sock:receive("*a")
    local elapsed = socket.gettime() - started
    sock:close()
    assert.is_true(elapsed < 3, "the 408 took " .. elapsed .. " s")
    assert.is_true(elapsed > 0.8, "the 408 came early, after " .. elapsed .. " s")
    local raw = data or partial
    assert_error_reply(raw, data ~= nil or err ~= "timeout", 408, { "time" })
    assert_no_mark(raw)
    assert_serves_hello(proxy, origin)
    local records = origin.requests()
    assert.equal(1, #records)
    assert.is_true(is_hello(records[1]))
  end)
end)

------------------------------------------------------------------------------
-- Requests that look odd but are valid: they must go through.

describe("an odd but valid request", function()
  local origin, proxy

  before_each(function()
    origin = h.start_origin()
    proxy = h.start_proxy(BASE_ARGS)
  end)

  after_each(function()
    if proxy then proxy.stop(); proxy = nil end
    if origin then origin.stop(); origin = nil end
  end)

  -- Sends one request on a kept-alive connection; returns the response and
  -- the single record the origin holds.
  local function forward(template)
    local sock = h.connect(proxy.port)
    sock:settimeout(READ_TIMEOUT)
    assert(sock:send(fill(template, origin)))
    local r = assert(h.read_response(sock))
    sock:close()
    local records = origin.requests()
    assert.equal(1, #records)
    return r, records[1]
  end

  -- Transfer codings are case-insensitive (RFC 9112 7); matching "chunked"
  -- case-sensitively was one of tinyproxy's bugs.
  it("Transfer-Encoding: Chunked is forwarded, body re-chunked", function()
    local r, rec = forward("POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nTransfer-Encoding: Chunked\r\n\r\n"
      .. "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert.equal(200, r.status)
    assert.truthy(rec.head:lower():find("\r\ntransfer%-encoding: chunked\r\n"), rec.head)
    assert.is_nil(rec.head:lower():find("\r\ncontent%-length:"), rec.head)
    local data, why = dechunk(rec.body)
    assert(data, why)
    assert.equal("hello world", data)
  end)

  -- Extensions mean nothing end to end and are a classic parser
  -- differential, so the proxy drops them when it re-encodes.
  it("a chunk extension is accepted and not forwarded", function()
    local r, rec = forward("POST http://{O}/echo HTTP/1.1\r\nHost: {O}\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "5;name=" .. MARK .. "\r\nhello\r\n0\r\n\r\n")
    assert.equal(200, r.status)
    local data, exts = dechunk(rec.body)
    assert(data, exts)
    assert.equal("hello", data)
    assert.same({}, exts)
    assert.is_nil((rec.head .. rec.body):find(MARK, 1, true))
  end)

  it("exactly 100 fields are accepted", function()
    local r, rec = forward("GET http://{O}/hello HTTP/1.1\r\nHost: {O}\r\n" .. many_fields(99) .. "\r\n")
    assert.equal(200, r.status)
    assert.equal("hello\n", r.body)
    assert.truthy(rec.head:find("\r\nX%-F99: v\r\n"))
  end)
end)

------------------------------------------------------------------------------
-- Malformed responses: the origin's /raw/ routes send fixed bad bytes. The
-- proxy must answer 502 and relay none of them (a client reading them could
-- be desynchronised just like an origin reading a bad request).

local RAW_CASES = {
  -- route, bytes of the bad response that must not reach the client (whole
  -- lines: the 502's cause text may well name a header)
  { "cl-te", { "hello", "Transfer-Encoding: chunked\r\n" } },
  { "dup-cl", { "hello", "Content-Length: 6\r\n" } },
  { "obs-fold", { "hello", "X-Folded" } },
  { "space-colon", { "hello", "X-Bad" } },
  { "bad-status", { "hello", "2x0" } },
  { "lf-only", { "hello", "\nContent-Type: text/plain\n" } },
}

describe("a malformed response", function()
  local origin, proxy

  before_each(function()
    origin = h.start_origin()
    proxy = h.start_proxy(BASE_ARGS)
  end)

  after_each(function()
    if proxy then proxy.stop(); proxy = nil end
    if origin then origin.stop(); origin = nil end
  end)

  local function get_raw_route(route)
    local sock = h.connect(proxy.port)
    sock:settimeout(READ_TIMEOUT)
    assert(sock:send(fill("GET http://{O}/raw/" .. route .. " HTTP/1.1\r\nHost: {O}\r\nConnection: close\r\n\r\n",
      origin)))
    local data, err, partial = sock:receive("*a")
    sock:close()
    assert.are_not.equal("timeout", err, "the proxy kept the connection open after Connection: close")
    return data or partial
  end

  for _, case in ipairs(RAW_CASES) do
    local route, forbidden = case[1], case[2]
    it("/raw/" .. route .. " -> 502, none of its bytes relayed", function()
      local raw = get_raw_route(route)
      local r, why = parse_reply(raw)
      assert(r, why)
      assert.equal(502, r.status)
      assert.equal("Bad Gateway", r.reason)
      assert.equal("502 Bad Gateway: ", r.body:sub(1, 17), r.body)
      assert.equal(#r.body, tonumber(r.headers["content-length"]))
      assert.equal("", r.after)
      for _, bytes in ipairs(forbidden) do
        assert.is_nil(raw:find(bytes, 1, true), "relayed " .. string.format("%q", bytes) .. ": " .. string.format("%q", raw))
      end
      assert_serves_hello(proxy, origin)
    end)
  end

  -- Here the head is fine and the body is not. A proxy that relays as it
  -- reads may have sent the 200 head already; then all it can do is cut the
  -- connection before the body ends, so the client knows it is broken.
  -- Either way the bad chunk never reaches the client.
  it("/raw/bad-chunk -> 502, or a 200 cut before the body ends", function()
    local raw = get_raw_route("bad-chunk")
    local status = tonumber(raw:match("^HTTP/1%.1 (%d%d%d) "))
    assert.is_nil(raw:find("zz", 1, true), "relayed the bad chunk: " .. string.format("%q", raw))
    assert.is_nil(raw:find("hello", 1, true), "relayed data after the bad chunk: " .. string.format("%q", raw))
    if status == 502 then
      local r = assert(parse_reply(raw))
      assert.equal("502 Bad Gateway: ", r.body:sub(1, 17), r.body)
      assert.equal("", r.after)
    else
      assert.equal(200, status, "neither 502 nor 200: " .. string.format("%q", raw))
      local body = raw:sub((raw:find("\r\n\r\n", 1, true) or #raw) + 4)
      assert.is_nil(dechunk(body), "the client got a complete body: " .. string.format("%q", body))
    end
    assert_serves_hello(proxy, origin)
  end)
end)
