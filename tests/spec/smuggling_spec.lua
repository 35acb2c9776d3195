-- Request smuggling and malformed-input battery, one case per known bug
-- class from the public record and per RFC 9112 rule.
--
-- A proxy is one of two parsers reading the same bytes; any difference
-- between how it reads a message and how the next hop reads it lets a
-- client hide a request inside another (or a server hide a response). So
-- for each case we check more than the status:
--
--   1. the exact status (or, for a valid variant, that it is forwarded);
--   2. the connection state RFC 9112 asks for: after a 400 for a framing
--      error the proxy cannot know where the next request starts, so the
--      socket must read EOF right after the one error response;
--   3. every byte the origin received: nothing at all for a refused head;
--      for a refused chunked body (relayed as it arrives) never a complete
--      body and never a byte from past the error; for an accepted but
--      normalised request exactly one framing (Content-Length or
--      "Transfer-Encoding: chunked"), no chunk extensions, the right body
--      bytes, and nothing after the request;
--   4. a fresh request is then served normally, and the proxy is still
--      alive at the end (after_each stops it and requires exit status 0).
--
-- The origin here is not support/origin.lua: that one parses leniently and
-- records requests, not bytes. This file has its own: a listening socket in
-- this process, driven step by step by each case (the proxy connects, the
-- kernel queues the connection, the case accepts it when it wants to look).
-- That keeps every byte and answers with arbitrary raw response bytes.
-- Connections are accepted in the order the proxy made them, which is what
-- lets "the first connection the origin sees is the fresh request" prove
-- that nothing of the refused request arrived.
--
-- Cases that need a marker carry MARK in the part that must never cross the
-- proxy (a smuggled request, the bytes after a chunk error, a dropped chunk
-- extension, the body of a refused response).

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local socket = require("socket")

local MARK = "Zq7xSMUGGLEDx"

-- Long enough for the proxy to answer; a proxy that waits instead of
-- answering fails within this.
local READ_TIMEOUT = 4

-- The header timeout is below READ_TIMEOUT, so a proxy that waits for more
-- head bytes shows up as "408, expected 400".
local PROXY_ARGS = { "--header-timeout", "3", "--idle-timeout", "6" }

local REASONS = {
  [200] = "OK", [204] = "No Content", [304] = "Not Modified",
  [400] = "Bad Request", [408] = "Request Timeout", [501] = "Not Implemented",
  [502] = "Bad Gateway", [505] = "HTTP Version Not Supported",
}

local function q(s) return string.format("%q", tostring(s)) end

------------------------------------------------------------------------------
-- A buffered reader over a raw socket, for both sides of the proxy. It keeps
-- the raw bytes of what it parsed, so a case can search them.

local function reader(sock) return { sock = sock, buf = "", raw = "", eof = nil } end

-- Waits until more bytes arrive (true) or EOF / the deadline (false).
local function fill(rd, deadline)
  if rd.eof then return false end
  while true do
    local left = deadline - socket.gettime()
    if left <= 0 then return false end
    if not rd.sock:dirty() and #socket.select({ rd.sock }, nil, left) == 0 then return false end
    rd.sock:settimeout(0)
    local data, err, partial = rd.sock:receive(65536)
    data = data or partial
    if data and #data > 0 then
      rd.buf = rd.buf .. data
      if err and err ~= "timeout" then rd.eof = err end
      return true
    end
    if err ~= "timeout" then
      rd.eof = err or "closed"   -- EOF or a reset: either way nothing more comes
      return false
    end
  end
end

local function take(rd, n)
  local s = rd.buf:sub(1, n)
  rd.buf = rd.buf:sub(n + 1)
  rd.raw = rd.raw .. s
  return s
end

-- Polls pred(buffer) until it returns a value, or nil at EOF / deadline.
local function need(rd, deadline, pred)
  while true do
    local v = pred(rd.buf)
    if v then return v end
    if not fill(rd, deadline) then return nil end
  end
end

-- Everything until the peer closes. Returns the bytes and whether it closed
-- within <timeout>.
local function read_to_close(rd, timeout)
  local deadline = socket.gettime() + (timeout or READ_TIMEOUT)
  while fill(rd, deadline) do end
  local rest = rd.buf
  rd.buf = ""
  return rest, rd.eof ~= nil
end

-- "Name: value" lines of a head (after its first line) as a list of
-- {name = lower-case name, value =} and a name -> joined value map.
local function parse_fields(head)
  local list, map = {}, {}
  local first = head:match("^[^\r\n]*\r\n") or ""
  for line in head:sub(#first + 1):gmatch("([^\r\n]*)\r\n") do
    if line == "" then break end
    local name, value = line:match("^([^:]*):[ \t]*(.-)[ \t]*$")
    name = (name or line):lower()
    list[#list + 1] = { name = name, value = value or "" }
    map[name] = map[name] and (map[name] .. ", " .. (value or "")) or (value or "")
  end
  return list, map
end

local function count_fields(list, name)
  local n = 0
  for _, f in ipairs(list) do
    if f.name == name then n = n + 1 end
  end
  return n
end

-- Decodes a chunked body starting at <pos> of <s>. Returns the decoded data,
-- the chunk extensions seen, the trailer block and the position after the
-- body; or nil if the bytes stop before the body ends or are not chunked.
local function dechunk(s, pos)
  local parts, exts = {}, {}
  while true do
    local hex, ext, at = s:match("^(%x+)([^\r\n]*)\r\n()", pos)
    if not hex or #hex > 15 then return nil end
    if ext ~= "" then exts[#exts + 1] = ext end
    local size = tonumber(hex, 16)
    if size == 0 then
      if s:sub(at, at + 1) == "\r\n" then return table.concat(parts), exts, "", at + 2 end
      local e = s:find("\r\n\r\n", at, true)
      if not e then return nil end
      return table.concat(parts), exts, s:sub(at, e + 1), e + 4
    end
    if #s < at + size + 1 or s:sub(at + size, at + size + 1) ~= "\r\n" then return nil end
    parts[#parts + 1] = s:sub(at, at + size - 1)
    pos = at + size + 2
  end
end

-- Reads one response from the client side, collecting 1xx responses in
-- resp.interim. resp.raw holds every byte read for it (interim included).
-- Returns resp, or nil, "closed"/"timeout", bytes if no head came.
local function read_response(rd, opts)
  opts = opts or {}
  local deadline = socket.gettime() + (opts.timeout or READ_TIMEOUT)
  local interim = {}
  rd.raw = ""
  while true do
    local e = need(rd, deadline, function(b) return b:find("\r\n\r\n", 1, true) end)
    if not e then return nil, rd.eof and "closed" or "timeout", rd.raw .. rd.buf end
    local head = take(rd, e + 3)
    local r = { head = head, interim = interim, exts = {}, body = "" }
    r.status_line = head:match("^([^\r\n]*)")
    local st, reason = r.status_line:match("^HTTP/1%.1 (%d%d%d) (.*)$")
    r.status, r.reason = tonumber(st), reason
    r.fields, r.h = parse_fields(head)
    if not r.status then
      r.error, r.raw = "bad status line", rd.raw
      return r
    end
    if r.status >= 100 and r.status < 200 and r.status ~= 101 then
      interim[#interim + 1] = r
    else
      local te, cl = r.h["transfer-encoding"], r.h["content-length"]
      if opts.method == "HEAD" or r.status == 204 or r.status == 304 or r.status < 200 then
        r.framing = "none"
      elseif te then
        r.framing = "chunked"
        local parts = {}
        while true do
          local le = need(rd, deadline, function(b) return b:find("\r\n", 1, true) end)
          if not le then r.incomplete = true; break end
          local line = take(rd, le + 1):sub(1, -3)
          local hex, ext = line:match("^(%x+)(.*)$")
          if not hex or #hex > 15 then r.incomplete, r.error = true, "bad chunk line " .. q(line); break end
          if ext ~= "" then r.exts[#r.exts + 1] = ext end
          local size = tonumber(hex, 16)
          if size == 0 then
            local te_end = need(rd, deadline, function(b)
              if b:sub(1, 2) == "\r\n" then return 2 end
              local i = b:find("\r\n\r\n", 1, true)
              return i and i + 3
            end)
            if not te_end then r.incomplete = true; break end
            r.trailers = take(rd, te_end)
            break
          end
          if not need(rd, deadline, function(b) return #b >= size + 2 end) then
            parts[#parts + 1] = take(rd, #rd.buf)
            r.incomplete = true
            break
          end
          local data = take(rd, size + 2)
          if data:sub(-2) ~= "\r\n" then r.incomplete, r.error = true, "bad chunk end"; break end
          parts[#parts + 1] = data:sub(1, size)
        end
        r.body = table.concat(parts)
      elseif cl then
        r.framing = "length"
        if not cl:match("^%d+$") then
          r.error, r.raw = "bad content-length " .. q(cl), rd.raw
          return r
        end
        local n = tonumber(cl)
        if need(rd, deadline, function(b) return #b >= n end) then
          r.body = take(rd, n)
        else
          r.body, r.incomplete = take(rd, #rd.buf), true
        end
      else
        r.framing = "close"
        while fill(rd, deadline) do end
        r.body = take(rd, #rd.buf)
        r.incomplete = rd.eof == nil
      end
      r.raw = rd.raw
      return r
    end
  end
end

------------------------------------------------------------------------------
-- The recording origin

-- What the origin made of the bytes on one upstream connection. rec.raw is
-- every byte; rec.complete says whether they start with a whole request,
-- and then rec.head, rec.request_line, rec.fields (list), rec.f (map),
-- rec.body (decoded), rec.exts (chunk extensions), rec.trailers and
-- rec.extra (bytes after the request) are set.
local function parse_upstream(raw)
  local rec = { raw = raw, complete = false, exts = {} }
  local e = raw:find("\r\n\r\n", 1, true)
  if not e then return rec end
  rec.head = raw:sub(1, e + 3)
  rec.request_line = rec.head:match("^([^\r\n]*)")
  rec.fields, rec.f = parse_fields(rec.head)
  local at = e + 4
  if rec.f["transfer-encoding"] then
    local body, exts, trailers, after = dechunk(raw, at)
    if not body then return rec end
    rec.body, rec.exts, rec.trailers, rec.extra = body, exts, trailers, raw:sub(after)
  elseif rec.f["content-length"] then
    local n = tonumber(rec.f["content-length"]:match("^%d+$") or "")
    if not n or #raw < at + n - 1 then return rec end
    rec.body, rec.extra = raw:sub(at, at + n - 1), raw:sub(at + n)
  else
    rec.body, rec.extra = "", raw:sub(at)
  end
  rec.complete = true
  return rec
end

local function new_origin()
  local srv = assert(socket.tcp())
  assert(srv:bind("127.0.0.1", 0))
  assert(srv:listen(64))
  local _, port = srv:getsockname()
  local o = { port = tonumber(port), authority = "127.0.0.1:" .. port }

  -- The next upstream connection the proxy made, or nil after <timeout>.
  function o.accept(timeout)
    srv:settimeout(timeout)
    return (srv:accept())
  end

  -- Accepts a connection, reads until a whole request is there (or the
  -- proxy closes, or READ_TIMEOUT), answers with <response> (bytes, or a
  -- function(rec) returning bytes) if the request was whole, half-closes,
  -- and keeps reading until the proxy closes. Returns the record of every
  -- byte, or nil if no connection came within <timeout>.
  function o.serve(response, timeout)
    local c = o.accept(timeout or READ_TIMEOUT)
    if not c then return nil end
    local rd = reader(c)
    local deadline = socket.gettime() + READ_TIMEOUT
    local rec
    repeat
      rec = parse_upstream(rd.buf)
    until rec.complete or not fill(rd, deadline)
    local answered = false
    if rec.complete then
      local bytes = type(response) == "function" and response(rec) or response
      if bytes then
        c:settimeout(READ_TIMEOUT)
        h.send(c, bytes)
        c:shutdown("send")
        answered = true
      end
    end
    while fill(rd, socket.gettime() + READ_TIMEOUT) do end
    local final = parse_upstream(rd.buf)
    final.answered = answered
    c:close()
    return final
  end

  function o.close() srv:close() end
  return o
end

------------------------------------------------------------------------------
-- Shared checks

-- {O} is the origin's host:port, {M} the marker.
local function expand(template, origin)
  return (template:gsub("{O}", function() return origin.authority end)
                  :gsub("{M}", function() return MARK end))
end

-- The origin closes after every response (serve() half-closes), and says
-- so, so that each upstream connection holds exactly one exchange whether
-- or not the proxy would keep it for reuse.
local OK_RESPONSE = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
  .. "Connection: close\r\n\r\nok\n"
local FRESH_RESPONSE = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n"
  .. "Connection: close\r\n\r\nfresh\n"

local function is_fresh(rec) return rec.request_line == "GET /fresh HTTP/1.1" end

-- Asserts <r> is one proxy error response: exact status and reason, fixed
-- "NNN Reason: cause\n" body of printable ASCII naming one of <causes>
-- (lower-case patterns), framed by Content-Length, never echoing MARK.
local function assert_error(r, status, causes)
  assert.equal(status, r.status, "status; the reply was " .. q(r.raw))
  assert.equal(REASONS[status], r.reason)
  assert.equal("length", r.framing, "error responses are Content-Length framed")
  assert.is_nil(r.incomplete, "error response cut short: " .. q(r.raw))
  assert.equal(#r.body, tonumber(r.h["content-length"]))
  assert.equal("text/plain; charset=utf-8", r.h["content-type"])
  local prefix = status .. " " .. REASONS[status] .. ": "
  assert.equal(prefix, r.body:sub(1, #prefix), "body " .. q(r.body))
  local cause = r.body:sub(#prefix + 1, -2)
  assert.equal("\n", r.body:sub(-1), "body " .. q(r.body))
  assert.truthy(cause:match("^[ -~]+$"), "the cause text is not plain printable ASCII: " .. q(r.body))
  assert.is_nil(r.raw:find(MARK, 1, true), "the error response echoes client bytes: " .. q(r.raw))
  local named = false
  for _, pat in ipairs(causes or {}) do
    if cause:lower():find(pat) then named = true end
  end
  assert.is_true(named or not causes, "cause text " .. q(cause) .. " names none of: "
    .. table.concat(causes or {}, ", "))
end

-- Sends GET /fresh on <rd> (a new connection if nil), lets the origin answer
-- it and checks it is served. Returns the upstream connections the origin
-- accepted before the fresh one (bytes left over from the case).
local function assert_fresh(proxy, origin, rd)
  local own = rd == nil
  if own then rd = reader(assert(h.connect(proxy.port))) end
  assert(h.send(rd.sock, expand("GET http://{O}/fresh HTTP/1.1\r\nHost: {O}\r\n\r\n", origin)))
  local strays, rec = {}, nil
  for _ = 1, 4 do
    rec = origin.serve(FRESH_RESPONSE)
    assert(rec, "the proxy did not forward a fresh request after the case (is it alive?)")
    if is_fresh(rec) then break end
    strays[#strays + 1] = rec
  end
  assert.is_true(is_fresh(rec), "the fresh request never reached the origin")
  local r, err, partial = read_response(rd)
  assert(r, "no response to the fresh request: " .. tostring(err) .. " " .. q(partial))
  assert.equal(200, r.status, "fresh request: " .. q(r.raw))
  assert.equal("fresh\n", r.body)
  if own then rd.sock:close() end
  assert.is_nil(origin.accept(0), "an unexpected extra connection reached the origin")
  return strays
end

local function describe_stray(rec) return q(rec.raw:sub(1, 400)) end

------------------------------------------------------------------------------
-- Requests the proxy must refuse.
--
-- Each row: name (bug class or RFC rule first), request template, status,
-- cause patterns, and:
--   body_error = true   the error is in a chunked body: the proxy relays a
--                       body as it arrives, so the head may already be
--                       upstream. The origin must then get no complete body
--                       and no byte from past the error (MARK).
--   half_close = true   the client shuts down its side after sending (a
--                       truncated body); the proxy may answer 400 or just
--                       close, but must close and forward no complete body.

local SMUGGLED = "GET http://{O}/{M} HTTP/1.1\r\nHost: {O}\r\n\r\n"
local POST = "POST http://{O}/x HTTP/1.1\r\nHost: {O}\r\n"
local CHUNKED = POST .. "Transfer-Encoding: chunked\r\n\r\n"

local REQ_LINE = { "request line", "request target" }
local HOST = { "host" }
local CL = { "content%-length" }
local CL_TE = { "content%-length together with transfer%-encoding", "content%-length.*transfer%-encoding",
                "transfer%-encoding.*content%-length" }
local TE = { "transfer%-encoding" }
local FIELD_NAME = { "field name", "header name", "colon" }
local FIELD_VALUE = { "field value", "value", "control" }
local FOLD = { "fold" }
local CRLF = { "bare cr", "bare lf", "cr or lf", "line end" }
local CHUNK = { "chunk" }
local TRAILER = { "trailer" }

local REFUSED = {
  -- tinyproxy forwarded Content-Length together with Transfer-Encoding;
  -- the classic CL.TE and TE.CL setups, each hiding a second request.
  { "[tinyproxy CL+TE, RFC 9112 6.1] CL.TE with a request hidden in the body",
    POST .. "Content-Length: 47\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" .. SMUGGLED, 400, CL_TE },
  { "[RFC 9112 6.1] TE.CL with a request hidden in a chunk",
    POST .. "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n2a\r\n" .. SMUGGLED .. "\r\n0\r\n\r\n",
    400, CL_TE },
  { "[RFC 9112 6.1] CL + TE with the TE name in lower case",
    POST .. "Content-Length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n" .. SMUGGLED, 400, CL_TE },
  { "[RFC 9112 6.1] CL + TE both in upper case",
    POST .. "CONTENT-LENGTH: 5\r\nTRANSFER-ENCODING: CHUNKED\r\n\r\n0\r\n\r\n" .. SMUGGLED, 400, CL_TE },
  { "[RFC 9112 6.1] CL + Transfer-Encoding: identity",
    POST .. "Content-Length: 5\r\nTransfer-Encoding: identity\r\n\r\n{M}", 400, CL_TE },

  -- Transfer-Encoding lists (RFC 9112 6.1, 7): only exactly one "chunked".
  { "[RFC 9112 6.1] TE 'chunked, gzip' -> 501",
    POST .. "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n" .. SMUGGLED, 501, TE },
  { "[RFC 9112 6.1] TE 'gzip, chunked' -> 501",
    POST .. "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" .. SMUGGLED, 501, TE },
  { "[RFC 9112 6.1] TE 'identity' -> 501",
    POST .. "Transfer-Encoding: identity\r\n\r\n{M}", 501, TE },
  { "[RFC 9112 6.1] TE 'xchunked' -> 501",
    POST .. "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" .. SMUGGLED, 501, TE },
  { "[RFC 9112 6.1] TE split over two fields: chunked + identity -> 501",
    POST .. "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n" .. SMUGGLED, 501, TE },
  { "[RFC 9110 5.6.1] TE 'chunked,' (empty list element)",
    POST .. "Transfer-Encoding: chunked,\r\n\r\n0\r\n\r\n" .. SMUGGLED, 400, TE },
  { "[RFC 9110 5.6.1] TE ',chunked' (empty list element)",
    POST .. "Transfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n" .. SMUGGLED, 400, TE },
  { "[RFC 9112 7] TE 'chunked, chunked'",
    POST .. "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n" .. SMUGGLED, 400, TE },
  { "[RFC 9112 7] two Transfer-Encoding: chunked fields",
    POST .. "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" .. SMUGGLED, 400, TE },
  { "[RFC 9112 6.1] empty Transfer-Encoding",
    POST .. "Transfer-Encoding:\r\n\r\n0\r\n\r\n" .. SMUGGLED, 400, TE },
  { "[RFC 9112 6.1] Transfer-Encoding in an HTTP/1.0 request",
    "POST http://{O}/x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" .. SMUGGLED, 400, TE },
  { "[RFC 9110 5.5] vertical tab after chunked",
    POST .. "Transfer-Encoding: chunked\11\r\n\r\n0\r\n\r\n" .. SMUGGLED, 400, FIELD_VALUE },

  -- Content-Length values (RFC 9112 6.3, RFC 9110 8.6).
  { "[RFC 9112 6.3] duplicate Content-Length, same value",
    POST .. "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello" .. SMUGGLED, 400, CL },
  { "[RFC 9112 6.3] duplicate Content-Length, different values",
    POST .. "Content-Length: 0\r\nContent-Length: 47\r\n\r\n" .. SMUGGLED, 400, CL },
  { "[RFC 9110 8.6] Content-Length list '5, 5'",
    POST .. "Content-Length: 5, 5\r\n\r\nhello" .. SMUGGLED, 400, CL },
  { "[Squid CVE-2020-15049] Content-Length +5",
    POST .. "Content-Length: +5\r\n\r\nhello" .. SMUGGLED, 400, CL },
  { "[RFC 9110 8.6] Content-Length -5",
    POST .. "Content-Length: -5\r\n\r\nhello" .. SMUGGLED, 400, CL },
  { "[RFC 9110 8.6] empty Content-Length",
    POST .. "Content-Length:\r\n\r\n" .. SMUGGLED, 400, CL },
  { "[RFC 9110 8.6] Content-Length just above 2^62",
    POST .. "Content-Length: 4611686018427387905\r\n\r\n" .. SMUGGLED, 400, CL },
  { "[RFC 9110 8.6] Content-Length of 2^64 (wraps to 0 in 64 bits)",
    POST .. "Content-Length: 18446744073709551616\r\n\r\n" .. SMUGGLED, 400, CL },

  -- Field syntax (RFC 9112 5).
  { "[RFC 9112 5.1] space before colon on Content-Length",
    POST .. "Content-Length : 5\r\n\r\nhello" .. SMUGGLED, 400, FIELD_NAME },
  { "[RFC 9112 5.1] tab before colon on Transfer-Encoding",
    POST .. "Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n" .. SMUGGLED, 400, FIELD_NAME },
  { "[Squid CVE-2020-15810, RFC 9112 2.2] ' Content-Length: 5' as the first field line",
    "POST http://{O}/x HTTP/1.1\r\n Content-Length: 5\r\nHost: {O}\r\n\r\nhello" .. SMUGGLED, 400, FOLD },
  { "[Squid CVE-2020-15810, RFC 9112 5.2] Content-Length hidden in an obs-fold",
    POST .. "X-A: a\r\n Content-Length: 5\r\n\r\nhello" .. SMUGGLED, 400, FOLD },
  { "[RFC 9112 5.2] obs-fold with a tab",
    POST .. "X-A: a\r\n\tTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" .. SMUGGLED, 400, FOLD },
  { "[RFC 9112 2.2] bare CR inside a value",
    "GET http://{O}/x HTTP/1.1\r\nHost: {O}\r\nX-A: a\rContent-Length: 47\r\n\r\n" .. SMUGGLED, 400, CRLF },
  { "[RFC 9112 2.2] bare LF ending a field line",
    "GET http://{O}/x HTTP/1.1\r\nHost: {O}\r\nX-A: a\nContent-Length: 47\r\n\r\n" .. SMUGGLED, 400, CRLF },
  { "[RFC 9112 2.2] bare LF ending the request line",
    "GET http://{O}/x HTTP/1.1\nHost: {O}\r\n\r\n" .. SMUGGLED, 400, CRLF },
  { "[RFC 9112 2.2] head ended by CRLF LF",
    "GET http://{O}/x HTTP/1.1\r\nHost: {O}\r\n\n" .. SMUGGLED, 400, CRLF },
  { "[RFC 9110 5.5] NUL in a value",
    "GET http://{O}/x HTTP/1.1\r\nHost: {O}\r\nX-A: a\0{M}\r\n\r\n", 400, FIELD_VALUE },
  { "[RFC 9110 5.5] control byte 0x01 in a value",
    "GET http://{O}/x HTTP/1.1\r\nHost: {O}\r\nX-A: a\1{M}\r\n\r\n", 400, FIELD_VALUE },
  { "[RFC 9110 5.5] DEL in a value",
    "GET http://{O}/x HTTP/1.1\r\nHost: {O}\r\nX-A: a\127{M}\r\n\r\n", 400, FIELD_VALUE },
  { "[RFC 9110 5.1] NUL in a field name",
    "GET http://{O}/x HTTP/1.1\r\nHost: {O}\r\nX-A\0{M}: v\r\n\r\n", 400, FIELD_NAME },
  { "[RFC 9110 5.1] '(' in a field name",
    "GET http://{O}/x HTTP/1.1\r\nHost: {O}\r\nX({M}): v\r\n\r\n", 400, FIELD_NAME },
  { "[RFC 9110 5.1] space inside a field name",
    "GET http://{O}/x HTTP/1.1\r\nHost: {O}\r\nContent Length: 5\r\n\r\nhello" .. SMUGGLED, 400, FIELD_NAME },
  { "[RFC 9110 5.1] non-ASCII byte in a field name",
    "GET http://{O}/x HTTP/1.1\r\nHost: {O}\r\nX-\195\169{M}: v\r\n\r\n", 400, FIELD_NAME },
  { "[RFC 9110 5.1] empty field name",
    "GET http://{O}/x HTTP/1.1\r\nHost: {O}\r\n: {M}\r\n\r\n", 400, FIELD_NAME },

  -- Request line (RFC 9112 3).
  { "[RFC 9112 3] two spaces between method and target",
    "GET  http://{O}/x HTTP/1.1\r\nHost: {O}\r\n\r\n" .. SMUGGLED, 400, REQ_LINE },
  { "[RFC 9112 3] tab as separator",
    "GET\thttp://{O}/x HTTP/1.1\r\nHost: {O}\r\n\r\n" .. SMUGGLED, 400, REQ_LINE },
  { "[RFC 9112 3] trailing space after the version",
    "GET http://{O}/x HTTP/1.1 \r\nHost: {O}\r\n\r\n" .. SMUGGLED, 400, REQ_LINE },
  { "[RFC 9112 2.2] whitespace before the request line",
    " GET http://{O}/x HTTP/1.1\r\nHost: {O}\r\n\r\n" .. SMUGGLED, 400, REQ_LINE },
  { "[RFC 9110 4.2.4] absolute-form with userinfo",
    "GET http://user:pw@{O}/{M} HTTP/1.1\r\nHost: {O}\r\n\r\n", 400, REQ_LINE },
  { "[RFC 9110 4.2.4] absolute-form with '@' hiding the real host",
    "GET http://{O}@evil.example/{M} HTTP/1.1\r\nHost: {O}\r\n\r\n", 400, REQ_LINE },

  -- Host (RFC 9112 3.2).
  { "[RFC 9112 3.2] HTTP/1.1 without Host",
    "GET http://{O}/{M} HTTP/1.1\r\nX-A: b\r\n\r\n", 400, HOST },
  { "[RFC 9112 3.2] two Host fields with the same value",
    "GET http://{O}/{M} HTTP/1.1\r\nHost: {O}\r\nHost: {O}\r\n\r\n", 400, HOST },
  { "[RFC 9112 3.2] two Host fields with different values",
    "GET http://{O}/{M} HTTP/1.1\r\nHost: {O}\r\nHost: evil.example\r\n\r\n", 400, HOST },
  { "[RFC 9112 3.2] Host with whitespace inside",
    "GET http://{O}/{M} HTTP/1.1\r\nHost: evil.example {O}\r\n\r\n", 400, HOST },
  { "[RFC 9112 3.2] empty Host in HTTP/1.1",
    "GET http://{O}/{M} HTTP/1.1\r\nHost:\r\n\r\n", 400, HOST },

  -- Chunked bodies (RFC 9112 7.1). MARK sits after the point of error.
  { "[tinyproxy strtol] chunk size of 18 hex digits",
    CHUNKED .. "ffffffffffffffffff\r\n{M}\r\n0\r\n\r\n", 400, CHUNK, body_error = true },
  { "[tinyproxy strtol] chunk size 2^64 (17 digits, wraps to 0)",
    CHUNKED .. "10000000000000000\r\n\r\n" .. SMUGGLED .. "\r\n0\r\n\r\n", 400, CHUNK, body_error = true },
  { "[tinyproxy strtol] chunk size 2^63 (negative as a signed long)",
    CHUNKED .. "8000000000000000\r\n{M}\r\n0\r\n\r\n", 400, CHUNK, body_error = true },
  { "[RFC 9112 7.1] chunk size just above 2^62",
    CHUNKED .. "4000000000000001\r\n{M}\r\n0\r\n\r\n", 400, CHUNK, body_error = true },
  { "[RFC 9112 7.1] chunk size -1",
    CHUNKED .. "-1\r\n{M}\r\n0\r\n\r\n", 400, CHUNK, body_error = true },
  { "[RFC 9112 7.1] overlong chunk size: 17 digits with leading zeros",
    CHUNKED .. "00000000000000005\r\nhello\r\n{M}\r\n0\r\n\r\n", 400, CHUNK, body_error = true },
  { "[Squid CVE-2023-46846] chunk size '0x5'",
    CHUNKED .. "0x5\r\nhello\r\n{M}\r\n0\r\n\r\n", 400, CHUNK, body_error = true },
  { "[Squid CVE-2023-46846] whitespace before the chunk size",
    CHUNKED .. " 5\r\nhello\r\n{M}\r\n0\r\n\r\n", 400, CHUNK, body_error = true },
  { "[Squid CVE-2023-46846] whitespace after the chunk size",
    CHUNKED .. "5 \r\nhello\r\n{M}\r\n0\r\n\r\n", 400, CHUNK, body_error = true },
  { "[Squid CVE-2023-46846] chunk extension ended by a bare LF",
    CHUNKED .. "5;ext\nhello\r\n{M}\r\n0\r\n\r\n", 400, CHUNK, body_error = true },
  { "[Squid CVE-2023-46846] chunk-size line ended by a bare LF",
    CHUNKED .. "5\nhello\r\n{M}\r\n0\r\n\r\n", 400, CHUNK, body_error = true },
  { "[Squid CVE-2023-46846] missing CRLF after chunk data",
    CHUNKED .. "5\r\nhello{M}\r\n0\r\n\r\n", 400, CHUNK, body_error = true },
  { "[Squid CVE-2023-46846] bare LF after chunk data",
    CHUNKED .. "5\r\nhello\n{M}\r\n0\r\n\r\n", 400, CHUNK, body_error = true },
  { "[RFC 9112 7.1] chunk size with trailing junk '5z'",
    CHUNKED .. "5z\r\nhello\r\n{M}\r\n0\r\n\r\n", 400, CHUNK, body_error = true },
  { "[RFC 9112 7.1] chunk size with junk after a space '5 z'",
    CHUNKED .. "5 z\r\nhello\r\n{M}\r\n0\r\n\r\n", 400, CHUNK, body_error = true },
  { "[RFC 9112 7.1.2] trailer section with obs-fold",
    CHUNKED .. "5\r\nhello\r\n0\r\nX-T: a\r\n {M}\r\n\r\n", 400, TRAILER, body_error = true },
  { "[RFC 9112 7.1.2] trailer section with a bare LF",
    CHUNKED .. "5\r\nhello\r\n0\r\nX-T: a\n{M}: b\r\n\r\n", 400, TRAILER, body_error = true },

  -- Privoxy's chunked-body crashes: a body that stops inside a chunk or a
  -- size line, and a huge size that never gets its data.
  { "[Privoxy] truncated chunk data, then EOF",
    CHUNKED .. "64\r\nhello", nil, nil, body_error = true, half_close = true },
  { "[Privoxy] truncated chunk-size line, then EOF",
    CHUNKED .. "5\r\nhello\r\n6", nil, nil, body_error = true, half_close = true },
  { "[Privoxy] huge chunk size (2^62), a few bytes, then EOF",
    CHUNKED .. "4000000000000000\r\nhello", nil, nil, body_error = true, half_close = true },
  { "[RFC 9112 6.3] Content-Length body cut short by EOF",
    POST .. "Content-Length: 100\r\n\r\nhello", nil, nil, body_error = true, half_close = true },

  -- A rejected request with a valid one pipelined behind it (same send):
  -- the second must never be served, nor reach the origin.
  { "[RFC 9112 9.3] valid request pipelined after a malformed request line",
    "GET\thttp://{O}/x HTTP/1.1\r\nHost: {O}\r\n\r\n" .. SMUGGLED, 400, REQ_LINE },
  { "[RFC 9112 9.3] valid request pipelined after an obs-fold",
    "GET http://{O}/x HTTP/1.1\r\nHost: {O}\r\nX-A: a\r\n b\r\n\r\n" .. SMUGGLED, 400, FOLD },
  { "[RFC 9112 9.3] valid request pipelined after a signed Content-Length",
    POST .. "Content-Length: +0\r\n\r\n" .. SMUGGLED, 400, CL },
  { "[RFC 9112 9.3] valid request pipelined after a bad chunk",
    CHUNKED .. "zz\r\n\r\n" .. SMUGGLED, 400, CHUNK, body_error = true },
}

-- Sends the refused request and checks points 1 to 4 of the file header.
local function run_refused(case, proxy, origin)
  local name, template, status, causes = case[1], case[2], case[3], case[4]
  local request = expand(template, origin)
  local rd = reader(assert(h.connect(proxy.port)))
  assert(h.send(rd.sock, request))
  if case.half_close then rd.sock:shutdown("send") end

  if status then
    local r, err, partial = read_response(rd)
    if not r then
      local rec = origin.serve(OK_RESPONSE, 0.5)
      error(string.format("%s: no response (%s; got %s); the origin received %s", name, err, q(partial),
        rec and q(rec.raw) or "nothing"))
    end
    assert_error(r, status, causes)
  end
  -- (2) the framing is unknown: the proxy must close after its answer.
  local rest, closed = read_to_close(rd)
  rd.sock:close()
  if status then
    assert.equal("", rest, "bytes after the error response: " .. q(rest))
  elseif rest ~= "" then
    -- A truncated body may get a 400, never anything else. The bytes are
    -- all here already: a reader with no socket, marked at EOF, parses them.
    local rd2 = reader(nil)
    rd2.buf = rest
    rd2.eof = "closed"
    local r = read_response(rd2)
    assert(r, "unexpected bytes: " .. q(rest))
    assert_error(r, 400, nil)
  end
  assert.is_true(closed, "the connection stayed open after a request with unknown framing")

  -- (3) what reached the origin, and (4) the proxy still serves.
  local strays = assert_fresh(proxy, origin)
  if not case.body_error then
    assert.equal(0, #strays, "the refused request reached the origin: "
      .. (strays[1] and describe_stray(strays[1]) or ""))
  end
  for _, rec in ipairs(strays) do
    assert.is_false(rec.complete, "the origin got a complete request out of a refused one: "
      .. describe_stray(rec))
    assert.is_nil(rec.raw:find(MARK, 1, true), "bytes from past the error reached the origin: "
      .. describe_stray(rec))
  end
end

------------------------------------------------------------------------------
-- Requests the proxy must accept, and forward in one unambiguous form.
--
-- Each row: name, request template, and
--   framing = "none" | "length" | "chunked"   what the origin must get
--   body = decoded body the origin must get
--   absent = field names that must not reach the origin
--   present = { name = value } fields that must reach it unchanged
--   trailers = pattern the forwarded trailer block must match
--   line = expected upstream request line (default: METHOD /x HTTP/1.1)
--   closes = true    the client asked to close (HTTP/1.0)

local ACCEPTED = {
  -- tinyproxy CVE-2023-49606: removing the fields named by Connection
  -- while walking Connection's own value freed the string being walked.
  { "[tinyproxy CVE-2023-49606] Connection: Connection",
    "GET http://{O}/x HTTP/1.1\r\nHost: {O}\r\nConnection: Connection\r\nX-Keep: 1\r\n\r\n",
    framing = "none", present = { ["x-keep"] = "1" } },
  { "[tinyproxy CVE-2023-49606] Connection naming itself twice, a field, and again in a second field",
    "GET http://{O}/x HTTP/1.1\r\nHost: {O}\r\nConnection: Connection, X-Drop, connection\r\n"
      .. "X-Drop: {M}\r\nConnection: CONNECTION\r\nX-Keep: 1\r\n\r\n",
    framing = "none", absent = { "x-drop" }, present = { ["x-keep"] = "1" } },
  { "[tinyproxy CVE-2023-49606] Connection listing 60 names, itself among them",
    "GET http://{O}/x HTTP/1.1\r\nHost: {O}\r\nConnection: " .. ("Connection, X-Drop, "):rep(30)
      .. "Connection\r\nX-Drop: {M}\r\nX-Keep: 1\r\n\r\n",
    framing = "none", absent = { "x-drop" }, present = { ["x-keep"] = "1" } },
  { "[RFC 9110 7.6.1] Connection: Content-Length does not unframe the body",
    POST .. "Connection: Content-Length\r\nContent-Length: 5\r\n\r\nhello",
    framing = "length", body = "hello" },
  { "[RFC 9110 7.6.1] Connection: Transfer-Encoding does not unframe the body",
    POST .. "Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    framing = "chunked", body = "hello" },
  { "[RFC 9110 7.6.1] Connection: Host does not drop Host",
    "GET http://{O}/x HTTP/1.1\r\nHost: {O}\r\nConnection: Host\r\n\r\n", framing = "none" },

  -- tinyproxy matched "chunked" case-sensitively; codings are not.
  { "[tinyproxy case-sensitive chunked, RFC 9112 7] TE CHUNKED",
    POST .. "Transfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    framing = "chunked", body = "hello world" },
  { "[tinyproxy case-sensitive chunked, RFC 9112 7] TE Chunked",
    POST .. "Transfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", framing = "chunked", body = "hello" },
  { "[RFC 9112 5] TE chunked after a tab (OWS)",
    POST .. "Transfer-Encoding:\tchunked\t\r\n\r\n5\r\nhello\r\n0\r\n\r\n", framing = "chunked", body = "hello" },

  { "[RFC 9110 8.6] Content-Length 005 (leading zeros)",
    POST .. "Content-Length: 005\r\n\r\nhello", framing = "length", body = "hello" },
  { "[RFC 9112 5] Content-Length with trailing OWS",
    POST .. "Content-Length: 5 \t\r\n\r\nhello", framing = "length", body = "hello" },
  { "[RFC 9112 6.3] Content-Length 0 on a POST",
    POST .. "Content-Length: 0\r\n\r\n", framing = "none" },

  { "[RFC 9112 7.1] chunk sizes with leading zeros (005, 16 digits)",
    CHUNKED .. "005\r\nhello\r\n0000000000000006\r\n world\r\n0\r\n\r\n", framing = "chunked", body = "hello world" },
  { "[RFC 9112 7.1.1] chunk extensions are accepted and not forwarded",
    CHUNKED .. "5;a=b\r\nhello\r\n6 ; m=\"{M};\\\"q\" ; flag\r\n world\r\n1;{M}\r\n!\r\n0;last={M}\r\n\r\n",
    framing = "chunked", body = "hello world!" },
  { "[RFC 9112 7.1.2] a valid trailer section is forwarded",
    CHUNKED .. "5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n", framing = "chunked", body = "hello",
    trailers = "^X%-Checksum: abc\r\n" },
  { "[RFC 9110 6.5.1] trailer fields for framing, routing or credentials are not forwarded",
    CHUNKED .. "5\r\nhello\r\n0\r\nContent-Length: 5{M}\r\nX-Checksum: abc\r\n"
      .. "Transfer-Encoding: {M}\r\nHost: {M}.example\r\nAuthorization: {M}\r\n\r\n",
    framing = "chunked", body = "hello", trailers = "^X%-Checksum: abc\r\n" },

  { "[RFC 9112 3.2] Host with OWS around the value",
    "GET http://{O}/x HTTP/1.1\r\nHost: \t{O} \t\r\n\r\n", framing = "none" },
  { "[RFC 9112 3.2.2] Host conflicting with the URL: the URL wins",
    "GET http://{O}/x HTTP/1.1\r\nHost: evil.example\r\nX-Keep: 1\r\n\r\n", framing = "none",
    present = { ["x-keep"] = "1" }, never = "evil" },
  { "[RFC 9112 3.2] HTTP/1.0 without Host: Host from the URL",
    "GET http://{O}/x HTTP/1.0\r\n\r\n", framing = "none", closes = true },
}

-- Checks the single request the origin got for an accepted case.
local function check_forwarded(case, rec, origin)
  local template = case[2]
  local method = template:match("^(%u+) ")
  assert.is_true(rec.complete, "the origin got an incomplete request: " .. describe_stray(rec))
  assert.equal(case.line or (method .. " /x HTTP/1.1"), rec.request_line)
  assert.equal(1, count_fields(rec.fields, "host"), "Host fields: " .. q(rec.head))
  assert.equal(origin.authority, rec.f.host, "Host must come from the URL")
  -- Upstream keep-alive is the proxy's own choice; what must not cross is
  -- any token the client put in Connection.
  assert.is_true(count_fields(rec.fields, "connection") <= 1, "Connection fields: " .. q(rec.head))
  for token in (rec.f.connection or ""):gmatch("[^,%s]+") do
    assert.truthy(token:lower() == "close" or token:lower() == "keep-alive",
      "a client's Connection token was forwarded: " .. q(rec.head))
  end

  local n_cl, n_te = count_fields(rec.fields, "content-length"), count_fields(rec.fields, "transfer-encoding")
  if case.framing == "none" then
    assert.equal(0, n_te, "Transfer-Encoding on a request without a body: " .. q(rec.head))
    assert.is_true(n_cl == 0 or (n_cl == 1 and rec.f["content-length"] == "0"),
      "Content-Length on a request without a body: " .. q(rec.head))
    assert.equal("", rec.body)
  else
    assert.equal(1, n_cl + n_te, "exactly one of Content-Length and Transfer-Encoding: " .. q(rec.head))
    if case.framing == "length" then
      assert.equal(1, n_cl)
      assert.equal(tostring(#case.body), rec.f["content-length"])
    else
      assert.equal(1, n_te)
      assert.equal("chunked", rec.f["transfer-encoding"])
      assert.same({}, rec.exts, "chunk extensions were forwarded")
    end
    assert.equal(case.body, rec.body)
  end
  for _, name in ipairs(case.absent or {}) do
    assert.equal(0, count_fields(rec.fields, name), name .. " was forwarded: " .. q(rec.head))
  end
  for name, value in pairs(case.present or {}) do
    assert.equal(value, rec.f[name], name .. " in " .. q(rec.head))
  end
  if case.trailers then
    assert.truthy((rec.trailers or ""):match(case.trailers), "trailers: " .. q(rec.trailers))
  end
  assert.is_nil(rec.raw:find(MARK, 1, true), "a dropped part reached the origin: " .. q(rec.raw))
  if case.never then
    assert.is_nil(rec.raw:find(case.never, 1, true), q(case.never) .. " reached the origin: " .. q(rec.raw))
  end
  assert.equal("", rec.extra, "bytes after the request on the upstream connection: " .. q(rec.extra))
end

local function run_accepted(case, proxy, origin)
  local rd = reader(assert(h.connect(proxy.port)))
  assert(h.send(rd.sock, expand(case[2], origin)))
  local rec = origin.serve(OK_RESPONSE)
  if not rec then
    local r, err, partial = read_response(rd, { timeout = 0.5 })
    error("the request never reached the origin; the client got " .. (r and q(r.raw) or (err .. " " .. q(partial))))
  end
  check_forwarded(case, rec, origin)
  local r, err, partial = read_response(rd)
  assert(r, "no response: " .. tostring(err) .. " " .. q(partial))
  assert.equal(200, r.status, q(r.raw))
  assert.equal("ok\n", r.body)
  if case.closes then
    assert.equal("close", (r.h.connection or ""):lower())
    local rest, closed = read_to_close(rd)
    assert.equal("", rest)
    assert.is_true(closed)
    rd.sock:close()
    assert.equal(0, #assert_fresh(proxy, origin))
  else
    -- The same connection carries on: nothing of this request is left over
    -- to be read as the next one.
    assert.is_nil(r.h.connection)
    assert.equal(0, #assert_fresh(proxy, origin, rd))
    rd.sock:close()
  end
end

------------------------------------------------------------------------------
-- Responses with the same defects, from the origin. A client reading them
-- could be desynchronised just like an origin reading a bad request, so the
-- proxy answers 502 and relays none of the bad bytes.
--
-- Each row: name, raw response, outcome:
--   "502"          a 502 from the proxy (after any 1xx it forwarded)
--   "502-or-cut"   the error is in the body: a 502 if the proxy saw it
--                  before sending the head, else the 200 head and a body
--                  cut short by closing (RFC 9112 8: an incomplete message)
--   "forward"      valid: forwarded with status/body/check

local RESPONSES = {
  { "[RFC 9112 6.1] response with Content-Length and Transfer-Encoding",
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nd\r\n{M}\r\n0\r\n\r\n", "502" },
  { "[RFC 9112 6.1] response with Transfer-Encoding then Content-Length",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nd\r\n{M}\r\n0\r\n\r\n", "502" },
  { "[RFC 9112 6.3] response with duplicate Content-Length, same value",
    "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Length: 13\r\n\r\n{M}", "502" },
  { "[RFC 9112 6.3] response with duplicate Content-Length, different values",
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 13\r\n\r\n{M}", "502" },
  { "[RFC 9110 8.6] response with Content-Length '13, 13'",
    "HTTP/1.1 200 OK\r\nContent-Length: 13, 13\r\n\r\n{M}", "502" },
  { "[Squid CVE-2020-15049] response with Content-Length +13",
    "HTTP/1.1 200 OK\r\nContent-Length: +13\r\n\r\n{M}", "502" },
  { "[RFC 9110 8.6] response with Content-Length -1",
    "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n{M}", "502" },
  { "[RFC 9110 8.6] response with Content-Length of 20 digits",
    "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551629\r\n\r\n{M}", "502" },
  { "[RFC 9112 6.1] response with Transfer-Encoding gzip",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n{M}", "502" },
  { "[RFC 9112 6.1] response with Transfer-Encoding 'gzip, chunked'",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\nd\r\n{M}\r\n0\r\n\r\n", "502" },
  { "[RFC 9112 7] response with Transfer-Encoding 'chunked, chunked'",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\nd\r\n{M}\r\n0\r\n\r\n", "502" },
  { "[RFC 9110 5.6.1] response with Transfer-Encoding 'chunked,'",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\nd\r\n{M}\r\n0\r\n\r\n", "502" },
  { "[RFC 9112 6.1] HTTP/1.0 response with Transfer-Encoding",
    "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nd\r\n{M}\r\n0\r\n\r\n", "502" },
  { "[RFC 9112 5.2] response with obs-fold",
    "HTTP/1.1 200 OK\r\nX-A: a\r\n {M}\r\nContent-Length: 2\r\n\r\nok", "502" },
  { "[Squid CVE-2020-15810] response whose first field line starts with a space",
    "HTTP/1.1 200 OK\r\n Content-Length: 13\r\n\r\n{M}", "502" },
  { "[RFC 9112 5.1] response with space before colon",
    "HTTP/1.1 200 OK\r\nContent-Length : 13\r\n\r\n{M}", "502" },
  { "[RFC 9112 5.1] response with tab before colon",
    "HTTP/1.1 200 OK\r\nContent-Length\t: 13\r\n\r\n{M}", "502" },
  { "[RFC 9112 2.2] response with bare LF line endings",
    "HTTP/1.1 200 OK\nContent-Length: 13\n\n{M}", "502" },
  { "[RFC 9112 2.2] response with one bare LF",
    "HTTP/1.1 200 OK\r\nX-A: a\nContent-Length: 13\r\n\r\n{M}", "502" },
  { "[RFC 9112 2.2] response with a bare CR",
    "HTTP/1.1 200 OK\r\nX-A: a\rContent-Length: 13\r\n\r\n{M}", "502" },
  { "[RFC 9110 5.5] response with NUL in a value",
    "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 13\r\n\r\n{M}", "502" },
  { "[RFC 9110 5.1] response with NUL in a field name",
    "HTTP/1.1 200 OK\r\nX-A\0B: 1\r\nContent-Length: 13\r\n\r\n{M}", "502" },
  { "[RFC 9110 5.1] response with '(' in a field name",
    "HTTP/1.1 200 OK\r\nX(A): 1\r\nContent-Length: 13\r\n\r\n{M}", "502" },
  { "[RFC 9112 4] response with a 4-digit status",
    "HTTP/1.1 2000 OK\r\nContent-Length: 13\r\n\r\n{M}", "502" },
  { "[RFC 9112 4] response with a 2-digit status",
    "HTTP/1.1 20 OK\r\nContent-Length: 13\r\n\r\n{M}", "502" },
  { "[RFC 9112 2.3] response with version HTTP/2.0",
    "HTTP/2.0 200 OK\r\nContent-Length: 13\r\n\r\n{M}", "502" },
  { "[RFC 9112 6.3] 100 Continue with a body",
    "HTTP/1.1 100 Continue\r\nContent-Length: 13\r\n\r\n{M}HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "502" },

  -- Body errors.
  { "[RFC 9112 7.1] response chunk size 'zz'",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{M}\r\n0\r\n\r\n", "502-or-cut" },
  { "[Squid CVE-2023-46846] response chunk size '0xd'",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0xd\r\n{M}\r\n0\r\n\r\n", "502-or-cut" },
  { "[Squid CVE-2023-46846] response chunk size with trailing whitespace",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nd \r\n{M}\r\n0\r\n\r\n", "502-or-cut" },
  { "[Squid CVE-2023-46846] response chunk extension ended by bare LF",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nd;e\n{M}\r\n0\r\n\r\n", "502-or-cut" },
  { "[Squid CVE-2023-46846] response chunk data without CRLF",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok{M}\r\n0\r\n\r\n", "502-or-cut" },
  { "[tinyproxy strtol] response chunk size 2^64",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n{M}\r\n0\r\n\r\n", "502-or-cut" },
  { "[tinyproxy strtol] response chunk size 2^63",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8000000000000000\r\n{M}\r\n0\r\n\r\n", "502-or-cut" },
  { "[RFC 9112 7.1.2] response trailer with obs-fold",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: a\r\n {M}\r\n\r\n", "502-or-cut" },
  { "[Privoxy] response chunk truncated by EOF",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\nok", "502-or-cut" },
  { "[RFC 9112 8] response Content-Length body truncated by EOF",
    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nok", "502-or-cut" },

  -- Odd but valid: forwarded, re-framed, with nothing left over.
  { "[RFC 9112 6.3] 204 with a Content-Length and body bytes: no body relayed",
    "HTTP/1.1 204 No Content\r\nContent-Length: 13\r\n\r\n{M}", "forward", status = 204, body = "" },
  { "[RFC 9112 6.3] 304 with body bytes: no body relayed",
    "HTTP/1.1 304 Not Modified\r\nContent-Length: 13\r\n\r\n{M}", "forward", status = 304, body = "" },
  { "[tinyproxy case-sensitive chunked] response TE Chunked",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "forward",
    status = 200, body = "hello world", framing = "chunked" },
  { "[tinyproxy case-sensitive chunked] response TE CHUNKED",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "forward",
    status = 200, body = "hello", framing = "chunked" },
  { "[RFC 9110 8.6] response Content-Length 005",
    "HTTP/1.1 200 OK\r\nContent-Length: 005\r\n\r\nhello", "forward", status = 200, body = "hello",
    framing = "length" },
  { "[RFC 9112 7.1.1] response chunk extensions are dropped",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a={M}\r\nhello\r\n0;{M}\r\n\r\n", "forward",
    status = 200, body = "hello", framing = "chunked" },
  { "[tinyproxy CVE-2023-49606] response with Connection: Connection, X-Drop",
    "HTTP/1.1 200 OK\r\nConnection: Connection, X-Drop, connection\r\nX-Drop: {M}\r\nContent-Length: 5\r\n\r\nhello",
    "forward", status = 200, body = "hello", framing = "length" },
}

local function run_response(case, proxy, origin)
  local name, raw, outcome = case[1], expand(case[2], origin), case[3]
  local rd = reader(assert(h.connect(proxy.port)))
  assert(h.send(rd.sock, expand("GET http://{O}/r HTTP/1.1\r\nHost: {O}\r\n\r\n", origin)))
  local rec = origin.serve(raw)
  assert(rec and rec.answered, name .. ": the request never reached the origin")
  local r, err, partial = read_response(rd)
  assert(r, "no response: " .. tostring(err) .. " " .. q(partial))
  assert.is_nil(r.raw:find(MARK, 1, true), "bad upstream bytes reached the client: " .. q(r.raw))

  local cut = false
  if outcome == "502" or (outcome == "502-or-cut" and r.status == 502) then
    assert_error(r, 502, { "upstream" })
  elseif outcome == "502-or-cut" then
    assert.equal(200, r.status, "neither 502 nor a cut 200: " .. q(r.raw))
    assert.is_true(r.incomplete, "the client got a complete body: " .. q(r.raw))
    cut = true
  else
    assert.equal(case.status, r.status, q(r.raw))
    assert.equal(case.body, r.body)
    assert.same({}, r.exts, "chunk extensions relayed: " .. q(r.raw))
    assert.is_nil(r.h["x-drop"], "a Connection-named field was relayed")
    assert.is_nil(r.h.connection, "Connection relayed or keep-alive lost: " .. q(r.raw))
    local n_cl, n_te = count_fields(r.fields, "content-length"), count_fields(r.fields, "transfer-encoding")
    if case.framing == "length" then
      assert.equal(1, n_cl); assert.equal(0, n_te)
      assert.equal(tostring(#case.body), r.h["content-length"])
    elseif case.framing == "chunked" then
      assert.equal(0, n_cl); assert.equal(1, n_te)
      assert.equal("chunked", r.h["transfer-encoding"])
    else
      assert.equal(0, n_te)
    end
  end

  -- The connection either closes right after, or carries a fresh request
  -- with nothing of the bad response left over.
  if cut or (r.h.connection or ""):lower() == "close" then
    local rest, closed = read_to_close(rd)
    assert.is_nil(rest:find(MARK, 1, true), "bad upstream bytes reached the client: " .. q(rest))
    assert.equal("", rest, "bytes after the response: " .. q(rest))
    assert.is_true(closed, "the connection stayed open after a broken response")
    rd.sock:close()
    assert.equal(0, #assert_fresh(proxy, origin))
  else
    assert.equal(0, #assert_fresh(proxy, origin, rd))
    rd.sock:close()
  end
end

------------------------------------------------------------------------------

describe("smuggling battery:", function()
  local proxy, origin

  before_each(function()
    origin = new_origin()
    proxy = h.start_proxy(PROXY_ARGS)
  end)

  after_each(function()
    local alive = proxy and proxy.alive()
    local stderr = proxy and proxy.stderr() or ""
    local problem = proxy and h.stop_procs({ proxy })
    proxy = nil
    if origin then origin.close(); origin = nil end
    assert.is_true(alive, "PROXY BUG: the proxy died during the case; stderr:\n" .. stderr:sub(-3000))
    assert.is_nil(problem, problem)
  end)

  describe("a refused request", function()
    for _, case in ipairs(REFUSED) do
      local outcome = case[3] and tostring(case[3]) or "closed, no complete body upstream"
      it(case[1] .. " -> " .. outcome, function() run_refused(case, proxy, origin) end)
    end
  end)

  describe("an accepted request", function()
    for _, case in ipairs(ACCEPTED) do
      it(case[1] .. " -> forwarded with one framing", function() run_accepted(case, proxy, origin) end)
    end
  end)

  describe("a malformed or odd response", function()
    for _, case in ipairs(RESPONSES) do
      it(case[1] .. " -> " .. case[3], function() run_response(case, proxy, origin) end)
    end
  end)

  -- tinyproxy CVE-2022-40468 sent a malformed request line back with
  -- uninitialised bytes in the error page. The error body must be fixed
  -- text: two different malformed lines of different lengths get
  -- byte-identical responses.
  it("[tinyproxy CVE-2022-40468] error responses are fixed text, independent of the input", function()
    local inputs = {
      "G\127ET http://{O}/{M}%s%n%x HTTP/1.1\r\nHost: {O}\r\n\r\n",
      ("\255"):rep(300) .. "{M}\r\n\r\n",
      "GET http://{O}/ HTTP/1.1 {M}{M}{M}\r\n\r\n",
    }
    local replies = {}
    for i, template in ipairs(inputs) do
      local rd = reader(assert(h.connect(proxy.port)))
      assert(h.send(rd.sock, expand(template, origin)))
      local r, err = read_response(rd)
      assert(r, "no response: " .. tostring(err))
      assert_error(r, 400, REQ_LINE)
      local rest, closed = read_to_close(rd)
      rd.sock:close()
      assert.equal("", rest)
      assert.is_true(closed)
      replies[i] = r.raw
    end
    assert.equal(replies[1], replies[2])
    assert.equal(replies[1], replies[3])
    assert.equal(0, #assert_fresh(proxy, origin))
  end)
end)

------------------------------------------------------------------------------
-- What a script can do to framing.
--
-- A script edits the request line, the fields, the status and the body, and
-- can answer by itself in three phases. Each edit below touches something
-- the framing of one of the two connections depends on. For every one, the
-- bytes on both connections must stay well framed: the request the origin
-- gets has one Host and at most one framing field, and nothing after it; the
-- answer the client gets has the framing its method and status call for;
-- then the next exchange on the same client connection, and one from
-- another client on the pooled upstream connection, are intact
-- (support/two_sides.lua runs that sequence and those checks).

local sides = require("support.two_sides")

local EDIT_SCRIPT = [[
local function case(tx) return tx.req.headers["X-Case"] or "" end

local on_req = {
  ["method-HEAD"] = function(tx) tx.req.method = "HEAD" end,
  ["method-GET"] = function(tx) tx.req.method = "GET" end,
  ["method-POST"] = function(tx) tx.req.method = "POST" end,
  ["method-OPTIONS"] = function(tx) tx.req.method = "OPTIONS" end,
  ["method-CONNECT"] = function(tx) tx.req.method = "CONNECT" end,
  ["req-length"] = function(tx) tx.req.headers["Content-Length"] = "100" end,
  ["req-chunked"] = function(tx) tx.req.headers["Transfer-Encoding"] = "chunked" end,
  ["req-both"] = function(tx)
    tx.req.headers:add("Content-Length", "7")
    tx.req.headers:add("Transfer-Encoding", "chunked")
  end,
  ["req-connection"] = function(tx)
    tx.req.headers["Connection"] = "close"
    tx.req.headers["Proxy-Connection"] = "close"
    tx.req.headers["Keep-Alive"] = "timeout=1"
  end,
  ["req-upgrade"] = function(tx)
    tx.req.headers["Upgrade"] = "websocket"
    tx.req.headers["Connection"] = "Upgrade"
  end,
  ["req-te"] = function(tx) tx.req.headers["TE"] = "trailers"; tx.req.headers["Trailer"] = "X-T" end,
  ["req-expect"] = function(tx) tx.req.headers["Expect"] = "100-continue" end,
  ["unexpect-respond"] = function(tx) tx.req.headers["Expect"] = nil end,
  ["host-set"] = function(tx) tx.req.headers["Host"] = "other.example" end,
  ["host-add"] = function(tx) tx.req.headers:add("Host", "other.example") end,
  ["host-remove"] = function(tx) tx.req.headers:remove("Host") end,
  ["url-path"] = function(tx) tx.req.path = "/elsewhere" end,
  ["respond"] = function(tx) tx:respond(200, "mock\n") end,
  ["respond-204"] = function(tx) tx:respond(204, "never sent") end,
  ["respond-304"] = function(tx) tx:respond(304, "never sent") end,
  -- Around the setters, to the data itself (pairs() makes it, at slot 2
  -- of the request), with a legitimate change so the request is read back.
  ["raw-method"] = function(tx)
    pairs(tx.req); local d = rawget(tx.req, 2)
    d.method = "GET /smuggled HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET"
    tx.req.headers["X-Touched"] = "1"
  end,
  ["raw-path"] = function(tx)
    pairs(tx.req); local d = rawget(tx.req, 2)
    d.path = "/a HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /b"
    tx.req.headers["X-Touched"] = "1"
  end,
  ["raw-respond"] = function(tx)
    tx:respond(200, "mock\n")
    rawget(tx, "_respond").status = 100
  end,
  ["respond-fields"] = function(tx)
    tx:respond(200, "mock\n", { ["Content-Length"] = "99", ["Transfer-Encoding"] = "chunked",
                                ["Connection"] = "close" })
  end,
}
function on_request(tx)
  local f = on_req[case(tx)]
  if f then f(tx) end
end

function before_connect(tx)
  if case(tx) == "respond-upstream" then tx:respond(403, "no\n") end
  if case(tx) == "unexpect-respond" then tx:respond(200, "mock\n") end
  if case(tx) == "upstream-same" then
    tx.upstream = { host = tx.upstream.host, port = tx.upstream.port }
  end
end

local on_res = {
  ["status-204"] = function(tx) tx.res.status = 204 end,
  ["status-304"] = function(tx) tx.res.status = 304 end,
  ["status-200"] = function(tx) tx.res.status = 200 end,
  ["reason"] = function(tx) tx.res.reason = "Fine Thanks" end,
  ["reason-control"] = function(tx) tx.res.reason = "OK\1" end,
  ["res-length"] = function(tx) tx.res.headers["Content-Length"] = "1" end,
  ["res-chunked"] = function(tx) tx.res.headers["Transfer-Encoding"] = "chunked" end,
  ["res-connection"] = function(tx)
    tx.res.headers["Connection"] = "close"
    tx.res.headers["Keep-Alive"] = "timeout=1"
    tx.res.headers["Upgrade"] = "h2c"
    tx.res.headers["Trailer"] = "X-T"
  end,
  ["respond-response"] = function(tx) tx:respond(200, "mock\n") end,
  ["respond-response-304"] = function(tx) tx:respond(304) end,
  ["sleep-status"] = function(tx) proxy.sleep(0.05); tx.res.status = 204 end,
  ["raw-status"] = function(tx)
    pairs(tx.res); local d = rawget(tx.res, 2)
    d.status = 100
    tx.res.headers["X-Touched"] = "1"
  end,
  ["raw-reason"] = function(tx)
    pairs(tx.res); local d = rawget(tx.res, 2)
    d.reason = "OK\r\nX-Injected: 1"
    tx.res.headers["X-Touched"] = "1"
  end,
}
function on_response(tx)
  local f = on_res[case(tx)]
  if f then f(tx) end
end

function on_response_chunk(tx, chunk, eof)
  local c = case(tx)
  if c == "chunk-grow" then return chunk .. chunk end
  if c == "chunk-empty" then return "" end
  if c == "chunk-inject" and not eof then
    return chunk .. "\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"
  end
  if c == "chunk-error" and not eof then error("fails on purpose") end
  if c == "chunk-number" and not eof then return 42 end
end
]]

local HELLO = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\n"

local function edit_request(method, case, extra, body, version)
  local lines = { method .. " http://{O}/case " .. (version or "HTTP/1.1"), "Host: {O}", "X-Case: " .. case }
  for _, x in ipairs(extra or {}) do lines[#lines + 1] = x end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

local function no_field(name)
  return function(req)
    assert.equal(0, count_fields(req.fields, name:lower()), name .. " upstream: " .. q(req.head))
  end
end

local function status_is(status, body)
  return function(r)
    assert.equal(status, r.status, q(r.raw_head))
    if body then assert.equal(body, r.body) end
  end
end

local function script_failed(r)
  assert.equal("HTTP/1.1 500 Internal Server Error", r.status_line)
  assert.equal(sides.SCRIPT_FAILED, r.body)
end

-- name, then the run_case fields (script and request filled in below).
local EDITS = {
  -- The request line.
  { "method GET -> HEAD", req = { "GET", "method-HEAD" }, method = "GET", sent = "HEAD",
    head = HELLO, reuse = true, check = function(r) assert.equal("0", r.headers["content-length"]) end },
  { "method HEAD -> GET", req = { "HEAD", "method-GET" }, method = "HEAD", sent = "GET",
    head = HELLO, later = "hello world", reuse = true, check = status_is(200, "") },
  { "method GET -> POST, no body", req = { "GET", "method-POST" }, method = "GET", sent = "POST",
    head = HELLO .. "hello world", reuse = true, upstream = no_field("Content-Length"),
    check = status_is(200, "hello world") },
  { "method POST -> GET, the body still framed", req = { "POST", "method-GET", { "Content-Length: 5" }, "hello" },
    method = "POST", sent = "GET", head = HELLO .. "hello world", reuse = true,
    upstream = function(req) assert.equal("hello", req.body) end, check = status_is(200, "hello world") },
  { "method GET -> OPTIONS", req = { "GET", "method-OPTIONS" }, method = "GET", sent = "OPTIONS",
    head = HELLO .. "hello world", reuse = true, check = status_is(200, "hello world") },
  { "method GET -> CONNECT: script error", req = { "GET", "method-CONNECT" }, method = "GET",
    check = script_failed },
  { "path changed", req = { "GET", "url-path" }, method = "GET", sent = "GET",
    upstream = function(req) assert.equal("/elsewhere", req.target) end,
    head = HELLO .. "hello world", reuse = true, check = status_is(200, "hello world") },
  { "upstream set to the same place in before_connect", req = { "GET", "upstream-same" },
    method = "GET", sent = "GET", head = HELLO .. "hello world", reuse = true,
    check = status_is(200, "hello world") },

  -- Request fields that carry framing or connection handling.
  { "request Content-Length set on a GET: dropped", req = { "GET", "req-length" }, method = "GET",
    sent = "GET", upstream = no_field("Content-Length"), head = HELLO .. "hello world", reuse = true,
    check = status_is(200, "hello world") },
  { "request Content-Length changed on a POST: the real length goes", method = "POST", sent = "POST",
    req = { "POST", "req-length", { "Content-Length: 5" }, "hello" },
    upstream = function(req)
      assert.equal("5", req.f["content-length"]); assert.equal("hello", req.body)
    end, head = HELLO .. "hello world", reuse = true, check = status_is(200, "hello world") },
  { "request Transfer-Encoding set: dropped", req = { "GET", "req-chunked" }, method = "GET", sent = "GET",
    upstream = no_field("Transfer-Encoding"), head = HELLO .. "hello world", reuse = true,
    check = status_is(200, "hello world") },
  { "request Content-Length and Transfer-Encoding added to a chunked POST", method = "POST",
    sent = "POST", req = { "POST", "req-both", { "Transfer-Encoding: chunked" }, "5\r\nhello\r\n0\r\n\r\n" },
    upstream = function(req)
      assert.equal(0, count_fields(req.fields, "content-length")); assert.equal("hello", req.body)
    end, head = HELLO .. "hello world", reuse = true, check = status_is(200, "hello world") },
  { "request Connection, Proxy-Connection, Keep-Alive set: dropped", req = { "GET", "req-connection" },
    method = "GET", sent = "GET", upstream = function(req)
      for _, n in ipairs({ "Connection", "Proxy-Connection", "Keep-Alive" }) do no_field(n)(req) end
    end, head = HELLO .. "hello world", reuse = true, check = status_is(200, "hello world") },
  { "request Upgrade set on a plain request: dropped", req = { "GET", "req-upgrade" }, method = "GET",
    sent = "GET", upstream = no_field("Upgrade"), head = HELLO .. "hello world", reuse = true,
    check = status_is(200, "hello world") },
  { "request TE and Trailer set: dropped", req = { "GET", "req-te" }, method = "GET", sent = "GET",
    upstream = function(req) no_field("TE")(req); no_field("Trailer")(req) end,
    head = HELLO .. "hello world", reuse = true, check = status_is(200, "hello world") },
  { "Expect added: the origin's 100 is relayed before the answer", req = { "GET", "req-expect" },
    method = "GET", sent = "GET", skip_1xx = true,
    head = "HTTP/1.1 100 Continue\r\n\r\n" .. HELLO .. "hello world", reuse = true,
    check = function(r) assert.equal(1, #r.interim); assert.equal("hello world", r.body) end },
  { "Host set", req = { "GET", "host-set" }, method = "GET", sent = "GET",
    upstream = function(req) assert.equal("other.example", req.f.host) end,
    head = HELLO .. "hello world", reuse = true, check = status_is(200, "hello world") },
  { "Host removed: the target's goes", req = { "GET", "host-remove" }, method = "GET", sent = "GET",
    head = HELLO .. "hello world", reuse = true, check = status_is(200, "hello world") },
  { "a second Host added: script error", req = { "GET", "host-add" }, method = "GET",
    check = script_failed },

  { "a method with a request line inside, set around the setter: script error",
    req = { "GET", "raw-method" }, method = "GET", check = script_failed },
  { "a path with a request line inside, set around the setter: script error",
    req = { "GET", "raw-path" }, method = "GET", check = script_failed },

  -- Answers a script makes itself.
  { "tx:respond in on_request", req = { "GET", "respond" }, method = "GET", check = status_is(200, "mock\n") },
  { "tx:respond in on_request to a HEAD", req = { "HEAD", "respond" }, method = "HEAD",
    check = function(r) assert.equal("5", r.headers["content-length"]) end },
  { "tx:respond(204) with a body: none sent", req = { "GET", "respond-204" }, method = "GET",
    check = status_is(204, "") },
  { "tx:respond(304) with a body: none sent", req = { "GET", "respond-304" }, method = "GET",
    check = status_is(304, "") },
  { "tx:respond with framing fields: the proxy frames it", req = { "GET", "respond-fields" },
    method = "GET", check = function(r)
      assert.equal("5", r.headers["content-length"]); assert.equal("mock\n", r.body)
      assert.is_nil(r.headers.connection)
    end },
  -- The body is read and dropped: the next request on the connection is
  -- served (run_case sends it), and nothing of the body goes anywhere.
  { "tx:respond before a request body was read: the body dropped, the connection kept",
    method = "POST", req = { "POST", "respond", { "Content-Length: 15" }, "only part of it" },
    check = function(r) status_is(200, "mock\n")(r); assert.is_nil(r.headers.connection) end },
  { "tx:respond before a chunked request body was read: dropped, kept", method = "POST",
    req = { "POST", "respond", { "Transfer-Encoding: chunked" }, "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n" },
    check = status_is(200, "mock\n") },
  -- Too long to wait for, or a client that may never send it: closes.
  { "tx:respond before a request body over 1 MiB was read: closes", method = "POST",
    req = { "POST", "respond", { "Content-Length: 1048577" }, "only part of it" }, closes = true,
    check = function(r) status_is(200, "mock\n")(r); assert.equal("close", r.headers.connection) end },
  { "tx:respond before a body that waits for 100 Continue: closes", method = "POST",
    req = { "POST", "respond", { "Content-Length: 15", "Expect: 100-continue" } }, closes = true,
    check = status_is(200, "mock\n") },
  -- The client's Expect counts, not what a script left of it: the client
  -- still chooses whether to send the body.
  { "tx:respond after a script removed the client's Expect: closes", method = "POST",
    req = { "POST", "unexpect-respond", { "Content-Length: 15", "Expect: 100-continue" } },
    closes = true, check = status_is(200, "mock\n") },
  { "tx:respond turned into a 100 around the setter: refused (500)", req = { "GET", "raw-respond" },
    method = "GET", check = function(r)
      assert.equal(500, r.status); assert.is_nil(r.headers["x-injected"])
    end },
  { "tx:respond in before_connect", req = { "GET", "respond-upstream" }, method = "GET",
    check = status_is(403, "no\n") },
  { "tx:respond in on_response, the upstream body still coming", req = { "GET", "respond-response" },
    method = "GET", sent = "GET", head = HELLO .. "hello", later = " world", reuse = false,
    check = status_is(200, "mock\n") },
  { "tx:respond(304) in on_response", req = { "GET", "respond-response-304" }, method = "GET",
    sent = "GET", head = HELLO, later = "hello world", reuse = false, check = status_is(304, "") },

  -- The response head.
  { "status 200 -> 204", req = { "GET", "status-204" }, method = "GET", sent = "GET", head = HELLO,
    later = "hello world", reuse = true, check = status_is(204, "") },
  { "status 200 -> 304", req = { "GET", "status-304" }, method = "GET", sent = "GET", head = HELLO,
    later = "hello world", reuse = true, check = status_is(304, "") },
  { "status 304 -> 200", req = { "GET", "status-200" }, method = "GET", sent = "GET",
    head = "HTTP/1.1 304 Not Modified\r\nContent-Length: 11\r\n\r\n", reuse = true,
    check = function(r) assert.equal("0", r.headers["content-length"]) end },
  { "status 204 -> 200", req = { "GET", "status-200" }, method = "GET", sent = "GET",
    head = "HTTP/1.1 204 No Content\r\n\r\n", reuse = true,
    check = function(r) assert.equal("HTTP/1.1 200 OK", r.status_line); assert.equal("", r.body) end },
  { "status changed after proxy.sleep", req = { "GET", "sleep-status" }, method = "GET", sent = "GET",
    head = HELLO, later = "hello world", reuse = true, check = status_is(204, "") },
  { "reason set", req = { "GET", "reason" }, method = "GET", sent = "GET", head = HELLO .. "hello world",
    reuse = true, check = function(r) assert.equal("HTTP/1.1 200 Fine Thanks", r.status_line) end },
  { "reason with a control byte: script error", req = { "GET", "reason-control" }, method = "GET",
    sent = "GET", head = HELLO .. "hello world", check = function(r) assert.equal(500, r.status) end },
  { "status set to 100 around the setter: script error", req = { "GET", "raw-status" },
    method = "GET", sent = "GET", head = HELLO .. "hello world",
    check = function(r) assert.equal(500, r.status) end },
  { "reason with CRLF set around the setter: script error", req = { "GET", "raw-reason" },
    method = "GET", sent = "GET", head = HELLO .. "hello world", check = function(r)
      assert.equal(500, r.status); assert.is_nil(r.headers["x-injected"])
    end },
  { "response Content-Length set: the real length goes", req = { "GET", "res-length" }, method = "GET",
    sent = "GET", head = HELLO .. "hello world", reuse = true, check = status_is(200, "hello world") },
  { "response Content-Length set on a HEAD answer: no body follows", req = { "HEAD", "res-length" },
    method = "HEAD", sent = "HEAD", head = HELLO, reuse = true, check = status_is(200, "") },
  { "response Transfer-Encoding set: dropped", req = { "GET", "res-chunked" }, method = "GET",
    sent = "GET", head = HELLO .. "hello world", reuse = true, check = status_is(200, "hello world") },
  { "response Connection, Keep-Alive, Upgrade, Trailer set: dropped", req = { "GET", "res-connection" },
    method = "GET", sent = "GET", head = HELLO .. "hello world", reuse = true, check = function(r)
      assert.equal("hello world", r.body)
      for _, n in ipairs({ "connection", "keep-alive", "upgrade", "trailer" }) do assert.is_nil(r.headers[n]) end
    end },

  -- The body, through on_response_chunk.
  { "on_response_chunk doubles the body: re-chunked", req = { "GET", "chunk-grow" }, method = "GET",
    sent = "GET", head = HELLO .. "hello world", reuse = true,
    check = function(r) assert.is_true(r.chunked); assert.equal("hello worldhello world", r.body) end },
  { "on_response_chunk empties the body", req = { "GET", "chunk-empty" }, method = "GET", sent = "GET",
    head = HELLO .. "hello world", reuse = true, check = status_is(200, "") },
  { "on_response_chunk returns framing bytes: they stay data", req = { "GET", "chunk-inject" },
    method = "GET", sent = "GET", head = HELLO .. "hello world", reuse = true, check = function(r)
      assert.equal("hello world\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil", r.body)
    end },
  { "on_response_chunk on a HEAD answer: no body", req = { "HEAD", "chunk-grow" }, method = "HEAD",
    sent = "HEAD", head = HELLO, reuse = true, check = status_is(200, "") },
  { "on_response_chunk fails mid-body: cut, closed", req = { "GET", "chunk-error" }, method = "GET",
    sent = "GET", head = HELLO .. "hello", later = " world", closes = true,
    check = function(r) assert.equal(200, r.status); assert.is_true(r.incomplete) end },
  { "on_response_chunk returns a number: cut, closed", req = { "GET", "chunk-number" }, method = "GET",
    sent = "GET", head = HELLO .. "hello world", closes = true,
    check = function(r) assert.equal(200, r.status); assert.is_true(r.incomplete) end },
  { "on_response_chunk to an HTTP/1.0 client: close-delimited", method = "GET", sent = "GET",
    req = { "GET", "chunk-grow", nil, nil, "HTTP/1.0" }, head = HELLO .. "hello world", closes = true,
    check = function(r) assert.equal("close", r.framing); assert.equal("hello worldhello world", r.body) end },
}

describe("smuggling battery, script-driven:", function()
  for _, e in ipairs(EDITS) do
    it(e[1], function()
      local c = {}
      for k, v in pairs(e) do c[k] = v end
      c.script = EDIT_SCRIPT
      c.request = edit_request(table.unpack(e.req, 1, 5))
      sides.run_case(c)
    end)
  end
end)
