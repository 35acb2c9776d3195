-- Test origin server for the luaproxy end-to-end specs.
--
--   lua5.4 tests/spec/support/origin.lua [--host ADDR] RECORD_FILE
--   lua5.4 tests/spec/support/origin.lua [--host ADDR] --echo
--
-- Binds ADDR:0 (default 127.0.0.1), prints the port on stdout and serves
-- until killed. Every connection runs in its own coroutine; one
-- socket.select() loop drives them all, so slow, hanging and streaming
-- routes never hold up the others, and no response is ever buffered whole
-- (a 200 MiB /bytes reply goes out 64 KiB at a time as the peer drains it).
--
-- Each request that reaches us is appended to RECORD_FILE *before* we answer
-- it, so by the time the client sees a response the spec can read exactly
-- which bytes the proxy sent upstream. Record format (see harness.lua):
--
--   "R <head_len> <body_len>\n" <head bytes> <body bytes>
--
-- The head is the raw bytes up to and including the blank line; the body is
-- the raw framing as received (chunk-size lines and trailers included).
--
-- Routes (query strings optional):
--   /                 200 "root\n"
--   /hello            200 "hello\n"
--   /echo             200, body = raw request head + raw request body
--   /chunked?n=&size= chunked, n chunks of size 'x', trailer X-Checksum: done
--   /close?size=      200 without framing, pattern bytes, then close
--   /bytes?n=         200 with Content-Length n, pattern bytes in 64 KiB pieces;
--        &hang=1      Content-Length n + 1, and the last byte never comes
--   /status/NNN       that status; no body for 1xx/204/304
--   /headers?N=V&...  200 with exactly those response headers, in order
--   /slow?ms=         200 "slow\n" after ms milliseconds
--   /hang             reads the request, never answers
--   /continue         100 Continue first if asked, then echoes the body
--   /ws               101 for Upgrade: websocket, then echoes raw bytes
--   /file?path=&encoding=&chunked=1  a file's bytes with that Content-Encoding
--        &range=A-B  a 206;  &vary=V  a Vary field;  &etag=X  ETag, and 304
--        to an If-None-Match naming it (&bare304=1: without Content-Encoding)
--   /raw/NAME         broken responses, see RAW below
-- A HEAD request gets the head a GET would have, without the body.
--
-- --echo turns this into a raw TCP echo server for CONNECT tunnels: it echoes
-- everything and, on EOF from the peer, shuts down its own write side once
-- all echoed bytes are out, so the spec can watch a half-close cross the proxy.
--
-- This file must only need Lua 5.4 and luasocket.

package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local loop = require("serve_loop")

-- Safety net: a spec that crashes before its teardown must not leave us
-- running forever.
local MAX_LIFETIME = 900

local host = "127.0.0.1"
local record_path
local echo_mode = false
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == "--host" then
      host = arg[i + 1]; i = i + 1
    elseif a == "--echo" then
      echo_mode = true
    else
      record_path = a
    end
    i = i + 1
  end
end
if not echo_mode and not record_path then
  io.stderr:write("usage: origin.lua [--host ADDR] RECORD_FILE | --echo\n")
  os.exit(2)
end

------------------------------------------------------------------------------
-- Connection I/O (support/serve_loop.lua). A conn is {sock = , buf = ""}:
-- bytes read but not yet consumed stay in buf, so head parsing can
-- over-read into the body.

local fill, send_all = loop.fill, loop.send_all
local function sleep_ms(ms) loop.sleep(ms / 1000) end

-- Returns the next CRLF-terminated line (without CRLF) and consumes it,
-- plus the raw bytes consumed; nil on EOF.
local function read_line(c)
  while true do
    local e = c.buf:find("\r\n", 1, true)
    if e then
      local line = c.buf:sub(1, e - 1)
      local raw = c.buf:sub(1, e + 1)
      c.buf = c.buf:sub(e + 2)
      return line, raw
    end
    if not fill(c) then return nil end
  end
end

-- Returns exactly n bytes (fewer on EOF) and consumes them.
local function read_n(c, n)
  local parts, got = {}, 0
  if #c.buf > 0 then
    local take = c.buf:sub(1, n)
    c.buf = c.buf:sub(#take + 1)
    parts[1] = take
    got = #take
  end
  while got < n do
    if not fill(c) then break end
    local take = c.buf:sub(1, n - got)
    c.buf = c.buf:sub(#take + 1)
    parts[#parts + 1] = take
    got = got + #take
  end
  return table.concat(parts), got == n
end

------------------------------------------------------------------------------
-- Request parsing: lenient on purpose. The proxy's upstream side is under
-- test, so we keep what we got (raw) and let the spec judge it.

local function parse_head(raw)
  local lines = {}
  for line in raw:gmatch("(.-)\r?\n") do lines[#lines + 1] = line end
  local method, target, version = (lines[1] or ""):match("^(%S+) (%S+) (%S+)$")
  local req = { method = method or "", target = target or "", version = version or "",
                headers = {}, raw_head = raw }
  for i = 2, #lines do
    local name, value = lines[i]:match("^([^:]+):%s*(.-)%s*$")
    if name then
      local k = name:lower()
      if req.headers[k] then
        req.headers[k] = req.headers[k] .. ", " .. value
      else
        req.headers[k] = value
      end
    end
  end
  req.path, req.query = req.target:match("^([^?]*)%??(.*)$")
  return req
end

local function url_decode(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Query string as an ordered list of {name, value} plus a name -> value map.
local function parse_query(q)
  local list, map = {}, {}
  for pair in (q or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k, v = url_decode(k), url_decode(v)
    list[#list + 1] = { k, v }
    map[k] = v
  end
  return list, map
end

-- Reads the head. Returns the raw head (through the blank line) or nil on EOF.
local function read_head(c)
  while true do
    local e = c.buf:find("\r\n\r\n", 1, true)
    if e then
      local head = c.buf:sub(1, e + 3)
      c.buf = c.buf:sub(e + 4)
      return head
    end
    if not fill(c) then return nil end
  end
end

-- Reads the body as framed by the request head. Returns raw bytes as
-- received, the decoded body, and whether the body was complete.
local function read_body(c, req)
  local te = (req.headers["transfer-encoding"] or ""):lower()
  if te:find("chunked", 1, true) then
    local raw, decoded = {}, {}
    while true do
      local line, rawline = read_line(c)
      if not line then return table.concat(raw), table.concat(decoded), false end
      raw[#raw + 1] = rawline
      local size = tonumber(line:match("^%s*(%x+)") or "", 16)
      if not size then return table.concat(raw), table.concat(decoded), false end
      if size == 0 then
        -- trailer section up to the empty line
        while true do
          local tl, rawtl = read_line(c)
          if not tl then return table.concat(raw), table.concat(decoded), false end
          raw[#raw + 1] = rawtl
          if tl == "" then break end
        end
        return table.concat(raw), table.concat(decoded), true
      end
      local data, ok = read_n(c, size + 2)
      raw[#raw + 1] = data
      decoded[#decoded + 1] = data:sub(1, size)
      if not ok then return table.concat(raw), table.concat(decoded), false end
    end
  end
  local cl = tonumber(req.headers["content-length"] or "")
  if cl and cl > 0 then
    local data, ok = read_n(c, cl)
    return data, data, ok
  end
  return "", "", true
end

local function record(head, body)
  if not record_path then return end
  local f = assert(io.open(record_path, "ab"))
  -- One write per record, so a reader polling the file sees either nothing
  -- or (almost always) the whole record; the harness ignores a torn tail.
  f:setvbuf("full", #head + #body + 64)
  f:write(string.format("R %d %d\n", #head, #body), head, body)
  f:close()
end

------------------------------------------------------------------------------
-- Responses

-- 64 bytes that tile 64 KiB exactly, so /bytes and /close bodies are
-- position-checkable (harness.pattern builds the same bytes).
local PATTERN64 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-\n"
local function pattern(n)
  return (PATTERN64:rep(n // 64 + 1)):sub(1, n)
end
local PIECE = pattern(65536)

local REASONS = {
  [100] = "Continue", [101] = "Switching Protocols", [200] = "OK", [201] = "Created",
  [204] = "No Content", [301] = "Moved Permanently", [302] = "Found",
  [304] = "Not Modified", [400] = "Bad Request", [403] = "Forbidden",
  [404] = "Not Found", [500] = "Internal Server Error", [502] = "Bad Gateway",
  [503] = "Service Unavailable",
}

-- Sends a complete CL-framed response (no body bytes for HEAD requests,
-- but the Content-Length a GET would have had).
local function respond(c, req, status, headers, body)
  local out = { string.format("HTTP/1.1 %d %s\r\n", status, REASONS[status] or "Whatever") }
  for _, h in ipairs(headers) do out[#out + 1] = h[1] .. ": " .. h[2] .. "\r\n" end
  if body then out[#out + 1] = "Content-Length: " .. #body .. "\r\n" end
  if req.close then out[#out + 1] = "Connection: close\r\n" end
  out[#out + 1] = "\r\n"
  if body and req.method ~= "HEAD" then out[#out + 1] = body end
  return send_all(c.sock, table.concat(out))
end

local TEXT = { { "Content-Type", "text/plain" } }

-- Raw responses for the bad-upstream specs. Each is sent as-is, then the
-- connection is closed (with an RST where the name says reset).
local RAW = {
  ["cl-te"] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    .. "5\r\nhello\r\n0\r\n\r\n",
  ["dup-cl"] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
  ["obs-fold"] = "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 5\r\n\r\nhello",
  ["space-colon"] = "HTTP/1.1 200 OK\r\nX-Bad : 1\r\nContent-Length: 5\r\n\r\nhello",
  ["bad-status"] = "HTTP/1.1 2x0 OK\r\nContent-Length: 5\r\n\r\nhello",
  ["bad-chunk"] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
  ["reset-before"] = "",
  ["reset-mid-cl"] = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" .. pattern(1000),
  ["reset-mid-chunked"] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    .. "5\r\nhello\r\n",
  ["http09"] = "hello from 1991\n",
  ["lf-only"] = "HTTP/1.1 200 OK\nContent-Length: 5\nContent-Type: text/plain\n\nhello",
  -- Well-formed, but its trailer section carries fields no trailer may
  -- (framing, routing, credentials, caching, content metadata) between
  -- ones it may.
  ["framing-trailers"] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    .. "5\r\nhello\r\n0\r\nContent-Length: 99\r\nX-Checksum: ok\r\n"
    .. "Transfer-Encoding: chunked\r\nHost: evil.example\r\nSet-Cookie: a=b\r\n"
    .. "Content-Type: text/evil\r\nLocation: http://evil.example/\r\n"
    .. "Server-Timing: db;dur=5\r\nTrailer: X-Checksum\r\n\r\n",
  -- A well-formed one, to check the route itself.
  ["ok"] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
}
local RAW_RESET = { ["reset-before"] = true, ["reset-mid-cl"] = true, ["reset-mid-chunked"] = true }

-- Closes with an RST instead of a FIN: SO_LINGER with a zero timeout.
local function reset(sock)
  sock:setoption("linger", { on = true, timeout = 0 })
  sock:close()
end

-- Relays bytes back to the peer until it sends EOF, then half-closes.
local function echo_loop(c)
  if #c.buf > 0 then
    if not send_all(c.sock, c.buf) then return end
    c.buf = ""
  end
  while fill(c) do
    local data = c.buf
    c.buf = ""
    if not send_all(c.sock, data) then return end
  end
  c.sock:shutdown("send")
end

-- Handles one request on c. Returns true if the connection may carry
-- another request.
local function serve_one(c)
  local head = read_head(c)
  if not head then return false end
  local req = parse_head(head)
  local conn_hdr = (req.headers["connection"] or ""):lower()
  req.close = conn_hdr:find("close", 1, true) ~= nil or req.version == "HTTP/1.0"
  local path = req.path
  local qlist, q = parse_query(req.query)

  -- Routes that act before (or instead of) reading the body.
  if path == "/continue" and (req.headers["expect"] or ""):lower() == "100-continue" then
    if not send_all(c.sock, "HTTP/1.1 100 Continue\r\n\r\n") then return false end
  end

  local raw_body, body, complete = read_body(c, req)
  record(head, raw_body)
  if not complete then return false end

  if path == "/" then
    respond(c, req, 200, TEXT, "root\n")
  elseif path == "/hello" then
    respond(c, req, 200, TEXT, "hello\n")
  elseif path == "/conn" then
    -- which connection this is: the same number for a reused one
    respond(c, req, 200, TEXT, "conn " .. c.serial .. "\n")
  elseif path == "/echo" then
    respond(c, req, 200, TEXT, head .. raw_body)
  elseif path == "/continue" then
    respond(c, req, 200, TEXT, body)
  elseif path == "/chunked" then
    local n, size = tonumber(q.n) or 3, tonumber(q.size) or 10
    local out = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
      .. "Trailer: X-Checksum\r\n" .. (req.close and "Connection: close\r\n" or "") .. "\r\n"
    if not send_all(c.sock, out) then return false end
    if req.method ~= "HEAD" then
      local chunk = string.format("%x\r\n", size) .. ("x"):rep(size) .. "\r\n"
      for _ = 1, n do
        if not send_all(c.sock, chunk) then return false end
      end
      if q.cut then return false end -- closed without the last chunk: a body cut short
      if not send_all(c.sock, "0\r\nX-Checksum: done\r\n\r\n") then return false end
    end
  elseif path == "/close" then
    local size = tonumber(q.size) or 10
    send_all(c.sock, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
    if req.method ~= "HEAD" then send_all(c.sock, pattern(size)) end
    return false
  elseif path == "/bytes" then
    local n = tonumber(q.n) or 0
    local head_out = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
      .. "Content-Length: " .. (q.hang and n + 1 or n) .. "\r\n"
      .. (req.close and "Connection: close\r\n" or "") .. "\r\n"
    if not send_all(c.sock, head_out) then return false end
    if req.method ~= "HEAD" then
      local left = n
      while left > 0 do
        local piece = left >= #PIECE and PIECE or PIECE:sub(1, left)
        if not send_all(c.sock, piece) then return false end
        left = left - #piece
      end
    end
    if q.hang then
      while fill(c) do c.buf = "" end
      return false
    end
  elseif path:match("^/status/%d%d%d$") then
    local status = tonumber(path:sub(-3))
    if status == 204 or status == 304 or status < 200 then
      local out = { string.format("HTTP/1.1 %d %s\r\n", status, REASONS[status] or "Whatever") }
      if req.close then out[#out + 1] = "Connection: close\r\n" end
      out[#out + 1] = "\r\n"
      send_all(c.sock, table.concat(out))
    else
      respond(c, req, status, TEXT, "status " .. status .. "\n")
    end
  elseif path == "/headers" then
    -- The given headers go out verbatim and in order; no Connection header
    -- of our own, since specs use this route to send hop-by-hop ones.
    local out = { "HTTP/1.1 200 OK\r\n" }
    for _, kv in ipairs(qlist) do out[#out + 1] = kv[1] .. ": " .. kv[2] .. "\r\n" end
    out[#out + 1] = "Content-Length: 8\r\n\r\n"
    if req.method ~= "HEAD" then out[#out + 1] = "headers\n" end
    send_all(c.sock, table.concat(out))
    return false
  elseif path == "/slow" then
    sleep_ms(tonumber(q.ms) or 1000)
    respond(c, req, 200, TEXT, "slow\n")
  elseif path == "/hang" then
    -- Never answer; hold the socket until the peer gives up.
    while fill(c) do c.buf = "" end
    return false
  elseif path == "/ws" then
    if (req.headers["upgrade"] or ""):lower() ~= "websocket" then
      respond(c, req, 400, TEXT, "need Upgrade: websocket\n")
      return false
    end
    if not send_all(c.sock, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        .. "Connection: Upgrade\r\n\r\n") then return false end
    echo_loop(c)
    return false
  elseif path == "/file" then
    -- A file's bytes as they are (compressed bodies for the decoding specs)
    -- with the given Content-Encoding, by length or chunked.
    local f = io.open(q.path or "", "rb")
    if not f then
      respond(c, req, 404, TEXT, "no such file\n")
      return false
    end
    local data = f:read("a")
    f:close()
    local status = "200 OK"
    local first, last = (q.range or ""):match("^(%d+)%-(%d+)$")
    local range = ""
    if first then -- range=A-B: a 206 with bytes A..B of the file
      first, last = tonumber(first), math.min(tonumber(last), #data - 1)
      range = string.format("Content-Range: bytes %d-%d/%d\r\n", first, last, #data)
      data, status = data:sub(first + 1, last + 1), "206 Partial Content"
    end
    -- etag=X: sent as "X"; an If-None-Match naming it gets a 304 with the
    -- fields the 200 has (its Content-Length too, as RFC 9110 8.6 allows).
    local etag = q.etag and '"' .. q.etag .. '"'
    -- If-None-Match compares weakly (RFC 9110 13.1.2): W/"X" names it too.
    local inm = req.headers["if-none-match"]
    local not_modified = etag and inm and inm:gsub("^W/", "") == etag
    if not_modified then status = "304 Not Modified" end
    local bodiless = not_modified or req.method == "HEAD"
    local out = { "HTTP/1.1 " .. status .. "\r\nContent-Type: " .. (q.type or "text/html") .. "\r\n"
      .. range }
    -- bare304=1: a 304 without Content-Encoding (a 304 need not repeat it)
    if q.encoding and not (not_modified and q.bare304) then
      out[#out + 1] = "Content-Encoding: " .. q.encoding .. "\r\n"
    end
    if q.vary then out[#out + 1] = "Vary: " .. q.vary .. "\r\n" end
    if etag then out[#out + 1] = "ETag: " .. etag .. "\r\n" end
    if q.chunked then
      out[#out + 1] = "Transfer-Encoding: chunked\r\n\r\n"
      for i = 1, bodiless and 0 or #data, 4096 do
        local piece = data:sub(i, i + 4095)
        out[#out + 1] = string.format("%x\r\n", #piece) .. piece .. "\r\n"
      end
      if not bodiless then out[#out + 1] = "0\r\n\r\n" end
    else
      out[#out + 1] = "Content-Length: " .. #data .. "\r\n\r\n" .. (bodiless and "" or data)
    end
    if not send_all(c.sock, table.concat(out)) then return false end
  elseif path:match("^/raw/") then
    local name = path:sub(6)
    local bytes = RAW[name]
    if not bytes then
      respond(c, req, 404, TEXT, "no such raw response\n")
      return false
    end
    send_all(c.sock, bytes)
    if RAW_RESET[name] then
      -- Give the proxy time to read and forward what we sent, so the spec
      -- sees a reset in the middle of a body it has started relaying.
      if #bytes > 0 then sleep_ms(200) end
      reset(c.sock)
    else
      c.sock:close()
    end
    return false
  else
    respond(c, req, 404, TEXT, "not found\n")
  end
  return not req.close
end

local accepted = 0 -- connections accepted so far (/conn tells which one)
local function handle(sock)
  accepted = accepted + 1
  local c = { sock = sock, buf = "", serial = accepted }
  if echo_mode then
    echo_loop(c)
  else
    while serve_one(c) do end
  end
  sock:close()
end

------------------------------------------------------------------------------
-- Main loop

loop.serve({ name = "origin", host = host, lifetime = MAX_LIFETIME, handle = handle })
