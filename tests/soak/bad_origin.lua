-- A misbehaving HTTP origin for the fault soak (tests/soak/soak.lua).
--
--   lua5.4 tests/soak/bad_origin.lua [LIFETIME_SECONDS]
--
-- Binds 127.0.0.1:0, prints the port on stdout and serves until killed (or
-- LIFETIME_SECONDS pass, default 900: a soak that dies before its teardown
-- must not leave us running). Every connection runs in its own coroutine
-- under the socket.select() loop of tests/spec/support/serve_loop.lua (the
-- spec origin's too), so a stalled connection never holds up the others.
--
-- What it owns: the faults an upstream can throw at the proxy. What it
-- doesn't: judging the proxy's answer (soak.lua knows what the contract
-- promises for each route below).
--
-- Routes (the request head and any Content-Length body are read first):
--   /reset            no answer, connection reset (RST)           -> 502
--   /close            no answer, connection closed (FIN)          -> 502
--   /stall            no answer, ever; holds the socket           -> 504
--   /malformed/NAME   a broken response head (MALFORMED), close   -> 502
--   /short-cl         200, Content-Length 1 MiB, 100 KiB, FIN     -> body cut, client closed
--   /reset-mid        200, Content-Length 1 MiB, 100 KiB, RST     -> body cut, client closed
--   /stall-body       200, Content-Length 1 MiB, 100 KiB, silence -> body cut after idle timeout
--   /short-chunked    chunked, a few chunks, FIN without the 0 chunk
--   /bad-chunk        chunked, one good chunk, then a bad size line
--   /interim/N        N interim responses (100 and 103) in one burst, then
--                     200 "hello\n"; past the proxy's cap (100): 502
-- Body bytes are the 64-byte pattern the harness uses (harness.pattern), so
-- the client can check every byte it did get.
--
-- Only Lua 5.4 and luasocket.

package.path = (arg[0]:match("^(.*)/") or ".") .. "/../spec/support/?.lua;" .. package.path
local loop = require("serve_loop")

local LIFETIME = tonumber(arg[1]) or 900

local PATTERN64 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-\n"
local function pattern(n)
  return (PATTERN64:rep(n // 64 + 1)):sub(1, n)
end

local CUT_TOTAL, CUT_SENT = 1024 * 1024, 100 * 1024

-- Response heads the proxy must refuse (502), each sent as-is before a close.
local MALFORMED = {
  ["bad-status"] = "HTTP/1.1 2x0 OK\r\nContent-Length: 5\r\n\r\nhello",
  ["no-version"] = "200 OK\r\nContent-Length: 5\r\n\r\nhello",
  ["cl-te"] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    .. "5\r\nhello\r\n0\r\n\r\n",
  ["dup-cl"] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
  ["neg-cl"] = "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello",
  ["huge-cl"] = "HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999999999\r\n\r\nhello",
  ["obs-fold"] = "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 5\r\n\r\nhello",
  ["space-colon"] = "HTTP/1.1 200 OK\r\nX-Bad : 1\r\nContent-Length: 5\r\n\r\nhello",
  ["bare-lf"] = "HTTP/1.1 200 OK\nContent-Length: 5\n\nhello",
  ["nul"] = "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 5\r\n\r\nhello",
  ["huge-head"] = "HTTP/1.1 200 OK\r\n" .. ("X-Pad: " .. ("p"):rep(100) .. "\r\n"):rep(400)
    .. "Content-Length: 5\r\n\r\nhello",
  ["binary"] = "\0\1\2\3\255\254\253 garbage \127\128\r\n\r\n",
  ["partial-head"] = "HTTP/1.1 200 OK\r\nContent-Le",
  ["http09"] = "hello from 1991\n",
}

------------------------------------------------------------------------------
-- Connection I/O (tests/spec/support/serve_loop.lua); c = {sock =, buf = ""}

local fill, sleep = loop.fill, loop.sleep
local function send_all(c, data) return loop.send_all(c.sock, data) end

-- Reads the request head and a Content-Length body (chunked request bodies
-- are not expected here). Returns the path, or nil if the peer went away.
local function read_request(c)
  while not c.buf:find("\r\n\r\n", 1, true) do
    if #c.buf > 65536 or not fill(c) then return nil end
  end
  local e = c.buf:find("\r\n\r\n", 1, true)
  local head = c.buf:sub(1, e + 3)
  c.buf = c.buf:sub(e + 4)
  local cl = tonumber(head:lower():match("\r\ncontent%-length:%s*(%d+)") or "0")
  while #c.buf < cl do
    if not fill(c) then return nil end
  end
  c.buf = c.buf:sub(cl + 1)
  return head:match("^%S+ (%S+)") or "/"
end

-- Closes with an RST instead of a FIN.
local function reset(c)
  c.sock:setoption("linger", { on = true, timeout = 0 })
  c.sock:close()
  c.closed = true
end

-- Waits until the peer closes (or sends garbage we drop).
local function hold(c)
  while fill(c) do c.buf = "" end
end

local function serve(c)
  local path = read_request(c)
  if not path then return end
  path = path:match("^[^?]*")
  if path == "/reset" then
    reset(c)
  elseif path == "/close" then
    return
  elseif path == "/stall" then
    hold(c)
  elseif path:match("^/malformed/") then
    local bytes = MALFORMED[path:sub(12)]
    if not bytes then
      send_all(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
      return
    end
    send_all(c, bytes)
  elseif path == "/short-cl" or path == "/reset-mid" or path == "/stall-body" then
    if not send_all(c, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        .. "Content-Length: " .. CUT_TOTAL .. "\r\n\r\n" .. pattern(CUT_SENT)) then
      return
    end
    if path == "/reset-mid" then
      -- Let the proxy start relaying, so the reset lands mid-body.
      sleep(0.1)
      reset(c)
    elseif path == "/stall-body" then
      hold(c)
    end
  elseif path:match("^/interim/%d+$") then
    local n = tonumber(path:match("%d+"))
    local out = {}
    for i = 1, n do
      out[i] = i % 7 == 0 and "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
        or "HTTP/1.1 100 Continue\r\n\r\n"
    end
    -- Closes after: this origin serves one request per connection.
    out[#out + 1] = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n"
    send_all(c, table.concat(out))
  elseif path == "/short-chunked" or path == "/bad-chunk" then
    local out = { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" }
    local body, n = pattern(4000 * 5), path == "/bad-chunk" and 1 or 5
    for i = 1, n do
      out[#out + 1] = string.format("%x\r\n%s\r\n", 4000, body:sub((i - 1) * 4000 + 1, i * 4000))
    end
    if path == "/bad-chunk" then out[#out + 1] = "zz\r\nhello\r\n0\r\n\r\n" end
    send_all(c, table.concat(out))
  else
    send_all(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
  end
end

local function handle(sock)
  local c = { sock = sock, buf = "" }
  local ok, err = pcall(serve, c)
  if not ok then io.stderr:write("bad_origin: ", tostring(err), "\n") end
  if not c.closed then sock:close() end
end

------------------------------------------------------------------------------
-- Main loop

loop.serve({ name = "bad_origin", backlog = 256, lifetime = LIFETIME, handle = handle })
