-- A keep-alive origin that works in raw bytes, for framing specs.
--
-- support/origin.lua runs in its own process and answers by route; the
-- specs that judge framing need more control: which upstream connection a
-- request came on, what bytes it carried, and responses written in pieces
-- at moments the spec picks (a head now, its body after the client has
-- read the head). So this origin lives in the spec's own process and is
-- driven step by step: a listening socket, the connections the proxy made
-- (kept open until the proxy closes them), and a parser that splits each
-- connection's bytes into whole requests, by the request's own framing.
--
-- What it owns: sockets and request parsing. What it doesn't: assertions;
-- the spec looks at what it returns.

local socket = require("socket")

local M = {}

-- "Name: value" lines after a head's first line: a list of {name (lower
-- case), value} and a map name -> values joined with ", ".
function M.parse_fields(head)
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

function M.count(list, name)
  local n = 0
  for _, f in ipairs(list) do
    if f.name == name then n = n + 1 end
  end
  return n
end

-- Splits one whole request off the front of <buf>: returns the request and
-- the rest, or nil if the bytes stop before the request ends.
local function split_request(buf)
  local e = buf:find("\r\n\r\n", 1, true)
  if not e then return nil end
  local req = { head = buf:sub(1, e + 3) }
  req.request_line = req.head:match("^([^\r\n]*)")
  req.method, req.target = req.request_line:match("^(%S+) (%S+)")
  req.fields, req.f = M.parse_fields(req.head)
  local at = e + 4
  if req.f["transfer-encoding"] then
    local parts, pos = {}, at
    while true do
      local hex, after = buf:match("^(%x+)[^\r\n]*\r\n()", pos)
      if not hex then return nil end
      local size = tonumber(hex, 16)
      if size == 0 then
        -- "0\r\n" then trailer lines, ended by an empty line.
        local te = buf:find("\r\n\r\n", after - 2, true)
        if not te then return nil end
        req.body = table.concat(parts)
        req.raw = buf:sub(1, te + 3)
        return req, buf:sub(te + 4)
      end
      if #buf < after + size + 1 then return nil end
      parts[#parts + 1] = buf:sub(after, after + size - 1)
      pos = after + size + 2
    end
  end
  local n = tonumber((req.f["content-length"] or "0"):match("^%d+$") or "")
  if not n then
    req.body, req.raw, req.bad = "", buf, true
    return req, ""
  end
  if #buf < at + n - 1 then return nil end
  req.body = buf:sub(at, at + n - 1)
  req.raw = buf:sub(1, at + n - 1)
  return req, buf:sub(at + n)
end

-- Starts listening on 127.0.0.1 (or <host>). Returns the origin:
--   o.port, o.authority ("127.0.0.1:port"), o.accepted (connections so far)
--   o.next_request(timeout) -> conn, req: the next whole request on any
--       connection (accepting new ones meanwhile), or nil on timeout
--   o.close()
-- A conn: conn.id (1, 2, ... in accept order), conn.send(bytes),
-- conn.close(), conn.closed (the proxy closed it), conn.extra() (bytes
-- received after the last whole request).
function M.new(host)
  local srv = assert(socket.tcp())
  assert(srv:bind(host or "127.0.0.1", 0))
  assert(srv:listen(64))
  local _, port = srv:getsockname()
  local o = { port = tonumber(port), accepted = 0, conns = {} }
  o.authority = (host or "127.0.0.1") .. ":" .. o.port

  local function add(sock)
    o.accepted = o.accepted + 1
    sock:settimeout(0)
    sock:setoption("tcp-nodelay", true)
    local c = { id = o.accepted, sock = sock, buf = "", queue = {} }
    function c.send(bytes)
      sock:settimeout(5)
      local i = 1
      while i <= #bytes do
        local last, err, lastp = sock:send(bytes, i)
        if not last then
          if err ~= "timeout" then return nil, err end
          i = lastp + 1
        else
          i = last + 1
        end
      end
      sock:settimeout(0)
      return true
    end
    function c.close()
      if not c.closed then sock:close() end
      c.closed = true
    end
    function c.extra() return c.buf end
    o.conns[#o.conns + 1] = c
    return c
  end

  -- Reads what a connection has; queues the whole requests found.
  local function drain(c)
    while true do
      local data, err, partial = c.sock:receive(65536)
      data = data or partial
      if data and #data > 0 then c.buf = c.buf .. data end
      if err and err ~= "timeout" then
        c.sock:close()
        c.closed = true
        break
      end
      if not data or #data == 0 or err == "timeout" then break end
    end
    while true do
      local req, rest = split_request(c.buf)
      if not req then break end
      c.buf = rest
      c.queue[#c.queue + 1] = req
    end
  end

  function o.next_request(timeout)
    local deadline = socket.gettime() + (timeout or 5)
    while true do
      for _, c in ipairs(o.conns) do
        if #c.queue > 0 then return c, table.remove(c.queue, 1) end
      end
      local left = deadline - socket.gettime()
      if left <= 0 then return nil end
      local watch = { srv }
      for _, c in ipairs(o.conns) do
        if not c.closed then watch[#watch + 1] = c.sock end
      end
      local ready = socket.select(watch, nil, left)
      for _, sk in ipairs(ready) do
        if sk == srv then
          srv:settimeout(0)
          local s = srv:accept()
          if s then add(s) end
        else
          for _, c in ipairs(o.conns) do
            if c.sock == sk and not c.closed then drain(c) end
          end
        end
      end
    end
  end

  function o.close()
    for _, c in ipairs(o.conns) do c.close() end
    srv:close()
  end
  return o
end

return M
