-- A name with two addresses, the first of which never answers, for the
-- specs of trying address after address: twice.test is [::1] (an accept
-- queue filled and never drained, so the kernel drops further SYNs) and
-- then 127.0.0.1 (a server the spec accepts on), on the same port. The
-- name comes from an /etc/hosts of the proxy's own, in a private mount
-- namespace: there is no DNS server here to give one.
--
-- What it owns: the sockets and the hosts file. What it doesn't: the proxy
-- (start it with .prefix) and any assertion.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local socket = require("socket")

local M = {}

-- Returns { port =, server = (the live address's listening socket),
-- prefix = (for start_proxy's opts), close = function }, or nil and why
-- the machine cannot do it (for pending()).
function M.open()
  if not h.sh("unshare -m true 2>/dev/null && echo yes"):find("yes", 1, true) then
    return nil, "unshare -m is not allowed here"
  end
  local server = assert(socket.bind("127.0.0.1", 0))
  server:settimeout(5)
  local _, port = server:getsockname()
  local hole = socket.tcp6()
  assert(hole:setoption("ipv6-v6only", true))
  if not hole:bind("::1", port) then
    server:close()
    return nil, "no IPv6 loopback here"
  end
  assert(hole:listen(0))
  local fillers, hangs = {}, false
  for _ = 1, 16 do
    local c = socket.tcp6()
    c:settimeout(0.3)
    fillers[#fillers + 1] = c
    local ok, err = c:connect("::1", port)
    if not ok then hangs = (err == "timeout"); break end
  end
  local function close()
    for _, c in ipairs(fillers) do c:close() end
    hole:close()
    server:close()
  end
  if not hangs then
    close()
    return nil, "cannot make a loopback connect hang here (accept queue never fills)"
  end
  local hosts = h.tmpfile("127.0.0.1 localhost\n::1 twice.test\n127.0.0.1 twice.test\n", "hosts")
  return {
    port = port,
    server = server,
    prefix = "unshare -m sh -c 'mount --bind " .. hosts .. " /etc/hosts && exec \"$0\" \"$@\"'",
    close = close,
  }
end

-- Accepts the proxy's connection to the live address, reads its request
-- head and answers "yes". Returns true, or nil and why.
function M.answer(d)
  local up, err = d.server:accept()
  if not up then return nil, "the next address was never tried: " .. tostring(err) end
  up:settimeout(5)
  repeat
    local line, rerr = up:receive("*l")
    if not line then up:close(); return nil, "reading the request: " .. tostring(rerr) end
  until line == ""
  local ok, serr = up:send("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes")
  up:close()
  return ok and true, serr
end

return M
