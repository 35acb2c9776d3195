-- End-to-end specs for the command line: usage, refusal of bad options, and
-- what each option visibly changes (listeners, the client allow list, the
-- connection cap, the access log, CONNECT ports, fractional timeouts).

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local each_test = require("support.each_test")
local socket = require("socket")

-- Runs the proxy with exactly <args>. h.run_proxy adds --listen and
-- --access-log, which would hide a missing value ("--listen" at the end
-- would swallow the next flag), so this runs the binary bare. `timeout`
-- bounds a proxy that wrongly accepts its options and starts serving.
-- Returns exit status, stdout, stderr.
local function run_bare(args)
  local out, err = os.tmpname(), os.tmpname()
  local cmd = { "timeout -k 1 5", h.shell_quote(h.bin()) }
  for _, a in ipairs(args) do cmd[#cmd + 1] = h.shell_quote(a) end
  local _, how, code = os.execute(table.concat(cmd, " ") .. " </dev/null >" .. out .. " 2>" .. err)
  local stdout, stderr = h.read_file(out) or "", h.read_file(err) or ""
  os.remove(out)
  os.remove(err)
  if how == "signal" then code = 128 + code end
  return code, stdout, stderr
end

-- GET /hello through <port> (on <host>) with a fresh connection.
local function get_hello(port, origin, host)
  local sock = assert(h.connect(port, host))
  h.send(sock, h.request("GET", origin.url("/hello"), { "Host: " .. origin.authority }))
  local resp, err = h.read_response(sock)
  sock:close()
  return resp, err
end

local function assert_hello(resp, err)
  assert(resp, "no response: " .. tostring(err))
  assert.equal(200, resp.status)
  assert.equal("hello\n", resp.body)
end

------------------------------------------------------------------------------

describe("--help", function()
  it("prints usage naming every option on stdout and exits 0", function()
    local code, stdout = run_bare({ "--help" })
    assert.equal(0, code)
    -- Padded so a short option at the very start or end still has neighbours;
    -- "-l" must stand alone, not be found inside "--listen".
    local text = " " .. stdout .. " "
    for _, long in ipairs({ "--listen", "--allow", "--connect-ports", "--header-timeout", "--idle-timeout",
                            "--connect-timeout", "--max-header-bytes", "--max-connections", "--access-log",
                            "--script", "--help", "--version" }) do
      assert.truthy(text:find("[^%w%-]" .. long:gsub("%-", "%%-") .. "[^%w%-]"), "usage lacks " .. long)
    end
    for _, short in ipairs({ "-l", "-s", "-h" }) do
      assert.truthy(text:find("[^%w%-]" .. short:gsub("%-", "%%-") .. "[^%w%-]"), "usage lacks " .. short)
    end
  end)
end)

describe("a bad command line", function()
  -- args, then strings one of which the message must contain (the option or
  -- the value at fault). A valid --listen comes first where the fault is
  -- elsewhere, so only one thing is wrong.
  local CASES = {
    { "unknown option", { "--frobnicate" }, { "frobnicate" } },
    { "--listen without a value", { "--listen" }, { "listen" } },
    { "a trailing option without a value", { "--listen", "127.0.0.1:0", "--max-connections" },
      { "max-connections" } },
    { "--listen nonsense", { "--listen", "nonsense" }, { "nonsense", "listen" } },
    { "--listen port out of range", { "--listen", "127.0.0.1:99999" }, { "99999", "listen" } },
    { "--allow prefix /33", { "--listen", "127.0.0.1:0", "--allow", "10.0.0.0/33" }, { "10.0.0.0/33", "allow" } },
    { "--connect-ports abc", { "--listen", "127.0.0.1:0", "--connect-ports", "abc" }, { "connect-ports" } },
    { "--idle-timeout -1", { "--listen", "127.0.0.1:0", "--idle-timeout", "-1" }, { "idle-timeout" } },
    { "--header-timeout abc", { "--listen", "127.0.0.1:0", "--header-timeout", "abc" }, { "header-timeout" } },
    { "--max-header-bytes 0", { "--listen", "127.0.0.1:0", "--max-header-bytes", "0" }, { "max-header-bytes" } },
    -- seconds are plain decimal: strtod would take all of these
    { "--idle-timeout 0x10 (hex)", { "--listen", "127.0.0.1:0", "--idle-timeout", "0x10" }, { "idle-timeout" } },
    { "--idle-timeout 0x1p3 (hex float)", { "--listen", "127.0.0.1:0", "--idle-timeout", "0x1p3" },
      { "idle-timeout" } },
    { "--idle-timeout 1e-300 (next to nothing)", { "--listen", "127.0.0.1:0", "--idle-timeout", "1e-300" },
      { "idle-timeout" } },
    { "--connect-timeout 0.0001 (under a millisecond)", { "--listen", "127.0.0.1:0", "--connect-timeout", "0.0001" },
      { "connect-timeout" } },
    { "--header-timeout 1e3 (exponent)", { "--listen", "127.0.0.1:0", "--header-timeout", "1e3" },
      { "header-timeout" } },
    { "--hook-wait-timeout inf", { "--listen", "127.0.0.1:0", "--hook-wait-timeout", "inf" }, { "hook-wait-timeout" } },
    { "--tls-passthrough-ttl 0x10", { "--listen", "127.0.0.1:0", "--tls-passthrough-ttl", "0x10" },
      { "tls-passthrough-ttl" } },
    { "--shared with a signed port", { "--listen", "127.0.0.1:0", "--shared", "redis://127.0.0.1:+6379" },
      { "shared" } },
  }

  for _, case in ipairs(CASES) do
    local name, args, names = case[1], case[2], case[3]
    it(name .. " -> exit 2 and a message naming it", function()
      local code, _, stderr = run_bare(args)
      assert.equal(2, code, "stderr: " .. stderr)
      assert.is_nil(stderr:find("listening on", 1, true), "started anyway: " .. stderr)
      local named = false
      for _, s in ipairs(names) do
        if stderr:find(s, 1, true) then named = true end
      end
      assert.is_true(named, "stderr names none of " .. table.concat(names, ", ") .. ": " .. stderr)
    end)
  end
end)

------------------------------------------------------------------------------
-- Options that change what the running proxy does. Each test starts its own
-- processes; each_test stops them after it and fails the test unless every
-- proxy exited 0 (the refusals above run the binary bare instead).

describe("a running proxy", function()
  local procs = each_test.processes()
  local origin, proxy = procs.origin, procs.proxy

  describe("--allow", function()
    it("refuses a client outside every allowed range with 403 and forwards nothing", function()
      local o = origin()
      local p = proxy({ "--allow", "10.0.0.0/8" })
      local resp, err = get_hello(p.port, o)
      assert(resp, "no response: " .. tostring(err))
      assert(h.check_error_response(resp, 403, "Forbidden"))
      assert.same({}, o.requests())
    end)

    it("lets 127.0.0.1 in by default", function()
      local o = origin()
      local p = proxy({})
      assert_hello(get_hello(p.port, o))
    end)

    it("is repeatable: a second range adds to the first", function()
      local o = origin()
      local p = proxy({ "--allow", "10.0.0.0/8", "--allow", "127.0.0.1/32" })
      assert_hello(get_hello(p.port, o))
    end)

    it("takes an IPv4-mapped range for the IPv4 range it spells", function()
      -- before, ::ffff:127.0.0.0/104 stayed an IPv6 range and let nobody in
      local o = origin()
      local p = proxy({ "--allow", "::ffff:127.0.0.0/104" })
      assert_hello(get_hello(p.port, o))
    end)

    it("keeps --max-connections for allowed clients, however many refused ones wait", function()
      local o = origin()
      local p = proxy({ "--allow", "127.0.0.2/32", "--max-connections", "2" })
      local before = p.fd_count()
      -- From 127.0.0.1, refused: three connections that send nothing wait
      -- for their 403 until --header-timeout.
      local refused = {}
      for i = 1, 3 do refused[i] = assert(h.connect(p.port)) end
      assert.truthy(h.wait_for(function() return p.fd_count() >= before + 3 end),
        "the proxy never accepted the refused clients")
      -- An allowed client, from 127.0.0.2: before, the refused ones had
      -- taken its slots and it got 503.
      local s = socket.tcp()
      assert(s:bind("127.0.0.2", 0))
      s:settimeout(10)
      assert(s:connect("127.0.0.1", p.port))
      assert(h.send(s, h.request("GET", o.url("/hello"), { "Host: " .. o.authority })))
      local resp = assert(h.read_response(s))
      s:close()
      assert.are.equal(200, resp.status)
      for i = 1, 3 do refused[i]:close() end
    end)
  end)

  describe("--listen", function()
    -- The port of the listener on <host> from the proxy's stderr
    -- ("listening on 127.0.0.1:PORT", "listening on [::1]:PORT").
    local function listeners(p, want)
      return h.wait_for(function()
        local found = {}
        for addr, port in p.log():gmatch("listening on (%S+):(%d+)") do
          found[#found + 1] = { addr = addr, port = tonumber(port) }
        end
        return #found >= want and found or nil
      end, 5)
    end

    it("serves on two IPv4 addresses", function()
      local o = origin()
      local p = proxy({ "--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0" }, { listeners = 2 })
      local found = assert(listeners(p, 2), "two listening lines: " .. p.log())
      assert.are_not.equal(found[1].port, found[2].port)
      assert_hello(get_hello(found[1].port, o))
      assert_hello(get_hello(found[2].port, o))
    end)

    it("serves on 127.0.0.1 and [::1] at once", function()
      local o = origin()
      local p = proxy({ "--listen", "127.0.0.1:0", "--listen", "[::1]:0" }, { listeners = 2 })
      local found = assert(listeners(p, 2), "two listening lines: " .. p.log())
      local v4, v6
      for _, l in ipairs(found) do
        if l.addr == "127.0.0.1" then v4 = l.port elseif l.addr == "[::1]" then v6 = l.port end
      end
      assert(v4 and v6, "listening lines: " .. p.log())
      assert_hello(get_hello(v4, o))
      assert_hello(get_hello(v6, o, "::1"))
    end)
  end)

  describe("--max-connections 2", function()
    -- <c> sends <request> and gets the origin's hello.
    local function served(c, request)
      h.send(c, request)
      assert_hello(h.read_response(c))
    end

    -- A client whose request is on its way to the origin, which never
    -- answers /hang: busy, and known to be once the origin has it.
    local function hang(p, o, served)
      local c = assert(h.connect(p.port))
      h.send(c, h.request("GET", o.url("/hang"), { "Host: " .. o.authority }))
      assert(o.wait_requests(served + 1), "the /hang request never reached the origin")
      return c
    end

    it("gives a third client the slot of the longest-idle one, and leaves the others alone", function()
      local o = origin()
      local p = proxy({ "--max-connections", "2" })
      local request = h.request("GET", o.url("/hello"), { "Host: " .. o.authority })

      -- Two kept-alive clients, each idle after a full exchange; older
      -- went first.
      local older, newer = assert(h.connect(p.port)), assert(h.connect(p.port))
      for _, c in ipairs({ older, newer }) do
        served(c, request)
      end

      -- Before, the third got 503 while both slots were held by clients
      -- doing nothing.
      local third = assert(h.connect(p.port))
      served(third, request)
      assert.is_true(h.is_closed(older, 5), "the longest-idle client was not closed")
      older:close()

      -- The newer idle client was not touched: it is served, and is now
      -- the one idle most recently.
      served(newer, request)

      -- Idle longest is what counts, not connected first: the third
      -- connected after the newer one, but has been idle since before
      -- the newer one's second answer.
      local fourth = assert(h.connect(p.port))
      served(fourth, request)
      assert.is_true(h.is_closed(third, 5), "the third client, idle longest, was not closed")
      third:close()
      served(newer, request)
      newer:close()
      fourth:close()
    end)

    -- An idle client whose next request is already in its socket, though
    -- not read yet, is busy: closing it would lose that request (and the
    -- unread bytes would turn the close into a reset). The proxy is paused
    -- while the idle client sends its request and then a new client
    -- connects: when it goes on, the new client's accept, the later event,
    -- runs first, and finds the request waiting (a peek).
    it("passes over an idle client whose next request waits unread in its socket", function()
      local o = origin()
      local p = proxy({ "--max-connections", "1" })
      local request = h.request("GET", o.url("/hello"), { "Host: " .. o.authority })
      local idle = assert(h.connect(p.port))
      served(idle, request)

      p.pause()
      h.send(idle, request)
      local _, idle_port = idle:getsockname()
      assert(h.wait_unread(p.port, tonumber(idle_port)), "the request did not reach the proxy")
      local new = assert(h.connect(p.port))
      h.send(new, request)
      p.go_on()

      assert_hello(h.read_response(idle))
      local resp = h.read_response(new)
      assert(h.check_error_response(resp, 503, "Service Unavailable"))
      new:close()
      idle:close()
    end)

    it("answers a third client 503 and closes it while both others are busy, then serves once a slot frees", function()
      local o = origin()
      local echo = origin("echo")
      local p = proxy({ "--max-connections", "2", "--connect-ports", tostring(echo.port) })
      local request = h.request("GET", o.url("/hello"), { "Host: " .. o.authority })

      -- Two busy clients, neither idle between requests: one waits for
      -- a response that never comes, the other has a tunnel open (its
      -- 200 says the session is a tunnel now). Each finished an exchange
      -- first, so they would be idle but for what they are doing.
      local held = {}
      for i = 1, 2 do
        held[i] = assert(h.connect(p.port))
        h.send(held[i], request)
        assert_hello(h.read_response(held[i]))
      end
      h.send(held[1], h.request("GET", o.url("/hang"), { "Host: " .. o.authority }))
      assert(o.wait_requests(3), "the /hang request never reached the origin")
      local target = "127.0.0.1:" .. echo.port
      h.send(held[2], "CONNECT " .. target .. " HTTP/1.1\r\nHost: " .. target .. "\r\n\r\n")
      assert.equal(200, assert(h.read_response(held[2], { method = "CONNECT" })).status)

      -- The contract does not say whether the 503 comes on accept or as the
      -- answer to a request; a real client sends its request first, so do that.
      local third = assert(h.connect(p.port))
      h.send(third, request)
      local resp, err = h.read_response(third)
      assert(resp, "no response for the third client: " .. tostring(err))
      assert(h.check_error_response(resp, 503, "Service Unavailable"))
      assert.is_true(h.is_closed(third), "the third connection stayed open")
      third:close()

      -- The held clients are not disturbed.
      h.send(held[2], "ping")
      assert.equal("ping", h.recv_exact(held[2], 4))

      -- Free a slot: the tunnel ends with its client (the other, whose
      -- request went up, would still wait for its answer). The proxy
      -- learns of the close asynchronously, so a client may still be
      -- turned away for a moment: retry (bounded) until one is served,
      -- and only a 503 counts as "not yet".
      held[2]:close()
      local last
      local served = h.wait_for(function()
        local r, e = get_hello(p.port, o)
        last = r and r.status or e
        if r and r.status == 503 then return nil end
        return true
      end, 3, 0.05)
      assert.is_true(served, "no slot freed; last answer: " .. tostring(last))
      assert.equal(200, last)
      held[1]:close()
      o.stop() -- ends the /hang exchange, which would hold the proxy's stop
    end)

    -- A client connected, and known to be accepted: --trace logs the
    -- accept with the client's own port. Only then is it known to be
    -- accepted before a later client, in an earlier turn of the loop.
    local function accepted(p)
      local c = assert(h.connect(p.port))
      local _, port = c:getsockname()
      assert(p.log_has("accepted 127.0.0.1:" .. port .. ";"), "never accepted: " .. p.log())
      return c
    end

    it("gives a new client the slots of clients that connected and sent nothing, longest silent first", function()
      local o = origin()
      local p = proxy({ "--max-connections", "2", "--trace" })
      local request = h.request("GET", o.url("/hello"), { "Host: " .. o.authority })
      -- Two clients that connect and send nothing: before, they held both
      -- slots until --header-timeout and every other client got 503.
      local older = accepted(p)
      local newer = accepted(p)
      local third = accepted(p)
      served(third, request)
      assert.is_true(h.is_closed(older, 5), "the longest-silent client was not closed")
      older:close()
      -- The next new client takes the other silent one's slot; the third,
      -- idle after its exchange, stays.
      local fourth = accepted(p)
      served(fourth, request)
      assert.is_true(h.is_closed(newer, 5), "the other silent client was not closed")
      newer:close()
      served(third, request)
      third:close()
      fourth:close()
    end)

    it("closes a silent client before one idle longer after an exchange", function()
      local o = origin()
      local p = proxy({ "--max-connections", "2", "--trace" })
      local request = h.request("GET", o.url("/hello"), { "Host: " .. o.authority })
      local kept = assert(h.connect(p.port))
      served(kept, request)
      local silent = accepted(p)
      local third = accepted(p)
      served(third, request)
      assert.is_true(h.is_closed(silent, 5), "the silent client was not closed")
      silent:close()
      -- The kept client, idle since before the silent one connected, is
      -- still served on its connection.
      served(kept, request)
      kept:close()
      third:close()
    end)

    it("does not close a client that has sent part of its request head", function()
      local o = origin()
      local p = proxy({ "--max-connections", "2", "--trace" })
      local request = h.request("GET", o.url("/hello"), { "Host: " .. o.authority })
      -- Half a head, sent at once: the proxy has read it (or a peek finds
      -- it in the socket) by the time the later clients connect.
      -- Connected first, this client would be the one to go if it
      -- counted as silent.
      local half = assert(h.connect(p.port))
      local _, port = half:getsockname()
      h.send(half, request:sub(1, 20))
      assert(p.log_has("accepted 127.0.0.1:" .. port .. ";"), "never accepted: " .. p.log())
      -- A silent client: the one that makes room for the third.
      local silent = accepted(p)
      local third = accepted(p)
      served(third, request)
      assert.is_true(h.is_closed(silent, 5), "the silent client was not closed")
      silent:close()
      -- The half-sent request is served once the rest comes.
      h.send(half, request:sub(21))
      assert_hello(h.read_response(half))
      half:close()
      third:close()
    end)

  end)

  -- A reload that lowers the limit below the clients connected: each new
  -- client closes as many idle ones as it takes to be let in.
  it("lets a new client in after a reload lowered --max-connections below the count", function()
    local o = origin()
    local conf = h.tmpfile("max-connections 4\n", "luaproxy.conf")
    local p = proxy({ "-c", conf })
    local request = h.request("GET", o.url("/hello"), { "Host: " .. o.authority })
    local idle = {}
    for i = 1, 4 do
      idle[i] = assert(h.connect(p.port))
      h.send(idle[i], request)
      assert_hello(h.read_response(idle[i]))
    end
    h.write_file(conf, "max-connections 2\n")
    p.signal("HUP")
    assert(p.log_has("SIGHUP: no scripts to reload"), p.log())
    -- Four connected, two allowed: the new client closes the three idle
    -- longest. Before, it closed one, and the proxy was still full.
    local new = assert(h.connect(p.port))
    h.send(new, request)
    assert_hello(h.read_response(new))
    for i = 1, 3 do
      assert.is_true(h.is_closed(idle[i], 5), "idle client " .. i .. " was not closed")
      idle[i]:close()
    end
    -- The one idle least long stays, and is served.
    h.send(idle[4], request)
    assert_hello(h.read_response(idle[4]))
    idle[4]:close()
    new:close()
  end)

  describe("a descriptor limit of 64", function()
    -- Each client may need two descriptors, its own and its upstream's:
    -- let in more than the limit holds, and the clients take them all,
    -- then get 502 for want of an upstream socket, or wait unaccepted.
    it("caps the default --max-connections so every client let in is served", function()
      local o = origin()
      local p = proxy({}, { fd_limit = 64 })
      local request = h.request("GET", o.url("/hello"), { "Host: " .. o.authority })
      local hang = h.request("GET", o.url("/hang"), { "Host: " .. o.authority })
      local held, refused = {}, 0
      for i = 1, 40 do
        local c = assert(h.connect(p.port))
        h.send(c, request)
        local resp, err = h.read_response(c)
        assert(resp, "client " .. i .. " got no answer: " .. tostring(err))
        if resp.status == 200 then
          assert.equal(0, refused, "client " .. i .. " was served after others were refused")
          held[#held + 1] = c
          -- Served again, and kept busy (an idle client would give its
          -- place to the next): its second request reaching the origin
          -- proves it still has its upstream connection, or found one.
          h.send(c, hang)
          assert(o.wait_requests(2 * #held),
            "client " .. i .. " let in was not served a second time")
        else
          assert(h.check_error_response(resp, 503, "Service Unavailable"))
          refused = refused + 1
          c:close()
        end
      end
      assert.truthy(#held > 0, "nobody was served")
      assert.truthy(refused > 0, "40 clients were let in under a limit of 64 descriptors")
      for _, c in ipairs(held) do c:close() end
      o.stop() -- ends the /hang exchanges, which would hold the proxy's stop
    end)

    it("refuses at start a --max-connections it cannot hold", function()
      local p = h.start_proxy({ "--max-connections", "100" }, { fd_limit = 64, wait = false })
      local code = p.wait_exit(5)
      p.stop(1)
      assert.equal(2, code, p.stderr())
      assert.truthy(p.stderr():find("%-%-max%-connections 100 needs %d+ file descriptors.*" ..
        "but the limit is 64"), p.stderr())
    end)
  end)

  describe("--access-log", function()
    -- `127.0.0.1 - - [26/Nov/2026:22:50:00 +0000] "GET URL HTTP/1.1" 200 6 3`
    local function clf_pattern(method, url, status, bytes)
      return "^127%.0%.0%.1 %- %- %[(%d%d/%a%a%a/%d%d%d%d):%d%d:%d%d:%d%d [+-]%d%d%d%d%] \""
        .. method .. " " .. url:gsub("%p", "%%%0") .. " HTTP/1%.1\" " .. status .. " " .. bytes .. " (%d+)$"
    end

    it("gets one CLF line with duration per exchange", function()
      local o = origin()
      local file = os.tmpname()
      local p = proxy({ "--access-log", file })
      local day_before = os.date("!%d/%b/%Y")

      -- Two exchanges on one kept-alive connection.
      local sock = assert(h.connect(p.port))
      h.send(sock, h.request("GET", o.url("/hello"), { "Host: " .. o.authority }))
      assert_hello(h.read_response(sock))
      h.send(sock, h.request("GET", o.url("/status/404"), { "Host: " .. o.authority }))
      local r404 = assert(h.read_response(sock))
      assert.equal(404, r404.status)
      sock:close()

      -- Lines are written when an exchange ends, which may be just after the
      -- client has its response; stopping the proxy settles the file.
      assert(h.wait_for(function()
        local _, n = (h.read_file(file) or ""):gsub("\n", "")
        return n >= 2
      end, 5), "access log: " .. (h.read_file(file) or ""))
      assert.equal(0, p.stop())
      local day_after = os.date("!%d/%b/%Y")
      local text = h.read_file(file) or ""
      os.remove(file)

      local lines = {}
      for line in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
      assert.equal(2, #lines, "access log: " .. text)
      local expect = {
        clf_pattern("GET", o.url("/hello"), 200, 6),
        clf_pattern("GET", o.url("/status/404"), 404, #r404.body),
      }
      for i, pat in ipairs(expect) do
        local day, ms = lines[i]:match(pat)
        assert(day, "line " .. i .. " does not match: " .. lines[i])
        assert.is_true(day == day_before or day == day_after, "date " .. day)
        assert.is_true(tonumber(ms) < 5000, "duration " .. ms .. " ms")
      end
    end)

    -- It names every client, what each asked for and the proxy users: it
    -- is its owner's alone, like --har and --tls-keylog.
    it("makes the file readable by its owner only, and keeps the mode of one already there", function()
      local o = origin()
      local file = h.tmpfile("", "x"):gsub("x$", "access.log")
      local p = proxy({ "--access-log", file }, { umask = "022" })
      assert_hello(get_hello(p.port, o))
      assert(h.wait_for(function() return (h.read_file(file) or ""):find("\n") end, 5))
      assert.equal(0, p.stop())
      assert.equal("600", (h.sh("stat -c %a " .. h.shell_quote(file)):gsub("%s+$", "")))
      -- one of ours that is there already is appended to, its mode kept
      local mine = h.tmpfile("before\n", "mine.log")
      assert(os.execute("chmod 640 " .. h.shell_quote(mine)))
      p = proxy({ "--access-log", mine })
      assert_hello(get_hello(p.port, o))
      assert(h.wait_for(function() return (h.read_file(mine) or ""):find("\n.+\n") end, 5))
      assert.equal(0, p.stop())
      assert.equal("before\n", h.read_file(mine):sub(1, 7))
      assert.equal("640", (h.sh("stat -c %a " .. h.shell_quote(mine)):gsub("%s+$", "")))
    end)

    it("refuses a file another user owns, and leaves it untouched", function()
      -- One who made it beforehand (in /tmp, say) would read every line.
      if h.sh("id -u") ~= "0\n" then return pending("needs root, to give the file away") end
      local file = h.tmpfile("theirs\n", "theirs.log")
      assert(os.execute("chmod 666 " .. h.shell_quote(file) .. " && chown nobody "
        .. h.shell_quote(file)))
      local code, _, err = h.run_proxy({ "--listen", "127.0.0.1:0", "--access-log", file })
      assert.are_not.equal(0, code)
      assert.truthy(err:find("belongs to another user", 1, true), err)
      assert.equal("theirs\n", h.read_file(file))
    end)

    it("writes to stdout with --access-log -", function()
      local o = origin()
      local p = proxy({ "--access-log", "-" })
      assert_hello(get_hello(p.port, o))
      local pat = clf_pattern("GET", o.url("/hello"), 200, 6)
      assert(h.wait_for(function()
        for line in p.stdout():gmatch("[^\n]+") do
          if line:find(pat) then return true end
        end
      end, 5), "stdout: " .. p.stdout())
    end)
  end)

  describe("--connect-ports", function()
    -- Sends CONNECT for 127.0.0.1:<port>; returns the socket and response.
    local function connect_through(p, port)
      local sock = assert(h.connect(p.port))
      local authority = "127.0.0.1:" .. port
      h.send(sock, h.request("CONNECT", authority, { "Host: " .. authority }))
      local resp, err = h.read_response(sock, { method = "CONNECT" })
      assert(resp, "no response to CONNECT: " .. tostring(err))
      return sock, resp
    end

    -- Tunnels through <p> to each origin of <allowed> (bytes both ways),
    -- and is refused 403 for <other>.
    local function assert_connect_ports(p, allowed, other)
      for _, o in ipairs(allowed) do
        local sock, resp = connect_through(p, o.port)
        assert.equal("HTTP/1.1 200 Connection Established", resp.status_line)
        local ping = "ping " .. o.port
        assert(h.send(sock, ping))
        assert.equal(ping, (h.recv_exact(sock, #ping)))
        sock:close()
      end
      local sock, resp = connect_through(p, other.port)
      assert(h.check_error_response(resp, 403, "Forbidden"))
      sock:close()
    end

    it("tunnels to each port of a two-port list and refuses others with 403", function()
      local a, b, other = origin("echo"), origin("echo"), origin("echo")
      assert_connect_ports(proxy({ "--connect-ports", a.port .. "," .. b.port }), { a, b }, other)
    end)

    it("is repeatable: a second list adds to the first", function()
      local a, b, other = origin("echo"), origin("echo"), origin("echo")
      local p = proxy({ "--connect-ports", tostring(a.port), "--connect-ports", tostring(b.port) })
      assert_connect_ports(p, { a, b }, other)
    end)
  end)

  describe("timeouts", function()
    -- The contract lets timeouts be fractions; this one must fire at 0.5 s,
    -- not be rounded to 0 or 1.
    it("--header-timeout 0.5 answers a stalled head with 408 after about half a second", function()
      local o = origin()
      local p = proxy({ "--header-timeout", "0.5" })
      local sock = assert(h.connect(p.port))
      h.send(sock, "GET " .. o.url("/hello") .. " HTTP/1.1\r\n")
      local started = socket.gettime()
      local resp, err = h.read_response(sock)
      local elapsed = socket.gettime() - started
      sock:close()
      assert(resp, "no response: " .. tostring(err))
      assert(h.check_error_response(resp, 408, "Request Timeout"))
      assert.is_true(elapsed > 0.3 and elapsed < 0.9, "408 after " .. elapsed .. " s")
    end)
  end)
end)
