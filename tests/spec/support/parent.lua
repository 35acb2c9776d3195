-- A tiny stand-in for a parent proxy, for the --upstream specs.
--
--   lua5.4 tests/spec/support/parent.lua RECORD_FILE [hang|deny|inject|tunnel|reflect|interim]
--
-- Binds 127.0.0.1:0, prints the port on stdout and serves one connection
-- at a time until killed. Each request head is appended to RECORD_FILE
-- (format "R <len>\n<head>") before it is answered:
--   CONNECT      "HTTP/1.1 200 OK", then echoes bytes until the client closes
--   anything else  200 with the request line as the body, then closes
-- With "hang" it reads the head and never answers; with "deny" it
-- answers everything with 407. With "tunnel" a
-- CONNECT opens a real tunnel to 127.0.0.1 at its port, whatever the name
-- (there is no DNS in the tests). With "inject" it is a hostile parent:
-- its 200 to a CONNECT comes with a forged HTTP response in the same
-- write, then the tunnel is real as with "tunnel". With "reflect" it
-- answers a request with its head as the body, as the final recipient
-- of a TRACE does. With "interim" its 200 to a CONNECT comes after a
-- "100 Continue".
--
-- What it does not do otherwise: forward anything. The specs check what
-- reached it.

local socket = require("socket")

local record_file, mode = arg[1], arg[2]
local server = assert(socket.bind("127.0.0.1", 0))
local _, port = server:getsockname()
io.stdout:write(port, "\n")
io.stdout:flush()

-- Safety net: never outlive a crashed spec for long.
local started = socket.gettime()

local function record(head)
  local f = assert(io.open(record_file, "ab"))
  f:write("R ", #head, "\n", head)
  f:close()
end

-- Moves bytes between <a> and <b> until either closes (or 30 s of quiet).
local function relay(a, b)
  local peer = { [a] = b, [b] = a }
  while true do
    local ready = socket.select({ a, b }, nil, 30)
    if #ready == 0 then return end
    for _, s in ipairs(ready) do
      s:settimeout(0)
      local data, err, partial = s:receive(65536)
      data = data or partial
      if data and #data > 0 then
        peer[s]:settimeout(10)
        peer[s]:send(data)
      end
      if err == "closed" then
        peer[s]:close()
        return
      end
    end
  end
end

local function read_head(c)
  local lines = {}
  while true do
    local line, err = c:receive("*l")
    if not line then return nil, err end
    lines[#lines + 1] = line .. "\r\n"
    if line == "" or line == "\r" then break end
  end
  return table.concat(lines)
end

server:settimeout(1)
while socket.gettime() - started < 300 do
  local c = server:accept()
  if c then
    c:settimeout(10)
    local head = read_head(c)
    if head then
      record(head)
      local line = head:match("^([^\r\n]*)")
      if mode == "hang" then
        c:receive("*a")
      elseif mode == "deny" then
        c:send("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic "
          .. "realm=\"parent\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
      elseif (mode == "inject" or mode == "tunnel") and line:match("^CONNECT ") then
        local port = line:match("^CONNECT %S+:(%d+) ")
        local up = socket.connect("127.0.0.1", tonumber(port))
        local forged = mode == "inject" and "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\ninjected\n" or ""
        c:send("HTTP/1.1 200 OK\r\n\r\n" .. forged)
        if up then relay(c, up) end
      elseif line:match("^CONNECT ") then
        -- "interim": a 100 first, which a client must skip (RFC 9110 15.2)
        c:send((mode == "interim" and "HTTP/1.1 100 Continue\r\n\r\n" or "")
          .. "HTTP/1.1 200 OK\r\n\r\n")
        while true do
          local data, err, partial = c:receive(1)
          data = data or partial
          if data and #data > 0 then c:send(data) end
          if err == "closed" then break end
        end
      elseif mode == "reflect" then
        -- as a parent answers a TRACE at Max-Forwards: 0 (RFC 9110 9.3.8)
        c:send("HTTP/1.1 200 OK\r\nContent-Type: message/http\r\nContent-Length: " .. #head
          .. "\r\nConnection: close\r\n\r\n" .. head)
      else
        local body = line .. "\n"
        c:send("HTTP/1.1 200 OK\r\nContent-Length: " .. #body .. "\r\nConnection: close\r\n\r\n" .. body)
      end
    end
    c:close()
  end
end
