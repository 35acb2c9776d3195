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
  end)

  it("--pid-file holds the pid while running and goes away after", function()
    local pidfile = h.tmpfile("", "luaproxy.pid")
    os.remove(pidfile)
    local proxy = start({ "--pid-file", pidfile })
    assert.equal(tostring(proxy.pid), (h.read_file(pidfile) or ""):match("%d+"))
    assert.equal(0, proxy.stop())
    assert.is_nil(h.read_file(pidfile))
  end)

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
