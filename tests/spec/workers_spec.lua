-- End-to-end specs for --workers: several processes share the listening
-- port, signals reach every worker, a dead worker is replaced, and the
-- connection cap holds for the whole proxy, not per worker.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local each_test = require("support.each_test")

-- The worker PIDs of the supervisor <pid>.
local function workers_of(pid)
  local list = {}
  local data = h.read_file("/proc/" .. pid .. "/task/" .. pid .. "/children") or ""
  for child in data:gmatch("%d+") do list[#list + 1] = tonumber(child) end
  return list
end

-- Waits (bounded) until supervisor <pid> has two workers, none of them
-- <gone> (a worker that should have been replaced). Returns their PIDs.
local function two_workers(pid, gone)
  local list = h.wait_for(function()
    local w = workers_of(pid)
    return #w == 2 and w[1] ~= gone and w[2] ~= gone and w
  end, 5)
  assert(list, "supervisor " .. pid .. " never had two workers" ..
    (gone and " other than " .. gone or ""))
  return list
end

-- The listening sockets on <port> (IPv4, from /proc/net/tcp), as their
-- inodes, or "none": what a stop left open, should one not be refused.
local function listeners_on(port)
  local found = {}
  for line in (h.read_file("/proc/net/tcp") or ""):gmatch("[^\n]+") do
    local f = {}
    for word in line:gmatch("%S+") do f[#f + 1] = word end
    -- sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
    local local_port = f[2] and f[2]:match(":(%x+)$")
    if local_port and tonumber(local_port, 16) == port and f[4] == "0A" then
      found[#found + 1] = "socket:[" .. f[10] .. "]"
    end
  end
  return #found > 0 and table.concat(found, " ") or "none"
end

local function get_hello(proxy, origin)
  local sock = assert(h.connect(proxy.port))
  h.send(sock, h.request("GET", origin.url("/hello"), { "Host: " .. origin.authority }))
  local resp = h.read_response(sock)
  sock:close()
  return resp
end

describe("workers", function()
  local procs = each_test.processes()
  local origin, proxy
  before_each(function() origin = procs.origin() end)

  local function start(args, opts)
    proxy = procs.proxy(args, opts)
    return proxy
  end

  -- A client that has had its answer and stays connected (keep-alive).
  local function hold_client()
    local c = assert(h.connect(proxy.port))
    h.send(c, h.request("GET", origin.url("/hello"), { "Host: " .. origin.authority }))
    assert.are.equal(200, h.read_response(c).status)
    return c
  end

  it("serves from every worker on one port", function()
    start({ "--workers", "2", "--verbose" })
    two_workers(proxy.pid)
    -- New connections are spread by the kernel; 40 of them all landing on
    -- one worker would be a 1-in-2^39 chance.
    for i = 1, 40 do
      local resp = get_hello(proxy, origin)
      assert(resp and resp.status == 200, "request " .. i)
    end
    -- Each worker writes its log lines from a thread of its own: wait.
    local log = h.wait_for(function()
      local l = proxy.log()
      return l:find(" w1 c%d+ #%d+ ") and l:find(" w2 c%d+ #%d+ ") and l
    end) or proxy.log()
    assert.truthy(log:find(" w1 c%d+ #%d+ "), "worker 1 served nothing:\n" .. log)
    assert.truthy(log:find(" w2 c%d+ #%d+ "), "worker 2 served nothing:\n" .. log)
    assert.are.equal(1, select(2, log:gsub("listening on", "")))
  end)

  it("passes SIGHUP to every worker and stops all of them on SIGTERM", function()
    local script = h.tmpfile("function on_request(tx) end\n", "noop.lua")
    start({ "--workers", "2", "-s", script })
    two_workers(proxy.pid)
    assert.are.equal(200, get_hello(proxy, origin).status)
    proxy.signal("HUP")
    local reloaded = h.wait_for(function()
      local _, n = proxy.log():gsub("SIGHUP: 1 script%(s%) reloaded", "")
      return n == 2
    end, 5)
    assert(reloaded, "not every worker reloaded:\n" .. proxy.log())
    local workers = workers_of(proxy.pid)
    assert.are.equal(0, proxy.stop())
    for _, pid in ipairs(workers) do
      assert.is_nil(h.read_file("/proc/" .. pid .. "/status"), "worker " .. pid .. " still runs")
    end
  end)

  it("refuses new connections at once while the workers finish on SIGTERM", function()
    start({ "--workers", "2" })
    two_workers(proxy.pid)
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("GET", origin.url("/slow?ms=4000"),
      { "Host: " .. origin.authority })))
    assert(origin.wait_requests(1), "the request never reached the origin")
    local stop_listeners = "not looked at"
    proxy.signal("TERM")
    -- One worker still finishes its exchange. Had the supervisor kept its
    -- copies of the listening sockets, the kernel would go on completing
    -- connections that nobody accepts, until the last worker exits.
    local seen = h.wait_for(function()
      if not proxy.alive() then return "the proxy had exited" end
      local c, err = h.connect(proxy.port, nil, 0.5)
      if c then
        -- What still listens, and who holds it, for the message if this
        -- never turns into a refusal.
        stop_listeners = listeners_on(proxy.port)
        c:close()
        return false
      end
      -- A connection queued as a listener closed is reset ("closed"): the
      -- next one shows what is left.
      if err == "closed" then return false end
      return err == "connection refused" and "refused" or err
    end, 15, 0.05)
    assert.are.equal("refused", seen, "a new client during the stop was not refused; "
      .. "listening on the port then: " .. stop_listeners)
    local resp = h.read_response(s, { timeout = 10 })
    assert.are.equal("slow\n", resp and resp.body, "the exchange in flight did not finish")
    s:close()
    assert.are.equal(0, proxy.wait_exit(15))
  end)

  it("stops its workers when the supervisor is killed, freeing the port", function()
    start({ "--workers", "2" })
    local w = two_workers(proxy.pid)
    local port = proxy.port
    proxy.is_proxy = false -- killed: its status is not the point here
    proxy.signal("KILL")
    assert(proxy.wait_exit(5), "the supervisor did not die")
    -- Nobody would replace them, pass them signals or let the port go.
    local gone = h.wait_for(function()
      for _, pid in ipairs(w) do
        local st = h.read_file("/proc/" .. pid .. "/status")
        if st and not st:match("State:%s*Z") then return false end
      end
      return true
    end, 15)
    if not gone then
      for _, pid in ipairs(w) do os.execute("kill -9 " .. pid) end
    end
    assert(gone, "the workers still run after their supervisor was killed")
    local again = procs.proxy({ "--listen", "127.0.0.1:" .. port, "--workers", "2" })
    assert.are.equal(port, again.port)
    assert.are.equal(200, get_hello(again, origin).status)
  end)

  it("replaces a worker that dies, on the same port", function()
    start({ "--workers", "2" })
    local before = two_workers(proxy.pid)
    os.execute("kill -9 " .. before[1])
    two_workers(proxy.pid, before[1])
    assert.truthy(proxy.log_has("died of signal 9; starting a new one"), proxy.log())
    for i = 1, 20 do
      local resp = get_hello(proxy, origin)
      assert(resp and resp.status == 200, "request " .. i .. " after the restart")
    end
  end)

  it("stops a worker that was replaced just before SIGTERM", function()
    start({ "--workers", "2" })
    local before = two_workers(proxy.pid)
    os.execute("kill -9 " .. before[1])
    -- The replacement may still be starting when the stop signal comes.
    assert.truthy(h.wait_for(function()
      return proxy.log():find("starting a new one", 1, true)
    end, 5))
    local workers = workers_of(proxy.pid)
    assert.are.equal(0, proxy.stop(5), "the supervisor did not stop cleanly:\n" .. proxy.log())
    for _, pid in ipairs(workers) do
      assert.is_nil(h.read_file("/proc/" .. pid .. "/status"), "worker " .. pid .. " still runs")
    end
  end)

  it("leaves Ctrl-C to the supervisor, and replaces a worker stopped from outside", function()
    start({ "--workers", "2" })
    local w = two_workers(proxy.pid)
    -- A terminal sends SIGINT to every process of the group: a worker
    -- ignores it (its supervisor stops it with SIGTERM).
    os.execute("kill -INT " .. w[1])
    for i = 1, 10 do
      assert.are.equal(200, get_hello(proxy, origin).status, "request " .. i)
    end
    assert.truthy(h.read_file("/proc/" .. w[1] .. "/status"), "SIGINT stopped a worker")
    -- A worker stopped from outside exits cleanly; its socket still gets
    -- connections, so it is replaced and every request is served.
    os.execute("kill -TERM " .. w[1])
    assert.truthy(h.wait_for(function()
      return proxy.log():find("worker %d+ %(pid " .. w[1] .. "%) stopped; starting a new one")
    end, 5), proxy.log())
    two_workers(proxy.pid, w[1])
    for i = 1, 20 do
      local resp = get_hello(proxy, origin)
      assert(resp and resp.status == 200, "request " .. i .. " after the replacement")
    end
  end)

  it("holds --max-connections across all workers", function()
    local echo = procs.origin("echo")
    start({ "--workers", "2", "--max-connections", "2", "--connect-ports", tostring(echo.port) })
    two_workers(proxy.pid)
    -- Two clients that each finished a request and then opened a tunnel:
    -- busy, so no worker can make room by closing one of them (an idle
    -- one would give its place to a new client of its own worker).
    local held = { hold_client(), hold_client() }
    local target = "127.0.0.1:" .. echo.port
    for i = 1, 2 do
      h.send(held[i], "CONNECT " .. target .. " HTTP/1.1\r\nHost: " .. target .. "\r\n\r\n")
      assert.are.equal(200, h.read_response(held[i], { method = "CONNECT" }).status)
    end
    -- Whichever worker the third lands on, the proxy is full.
    for _ = 1, 4 do
      local resp = get_hello(proxy, origin)
      assert.are.equal(503, resp and resp.status)
    end
    held[1]:close()
    local served = h.wait_for(function()
      local resp = get_hello(proxy, origin)
      return resp and resp.status == 200
    end, 5)
    assert(served, "no client was served after one of the held ones left")
    held[2]:close()
  end)

  it("gives back a dead worker's share of --max-connections", function()
    start({ "--workers", "2", "--max-connections", "2" })
    local before = two_workers(proxy.pid)
    local held = { hold_client(), hold_client() }
    -- Both workers die with the clients still connected; the clients go.
    os.execute("kill -9 " .. before[1] .. " " .. before[2])
    for i = 1, 2 do held[i]:close() end
    assert.truthy(h.wait_for(function()
      local w = workers_of(proxy.pid)
      return #w == 2 and w[1] ~= before[1] and w[1] ~= before[2] and w[2] ~= before[1]
        and w[2] ~= before[2]
    end, 5), "the workers were not replaced")
    -- Before, their two connections stayed counted for ever: 503 to all.
    -- Two clients held at once fill the cap exactly, whenever the proxy
    -- notices that earlier ones closed.
    local again = { hold_client(), hold_client() }
    for i = 1, 2 do again[i]:close() end
  end)

  it("keeps serving with the other workers when one keeps dying at start", function()
    local script = h.tmpfile("function on_request(tx) end\n", "live.lua")
    start({ "--workers", "2", "-s", script })
    local before = two_workers(proxy.pid)
    -- Both have loaded the script (a worker still starting would read the
    -- broken one below, and that is not the case this is about).
    assert.truthy(h.wait_for(function()
      local _, n = proxy.log():gsub("script loaded: ", "")
      return n == 2
    end, 10), proxy.log())
    -- The script on disk breaks; a reload is refused (every worker keeps
    -- the scripts it has), then a worker dies: its replacements cannot
    -- load the script.
    h.write_file(script, "function on_request(tx)\n")
    proxy.signal("HUP")
    assert.truthy(h.wait_for(function()
      return proxy.log():find("reload: .*the running configuration stays")
    end, 5), proxy.log())
    os.execute("kill -9 " .. before[1])
    assert.truthy(h.wait_for(function()
      return proxy.log():find("keeps dying at start; the other 1 serve", 1, true)
    end, 10), proxy.log())
    -- The other worker serves every new connection (the dead one's
    -- sockets are closed, so none waits in a queue nobody reads).
    for i = 1, 10 do
      local resp = get_hello(proxy, origin)
      assert.are.equal(200, resp and resp.status, "request " .. i)
    end
    -- Mended and reloaded: the worker is started again.
    h.write_file(script, "function on_request(tx) end\n")
    proxy.signal("HUP")
    assert.truthy(h.wait_for(function()
      return proxy.log():find("worker %d started again")
    end, 5), proxy.log())
    two_workers(proxy.pid)
    for i = 1, 20 do
      local resp = get_hello(proxy, origin)
      assert.are.equal(200, resp and resp.status, "request " .. i .. " after the reload")
    end
  end)

  -- The supervisor loads the new scripts to check them before it passes
  -- SIGHUP on; their top-level code may take up to the load time limit
  -- (here the hook timeout, 5 s). Meanwhile its loop serves the admin
  -- interface and replaces workers; a new one starts after the check.
  it("serves the admin interface and replaces a worker while it checks a reload", function()
    local dir = h.tmpfile("", "unused"):gsub("/[^/]*$", "")
    local flag, loads = dir .. "/go", dir .. "/loads"
    h.write_file(flag, "")
    -- Each load notes itself, then waits for the flag (bounded by the limit).
    local script = h.tmpfile(([[
      local f = assert(io.open(%q, "a")); f:write("x"); f:close()
      repeat f = io.open(%q) until f
      f:close()
      function on_request(tx) end
    ]]):format(loads, flag), "slow_load.lua")
    local admin = require("support.admin")
    start({ "--workers", "2", "--admin", "127.0.0.1:0", "--hook-timeout", "5000", "-s", script })
    local adm = assert(admin.admin_of(proxy))
    local before = two_workers(proxy.pid)
    local function load_count() return #(h.read_file(loads) or "") end
    assert.truthy(h.wait_for(function() return load_count() == 3 end, 10), "loads at start")
    os.remove(flag)
    proxy.signal("HUP")
    -- The supervisor's check is loading (the workers load only after it).
    assert.truthy(h.wait_for(function() return load_count() == 4 end, 5), "the check never began")
    -- (The check would end at the limit, 5 s, and answer then.)
    local resp = admin.call(adm, "/api/store", { timeout = 3 })
    assert.are.equal(200, resp and resp.status, "the admin interface did not answer during the check")
    os.execute("kill -9 " .. before[1])
    assert.truthy(proxy.log_has("died of signal 9; starting a new one"), proxy.log())
    -- Not forked while the check's thread runs: it starts after.
    assert.are.equal(1, #workers_of(proxy.pid), "a worker was forked during the check")
    assert.are.equal(4, load_count(), "the check ended before the flag was set")
    -- The check goes on; once it ends, the workers reload and the dead
    -- one is replaced (with the new scripts).
    h.write_file(flag, "")
    assert.truthy(h.wait_for(function()
      local _, n = proxy.log():gsub("SIGHUP: 1 script%(s%) reloaded", "")
      return n == 1
    end, 10), proxy.log())
    local after = two_workers(proxy.pid, before[1])
    assert.truthy(after)
    assert.are.equal(200, get_hello(proxy, origin).status)
  end)

  it("refuses to start when a script does not load", function()
    local script = h.tmpfile("function on_request(tx)\n", "broken.lua")
    local p = start({ "--workers", "2", "-s", script }, { wait = false })
    local code = p.wait_exit(5)
    assert.is_not_nil(code, "the proxy did not exit")
    assert.are_not.equal(0, code)
    assert.truthy(p.log():find("broken.lua", 1, true), p.log())
    assert.are.same({}, workers_of(p.pid))
    p.is_proxy = false -- its non-zero exit is the point of this test
  end)
end)
