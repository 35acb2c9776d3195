-- End-to-end specs for the config file (-c FILE): every long option as a
-- line, the command line winning over it, errors naming file and line,
-- --check -c, and SIGHUP reading it again while requests keep flowing.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local each_test = require("support.each_test")

-- A script that stamps responses with <tag>.
local function stamp_script(tag)
  return ([[
function on_response(tx)
  tx.res.headers["X-Stamp"] = "%s"
end
]]):format(tag)
end

local function get_stamp(proxy, origin)
  local resp, err = h.get(proxy.port, origin.url("/hello"))
  assert(resp, "no response: " .. tostring(err))
  assert.equal(200, resp.status)
  return resp.headers["x-stamp"]
end

describe("config file", function()
  local procs = each_test.processes()
  local origin
  before_each(function() origin = procs.origin() end)

  -- The pool of idle upstream connections kept the --idle-timeout it
  -- started with (up to 15 s), whatever a reload said.
  it("closes parked upstream connections by a reloaded idle-timeout", function()
    local conf = h.tmpfile("idle-timeout 60\n", "luaproxy.conf")
    local proxy = procs.proxy({ "-c", conf, "--trace" })
    local server, _, target = h.raw_listener()
    -- one exchange, then the client leaves: its connection is parked
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, "GET http://" .. target .. "/ HTTP/1.1\r\nHost: " .. target .. "\r\n\r\n"))
    local up = assert(server:accept())
    server:close()
    h.skip_head(up)
    assert(up:send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    assert.are.equal(200, assert(h.read_response(s)).status)
    s:close()
    assert.truthy(proxy.log_has("parked in the pool"), proxy.log())
    h.write_file(conf, "idle-timeout 0.5\n")
    proxy.signal("HUP")
    assert.truthy(proxy.log_has("SIGHUP"), proxy.log())
    -- closed after half a second, not the 15 s it was parked for
    local t0 = h.now()
    up:settimeout(10)
    local _, err = up:receive(1)
    up:close()
    assert.are.equal("closed", err)
    assert.is_true(h.now() - t0 < 8, "closed after " .. (h.now() - t0) .. " s")
  end)

  it("takes every option as a line, with comments and repeated options", function()
    local script = h.tmpfile(stamp_script("from-file"), "a.lua")
    local conf = h.tmpfile(table.concat({
      "# a comment line",
      "listen 127.0.0.1:0   # a trailing comment",
      "",
      "allow 10.0.0.0/8",
      "allow 127.0.0.1",
      "script " .. script,
      "log-format combined",
      "verbose",
    }, "\n") .. "\n", "luaproxy.conf")
    local proxy = procs.proxy({ "-c", conf, "--listen", "127.0.0.1:0" })
    assert.equal("from-file", get_stamp(proxy, origin))
    -- the file's log format (combined: referer and user agent), its verbose flag
    assert.truthy(proxy.wait_access_log('" 200 6 "%-" "%-" %d+$'), proxy.access_log())
    assert.truthy(proxy.log_has(" debug "), proxy.log())
  end)

  it("takes options other modules define, as the command line does", function()
    local conf = h.tmpfile("admin 127.0.0.1:0\nadmin-token file-token-123\n", "admin.conf")
    local proxy = procs.proxy({ "-c", conf })
    assert.truthy(h.wait_for(function()
      return proxy.log():find("admin interface: http://127.0.0.1:%d+/ %(the token is the one "
        .. "%-%-admin%-token gives%)")
    end), proxy.log())
    local port = tonumber(proxy.log():match("admin interface: http://127.0.0.1:(%d+)/"))

    -- what was made from them at start stays as it was after a reload
    h.write_file(conf, "admin 127.0.0.1:0\nadmin-token other-token-456\nhook-timeout 200\n")
    proxy.signal("HUP")
    assert.truthy(h.wait_for(function()
      return proxy.log():find("--admin-token cannot change while running; kept", 1, true)
    end), proxy.log())
    local s = assert(h.connect(port))
    h.send(s, "GET /api/version HTTP/1.1\r\nHost: 127.0.0.1:" .. port
      .. "\r\nAuthorization: Bearer file-token-123\r\nConnection: close\r\n\r\n")
    local resp = h.read_response(s)
    s:close()
    assert.equal(200, resp.status)
  end)

  it("lets the command line win, and a repeated option there replace the file's", function()
    local a = h.tmpfile(stamp_script("a"), "a.lua")
    local b = h.tmpfile(stamp_script("b"), "b.lua")
    local conf = h.tmpfile(table.concat({
      "allow 10.0.0.0/8", -- would refuse us: the command line's --allow replaces it
      "script " .. a,
      "hook-timeout 250",
    }, "\n"), "luaproxy.conf")
    local proxy = procs.proxy({ "-c", conf, "--allow", "127.0.0.0/8", "--script", b })
    assert.equal("b", get_stamp(proxy, origin))
  end)

  it("refuses a bad file at start with status 2, naming the file and the line", function()
    local cases = {
      { "listen 127.0.0.1:0\nno-such-option 1\n", ":2: unknown option 'no%-such%-option'" },
      { "# ok\nmax-connections 0\n", ":2: invalid %-%-max%-connections '0'" },
      { "verbose yes\n", ":1: 'verbose' takes no value" },
      { "script\n", ":1: 'script' needs a value" },
      { "config other.conf\n", ":1: not a config file option 'config'" },
      -- an option that holds one value: a second line is refused, not the last kept
      { "idle-timeout 5\n# again\nidle-timeout 6\n", ":3: 'idle%-timeout' is already given on line 1" },
    }
    for _, case in ipairs(cases) do
      local conf = h.tmpfile(case[1], "bad.conf")
      local code, _, stderr = h.run_proxy({ "-c", conf })
      assert.equal(2, code, case[1])
      assert.truthy(stderr:find(conf:gsub("%p", "%%%0") .. case[2]), stderr)
    end
    local code, _, stderr = h.run_proxy({ "-c", "/nonexistent/luaproxy.conf" })
    assert.equal(2, code)
    assert.truthy(stderr:find("cannot read config file '/nonexistent/luaproxy.conf'", 1, true), stderr)
    -- a directory opens, but is no file of options: not an empty config
    local dir = h.tmpfile("", "placeholder"):match("^(.*)/")
    code, _, stderr = h.run_proxy({ "-c", dir })
    assert.equal(2, code, stderr)
    assert.truthy(stderr:find("cannot read config file '" .. dir .. "'", 1, true), stderr)
    assert.is_nil(stderr:find("listening on", 1, true), stderr)
  end)

  it("adds up connect-ports lines, as on the command line", function()
    local a, b, other = procs.origin("echo"), procs.origin("echo"), procs.origin("echo")
    local conf = h.tmpfile("connect-ports " .. a.port .. "\nconnect-ports " .. b.port .. "\n", "ports.conf")
    local proxy = procs.proxy({ "-c", conf })
    local function connect_status(port)
      local sock = assert(h.connect(proxy.port))
      local authority = "127.0.0.1:" .. port
      h.send(sock, h.request("CONNECT", authority, { "Host: " .. authority }))
      local resp, err = h.read_response(sock, { method = "CONNECT" })
      sock:close()
      assert(resp, "no response to CONNECT: " .. tostring(err))
      return resp.status
    end
    assert.equal(200, connect_status(a.port))
    assert.equal(200, connect_status(b.port))
    assert.equal(403, connect_status(other.port))
  end)

  it("checks rules between options on the whole, naming the line that breaks one", function()
    -- har needs admin: met by another line of the file...
    local har = h.tmpfile("", "flows.har")
    local conf = h.tmpfile("admin 127.0.0.1:0\nhar " .. har .. "\n", "har.conf")
    local proxy = procs.proxy({ "-c", conf })
    assert.truthy(h.wait_for(function() return proxy.log():find("admin interface: ", 1, true) end),
      proxy.log())
    -- ...or by the command line
    conf = h.tmpfile("har " .. har .. "\n", "har-only.conf")
    local code, _, stderr = h.run_proxy({ "--check", "-c", conf, "--admin", "127.0.0.1:0" })
    assert.equal(0, code, stderr)

    -- A non-loopback admin address with admin-allow on the next line
    -- (--check: the whole configuration is read, nothing is bound).
    conf = h.tmpfile("admin 0.0.0.0:0\nadmin-allow 127.0.0.0/8\n", "admin.conf")
    code, _, stderr = h.run_proxy({ "--check", "-c", conf })
    assert.equal(0, code, stderr)

    local cases = {
      { "listen 127.0.0.1:0\nhar " .. har .. "\n", ":2: %-%-har needs %-%-admin" },
      { "# admin\nadmin 0.0.0.0:0\n", ":2: %-%-admin '0%.0%.0%.0:0' is not a loopback address" },
      { "admin 127.0.0.1:0\nflows 0\nhar " .. har .. "\n", ":3: %-%-har needs capture" },
    }
    for _, case in ipairs(cases) do
      conf = h.tmpfile(case[1], "bad.conf")
      code, _, stderr = h.run_proxy({ "--check", "-c", conf })
      assert.equal(2, code, case[1])
      assert.truthy(stderr:find(conf:gsub("%p", "%%%0") .. case[2]), stderr)
    end
  end)

  -- Windows editors start a UTF-8 file with a byte order mark (and end
  -- lines with CRLF): the first option is still the option it reads as.
  it("takes a file that starts with a byte order mark", function()
    local good = h.tmpfile(stamp_script("ok"), "good.lua")
    local conf = h.tmpfile("\xef\xbb\xbfscript " .. good .. "\r\nhook-timeout 200\r\n", "bom.conf")
    local code, stdout, stderr = h.run_proxy({ "--check", "-c", conf })
    assert.equal(0, code, stderr)
    assert.truthy(stdout:find(good, 1, true), stdout)
  end)

  it("--check -c checks the file and the scripts it names", function()
    local good = h.tmpfile(stamp_script("ok"), "good.lua")
    local broken = h.tmpfile("function on_request(tx) if then end\n", "broken.lua")
    local conf = h.tmpfile("script " .. good .. "\n", "good.conf")
    local code, stdout = h.run_proxy({ "--check", "-c", conf })
    assert.equal(0, code)
    assert.truthy(stdout:find(good, 1, true), stdout)

    conf = h.tmpfile("script " .. good .. "\nscript " .. broken .. "\n", "broken.conf")
    local code2, stdout2, stderr2 = h.run_proxy({ "--check", "-c", conf })
    assert.is_not.equal(0, code2)
    assert.truthy((stdout2 .. stderr2):find(broken, 1, true), stdout2 .. stderr2)

    conf = h.tmpfile("listen nowhere\n", "bad.conf")
    local code3, _, stderr3 = h.run_proxy({ "--check", "-c", conf })
    assert.equal(2, code3)
    assert.truthy(stderr3:find("bad.conf:1:", 1, true), stderr3)
  end)

  it("takes a client off --allow on reload: its open connection gets 403 next", function()
    local conf = h.tmpfile("allow 127.0.0.1/32\n", "allow.conf")
    local proxy = procs.proxy({ "-c", conf })
    local s = assert(h.connect(proxy.port))
    local request = h.request("GET", origin.url("/hello"), { "Host: " .. origin.authority })
    h.send(s, request)
    assert.equal(200, h.read_response(s).status)
    h.write_file(conf, "allow 10.0.0.0/8\n")
    proxy.signal("HUP")
    assert.truthy(h.wait_for(function()
      return proxy.log():find("SIGHUP: no scripts to reload", 1, true)
    end), proxy.log())
    -- Before, the allow list was only read when a connection was accepted.
    h.send(s, request)
    local resp = h.read_response(s)
    s:close()
    assert.equal(403, resp and resp.status)
    assert.equal(1, #origin.requests())
  end)

  it("turns verbose logging and tracing on and off again on SIGHUP", function()
    local conf = h.tmpfile("", "luaproxy.conf")
    local proxy = procs.proxy({ "-c", conf })
    local function reload(text, times)
      h.write_file(conf, text)
      proxy.signal("HUP")
      assert.truthy(h.wait_for(function()
        local _, n = proxy.log():gsub("SIGHUP: no scripts to reload", "")
        return n == times
      end), proxy.log())
    end
    assert.equal(200, h.get(proxy.port, origin.url("/hello")).status)
    reload("verbose\ntrace\n", 1)
    local before = #proxy.log()
    assert.equal(200, h.get(proxy.port, origin.url("/hello?traced")).status)
    assert.truthy(h.wait_for(function()
      local after = proxy.log():sub(before + 1)
      return after:find(" debug ", 1, true) and after:find(" trace c%d+ #%d+ ")
    end), proxy.log())
    -- and off again: the next request leaves no such line (the reload
    -- after it is logged after anything it logged)
    reload("# quiet again\n", 2)
    before = #proxy.log()
    assert.equal(200, h.get(proxy.port, origin.url("/hello?quiet")).status)
    reload("# quiet again\n", 3)
    local after = proxy.log():sub(before + 1)
    assert.is_nil(after:find(" debug ", 1, true), after)
    assert.is_nil(after:find(" trace ", 1, true), after)
  end)

  for _, workers in ipairs({ "1", "2" }) do
    it("puts nothing of a reload in force when a later step fails (" .. workers .. " worker(s))", function()
      local mime = require("mime")
      local function users(name, password)
        local path = h.tmpfile("", name .. ".htpasswd")
        local _, rc = h.sh(("htpasswd -B -C 5 -b -c %s %s %s 2>&1"):format(h.shell_quote(path), name, password))
        assert.equal(0, rc)
        return path
      end
      local function status_as(proxy, name, password)
        local auth = "Proxy-Authorization: Basic " .. mime.b64(name .. ":" .. password)
        return h.get(proxy.port, origin.url("/hello"), { auth }).status
      end
      local function count(proxy, text)
        local _, n = proxy.log():gsub(text:gsub("%p", "%%%0"), "")
        return n
      end
      local alice, eve = users("alice", "alice-pw"), users("eve", "eve-pw")
      local dir = h.tmpfile("", "placeholder"):match("^(.*)/")
      local conf = h.tmpfile(("auth-file %s\naccess-log %s/access.log\n"):format(alice, dir), "luaproxy.conf")
      local proxy = procs.proxy({ "-c", conf, "--workers", workers }, { access_log = false })
      assert.equal(200, status_as(proxy, "alice", "alice-pw"))
      assert.equal(407, status_as(proxy, "eve", "eve-pw"))

      -- The users file reads well, the access log cannot be opened: the
      -- whole reload fails, so alice stays and eve stays out. (With
      -- workers, the supervisor refuses it first, once, and keeps the
      -- workers on the running configuration.)
      h.write_file(conf, ("auth-file %s\naccess-log %s/no-such-dir/access.log\n"):format(eve, dir))
      proxy.signal("HUP")
      assert.truthy(h.wait_for(function()
        return count(proxy, "cannot open access log") >= 1
      end), proxy.log())
      assert.truthy(proxy.log():find("the running configuration stays", 1, true), proxy.log())
      for _ = 1, 4 do -- a couple of times, so with two workers both are likely asked
        assert.equal(200, status_as(proxy, "alice", "alice-pw"))
        assert.equal(407, status_as(proxy, "eve", "eve-pw"))
      end

      -- The same change with a log that opens goes through whole.
      h.write_file(conf, ("auth-file %s\naccess-log %s/access.log\n"):format(eve, dir))
      proxy.signal("HUP")
      assert.truthy(h.wait_for(function()
        return count(proxy, "SIGHUP: no scripts to reload") == tonumber(workers)
      end), proxy.log())
      for _ = 1, 4 do
        assert.equal(407, status_as(proxy, "alice", "alice-pw"))
        assert.equal(200, status_as(proxy, "eve", "eve-pw"))
      end
    end)

    it("reloads on SIGHUP under traffic without a failed request (" .. workers .. " worker(s))", function()
      local v1 = h.tmpfile(stamp_script("v1"), "v1.lua")
      local v2 = h.tmpfile(stamp_script("v2"), "v2.lua")
      local conf = h.tmpfile("script " .. v1 .. "\n", "luaproxy.conf")
      local proxy = procs.proxy({ "-c", conf, "--workers", workers }, { listeners = 1 })
      assert.equal("v1", get_stamp(proxy, origin))

      -- Traffic from a separate process while we reload: each line is one
      -- request's status and stamp.
      local out = h.tmpfile("", "codes")
      local loop = ("for i in $(seq 120); do curl -s -o /dev/null -D - --max-time 10 -x http://127.0.0.1:%d %s"
        .. " | tr -d '\\r' | awk '/^HTTP/{c=$2} /^X-Stamp/{s=$2} END{print c, s}' >> %s; done; exit 0")
        :format(proxy.port, origin.url("/hello"), out)
      local traffic = assert(io.popen("sh -c " .. h.shell_quote(loop), "r"))

      -- Reload once some requests went through, then once more with a
      -- broken file: that must change nothing.
      assert.truthy(h.wait_for(function() return #(h.read_file(out) or "") > 40 end, 10))
      h.write_file(conf, "script " .. v2 .. "\nuser nobody\n")
      proxy.signal("HUP")
      assert.truthy(h.wait_for(function()
        local _, n = proxy.log():gsub("SIGHUP: 1 script%(s%) reloaded", "")
        return n == tonumber(workers)
      end))
      assert.truthy(proxy.log_has("--user cannot change while running; kept"), proxy.log())
      h.write_file(conf, "script " .. v2 .. "\nmax-connections many\n")
      proxy.signal("HUP")
      assert.truthy(h.wait_for(function() return proxy.log():find("luaproxy.conf:2: invalid --max-connections", 1, true) end))
      traffic:read("a")
      traffic:close()

      local lines, v2_seen = 0, false
      for code, stamp in (h.read_file(out) or ""):gmatch("(%S+) (%S+)\n") do
        lines = lines + 1
        assert.equal("200", code)
        assert.truthy(stamp == "v1" or stamp == "v2", stamp)
        if stamp == "v2" then v2_seen = true end
      end
      assert.equal(120, lines)
      assert.is_true(v2_seen)
      -- still on the old port, with the reloaded script
      assert.equal("v2", get_stamp(proxy, origin))
    end)

    -- A proxy whose config file names a script that stamps "v1": returns
    -- it and the file.
    local function start_on_v1(n)
      local v1 = h.tmpfile(stamp_script("v1"), "v1.lua")
      local conf = h.tmpfile("script " .. v1 .. "\n", "luaproxy.conf")
      local proxy = procs.proxy({ "-c", conf, "--workers", n }, { listeners = 1 })
      assert.equal("v1", get_stamp(proxy, origin))
      return proxy, conf
    end

    -- A FIFO put in the config file's place held the reload until
    -- something wrote to it: the loop of a single process, and with
    -- workers every later reload.
    it("refuses a config file that is no longer a regular file on SIGHUP (" .. workers
       .. " worker(s))", function()
      local proxy, conf = start_on_v1(workers)
      os.remove(conf)
      assert(h.sh("mkfifo " .. h.shell_quote(conf)))
      proxy.signal("HUP")
      assert.truthy(proxy.log_has("is not a regular file"), proxy.log())
      assert.equal("v1", get_stamp(proxy, origin))
      -- and the next reload of a good file goes through
      os.remove(conf)
      local v2 = h.tmpfile(stamp_script("v2"), "v2.lua")
      h.write_file(conf, "script " .. v2 .. "\n")
      proxy.signal("HUP")
      assert.truthy(h.wait_for(function() return get_stamp(proxy, origin) == "v2" end),
        proxy.log())
    end)

    -- A file is empty just after a writer cut it, before it writes: a
    -- reload then would drop every option, scripts and credentials too.
    it("refuses an empty config file on SIGHUP, and takes one with a comment (" .. workers
       .. " worker(s))", function()
      local proxy, conf = start_on_v1(workers)
      h.write_file(conf, "")
      proxy.signal("HUP")
      assert.truthy(proxy.log_has("is empty (still being written?)"), proxy.log())
      assert.equal("v1", get_stamp(proxy, origin))
      -- on purpose: no options at all, so no script
      h.write_file(conf, "# nothing but the defaults\n")
      proxy.signal("HUP")
      assert.truthy(h.wait_for(function() return get_stamp(proxy, origin) == nil end),
        proxy.log())
    end)

    it("takes a SIGHUP that comes while it starts as a reload (" .. workers .. " worker(s))", function()
      -- The script's top-level code says it runs, then waits for the
      -- spec's word (within the 1 s a script's top level may take):
      -- the SIGHUP lands while the proxy is still starting.
      local dir = h.tmpfile("", "placeholder"):match("^(.*)/")
      local ready, go = dir .. "/ready", dir .. "/go"
      local script = h.tmpfile(([[
local f = io.open(%q, "w")
f:close()
while not io.open(%q) do end
function on_response(tx) tx.res.headers["X-Stamp"] = "up" end
]]):format(ready, go), "starting.lua")
      local conf = h.tmpfile("script " .. script .. "\n", "luaproxy.conf")
      local proxy = procs.proxy({ "-c", conf, "--workers", workers }, { wait = false })
      assert.truthy(h.wait_for(function() return h.read_file(ready) ~= nil end), proxy.log())
      proxy.signal("HUP")
      h.write_file(go, "")
      assert.truthy(h.wait_for(function()
        return proxy.log():find("listening on", 1, true) or not proxy.alive()
      end), proxy.log())
      -- It started, and the signal made a reload once it could.
      assert.truthy(proxy.log_has("SIGHUP: 1 script(s) reloaded"), proxy.log())
      assert.is_true(proxy.alive(), proxy.log())
      proxy.port = tonumber(proxy.log():match("listening on %S-:(%d+)%s"))
      assert.equal("up", get_stamp(proxy, origin))
    end)
  end
end)
