-- One socket.select() loop serving every connection in its own coroutine,
-- for the test origins: support/origin.lua and tests/soak/bad_origin.lua.
--
-- What it owns: the listening socket, accepting, and resuming each
-- connection's coroutine when its socket is ready or its timer is due. A
-- connection waits only through fill, send_all and sleep, which yield back
-- to the loop, so a slow, stalled or streaming connection never holds up
-- the others. What it doesn't: HTTP; the handler reads and sends.
--
-- The origins load it with
--   package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
--
-- Only Lua 5.4 and luasocket.

local socket = require("socket")

local loop = {}

------------------------------------------------------------------------------
-- Scheduler. A connection coroutine yields one of:
--   "r", sock        wait until sock is readable
--   "w", sock        wait until sock is writable
--   "t", seconds     wait for a timer
-- and the loop resumes it when that happens.

local wait_read, wait_write = {}, {}   -- sock -> coroutine
local timers = {}                      -- list of {at = time, co = coroutine}
local sockets_of = {}                  -- coroutine -> socket, to close on error
local name = "serve_loop"              -- for error messages

local function park(co, kind, what)
  if kind == "r" then
    wait_read[what] = co
  elseif kind == "w" then
    wait_write[what] = co
  elseif kind == "t" then
    timers[#timers + 1] = { at = socket.gettime() + what, co = co }
  end
end

-- A connection that fails is logged and its socket closed; the others go on.
local function resume(co, ...)
  local ok, kind, what = coroutine.resume(co, ...)
  if not ok then
    io.stderr:write(name, ": connection error: ", tostring(kind), "\n")
    local s = sockets_of[co]
    if s then s:close() end
    sockets_of[co] = nil
  elseif coroutine.status(co) == "dead" then
    sockets_of[co] = nil
  else
    park(co, kind, what)
  end
end

function loop.sleep(seconds)
  coroutine.yield("t", seconds)
end

------------------------------------------------------------------------------
-- Connection I/O. A conn is {sock = , buf = ""}: bytes read but not yet
-- consumed stay in buf, so head parsing can over-read into the body.

-- Reads whatever is available (at least one byte) into c.buf.
-- Returns false on EOF or error.
function loop.fill(c)
  while true do
    local data, err, partial = c.sock:receive(65536)
    data = data or partial
    if data and #data > 0 then
      c.buf = c.buf .. data
      return true
    end
    if err ~= "timeout" then return false end
    coroutine.yield("r", c.sock)
  end
end

-- Sends all of data, waiting for writability between partial sends.
-- Returns false if the peer went away.
function loop.send_all(sock, data)
  local i = 1
  while i <= #data do
    local last, err, lastp = sock:send(data, i)
    if last then
      i = last + 1
    elseif err == "timeout" then
      i = lastp + 1
      coroutine.yield("w", sock)
    else
      return false
    end
  end
  return true
end

------------------------------------------------------------------------------
-- Main loop

-- Binds opts.host (default 127.0.0.1) on an ephemeral port, prints the port
-- on stdout, and runs opts.handle(sock) in a new coroutine for every
-- connection until opts.lifetime seconds have passed: a safety net, so an
-- origin whose test died before its teardown does not run forever. The
-- handler closes its socket. opts.name prefixes error messages.
function loop.serve(opts)
  name = opts.name
  local host = opts.host or "127.0.0.1"
  local server = assert(host:find(":", 1, true) and socket.tcp6() or socket.tcp())
  server:setoption("reuseaddr", true)  -- best effort; not needed for port 0
  assert(server:bind(host, 0))
  assert(server:listen(opts.backlog or 128))
  server:settimeout(0)
  local _, port = server:getsockname()
  io.stdout:write(port, "\n")
  io.stdout:flush()

  local started = socket.gettime()
  while socket.gettime() - started < opts.lifetime do
    local rl, wl = { server }, {}
    for s in pairs(wait_read) do rl[#rl + 1] = s end
    for s in pairs(wait_write) do wl[#wl + 1] = s end

    local now = socket.gettime()
    local timeout = 1
    for _, t in ipairs(timers) do
      timeout = math.min(timeout, math.max(0, t.at - now))
    end

    local readable, writable = socket.select(rl, wl, timeout)

    for _, s in ipairs(readable) do
      if s == server then
        -- Accept everything that is queued.
        while true do
          local client = server:accept()
          if not client then break end
          client:settimeout(0)
          local co = coroutine.create(opts.handle)
          sockets_of[co] = client
          resume(co, client)
        end
      else
        local co = wait_read[s]
        if co then
          wait_read[s] = nil
          resume(co)
        end
      end
    end
    for _, s in ipairs(writable) do
      local co = wait_write[s]
      if co then
        wait_write[s] = nil
        resume(co)
      end
    end

    now = socket.gettime()
    local due, keep = {}, {}
    for _, t in ipairs(timers) do
      if t.at <= now then due[#due + 1] = t.co else keep[#keep + 1] = t end
    end
    timers = keep
    for _, co in ipairs(due) do resume(co) end
  end
end

return loop
