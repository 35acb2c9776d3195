-- serial.lua - one client, one request at a time, for tests/bench/count.sh.
--
--   lua5.4 serial.lua PROXY_PORT ORIGIN N ka|close
--
-- Sends N GETs of http://ORIGIN/small through the proxy on 127.0.0.1, each
-- after the previous answer is read whole: over one kept-alive connection
-- (ka), or with "Connection: close" and a new connection each (close),
-- reading to the end of the connection. One request at a time keeps the
-- proxy's work per exchange the same in every run, which is what an
-- instruction count or a system call count needs. Exits non-zero on any
-- answer but a complete 200 (with a Content-Length, or chunked, as a
-- COUNT_SCRIPT with on_response_chunk sends it).
local socket = require("socket")

local port, origin, n, mode = tonumber(arg[1]), arg[2], tonumber(arg[3]), arg[4]
assert(port and origin and n and (mode == "ka" or mode == "close"),
  "usage: serial.lua PROXY_PORT ORIGIN N ka|close")
local request = "GET http://" .. origin .. "/small HTTP/1.1\r\nHost: " .. origin .. "\r\n"
  .. (mode == "close" and "Connection: close\r\n" or "") .. "\r\n"

local function connect()
  local s = assert(socket.tcp())
  s:settimeout(10)
  assert(s:connect("127.0.0.1", port))
  s:setoption("tcp-nodelay", true)
  return s
end

-- A chunked body (what a script with on_response_chunk makes of it),
-- read to its last chunk and the empty line after it.
local function receive_chunked(s)
  while true do
    local size = tonumber(assert(s:receive("*l")):match("^(%x+)"), 16)
    assert(size, "bad chunk size line")
    if size == 0 then break end
    assert(s:receive(size))
    assert(assert(s:receive("*l")) == "", "no CRLF after a chunk")
  end
  repeat until assert(s:receive("*l")) == ""
end

local function exchange(s)
  assert(s:send(request))
  local status = assert(s:receive("*l"))
  assert(status:match("^HTTP/1%.1 200 "), "answer: " .. status)
  local length, chunked
  while true do
    local line = assert(s:receive("*l"))
    if line == "" then break end
    local v = line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
    if v then length = tonumber(v) end
    if line:match("^[Tt]ransfer%-[Ee]ncoding:%s*chunked%s*$") then chunked = true end
  end
  if chunked then return receive_chunked(s) end
  assert(length, "no Content-Length nor Transfer-Encoding: chunked")
  assert(s:receive(length))
end

local s
for _ = 1, n do
  s = s or connect()
  exchange(s)
  if mode == "close" then
    -- to the end of the connection: nothing more may come
    local rest, err, partial = s:receive("*a")
    rest = rest or (err == "closed" and partial)
    assert(rest == "", "bytes or an error after the answer: " .. tostring(err))
    s:close()
    s = nil
  end
end
if s then s:close() end
