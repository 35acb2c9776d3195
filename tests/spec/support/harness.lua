-- Helpers shared by the luaproxy end-to-end specs.
--
-- Specs load it with
--   package.path = "tests/spec/?.lua;" .. package.path
--   local h = require("support.harness")
--
-- What it owns: starting and stopping the proxy and the test origin
-- (support/origin.lua) as background processes, tracked by PID; raw socket
-- clients and an HTTP/1.1 response reader strict enough to judge the proxy's
-- framing; a curl wrapper. What it doesn't: any assertion. Readers return
-- what they saw (including "incomplete" and "closed") and the spec decides.
--
-- Only Lua 5.4 + luasocket: processes are started through /bin/sh, and
-- the sleeps here are short pauses inside bounded polling loops, never a
-- substitute for an event we could wait on.

local socket = require("socket")

local h = {}

h.DEFAULT_TIMEOUT = 5

------------------------------------------------------------------------------
-- Small utilities

local function script_dir()
  local src = debug.getinfo(1, "S").source
  return (src:sub(2):match("^(.*)/[^/]*$")) or "."
end
local SUPPORT_DIR = script_dir()

-- Quotes a string for /bin/sh.
function h.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
local q = h.shell_quote

function h.now() return socket.gettime() end
function h.sleep(seconds) socket.sleep(seconds) end

function h.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function h.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  return path
end

-- Runs a shell command; returns its stdout and exit status.
function h.sh(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

-- Polls fn() every <interval> seconds until it returns a truthy value or
-- <timeout> seconds pass. Returns fn's value, or nil on timeout.
function h.wait_for(fn, timeout, interval)
  local deadline = socket.gettime() + (timeout or h.DEFAULT_TIMEOUT)
  interval = interval or 0.02
  while true do
    local v = fn()
    if v then return v end
    if socket.gettime() >= deadline then return nil end
    socket.sleep(interval)
  end
end

-- One scratch directory per spec file run; every process gets a subdirectory.
local scratch
local scratch_n = 0
local function new_dir(prefix)
  if not scratch then
    scratch = h.sh("mktemp -d /tmp/luaproxy-spec.XXXXXX"):gsub("%s+$", "")
    assert(scratch ~= "", "mktemp failed")
  end
  scratch_n = scratch_n + 1
  local d = string.format("%s/%s%d", scratch, prefix, scratch_n)
  assert(os.execute("mkdir -p " .. q(d)))
  return d
end

-- Writes data to a fresh scratch file and returns its path (for curl bodies).
function h.tmpfile(data, name)
  local d = new_dir("tmp")
  return h.write_file(d .. "/" .. (name or "data"), data or "")
end

-- The deterministic body the origin's /bytes and /close routes send: 64
-- distinct bytes repeated, so a misplaced or dropped piece shows up.
h.PATTERN64 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-\n"
function h.pattern(n, offset)
  offset = offset or 0
  local start = offset % 64
  return (h.PATTERN64:rep((start + n) // 64 + 1)):sub(start + 1, start + n)
end

------------------------------------------------------------------------------
-- Processes
--
-- A process is started by a background subshell that records the PID of the
-- real program (not of a wrapper shell) and, when it ends, its exit status.
-- The subshell is its parent, so there are no zombies for `kill -0` to
-- mistake for live processes, and the spec can read the exit status.

local live = {}   -- pid -> process table, for h.stop_all()

local function start_process(cmd, dir)
  local pidfile, rcfile = dir .. "/pid", dir .. "/rc"
  local script = string.format(
    "( %s >%s 2>%s </dev/null & echo $! >%s.tmp; mv %s.tmp %s; wait $!; echo $? >%s.tmp; mv %s.tmp %s )"
      .. " >/dev/null 2>&1 </dev/null &",
    cmd, q(dir .. "/stdout"), q(dir .. "/stderr"), q(pidfile), q(pidfile), q(pidfile),
    q(rcfile), q(rcfile), q(rcfile))
  assert(os.execute(script))
  local pid = h.wait_for(function()
    local s = h.read_file(pidfile)
    return s and tonumber(s:match("%d+"))
  end, 5)
  assert(pid, "process did not start: " .. cmd)
  local p = { pid = pid, dir = dir, cmd = cmd }

  -- Exit status once the process has ended, else nil.
  function p.exit_code()
    local s = h.read_file(rcfile)
    return s and tonumber(s:match("%d+"))
  end
  function p.alive() return p.exit_code() == nil end
  -- Waits up to <timeout> seconds for the process to end; returns the code.
  function p.wait_exit(timeout)
    return h.wait_for(p.exit_code, timeout or 5, 0.02)
  end
  function p.signal(sig)
    if p.alive() then os.execute(string.format("kill -%s %d 2>/dev/null", sig, pid)) end
  end
  -- SIGTERM, wait (bounded) for exit, then SIGKILL. Safe to call twice.
  -- Returns the exit status.
  function p.stop(grace)
    if p.alive() then
      p.signal("TERM")
      if not p.wait_exit(grace or 12) then
        p.signal("KILL")
        p.wait_exit(5)
      end
    end
    live[pid] = nil
    return p.exit_code()
  end
  function p.stdout() return h.read_file(dir .. "/stdout") or "" end
  function p.stderr() return h.read_file(dir .. "/stderr") or "" end

  live[pid] = p
  return p
end

-- Stops the given processes (a list; nil holes allowed up to n) in reverse
-- order, for after_each. Returns nil if every proxy among them exited
-- with status 0, as SIGTERM must, else a message with the proxy's stderr.
-- Checking this after each test also catches crashes and sanitizer
-- reports that a passing exchange would hide.
function h.stop_procs(procs, n)
  local problems = {}
  for i = (n or #procs), 1, -1 do
    local p = procs[i]
    if p then
      local code = p.stop()
      if p.is_proxy and code ~= 0 then
        problems[#problems + 1] = string.format("proxy %d exited with status %s; stderr:\n%s",
          p.pid, tostring(code), p.stderr():sub(-3000))
      end
    end
  end
  if #problems > 0 then return table.concat(problems, "\n") end
  return nil
end

-- Stops everything this harness started and is still running (for a
-- teardown that wants to be sure).
function h.stop_all()
  for _, p in pairs(live) do p.stop(2) end
end

------------------------------------------------------------------------------
-- Redis (for proxy.shared): a throwaway redis-server on a loopback port
-- that was free a moment ago, without persistence. Returns the process with
-- .port and .url, once it accepts connections.

function h.start_redis(port)
  if not port then
    local probe = assert(socket.bind("127.0.0.1", 0))
    port = select(2, probe:getsockname())
    probe:close()
  end
  local dir = new_dir("redis")
  local p = start_process(string.format(
    "exec redis-server --bind 127.0.0.1 --port %d --save '' --appendonly no --dir %s",
    port, q(dir)), dir)
  p.port = tonumber(port)
  p.url = "redis://127.0.0.1:" .. port
  local up = h.wait_for(function()
    local c = socket.tcp()
    c:settimeout(0.2)
    local ok = c:connect("127.0.0.1", p.port)
    c:close()
    return ok
  end, 5)
  if not up then
    p.stop(2)
    error("redis-server did not start: " .. p.stdout() .. p.stderr())
  end
  return p
end

------------------------------------------------------------------------------
-- Test origin

-- Parses origin.lua's record file: a list of {head=, body=} with raw bytes,
-- plus for chunked bodies {decoded=, trailers=}. A torn last record (still
-- being written) is left out.
function h.parse_records(data)
  local out, pos = {}, 1
  while true do
    local hl, bl, after = data:match("^R (%d+) (%d+)\n()", pos)
    if not hl then break end
    hl, bl = tonumber(hl), tonumber(bl)
    if after + hl + bl - 1 > #data then break end
    local r = { head = data:sub(after, after + hl - 1),
                body = data:sub(after + hl, after + hl + bl - 1) }
    r.request_line = r.head:match("^([^\r\n]*)")
    r.method, r.target = r.request_line:match("^(%S+) (%S+)")
    r.headers = h.parse_header_block(r.head:match("^[^\n]*\n(.*)$") or "")
    if (r.headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
      r.decoded, r.trailers = h.decode_chunked(r.body)
    else
      r.decoded = r.body
    end
    out[#out + 1] = r
    pos = after + hl + bl
  end
  return out
end

-- Starts origin.lua. <mode>: nil for the HTTP origin, "echo" for the TCP
-- echo server, or a table {echo = bool, host = "::1"}.
-- Returns {port, pid, host, stop(), requests(), wait_requests(n), url(path)}.
function h.start_origin(mode)
  local opts = type(mode) == "table" and mode or { echo = (mode == "echo") }
  local dir = new_dir("origin")
  local record = dir .. "/record"
  local args = { "lua5.4", q(SUPPORT_DIR .. "/origin.lua") }
  if opts.host then args[#args + 1] = "--host " .. q(opts.host) end
  args[#args + 1] = opts.echo and "--echo" or q(record)
  local p = start_process(table.concat(args, " "), dir)
  local port = h.wait_for(function()
    local s = h.read_file(dir .. "/stdout")
    return s and tonumber(s:match("^(%d+)\n"))
  end, 5)
  if not port then
    p.stop(1)
    error("origin did not start: " .. p.stderr())
  end
  p.port = port
  p.host = opts.host or "127.0.0.1"
  p.record_file = record
  -- "host:port" as it appears in a URL or Host header.
  p.authority = (p.host:find(":", 1, true) and "[" .. p.host .. "]" or p.host) .. ":" .. port
  function p.url(path) return "http://" .. p.authority .. (path or "") end
  function p.requests() return h.parse_records(h.read_file(record) or "") end
  -- Waits (bounded) until at least n requests were recorded; returns them.
  function p.wait_requests(n, timeout)
    return h.wait_for(function()
      local r = p.requests()
      return #r >= n and r or nil
    end, timeout or h.DEFAULT_TIMEOUT)
  end
  return p
end

-- Starts <cmd> (a /bin/sh command line; use "exec prog ..." so signals reach
-- the program) in the background; returns the process table.
function h.start_command(cmd)
  return start_process(cmd, new_dir("cmd"))
end

-- Starts the stand-in parent proxy (support/parent.lua); <mode> nil or
-- "hang". Returns the process with port, url(userinfo), requests() (the
-- recorded heads) and wait_requests(n).
function h.start_parent(mode)
  local dir = new_dir("parent")
  local record = dir .. "/record"
  local p = start_process(table.concat({ "lua5.4", q(SUPPORT_DIR .. "/parent.lua"), q(record),
                                         mode and q(mode) or "" }, " "), dir)
  p.port = h.wait_for(function()
    local s = h.read_file(dir .. "/stdout")
    return s and tonumber(s:match("^(%d+)\n"))
  end, 5)
  if not p.port then
    p.stop(1)
    error("parent did not start: " .. p.stderr())
  end
  function p.url(userinfo)
    return "http://" .. (userinfo and userinfo .. "@" or "") .. "127.0.0.1:" .. p.port
  end
  function p.requests()
    local out, data, pos = {}, h.read_file(record) or "", 1
    while true do
      local len, after = data:match("^R (%d+)\n()", pos)
      if not len then break end
      local head = data:sub(after, after + tonumber(len) - 1)
      if #head < tonumber(len) then break end
      out[#out + 1] = head
      pos = after + tonumber(len)
    end
    return out
  end
  function p.wait_requests(n)
    return h.wait_for(function()
      local r = p.requests()
      return #r >= n and r or nil
    end)
  end
  return p
end

------------------------------------------------------------------------------
-- Proxy

function h.bin()
  return os.getenv("LUAPROXY_BIN") or "build/luaproxy"
end

local function has_flag(args, ...)
  for _, a in ipairs(args) do
    for _, f in ipairs({ ... }) do
      if a == f or a:sub(1, #f + 1) == f .. "=" then return true end
    end
  end
  return false
end

-- Starts the proxy with <args> (a list of strings). Adds
-- `--listen 127.0.0.1:0` and `--access-log FILE` unless args already have
-- them. Waits (bounded) for the `listening on` line(s) on stderr.
-- <opts>: {listeners = n (default 1), wait = false to skip waiting,
--          env = {NAME = value} for the proxy's environment,
--          access_log = false to add no --access-log (a config file
--          gives it; the command line's would win),
--          fd_limit = n to start it under `ulimit -n n`,
--          umask = "022" to start it under that umask,
--          prefix = shell words to run it through, which get the
--          binary and its arguments after them (`unshare -m sh -c '...
--          exec "$0" "$@"'`)}.
-- Returns {port, ports, pid, stop(), log(), access_log(), rss_kb(),
-- fd_count(), cpu_ticks(), signal(), wait_exit(), exit_code(), alive()}.
function h.start_proxy(args, opts)
  args = args or {}
  opts = opts or {}
  local dir = new_dir("proxy")
  local full = {}
  for _, a in ipairs(args) do full[#full + 1] = a end
  if not has_flag(args, "--listen", "-l") then
    full[#full + 1] = "--listen"; full[#full + 1] = "127.0.0.1:0"
  end
  -- One process unless a test asks for workers: the specs measure the
  -- proxy's own RSS, descriptors and CPU by its PID.
  if not has_flag(args, "--workers", "-w") then
    full[#full + 1] = "--workers"; full[#full + 1] = "1"
  end
  local access = dir .. "/access.log"
  if not has_flag(args, "--access-log") and opts.access_log ~= false then
    full[#full + 1] = "--access-log"; full[#full + 1] = access
  end
  local cmd = {}
  if opts.fd_limit then cmd[#cmd + 1] = string.format("ulimit -n %d;", opts.fd_limit) end
  if opts.umask then cmd[#cmd + 1] = string.format("umask %s;", opts.umask) end
  for name, value in pairs(opts.env or {}) do cmd[#cmd + 1] = name .. "=" .. q(value) end
  if opts.prefix then cmd[#cmd + 1] = opts.prefix end
  cmd[#cmd + 1] = q(h.bin())
  for _, a in ipairs(full) do cmd[#cmd + 1] = q(a) end
  local p = start_process(table.concat(cmd, " "), dir)
  p.is_proxy = true
  p.args = full
  p.access_log_file = access

  function p.log() return p.stderr() end
  function p.access_log() return h.read_file(access) or "" end
  -- Resident set size in KiB, or nil if the process is gone.
  function p.rss_kb()
    local s = h.read_file("/proc/" .. p.pid .. "/status")
    return s and tonumber(s:match("VmRSS:%s*(%d+)"))
  end
  -- The most it was ever resident (VmHWM), in KiB, or nil if it is gone.
  function p.peak_rss_kb()
    local s = h.read_file("/proc/" .. p.pid .. "/status")
    return s and tonumber(s:match("VmHWM:%s*(%d+)"))
  end
  function p.fd_count()
    local out = h.sh("ls /proc/" .. p.pid .. "/fd 2>/dev/null | wc -l")
    return tonumber(out:match("%d+"))
  end
  -- Stops the proxy (SIGSTOP) and waits until it is stopped; p.go_on()
  -- continues it. What reaches its sockets meanwhile is handled in the
  -- same turn of its loop once it goes on: epoll reports the sockets in
  -- the order they became ready, and libev runs one turn's events last
  -- first. How a spec arranges the order of two events.
  function p.pause()
    p.signal("STOP")
    assert(h.wait_for(function()
      local s = h.read_file("/proc/" .. p.pid .. "/stat") or ""
      return s:match("%) (%a)") == "T"
    end), "the proxy did not stop")
  end
  function p.go_on() p.signal("CONT") end
  -- utime + stime in clock ticks (fields 14 and 15 of /proc/PID/stat).
  function p.cpu_ticks()
    local s = h.read_file("/proc/" .. p.pid .. "/stat")
    if not s then return nil end
    local rest = s:match("%) (.*)$")   -- skip "pid (comm)": comm may hold spaces
    local fields = {}
    for f in rest:gmatch("%S+") do fields[#fields + 1] = f end
    -- rest starts at field 3 (state), so field N is fields[N - 2]
    return tonumber(fields[12]) + tonumber(fields[13])
  end
  -- Waits (bounded) until the log (stderr) holds <text> (plain). The proxy
  -- writes its logs from a thread of their own, a moment after the event:
  -- a spec that looks for a line waits for it. True, or nil.
  function p.log_has(text, timeout)
    return h.wait_for(function()
      return p.log():find(text, 1, true) ~= nil
    end, timeout or h.DEFAULT_TIMEOUT)
  end
  -- Waits (bounded) for an access log line matching a Lua pattern.
  function p.wait_access_log(pat, timeout)
    return h.wait_for(function()
      for line in p.access_log():gmatch("[^\n]+") do
        if line:find(pat) then return line end
      end
    end, timeout or h.DEFAULT_TIMEOUT)
  end

  if opts.wait == false then return p end
  local want = opts.listeners or 1
  local ports = h.wait_for(function()
    local found = {}
    for port in p.stderr():gmatch("listening on %S-:(%d+)%s") do
      found[#found + 1] = tonumber(port)
    end
    if #found >= want then return found end
    if not p.alive() then return false end
  end, 5)
  if not ports then
    local log = p.stderr()
    p.stop(2)
    error("proxy did not start (" .. table.concat(cmd, " ") .. "):\n" .. log)
  end
  p.ports = ports
  p.port = ports[1]
  return p
end

-- Where the hook specs' scripts live, loaded by name.
h.HOOK_FIXTURES = "tests/spec/fixtures/hooks/"

-- Proxy arguments that load hook scripts: `-s FILE` for each of <scripts>
-- (a fixture's name without .lua, or a path with a slash), then <args>.
function h.hook_args(scripts, args)
  local full = {}
  for _, name in ipairs(scripts) do
    full[#full + 1] = "-s"
    full[#full + 1] = name:find("/", 1, true) and name or (h.HOOK_FIXTURES .. name .. ".lua")
  end
  for _, a in ipairs(args or {}) do full[#full + 1] = a end
  return full
end

-- Runs the proxy to completion (for option parsing tests).
-- Returns exit status, stdout, stderr. Kills it after <timeout> seconds.
function h.run_proxy(args, timeout)
  local p = h.start_proxy(args, { wait = false })
  if not p.wait_exit(timeout or 5) then p.stop(1) end
  return p.exit_code(), p.stdout(), p.stderr()
end

------------------------------------------------------------------------------
-- Sockets
--
-- Bytes read past the end of one response are kept per socket (pending[]),
-- so read_response can be called again on the same socket for keep-alive
-- and pipelining. Read through h.* helpers on sockets you pass to
-- read_response, or call h.take_pending(sock) first.

local pending = setmetatable({}, { __mode = "k" })
local eof = setmetatable({}, { __mode = "k" })

-- Opens a TCP connection to host:port (default 127.0.0.1) with a timeout.
-- A plain TCP listener on 127.0.0.1 and an ephemeral port, for a spec that
-- plays the upstream itself, byte by byte. Returns the socket (accept
-- waits 5 s at most), its port and "127.0.0.1:PORT".
function h.raw_listener()
  local server = assert(socket.bind("127.0.0.1", 0))
  server:settimeout(5)
  local _, port = server:getsockname()
  port = tonumber(port)
  return server, port, "127.0.0.1:" .. port
end

-- Reads a request head from an accepted socket, up to its blank line.
function h.skip_head(sock)
  sock:settimeout(5)
  repeat local line = assert(sock:receive("*l")) until line == ""
end

function h.connect(port, host, timeout)
  host = host or "127.0.0.1"
  local s = host:find(":", 1, true) and socket.tcp6() or socket.tcp()
  s:settimeout(timeout or h.DEFAULT_TIMEOUT)
  local ok, err = s:connect(host, port)
  if not ok then
    s:close()
    return nil, err
  end
  s:setoption("tcp-nodelay", true)
  s:settimeout(timeout or h.DEFAULT_TIMEOUT)
  return s
end

-- Sends all of data; returns true or nil, err.
function h.send(sock, data)
  local i = 1
  while i <= #data do
    local last, err, lastp = sock:send(data, i)
    if not last then
      if err ~= "timeout" then return nil, err end
      i = lastp + 1
    else
      i = last + 1
    end
  end
  return true
end

-- Receives what is available (waiting up to <deadline>) into pending.
-- Returns true if bytes arrived, false on EOF/error, nil on timeout.
local function fill(sock, deadline)
  if eof[sock] then return false, eof[sock] end
  local left = deadline - socket.gettime()
  if left <= 0 then return nil, "timeout" end
  if not sock:dirty() then
    local r = socket.select({ sock }, nil, left)
    if #r == 0 then return nil, "timeout" end
  end
  local old = sock:gettimeout()
  sock:settimeout(0)
  local data, err, partial = sock:receive(65536)
  sock:settimeout(old)
  data = data or partial
  if data and #data > 0 then
    pending[sock] = (pending[sock] or "") .. data
    if err and err ~= "timeout" then eof[sock] = err end
    return true
  end
  if err == "timeout" then return nil, "timeout" end
  eof[sock] = err or "closed"
  return false, eof[sock]
end

-- Returns and clears bytes already read from sock but not consumed.
function h.take_pending(sock)
  local s = pending[sock] or ""
  pending[sock] = nil
  return s
end

-- Reads exactly n bytes. Returns data (possibly short) and nil or an error
-- ("closed"/"timeout") when short.
function h.recv_exact(sock, n, timeout)
  local deadline = socket.gettime() + (timeout or h.DEFAULT_TIMEOUT)
  while #(pending[sock] or "") < n do
    local ok, err = fill(sock, deadline)
    if not ok then
      return h.take_pending(sock), err or "timeout"
    end
  end
  local buf = pending[sock]
  pending[sock] = buf:sub(n + 1)
  return buf:sub(1, n)
end

-- Reads until the peer closes or <timeout>. Returns data and "closed" or
-- "timeout". The pieces are joined once at the end: adding each to one
-- growing string copies it again every time, and tens of MiB (a HAR
-- export) then cost minutes of copying on a busy machine.
function h.recv_until_close(sock, timeout)
  local deadline = socket.gettime() + (timeout or h.DEFAULT_TIMEOUT)
  local pieces = { h.take_pending(sock) }
  while true do
    local ok, err = fill(sock, deadline)
    pieces[#pieces + 1] = h.take_pending(sock)
    if not ok then
      return table.concat(pieces), (err == "timeout" or err == nil) and "timeout" or "closed"
    end
  end
end

-- Waits (bounded) until bytes wait unread in the receive queue of the TCP
-- socket from 127.0.0.1:<lport> to 127.0.0.1:<rport>, as /proc/net/tcp
-- lists it (a paused proxy's sockets too). True, or nil.
function h.wait_unread(lport, rport)
  return h.wait_for(function()
    for line in io.lines("/proc/net/tcp") do
      local l, r, rx = line:match("^%s*%d+:%s+%x+:(%x+)%s+%x+:(%x+)%s+%x+%s+%x+:(%x+)")
      if l and tonumber(l, 16) == lport and tonumber(r, 16) == rport and tonumber(rx, 16) > 0 then
        return true
      end
    end
  end)
end

-- Reads whatever arrives within <timeout> (at least one read). Returns data
-- (maybe "") and nil, "closed" or "timeout".
function h.recv_some(sock, timeout)
  local deadline = socket.gettime() + (timeout or h.DEFAULT_TIMEOUT)
  if #(pending[sock] or "") > 0 then return h.take_pending(sock) end
  local ok, err = fill(sock, deadline)
  if ok then return h.take_pending(sock) end
  return "", err or "timeout"
end

-- True if the peer closes the connection (EOF or reset) within <timeout>
-- seconds without sending anything more; false if bytes arrive (they stay
-- pending) or the timeout passes.
function h.is_closed(sock, timeout)
  if #(pending[sock] or "") > 0 then return false end
  local ok, err = fill(sock, socket.gettime() + (timeout or 2))
  if ok then return false end
  return err ~= "timeout" and err ~= nil
end

-- Connects, sends bytes, reads until close or timeout, closes.
-- opts: {timeout = s, shutdown = true (half-close after sending), host =}.
-- Returns the raw reply and "closed" or "timeout".
function h.send_raw(port, bytes, opts)
  opts = opts or {}
  local s, err = h.connect(port, opts.host, opts.timeout)
  if not s then return nil, err end
  h.send(s, bytes)
  if opts.shutdown then s:shutdown("send") end
  local data, how = h.recv_until_close(s, opts.timeout or h.DEFAULT_TIMEOUT)
  s:close()
  return data, how
end

------------------------------------------------------------------------------
-- HTTP parsing

-- Parses "Name: value\r\n" lines (up to an empty line) into a table with
-- lower-case name -> value (repeats joined with ", ") and, at integer
-- indexes, the fields in order as {name=, value=, [1]=name, [2]=value}.
function h.parse_header_block(block)
  local t = {}
  for line in block:gmatch("([^\n]*)\n") do
    line = line:gsub("\r$", "")
    if line == "" then break end
    local name, value = line:match("^([^:]+):[ \t]*(.-)[ \t]*$")
    if name then
      t[#t + 1] = { name = name, value = value, name, value }
      local k = name:lower()
      t[k] = t[k] and (t[k] .. ", " .. value) or value
    end
  end
  return t
end

-- Number of header fields named <name> (case-insensitive) in a parsed block.
function h.header_count(headers, name)
  local n = 0
  for _, f in ipairs(headers) do
    if f.name:lower() == name:lower() then n = n + 1 end
  end
  return n
end

-- Decodes a complete chunked body. Returns body, trailers (a header table)
-- or nil, error.
function h.decode_chunked(raw)
  local pos, parts = 1, {}
  while true do
    local size_hex, after = raw:match("^(%x+)[^\r\n]*\r\n()", pos)
    if not size_hex then return nil, "bad chunk size line" end
    local size = tonumber(size_hex, 16)
    pos = after
    if size == 0 then
      local tail = raw:sub(pos)
      return table.concat(parts), h.parse_header_block(tail)
    end
    parts[#parts + 1] = raw:sub(pos, pos + size - 1)
    if raw:sub(pos + size, pos + size + 1) ~= "\r\n" then return nil, "bad chunk end" end
    pos = pos + size + 2
  end
end

-- Reads one response from sock. opts:
--   method = "HEAD" / "CONNECT"  (no body for HEAD; none for 2xx to CONNECT)
--   skip_1xx = true              (collect 100/102/103 in resp.interim)
--   timeout = seconds for the whole response
--   head_only = true             (return after the head; read the body
--                                 with h.recv_exact / h.recv_some)
-- Returns resp = {version, status, reason, status_line, raw_head, headers,
-- header_list, body, trailers, chunked, chunk_sizes, framing
-- ("length"/"chunked"/"close"/"none"), incomplete, error}, or nil, err if
-- no complete head arrived.
function h.read_response(sock, opts)
  opts = opts or {}
  local deadline = socket.gettime() + (opts.timeout or h.DEFAULT_TIMEOUT)
  local interim = {}

  local function need(pred)
    while true do
      local v = pred(pending[sock] or "")
      if v then return v end
      local ok, err = fill(sock, deadline)
      if not ok then return nil, err or "timeout" end
    end
  end

  while true do
    local head_end, err = need(function(buf) return buf:find("\r\n\r\n", 1, true) end)
    if not head_end then
      local partial = pending[sock]
      return nil, (err == "timeout" and "timeout" or "closed"), partial
    end
    local buf = pending[sock]
    local raw_head = buf:sub(1, head_end + 3)
    pending[sock] = buf:sub(head_end + 4)

    local status_line = raw_head:match("^([^\r\n]*)\r\n")
    local version, status, reason = status_line:match("^(HTTP/%d%.%d) (%d%d%d) ?(.*)$")
    local resp = { raw_head = raw_head, status_line = status_line, version = version,
                   status = tonumber(status), reason = reason, interim = interim }
    resp.headers = h.parse_header_block(raw_head:sub(#status_line + 3))
    resp.header_list = resp.headers
    if not resp.status then
      resp.error = "bad status line"
      return resp
    end

    local st = resp.status
    if opts.head_only and not (st >= 100 and st < 200 and st ~= 101 and opts.skip_1xx) then
      -- The caller reads the body itself (h.recv_* see the pending bytes).
      return resp
    end
    if st >= 100 and st < 200 and st ~= 101 and opts.skip_1xx then
      interim[#interim + 1] = resp
    else
      local te = (resp.headers["transfer-encoding"] or ""):lower()
      local cl = resp.headers["content-length"]
      resp.body = ""
      if (st >= 100 and st < 200) or st == 204 or st == 304 or opts.method == "HEAD"
          or (opts.method == "CONNECT" and st >= 200 and st < 300) then
        resp.framing = "none"
      elseif te ~= "" then
        resp.framing = "chunked"
        resp.chunked = true
        resp.chunk_sizes = {}
        local parts = {}
        while true do
          local line_end, e = need(function(b) return b:find("\r\n", 1, true) end)
          if not line_end then resp.incomplete, resp.error = true, e; break end
          local line = pending[sock]:sub(1, line_end - 1)
          pending[sock] = pending[sock]:sub(line_end + 2)
          local hex = line:match("^(%x+)")
          if not hex or #hex > 15 then resp.incomplete, resp.error = true, "bad chunk size"; break end
          local size = tonumber(hex, 16)
          resp.chunk_sizes[#resp.chunk_sizes + 1] = size
          if size == 0 then
            -- trailer section: ends at the first empty line
            local tend, e2 = need(function(b)
              if b:sub(1, 2) == "\r\n" then return 2 end
              local i = b:find("\r\n\r\n", 1, true)
              return i and i + 3
            end)
            if not tend then resp.incomplete, resp.error = true, e2; break end
            local block = pending[sock]:sub(1, tend)
            pending[sock] = pending[sock]:sub(tend + 1)
            resp.raw_trailers = block
            resp.trailers = h.parse_header_block(block)
            break
          end
          local ok, e3 = need(function(b) return #b >= size + 2 end)
          local b = pending[sock] or ""
          if not ok then
            parts[#parts + 1] = b:sub(1, size)
            pending[sock] = ""
            resp.incomplete, resp.error = true, e3
            break
          end
          if b:sub(size + 1, size + 2) ~= "\r\n" then
            resp.incomplete, resp.error = true, "bad chunk end"
            break
          end
          parts[#parts + 1] = b:sub(1, size)
          pending[sock] = b:sub(size + 3)
        end
        resp.body = table.concat(parts)
      elseif cl then
        resp.framing = "length"
        local n = tonumber(cl)
        if not n then
          resp.error = "bad content-length"
          return resp
        end
        local ok, e = need(function(b) return #b >= n end)
        local b = pending[sock] or ""
        resp.body = b:sub(1, n)
        pending[sock] = b:sub(n + 1)
        if not ok then resp.incomplete, resp.error = true, e end
      else
        resp.framing = "close"
        local data, how = h.recv_until_close(sock, deadline - socket.gettime())
        resp.body = data
        if how ~= "closed" then resp.incomplete, resp.error = true, how end
      end
      return resp
    end
  end
end

-- Builds a request. <headers> is a list of "Name: value" strings or
-- {name, value} pairs, sent in order; nothing is added implicitly.
function h.request(method, target, headers, body, version)
  local out = { string.format("%s %s %s\r\n", method, target, version or "HTTP/1.1") }
  for _, hd in ipairs(headers or {}) do
    if type(hd) == "table" then hd = hd[1] .. ": " .. hd[2] end
    out[#out + 1] = hd .. "\r\n"
  end
  out[#out + 1] = "\r\n"
  out[#out + 1] = body or ""
  return table.concat(out)
end

-- GET <url> through the proxy on a fresh connection with a Host header
-- derived from the URL; returns the response (connection closed after).
function h.get(proxy_port, url, extra_headers, opts)
  local authority = url:match("^%a+://([^/?#]+)") or url
  local headers = { "Host: " .. authority }
  for _, x in ipairs(extra_headers or {}) do headers[#headers + 1] = x end
  local s = assert(h.connect(proxy_port))
  h.send(s, h.request((opts and opts.method) or "GET", url, headers))
  local resp, err = h.read_response(s, opts)
  s:close()
  return resp, err
end

------------------------------------------------------------------------------
-- curl

-- Runs curl with <args> (a list; -s and --max-time are added unless given).
-- Returns stdout, exit status, stderr.
function h.curl(args)
  local dir = new_dir("curl")
  local cmd = { "curl", "-s" }
  local has_max = false
  for _, a in ipairs(args) do
    if a == "--max-time" or a == "-m" then has_max = true end
  end
  if not has_max then cmd[#cmd + 1] = "--max-time 10" end
  for _, a in ipairs(args) do cmd[#cmd + 1] = q(a) end
  local out, code = h.sh(table.concat(cmd, " ") .. " 2>" .. q(dir .. "/stderr"))
  return out, code, h.read_file(dir .. "/stderr") or ""
end

------------------------------------------------------------------------------
-- Checks shared by specs

-- The exact shape of a proxy-generated error response (see the contract):
-- returns true or false, reason.
function h.check_error_response(resp, status, reason)
  if not resp then return false, "no response" end
  if resp.status_line ~= string.format("HTTP/1.1 %d %s", status, reason) then
    return false, "status line " .. tostring(resp.status_line)
  end
  if resp.headers["content-type"] ~= "text/plain; charset=utf-8" then
    return false, "content-type " .. tostring(resp.headers["content-type"])
  end
  if tonumber(resp.headers["content-length"]) ~= #(resp.body or "") then
    return false, "content-length mismatch"
  end
  local prefix = string.format("%d %s: ", status, reason)
  if resp.body:sub(1, #prefix) ~= prefix or resp.body:sub(-1) ~= "\n"
      or #resp.body <= #prefix + 1 or resp.body:sub(1, -2):find("\n", 1, true) then
    return false, "body " .. string.format("%q", resp.body)
  end
  return true
end

-- A free-for-the-moment TCP port on 127.0.0.1 nobody listens on.
function h.closed_port()
  local s = socket.tcp()
  assert(s:bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- A port on 127.0.0.1 a connect to which hangs: a listener whose accept
-- queue is full and never drained, so the kernel drops further SYNs and a
-- connect waits for its own timeout. Adds the sockets' close to
-- <cleanups> (a list of functions). Returns the port, or nil where the
-- queue never fills (a kernel that answers such SYNs anyway).
function h.hanging_port(cleanups)
  local listener = socket.tcp()
  assert(listener:bind("127.0.0.1", 0))
  assert(listener:listen(1))
  local _, port = listener:getsockname()
  local fillers = {}
  cleanups[#cleanups + 1] = function()
    for _, f in ipairs(fillers) do f:close() end
    listener:close()
  end
  for _ = 1, 16 do
    local c = socket.tcp()
    c:settimeout(0.3)
    fillers[#fillers + 1] = c
    local ok, err = c:connect("127.0.0.1", port)
    if not ok then return err == "timeout" and tonumber(port) or nil end
  end
  return nil
end

------------------------------------------------------------------------------
-- HTTPS: a test PKI made with the openssl CLI, an HTTPS origin (tls_front.py
-- in front of origin.lua) and a CA directory for the proxy.

-- Makes (once per spec file) a test CA and server certificates signed by
-- it: good (localhost, 127.0.0.1, ::1), expired, wrong (a name no test
-- uses), cn_only (CN=localhost and no subjectAltName) and partial (a
-- partial wildcard, DNS:f*.example.invalid). Returns {dir, ca,
-- good = {cert, key}, expired = {...}, wrong = {...}, ...}.
local pki
function h.test_pki()
  if pki then return pki end
  local dir = new_dir("pki")
  local function run(cmd)
    local out, code = h.sh("cd " .. q(dir) .. " && " .. cmd .. " 2>&1")
    assert(code == 0, cmd .. ":\n" .. out)
  end
  run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key"
    .. " -out ca.pem -days 30 -subj '/CN=luaproxy test CA' -addext basicConstraints=critical,CA:TRUE"
    .. " -addext keyUsage=critical,keyCertSign")
  h.write_file(dir .. "/good.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n")
  h.write_file(dir .. "/wrong.ext", "subjectAltName=DNS:wrong.invalid\n")
  h.write_file(dir .. "/partial.ext", "subjectAltName=DNS:f*.example.invalid\n")
  for _, name in ipairs({ "good", "wrong", "expired", "cn_only", "partial" }) do
    run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " .. name
      .. ".key -out " .. name .. ".csr -subj /CN=" .. (name == "wrong" and "wrong.invalid" or "localhost"))
  end
  run("openssl x509 -req -in good.csr -CA ca.pem -CAkey ca.key -days 30 -extfile good.ext -out good.pem")
  run("openssl x509 -req -in wrong.csr -CA ca.pem -CAkey ca.key -days 30 -extfile wrong.ext -out wrong.pem")
  run("openssl x509 -req -in cn_only.csr -CA ca.pem -CAkey ca.key -days 30 -out cn_only.pem")
  run("openssl x509 -req -in partial.csr -CA ca.pem -CAkey ca.key -days 30 -extfile partial.ext -out partial.pem")
  -- Expired: `openssl ca` is the CLI's way to set explicit dates.
  h.write_file(dir .. "/ca.cnf", table.concat({
    "[ca]", "default_ca = test", "[test]", "database = index.txt", "new_certs_dir = .",
    "serial = serial", "default_md = sha256", "policy = any", "copy_extensions = none",
    "[any]", "commonName = supplied", "" }, "\n"))
  h.write_file(dir .. "/index.txt", "")
  h.write_file(dir .. "/serial", "1000\n")
  run("openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr"
    .. " -out expired.pem -startdate 20200101000000Z -enddate 20210101000000Z -extfile good.ext")
  pki = { dir = dir, ca = dir .. "/ca.pem" }
  for _, name in ipairs({ "good", "wrong", "expired", "cn_only", "partial" }) do
    pki[name] = { cert = dir .. "/" .. name .. ".pem", key = dir .. "/" .. name .. ".key" }
  end
  return pki
end

-- Starts an HTTPS origin: origin.lua behind tls_front.py with certificate
-- <opts.cert> (a name from test_pki: "good", "expired", "wrong", ...;
-- default good; or {cert = FILE, key = FILE}), on opts.host; opts.max_tls = "1.1" makes it an old server
-- ("1.2": no TLS 1.3), opts.client_ca (a CA file) one that requires a
-- client certificate, opts.close_notify one that ends its TLS stream with
-- close_notify (without it: a bare TCP close, which leaves a body the close
-- delimits unproven).
-- Returns the origin (requests(), wait_requests()) with port = the HTTPS
-- port, backend = the plain origin, url(path) = "https://...", stop().
function h.start_https_origin(opts)
  opts = opts or {}
  local p = h.test_pki()
  local backend = h.start_origin({ host = "127.0.0.1", echo = opts.echo })
  local cert = type(opts.cert) == "table" and opts.cert or p[opts.cert or "good"]
  local dir = new_dir("tls_front")
  local front = start_process(table.concat({ "exec python3", q(SUPPORT_DIR .. "/tls_front.py"),
    "--cert", q(cert.cert), "--key", q(cert.key), "--backend", tostring(backend.port),
    "--host", q(opts.host or "127.0.0.1"),
    opts.max_tls and "--max-tls " .. q(opts.max_tls) or "",
    opts.client_ca and "--client-ca " .. q(opts.client_ca) or "",
    opts.close_notify and "--close-notify" or "" }, " "), dir)
  local port = h.wait_for(function()
    local s = h.read_file(dir .. "/stdout")
    return s and tonumber(s:match("^(%d+)\n"))
  end, 10)
  if not port then
    front.stop(1); backend.stop(1)
    error("tls_front did not start: " .. front.stderr())
  end
  local host = opts.host or "127.0.0.1"
  local o = { port = port, backend = backend, front = front, host = host,
              requests = backend.requests, wait_requests = backend.wait_requests }
  o.authority = (host:find(":", 1, true) and "[" .. host .. "]" or host) .. ":" .. port
  function o.url(path) return "https://" .. o.authority .. (path or "") end
  function o.stop() front.stop(1); backend.stop(1) end
  return o
end

-- A fresh CA directory for the proxy, made with `luaproxy ca init`.
function h.new_ca_dir()
  local dir = new_dir("ca") .. "/ca"
  local out, code = h.sh(q(h.bin()) .. " ca init --ca-dir " .. q(dir) .. " 2>&1")
  assert(code == 0, "ca init failed: " .. out)
  return dir
end

-- Runs `openssl s_client` through the proxy to <target> ("host:port") with
-- <input> as the bytes to send; returns what came back (stdout), the exit
-- status and stderr. <opts>: {proxy_port, cafile, servername (false: no
-- SNI), verify_hostname, sess_out/sess_in (save/resume the TLS session)}.
function h.s_client(opts, target, input)
  local dir = new_dir("s_client")
  h.write_file(dir .. "/in", input)
  local cmd = { "timeout 10 openssl s_client -quiet -ign_eof -verify_return_error",
    "-proxy", "127.0.0.1:" .. opts.proxy_port, "-connect", q(target) }
  if opts.cafile then cmd[#cmd + 1] = "-CAfile " .. q(opts.cafile) end
  if opts.verify_hostname then cmd[#cmd + 1] = "-verify_hostname " .. q(opts.verify_hostname) end
  if opts.sess_out then cmd[#cmd + 1] = "-sess_out " .. q(opts.sess_out) end
  if opts.sess_in then cmd[#cmd + 1] = "-sess_in " .. q(opts.sess_in) end
  if opts.servername == false then
    cmd[#cmd + 1] = "-noservername"
  elseif opts.servername then
    cmd[#cmd + 1] = "-servername " .. q(opts.servername)
  end
  local out, code = h.sh(table.concat(cmd, " ") .. " <" .. q(dir .. "/in") .. " 2>" .. q(dir .. "/err"))
  return out, code, h.read_file(dir .. "/err") or ""
end

-- Removes the scratch directory when the Lua state closes.
h._cleanup = setmetatable({}, { __gc = function()
  for _, p in pairs(live) do pcall(p.stop, 1) end
  if scratch and not os.getenv("LUAPROXY_KEEP_SCRATCH") then
    os.execute("rm -rf " .. q(scratch))
  end
end })

return h
