-- idle_clients.lua - what an idle keep-alive connection costs a server.
--
--   lua5.4 tests/bench/idle_clients.lua HOST PORT TARGET HOSTFIELD COUNT ROOT_PID
--
-- Opens COUNT connections to HOST:PORT one after another, sends one
-- "GET TARGET HTTP/1.1" on each (TARGET is an absolute URL for a forward
-- proxy, a path for a server), reads the whole response and keeps the
-- connection open. With all of them open and idle it reads the summed VmRSS
-- of the process tree under ROOT_PID (the server: parent and workers) and
-- compares it with the reading taken before the first connection. Then it
-- checks that the server kept the connections open, closes them all and
-- prints one line:
--
--   IDLE opened=N ok=N failed=N still_open=N rss_before_kib=N
--        rss_after_kib=N per_conn_kib=F procs=N
--
-- per_conn_kib is (after - before) / ok. The caller must allow COUNT open
-- files (ulimit -n). Blocking luasocket calls with a timeout, so no select()
-- and no FD_SETSIZE limit. Loopback only; bounded by the timeouts below.

package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local proc = require("proc")
local socket = require("socket")

local host, port, target, host_field = arg[1], tonumber(arg[2]), arg[3], arg[4]
local count, root = tonumber(arg[5]), arg[6]
if not (host and port and target and host_field and count and root) then
  io.stderr:write("usage: idle_clients.lua HOST PORT TARGET HOSTFIELD COUNT ROOT_PID\n")
  os.exit(2)
end

local TIMEOUT = 5       -- seconds for any one connect, send or receive
local MAX_FAILURES = 50 -- give up early if the server refuses us

-- Reads one response off <c>; returns its status or nil and an error. Only
-- what the benchmark's origin and proxies send is handled: a body framed by
-- Content-Length, or chunked.
local function read_response(c)
  local line, err = c:receive("*l")
  if not line then return nil, "status line: " .. err end
  local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
  if not status then return nil, "bad status line" end
  local length, chunked = 0, false
  while true do
    local h, herr = c:receive("*l")
    if not h then return nil, "head: " .. herr end
    if h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    if name and name:lower() == "content-length" then length = tonumber(value) or 0 end
    if name and name:lower() == "transfer-encoding" and value:lower():find("chunked") then chunked = true end
  end
  if chunked then
    while true do
      local size_line, serr = c:receive("*l")
      if not size_line then return nil, "chunk size: " .. serr end
      local size = tonumber(size_line:match("^%x+"), 16)
      if not size then return nil, "bad chunk size" end
      if size == 0 then
        repeat
          local t, terr = c:receive("*l")
          if not t then return nil, "trailer: " .. terr end
        until t == ""
        break
      end
      local _, berr = c:receive(size + 2)
      if berr then return nil, "chunk: " .. berr end
    end
  elseif length > 0 then
    local _, berr = c:receive(length)
    if berr then return nil, "body: " .. berr end
  end
  return status
end

local request = "GET " .. target .. " HTTP/1.1\r\nHost: " .. host_field .. "\r\n\r\n"

socket.sleep(0.5) -- let the server settle after the previous run
local before = proc.tree_rss_kib(root)

local conns, ok, failed, first_error = {}, 0, 0, nil
for _ = 1, count do
  local c = socket.tcp()
  c:settimeout(TIMEOUT)
  local res, err = c:connect(host, port)
  if res then
    res, err = c:send(request)
  end
  local status
  if res then
    status, err = read_response(c)
  end
  if status == 200 then
    ok = ok + 1
    conns[#conns + 1] = c
  else
    failed = failed + 1
    first_error = first_error or (err or ("status " .. tostring(status)))
    c:close()
    if failed >= MAX_FAILURES then break end
  end
end

socket.sleep(1) -- let lazily freed buffers settle before reading
local after, procs = proc.tree_rss_kib(root)

-- A connection the server has closed reads as "closed"; an open, idle one
-- times out at once.
local still_open = 0
for _, c in ipairs(conns) do
  c:settimeout(0)
  local _, err = c:receive(1)
  if err == "timeout" then still_open = still_open + 1 end
end
for _, c in ipairs(conns) do c:close() end

print(string.format(
  "IDLE opened=%d ok=%d failed=%d still_open=%d rss_before_kib=%d rss_after_kib=%d per_conn_kib=%.2f procs=%d",
  ok + failed, ok, failed, still_open, before, after, ok > 0 and (after - before) / ok or 0, procs))
if first_error then
  io.stderr:write("idle_clients: first failure: " .. first_error .. "\n")
end
