-- End-to-end specs for running luaproxy as a service: the access log
-- formats, --pid-file, --user, the header field limits and the default
-- connection cap.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local each_test = require("support.each_test")
local cjson = require("cjson")

local function proc_status(pid, field)
  local s = h.read_file("/proc/" .. pid .. "/status") or ""
  return s:match(field .. ":%s*([^\n]*)")
end

describe("service operation", function()
  local procs = each_test.processes()
  local origin
  before_each(function() origin = procs.origin() end)
  local start = procs.proxy

  describe("--log-format", function()
    local function one_exchange(format)
      local proxy = start({ "--log-format", format })
      local resp = h.get(proxy.port, origin.url("/hello"),
        { "Referer: http://ref.invalid/a\"b", "User-Agent: spec/1.0" })
      assert.equal(200, resp.status)
      local bad = h.get(proxy.port, "http://127.0.0.1:" .. h.closed_port() .. "/x")
      assert.equal(502, bad.status)
      assert.truthy(h.wait_for(function()
        local _, n = proxy.access_log():gsub("\n", "")
        return n >= 2
      end))
      local lines = {}
      for l in proxy.access_log():gmatch("[^\n]+") do lines[#lines + 1] = l end
      return lines, proxy
    end

    it("common: CLF plus the duration", function()
      local lines = one_exchange("common")
      assert.truthy(lines[1]:match('^127%.0%.0%.1 %- %- %[[^%]]+%] "GET http://[^ ]+/hello HTTP/1%.1" 200 6 %d+$'),
        lines[1])
    end)

    it("combined: adds the referer and the user agent, escaped", function()
      local lines = one_exchange("combined")
      assert.truthy(lines[1]:match('" 200 6 "http://ref%.invalid/a\\x22b" "spec/1%.0" %d+$'), lines[1])
      assert.truthy(lines[2]:match('" 502 %d+ "%-" "%-" %d+$'), lines[2])
    end)

    it("json: one object per line with duration, upstream and error", function()
      local lines = one_exchange("json")
      local ok = cjson.decode(lines[1])
      assert.equal("127.0.0.1", ok.client)
      assert.equal("GET", ok.method)
      assert.equal(origin.url("/hello"), ok.target)
      assert.equal(200, ok.status)
      assert.equal(6, ok.bytes)
      assert.equal("number", type(ok.duration_ms))
      assert.equal("http://ref.invalid/a\"b", ok.referer)
      assert.equal("spec/1.0", ok.user_agent)
      assert.equal(origin.authority, ok.upstream)
      assert.equal(origin.authority, ok.upstream_addr)
      assert.equal(cjson.null, ok.error)
      assert.equal(cjson.null, ok.user)
      local failed = cjson.decode(lines[2])
      assert.equal(502, failed.status)
      assert.equal("string", type(failed.error))
      assert.truthy(failed.error:find("refused", 1, true), failed.error)
    end)

    it("json: keeps UTF-8 as it is, and writes a byte of no character as \\u00XX", function()
      local proxy = start({ "--log-format", "json" })
      local resp = h.get(proxy.port, origin.url("/hello"),
        { "Referer: http://ref.invalid/\255", "User-Agent: spec/caf\195\169 \226\130\172" })
      assert.equal(200, resp.status)
      local line = proxy.wait_access_log("^{")
      assert.truthy(line, proxy.access_log())
      -- before, every byte past ASCII was \u00XX: "é" came back as "Ã©"
      assert.truthy(line:find('"user_agent":"spec/caf\195\169 \226\130\172"', 1, true), line)
      assert.truthy(line:find('"referer":"http://ref.invalid/\\u00ff"', 1, true), line)
      local entry = cjson.decode(line)
      assert.equal("spec/caf\195\169 \226\130\172", entry.user_agent)
    end)

    it("json: escapes the characters that break a line or drive a terminal, even in UTF-8", function()
      -- U+0085 (NEL) and U+2028 end a line for many readers (Python's
      -- splitlines, say), U+009B is a terminal's CSI, U+202E turns the
      -- text around: all well-formed UTF-8, none written as it is.
      local proxy = start({ "--log-format", "json" })
      local ua = "a\194\133{\"forged\":1}\226\128\168b\194\155" .. "31mc\226\128\174d caf\195\169"
      local resp = h.get(proxy.port, origin.url("/hello"), { "User-Agent: " .. ua })
      assert.equal(200, resp.status)
      local line = proxy.wait_access_log("^{")
      assert.truthy(line, proxy.access_log())
      assert.truthy(line:find('"user_agent":"a\\u0085{\\u0022forged\\u0022:1}\\u2028b\\u009b31mc' ..
        '\\u202ed caf\195\169"', 1, true), line)
      assert.equal(ua, cjson.decode(line).user_agent)
    end)
  end)

  -- Whether <pidfile> holds <pid>, read as soon as start() has seen the
  -- proxy log "listening on": the proxy writes the file first, so that a
  -- service manager that takes that line for readiness finds it.
  local function pid_file_holds(pidfile, pid)
    return (h.read_file(pidfile) or ""):match("%d+") == tostring(pid)
  end

  for _, workers in ipairs({ "1", "2" }) do
    it("--pid-file holds the pid while running and goes away after (--workers " .. workers .. ")",
        function()
      local pidfile = h.tmpfile("", "luaproxy.pid")
      os.remove(pidfile)
      local proxy = start({ "--pid-file", pidfile, "--workers", workers })
      assert.is_true(pid_file_holds(pidfile, proxy.pid), h.read_file(pidfile))
      assert.equal(0, proxy.stop())
      assert.is_nil(h.read_file(pidfile))
    end)
  end

  for _, workers in ipairs({ "1", "2" }) do
    it("leaves the running proxy's --pid-file alone when a second one cannot listen (--workers "
        .. workers .. ")", function()
      local pidfile = h.tmpfile("", "luaproxy.pid")
      os.remove(pidfile)
      local proxy = start({ "--pid-file", pidfile, "--workers", workers })
      -- Expected to fail: started outside the list of those that must exit 0.
      local second = h.start_proxy({ "--pid-file", pidfile, "--workers", workers,
                                     "--listen", "127.0.0.1:" .. proxy.port }, { wait = false })
      assert.equal(1, second.wait_exit(10))
      assert.truthy(second.log():find("cannot listen", 1, true), second.log())
      assert.is_true(pid_file_holds(pidfile, proxy.pid), h.read_file(pidfile))
      assert.equal(0, proxy.stop())
      assert.is_nil(h.read_file(pidfile))
    end)
  end

  it("--user drops privileges after binding, in the workers too", function()
    if (h.sh("id -u"):match("%d+")) ~= "0" then
      pending("needs root")
      return
    end
    local uid = h.sh("id -u nobody"):match("%d+")
    local proxy = start({ "--user", "nobody" })
    assert.equal(uid, proc_status(proxy.pid, "Uid"):match("^(%d+)"))
    assert.equal(200, h.get(proxy.port, origin.url("/hello")).status)

    local multi = start({ "--user", "nobody", "--workers", "2" })
    assert.equal(200, h.get(multi.port, origin.url("/hello")).status)
    local children = h.sh("cat /proc/" .. multi.pid .. "/task/*/children")
    local n = 0
    for pid in children:gmatch("%d+") do
      assert.truthy(h.wait_for(function()
        return proc_status(pid, "Uid"):match("^(%d+)") == uid
      end), "worker " .. pid .. " still runs as " .. tostring(proc_status(pid, "Uid")))
      n = n + 1
    end
    assert.equal(2, n)

    local code, _, stderr = h.run_proxy({ "--user", "no-such-user-here" })
    assert.equal(2, code)
    assert.truthy(stderr:find("no such user", 1, true), stderr)
  end)

  describe("a log output nobody reads", function()
    -- Standard output (--access-log -) and standard error both go into a
    -- FIFO that the test stops reading once the proxy has started: a log
    -- shipper that fell behind, `luaproxy ... 2>&1 | less`. Returns the
    -- process, the FIFO (open for reading), the proxy's port and the
    -- admin listener's.
    local function start_into_fifo(workers)
      local fifo = h.tmpfile("", "fifo")
      os.remove(fifo)
      assert(os.execute("mkfifo " .. h.shell_quote(fifo)))
      local p = h.start_command(string.format(
        "{ exec %s --listen 127.0.0.1:0 --workers %s --trace --access-log - " ..
        "--admin 127.0.0.1:0 --flows 0 >%s 2>&1; }",
        h.shell_quote(h.bin()), workers, h.shell_quote(fifo)))
      procs.add(p)
      local f = assert(io.open(fifo, "rb")) -- the proxy's open waits for this one
      local port, admin
      while not (port and admin) do
        local line = f:read("l")
        assert(line, "the proxy ended before it listened")
        port = port or tonumber(line:match("listening on 127%.0%.0%.1:(%d+)"))
        admin = admin or tonumber(line:match("admin interface: http://127%.0%.0%.1:(%d+)/"))
      end
      return p, f, port, admin
    end

    local function dropped(admin)
      local s = assert(h.connect(admin))
      h.send(s, h.request("GET", "/metrics", { "Host: localhost", "Connection: close" }))
      local resp = h.read_response(s)
      s:close()
      local body = resp and resp.body or ""
      return tonumber(body:match('luaproxy_log_lines_dropped_total{log="diagnostics"} (%d+)')),
             tonumber(body:match('luaproxy_log_lines_dropped_total{log="access"} (%d+)'))
    end

    -- Exchanges on one connection until both logs have dropped lines
    -- (a long target makes long access log lines). Every one must be
    -- answered: a proxy writing its logs on its event loop stops in
    -- write(2) once the pipe is full, and answers nobody.
    local function flood(port, admin)
      local url = origin.url("/hello?" .. string.rep("a", 2000))
      local s = assert(h.connect(port))
      for i = 1, 20000 do
        h.send(s, h.request("GET", url, { "Host: " .. origin.authority }))
        local resp, err = h.read_response(s)
        assert(resp and resp.status == 200,
          "exchange " .. i .. " was not answered while the logs were not read: " .. tostring(err))
        if i % 50 == 0 then
          local diag, access = dropped(admin)
          if diag > 0 and access > 0 then
            s:close()
            return i
          end
        end
      end
      error("no log line was ever dropped")
    end

    for _, workers in ipairs({ "1", "2" }) do
      it("never holds up a client, and keeps its lines whole (--workers " .. workers .. ")",
        function()
        local p, f, port, admin = start_into_fifo(workers)
        flood(port, admin)
        -- The output moves again, and the proxy stops: what was queued is
        -- written, with the losses reported where they happened.
        p.signal("TERM")
        local rest = f:read("a")
        f:close()
        assert.equal(0, p.wait_exit(30))
        local last_id, diag_reports, access_reports, access_lines = 0, 0, 0, 0
        for line in rest:gmatch("([^\n]*)\n") do
          local clf = line:match('^127%.0%.0%.1 %- %- %[[^%]]+%] "GET http://%S+ HTTP/1%.1" 200 6 %d+$')
          assert(clf or line:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ %a+ "),
            "a line that is not whole: " .. line:sub(1, 300))
          if clf then access_lines = access_lines + 1 end
          if line:find("log: %d+ line%(s%) dropped here: standard error did not keep up") then
            diag_reports = diag_reports + 1
          end
          if line:find("access log: %d+ line%(s%) dropped: its output did not keep up") then
            access_reports = access_reports + 1
          end
          local id = tonumber(line:match(" #(%d+) %+[%d.]+ms src/exchange%.c:exchange_begin "))
          if id then
            assert(id >= last_id, "exchange " .. id .. " logged after " .. last_id)
            last_id = id
          end
        end
        assert.truthy(diag_reports > 0, "no report of the dropped diagnostics")
        assert.truthy(access_reports > 0, "no report of the dropped access log lines")
        assert.truthy(access_lines > 0 and last_id > 0, "nothing queued came out")
        assert.truthy(#rest:match("[^\n]*$") == 0, "the output ends in the middle of a line")
      end)
    end

    it("does not keep the proxy from stopping", function()
      local p, f, port, admin = start_into_fifo("1")
      flood(port, admin)
      p.signal("TERM")
      assert.equal(0, p.wait_exit(30), "the proxy did not exit with its output stuck")
      f:close()
    end)
  end)

  -- /dev/full takes no write: ENOSPC, as a file on a full disk does.
  it("counts and tells the access log lines a full disk loses, and still answers", function()
    local proxy = start({ "--access-log", "/dev/full", "--admin", "127.0.0.1:0" })
    local admin = tonumber(proxy.log():match("admin interface: http://127%.0%.0%.1:(%d+)/"))
    assert.truthy(admin, proxy.log())
    for _ = 1, 3 do
      assert.equal(200, h.get(proxy.port, origin.url("/hello")).status)
    end
    assert.truthy(proxy.log_has("access log: cannot write: No space left on device; "
      .. "its lines are dropped until it can"), proxy.log())
    local access = h.wait_for(function()
      local s = assert(h.connect(admin))
      h.send(s, h.request("GET", "/metrics", { "Host: localhost", "Connection: close" }))
      local resp = h.read_response(s)
      s:close()
      local n = tonumber(((resp and resp.body) or ""):match(
        'luaproxy_log_lines_dropped_total{log="access"} (%d+)'))
      return n and n >= 3 and n
    end)
    assert.equal(3, access)
    local _, told = proxy.log():gsub("access log: cannot write", "")
    assert.equal(1, told, "the failure is said once, not for every line")
  end)

  describe("header field limits", function()
    local function fields(n)
      local t = {}
      for i = 1, n do t[i] = ("X-F%d: %d"):format(i, i) end
      return t
    end

    it("refuses a request with more than --max-header-fields fields (default 100)", function()
      local proxy = start({})
      -- Host plus 99 more is exactly 100
      assert.equal(200, h.get(proxy.port, origin.url("/hello"), fields(99)).status)
      assert.equal(431, h.get(proxy.port, origin.url("/hello"), fields(100)).status)
      local more = start({ "--max-header-fields", "300" })
      assert.equal(200, h.get(more.port, origin.url("/hello"), fields(250)).status)
    end)

    it("passes a response with 150 Set-Cookie fields by default", function()
      local proxy = start({})
      local q = {}
      for i = 1, 150 do q[i] = ("Set-Cookie=c%d%%3D%s"):format(i, ("v"):rep(20)) end
      local resp = h.get(proxy.port, origin.url("/headers?" .. table.concat(q, "&")))
      assert.equal(200, resp.status)
      local cookies = 0
      for _ in resp.raw_head:gmatch("\r\n[Ss]et%-[Cc]ookie: c%d+=") do cookies = cookies + 1 end
      assert.equal(150, cookies)
      -- 4x the request limit, then 502
      local small = start({ "--max-header-fields", "30" })
      assert.equal(502, h.get(small.port, origin.url("/headers?" .. table.concat(q, "&"))).status)
    end)
  end)

  it("serves more than 1024 clients at once without --max-connections", function()
    if tonumber(h.sh("ulimit -n"):match("%d+") or 0) < 1300 then
      pending("this spec process may not open 1100 sockets (ulimit -n)")
      return
    end
    local proxy = start({})
    local idle = {}
    for i = 1, 1100 do
      local s = h.connect(proxy.port)
      if not s then break end
      idle[i] = s
    end
    assert.equal(1100, #idle)
    -- Every one of them is a client the proxy counts; one more, queued
    -- behind them, is served (curl: our own descriptors are past what
    -- select() takes).
    local code = h.curl({ "-o", "/dev/null", "-w", "%{http_code}", "-x",
                          "http://127.0.0.1:" .. proxy.port, origin.url("/hello") })
    for _, s in ipairs(idle) do s:close() end
    assert.equal("200", code)
  end)
end)
