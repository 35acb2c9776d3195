-- Lua hooks that go wrong: errors, endless loops, memory bombs, reloads
-- (SIGHUP) with good and broken scripts, --check, and scripts that fail at
-- load time. In every case the client gets a clean answer (500 without a
-- trace, or a closed connection once the head is out), the log says what
-- happened and where, and the proxy keeps serving. See /tmp/brief/hooks.md.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local each_test = require("support.each_test")

local FIXTURES = h.HOOK_FIXTURES
local SCRIPT_FAILED = "500 Internal Server Error: a script failed while handling this request\n"

-- The line of <file> that contains <text> (plain), for "file:line" checks.
local function line_of(file, text)
  local n = 0
  for line in assert(io.lines(file)) do
    n = n + 1
    if line:find(text, 1, true) then return n end
  end
  error(text .. " not in " .. file)
end

describe("hook safety", function()
  local procs = each_test.processes()
  local origin, proxy
  before_each(function() origin = procs.origin() end)

  -- Starts the proxy with hook scripts (see h.hook_args) and more arguments.
  local function start(scripts, args)
    proxy = procs.proxy(h.hook_args(scripts, args))
    return proxy
  end

  local function host_hdr() return "Host: " .. origin.authority end

  local function exchange(bytes, opts)
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, bytes))
    local resp, err = h.read_response(s, opts)
    s:close()
    assert(resp, "no response: " .. tostring(err))
    return resp
  end

  local function get(path, headers)
    local list = { host_hdr() }
    for _, x in ipairs(headers or {}) do list[#list + 1] = x end
    return exchange(h.request("GET", origin.url(path), list))
  end

  -- Waits (bounded) until the log has <n> lines containing <text> (plain).
  local function wait_log_count(text, n, timeout)
    return h.wait_for(function()
      local count = 0
      for line in proxy.log():gmatch("[^\n]+") do
        if line:find(text, 1, true) then count = count + 1 end
      end
      return count >= n
    end, timeout)
  end
  local function wait_log(text, timeout) return wait_log_count(text, 1, timeout) end

  local function assert_script_500(resp)
    assert.are.equal("HTTP/1.1 500 Internal Server Error", resp.status_line)
    assert.are.equal(SCRIPT_FAILED, resp.body)
    assert.are.equal(tostring(#SCRIPT_FAILED), resp.headers["content-length"])
  end

  ----------------------------------------------------------------------------
  describe("errors", function()
    it("answers 500 without a trace and logs script, line and traceback", function()
      start({ "fail_request" })
      local resp = get("/hello", { "X-Fail: 1" })
      assert_script_500(resp)
      assert.falsy(resp.body:find("traceback", 1, true))
      assert.falsy(resp.body:find("boom", 1, true))
      assert.falsy(resp.body:find(".lua", 1, true))
      assert.are.equal(0, #origin.requests())

      local file = FIXTURES .. "fail_request.lua"
      local where = file .. ":" .. line_of(file, 'error("boom on purpose")') .. ": boom on purpose"
      assert.truthy(wait_log(where), "log lacks " .. where .. ":\n" .. proxy.log())
      assert.truthy(proxy.log():find("on_request failed: " .. where, 1, true), proxy.log())
      assert.truthy(proxy.log():find("stack traceback:", 1, true), proxy.log())
      -- on_done still runs, and sees the failure.
      assert.truthy(wait_log("fail_request done #"), proxy.log())
      assert.truthy(proxy.log():find("fail_request done #%d+ status=500 error=[^\n]*script failed"),
        proxy.log())

      -- The proxy keeps serving, on a new connection and with the same script.
      resp = get("/hello")
      assert.are.equal(200, resp.status)
      assert.are.equal("by fail_request.lua", origin.requests()[1].headers["x-changed"])
    end)

    it("makes tx:respond on a tx kept from an earlier exchange the calling hook's error", function()
      start({ "stale_tx" })
      assert.are.equal(200, get("/").status)
      assert_script_500(get("/stale"))
      assert.truthy(wait_log("tx:respond on a tx whose exchange is over"), proxy.log())
      assert.truthy(proxy.log():find("stale_tx.lua:7:", 1, true), proxy.log())
      assert.are.equal(200, get("/hello").status)
    end)

    it("keeps the proxy's C functions below a hook out of the debug library's reach", function()
      start({ "hook_caller" })
      local resp = get("/info")
      assert.are.equal(200, resp.status)
      assert.are.equal("C nil true\n", resp.body)
      resp = get("/local")
      assert.are.equal(200, resp.status)
      assert.are.equal("nil nil tx\n", resp.body)
      assert.are.equal(200, get("/hello").status)
    end)

    it("closes the connection when on_response_chunk fails after the head was sent", function()
      start({ "fail_chunk" })
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, h.request("GET", origin.url("/bytes?n=300000"), { host_hdr() })))
      local resp = assert(h.read_response(s))
      assert.are.equal(200, resp.status)
      assert.are.equal("chunked", resp.framing)
      assert.is_true(resp.incomplete, "the body looked complete: " .. #resp.body .. " bytes")
      assert.truthy(#resp.body <= 300000)
      assert.are.equal(h.pattern(#resp.body), resp.body)
      assert.is_true(h.is_closed(s, 3))
      s:close()
      assert.truthy(wait_log("on_response_chunk failed"), proxy.log())
      assert.truthy(proxy.log():find("chunk boom", 1, true), proxy.log())
      -- Next client is served (bodies without the failing eof are fine).
      local r2 = get("/status/204")
      assert.are.equal(204, r2.status)
    end)

    it("with --hook-errors open, undoes the failing hook's changes and carries on", function()
      start({ "fail_request" }, { "--hook-errors", "open" })
      local resp = get("/echo", { "X-Fail: 1" })
      assert.are.equal(200, resp.status)
      local r = origin.requests()[1]
      assert.truthy(r, "the request did not reach the origin")
      assert.are.equal("GET /echo HTTP/1.1", r.request_line)
      assert.is_nil(r.headers["x-changed"])
      assert.are.equal(r.head, resp.body)
      assert.truthy(wait_log("boom on purpose"), proxy.log())

      -- Without the failure the changes do apply.
      resp = get("/echo")
      r = origin.requests()[2]
      assert.are.equal("GET /echo?changed=1 HTTP/1.1", r.request_line)
      assert.are.equal("by fail_request.lua", r.headers["x-changed"])
    end)

    it("with --hook-errors open, undoes the body flags a failing hook set", function()
      -- Each flag, set by a hook that then fails, would keep the body away
      -- from the chunk hook (or send it still compressed, or collected).
      local script = h.tmpfile([[
function on_request(tx)
  local flag = tx.req.headers["X-Req-Flag"]
  if flag == "filter" then tx.req.filter_body = false end
  if flag == "buffer" then tx.req.buffer_body = true end
  if flag then error("request flag on purpose") end
end
function on_request_chunk(tx, chunk) return chunk:upper() end
function on_response(tx)
  local flag = tx.req.headers["X-Res-Flag"]
  if flag == "filter" then tx.res.filter_body = false end
  if flag == "decode" then tx.res.decode_body = false end
  if flag then error("response flag on purpose") end
end
function on_response_chunk(tx, chunk) return chunk:upper() end
]], "flags.lua")
      start({ script }, { "--hook-errors", "open" })
      for n, flag in ipairs({ "filter", "buffer" }) do
        local resp = exchange(h.request("POST", origin.url("/echo"),
          { host_hdr(), "X-Req-Flag: " .. flag, "Content-Length: 5" }, "hello"))
        assert.are.equal(200, resp.status)
        local r = origin.requests()[n]
        assert.truthy(r, "the request did not reach the origin")
        assert.are.equal("chunked", r.headers["transfer-encoding"], flag)
        assert.are.equal("HELLO", h.decode_chunked(r.body), flag)
      end
      local resp = get("/hello", { "X-Res-Flag: filter" })
      assert.are.equal(200, resp.status)
      assert.are.equal("HELLO\n", resp.body)
      assert.are.equal("chunked", resp.framing)
      local gz = h.tmpfile("", "hello.gz")
      assert(h.sh("printf hello | gzip -c > " .. h.shell_quote(gz)))
      resp = get("/file?path=" .. gz .. "&encoding=gzip", { "X-Res-Flag: decode" })
      assert.are.equal(200, resp.status)
      assert.is_nil(resp.headers["content-encoding"])
      assert.are.equal("HELLO", resp.body)
      assert.truthy(wait_log_count("flag on purpose", 4), proxy.log())
    end)

    it("with --hook-errors open, undoes a failing hook's change to tx.upstream", function()
      -- The first script moves the request to the origin; the second moves
      -- it again, in place, to a port nobody listens on, and fails.
      local first = h.tmpfile([[
function before_connect(tx) tx.upstream.port = tonumber(tx.req.headers["X-Good-Port"]) end
]], "move.lua")
      local second = h.tmpfile([[
function before_connect(tx)
  tx.upstream.port = tonumber(tx.req.headers["X-Bad-Port"])
  error("upstream change on purpose")
end
]], "move_and_fail.lua")
      start({ first, second }, { "--hook-errors", "open" })
      local target = "http://127.0.0.1:" .. h.closed_port() .. "/hello"
      local resp = exchange(h.request("GET", target, { "Host: 127.0.0.1",
        "X-Good-Port: " .. origin.port, "X-Bad-Port: " .. h.closed_port() }))
      assert.are.equal(200, resp.status)
      assert.are.equal("hello\n", resp.body)
      assert.truthy(wait_log_count("upstream change on purpose", 1), proxy.log())
    end)

    -- The proxy keeps a header list's copy of the head, and a request's
    -- line, in a userdata at slot 1 of the list (and at slot 3 of tx.req).
    -- A script reaches those slots with rawset; another userdata put there
    -- (an io file) was read as the proxy's own: out of bounds, and the
    -- worker crashed.
    it("takes no userdata of a script's for the proxy's own copy of a head", function()
      local script = h.tmpfile([[
function on_request(tx)
  local case = tx.req.headers["X-Case"]
  if case == "list" then
    local hl = tx.req.headers
    rawset(hl, 1, io.stdout)
    hl["X-Added"] = "1"
  elseif case == "count" then
    local t = setmetatable({}, getmetatable(tx.req.headers))
    rawset(t, 1, io.stdout)
    tx.ctx.n = #t
  elseif case == "line" then
    rawset(tx.req, 3, io.stdout)
    tx.ctx.m = tx.req.method
  end
end
]], "userdata_slot.lua")
      start({ script })
      for _, case in ipairs({ "list", "count", "line" }) do
        local resp = get("/hello", { "X-Case: " .. case })
        assert.truthy(resp.status == 200 or resp.status == 500, case .. ": " .. resp.status)
        assert.is_true(proxy.alive(), case .. ": " .. proxy.log())
      end
      assert.are.equal("hello\n", get("/hello").body)
    end)
  end)

  ----------------------------------------------------------------------------
  describe("runaway scripts", function()
    for _, how in ipairs({ "plain", "pcall", "coroutine", "wrap" }) do
      it("stops a " .. how .. " endless loop with 500 and serves another client meanwhile", function()
        start({ "loop" }, { "--hook-timeout", "50" })
        local looper = assert(h.connect(proxy.port))
        local t0 = h.now()
        assert(h.send(looper, h.request("GET", origin.url("/hello"), { host_hdr(), "X-Loop: " .. how })))
        local other = get("/hello")
        local t1 = h.now()
        assert.are.equal(200, other.status)
        assert.are.equal("hello\n", other.body)
        local resp = assert(h.read_response(looper, { timeout = 3 }))
        local t2 = h.now()
        looper:close()
        assert_script_500(resp)
        assert.truthy(t2 - t0 < 1.05, ("the loop was stopped after %.3f s"):format(t2 - t0))
        assert.truthy(t1 - t0 < 1.05, ("the other client waited %.3f s"):format(t1 - t0))
        assert.truthy(wait_log("on_request took longer than 50 ms and was stopped"), proxy.log())
        -- Still serving.
        assert.are.equal(200, get("/hello").status)
        -- Only the one good request and the last reached the origin.
        assert.are.equal(2, #origin.requests())
      end)
    end

    for _, how in ipairs({ "table", "rep", "pcall" }) do
      it("stops a memory bomb (" .. how .. ") with 500 and keeps serving", function()
        start({ "memory" }, { "--lua-memory", "16" })
        for _ = 1, 3 do
          local resp = exchange(h.request("GET", origin.url("/hello"), { host_hdr(), "X-Bomb: " .. how }),
            { timeout = 10 })
          assert_script_500(resp)
          assert.are.equal(200, get("/hello").status)
        end
        if how == "rep" then
          assert.truthy(wait_log("on_request ran out of memory"), proxy.log())
        else
          -- Filling a table takes time: on a slow (sanitizer) build the
          -- time limit may stop it before the memory cap does. Caught
          -- memory errors, too, end in one or the other.
          assert.truthy(h.wait_for(function()
            local log = proxy.log()
            return log:find("on_request ran out of memory", 1, true)
              or log:find("on_request took longer than", 1, true)
          end), proxy.log())
        end
        assert.is_true(proxy.alive())
      end)
    end

    for _, how in ipairs({ "big", "collect", "caught" }) do
      it("keeps collecting garbage as it comes after a full collection (" .. how .. ")", function()
        -- Lua 5.4.4's collector kept the target it had before a full
        -- collection (the proxy's after a bomb, or a script's own
        -- collectgarbage()): the garbage of later requests piled up (16
        -- MiB here) until one of them paid for sweeping it all. A bomb
        -- the script caught itself left its garbage and that target
        -- behind: a later, innocent hook ran out of memory.
        start({ "memory" }, { "--lua-memory", "32", "--hook-timeout", "10000" })
        local resp = exchange(h.request("GET", origin.url("/hello"), { host_hdr(), "X-Bomb: " .. how }),
          { timeout = 30 })
        if how == "big" then assert_script_500(resp) else assert.are.equal(200, resp.status) end
        if how == "caught" then assert.are.equal("caught", resp.body) end
        local n = 300 -- about 6 MiB of garbage in all
        local s = assert(h.connect(proxy.port))
        local one = h.request("GET", origin.url("/hello"), { host_hdr(), "X-Garbage: 1" })
        assert(h.send(s, one:rep(n)))
        for i = 1, n do
          local r = assert(h.read_response(s))
          assert.are.equal(200, r.status, "request " .. i)
        end
        assert(h.send(s, h.request("GET", origin.url("/hello"), { host_hdr(), "X-Heap: 1" })))
        local heap = assert(h.read_response(s))
        s:close()
        assert.truthy(tonumber(heap.body) < 2048, "Lua heap " .. heap.body .. " KiB after the requests")
      end)
    end
  end)

  ----------------------------------------------------------------------------
  describe("SIGHUP reload", function()
    local function version_script(v, extra)
      return ([[
-- reload test script, version %s
function on_request(tx)
  local secs = tonumber(tx.req.headers["X-Sleep"])
  if secs then
    proxy.log("version %s sleeping #" .. tx.id)
    proxy.sleep(secs)
  end
end
function on_response(tx)
  tx.res.headers["X-Version"] = "%s"
end
%s
]]):format(v, v, v, extra or "")
    end

    it("loads a good edit and keeps the old scripts when the edit is broken", function()
      local path = h.tmpfile(version_script("1"), "reload.lua")
      start({ path })
      assert.are.equal("1", get("/hello").headers["x-version"])

      h.write_file(path, version_script("2"))
      proxy.signal("HUP")
      assert.truthy(wait_log_count("SIGHUP: 1 script(s) reloaded", 1), proxy.log())
      assert.are.equal("2", get("/hello").headers["x-version"])

      h.write_file(path, version_script("3", "function broken( then end"))
      proxy.signal("HUP")
      assert.truthy(wait_log("reload failed, keeping the scripts in force"), proxy.log())
      local line
      for l in proxy.log():gmatch("[^\n]+") do
        if l:find("reload failed", 1, true) then line = l end
      end
      assert.truthy(line:find(path:gsub("%p", "%%%0") .. ":%d+:"), line)
      local resp = get("/hello")
      assert.are.equal(200, resp.status)
      assert.are.equal("2", resp.headers["x-version"])
      assert.is_true(proxy.alive())

      -- Top-level code that never ends is stopped; the old scripts stay.
      h.write_file(path, version_script("5", "while true do pcall(function() while true do end end) end"))
      proxy.signal("HUP")
      assert.truthy(wait_log_count("reload failed, keeping the scripts in force", 2), proxy.log())
      assert.truthy(proxy.log():find("its top-level code ran longer than 1 s", 1, true), proxy.log())
      assert.are.equal("2", get("/hello").headers["x-version"])

      -- So is one long call of a library function, where no debug hook fires.
      h.write_file(path, version_script("6", "table.move({}, 1, math.maxinteger - 1, 2)"))
      proxy.signal("HUP")
      assert.truthy(wait_log_count("reload failed, keeping the scripts in force", 3), proxy.log())
      assert.truthy(proxy.log():find("top-level code timed out in table.move", 1, true), proxy.log())
      assert.are.equal("2", get("/hello").headers["x-version"])

      -- Fixing the file and reloading again works.
      h.write_file(path, version_script("4"))
      proxy.signal("HUP")
      assert.truthy(wait_log_count("SIGHUP: 1 script(s) reloaded", 2), proxy.log())
      assert.are.equal("4", get("/hello").headers["x-version"])
    end)

    -- Scripts load on a thread of their own: their top-level code (up to
    -- the load time limit each) does not stop the loop.
    it("keeps serving with the scripts in force while new ones load", function()
      local go = h.tmpfile("", "go")
      os.remove(go)
      local path = h.tmpfile(version_script("1"), "reload.lua")
      start({ path })
      assert.are.equal("1", get("/hello").headers["x-version"])
      h.write_file(path, ([[
proxy.log("version 2 loading")
while not io.open(%q) do end -- until the test says go (or the load time limit)
]]):format(go) .. version_script("2"))
      proxy.signal("HUP")
      assert.truthy(wait_log("version 2 loading"), proxy.log())
      local resp = get("/hello")
      assert.are.equal(200, resp.status)
      assert.are.equal("1", resp.headers["x-version"])
      assert.is_nil(proxy.log():find("SIGHUP: 1 script(s) reloaded", 1, true), proxy.log())
      h.write_file(go, "go")
      assert.truthy(wait_log("SIGHUP: 1 script(s) reloaded"), proxy.log())
      assert.are.equal("2", get("/hello").headers["x-version"])
    end)

    it("lets an exchange in flight finish with the old script", function()
      local path = h.tmpfile(version_script("old"), "reload.lua")
      start({ path })
      local sleeper = assert(h.connect(proxy.port))
      assert(h.send(sleeper, h.request("GET", origin.url("/hello"), { host_hdr(), "X-Sleep: 1" })))
      assert.truthy(wait_log("version old sleeping #"), proxy.log())

      h.write_file(path, version_script("new"))
      proxy.signal("HUP")
      assert.truthy(wait_log("SIGHUP: 1 script(s) reloaded"), proxy.log())
      local fresh = get("/hello")
      assert.are.equal("new", fresh.headers["x-version"])

      local resp = assert(h.read_response(sleeper))
      sleeper:close()
      assert.are.equal(200, resp.status)
      assert.are.equal("hello\n", resp.body)
      assert.are.equal("old", resp.headers["x-version"])
    end)
  end)

  ----------------------------------------------------------------------------
  describe("reloads while tunnels stay open", function()
    -- Each tunnel keeps the scripts it started under (its on_done runs
    -- when it closes). Reloads keep at most three earlier sets alive: a
    -- fourth closes the connections still using the oldest.
    it("keep at most three earlier sets of scripts, closing the oldest's connections", function()
      local echo = procs.origin("echo")
      local path = h.tmpfile("function on_request(tx) end\n", "reload.lua")
      start({ path }, { "--connect-ports", tostring(echo.port) })
      local target = "127.0.0.1:" .. echo.port
      local function open_tunnel()
        local s = assert(h.connect(proxy.port))
        assert(h.send(s, h.request("CONNECT", target, { "Host: " .. target })))
        assert.are.equal(200, assert(h.read_response(s, { method = "CONNECT" })).status)
        return s
      end
      local function echoes(s, text)
        assert(h.send(s, text))
        return h.recv_exact(s, #text) == text
      end
      local tunnels = {}
      for n = 1, 4 do
        tunnels[n] = open_tunnel() -- under the scripts of reload n - 1
        proxy.signal("HUP")
        assert.truthy(wait_log_count("SIGHUP: 1 script(s) reloaded", n), proxy.log())
      end
      assert.truthy(wait_log("reload: closed 1 connection(s) still using the oldest of 4 "
        .. "earlier sets of scripts"), proxy.log())
      local rest, how = h.recv_until_close(tunnels[1], 5)
      assert.are.equal("", rest)
      assert.are.equal("closed", how)
      for n = 2, 4 do assert.is_true(echoes(tunnels[n], "still here " .. n)) end
      assert.truthy(wait_log("CONNECT " .. target .. " -> 200 (closed: its scripts were replaced "
        .. "by later reloads)"), proxy.log())
      for _, s in ipairs(tunnels) do s:close() end
    end)
  end)

  describe("--check and loading", function()
    -- Runs `luaproxy --check FILE...`; returns exit status, stdout, stderr.
    local function check(...)
      local files = {}
      for _, f in ipairs({ ... }) do files[#files + 1] = h.shell_quote(f) end
      local err_file = h.tmpfile("", "stderr")
      local out, code = h.sh(h.shell_quote(h.bin()) .. " --check " .. table.concat(files, " ")
        .. " 2>" .. h.shell_quote(err_file) .. " </dev/null")
      return code, out, h.read_file(err_file) or ""
    end

    -- Starts the proxy with <file> as its script, expecting it to exit
    -- non-zero without listening; returns what it wrote on stderr.
    local function start_refused(file, timeout)
      local p = h.start_proxy({ "-s", file }, { wait = false })
      local code = p.wait_exit(timeout or 5)
      if not code then p.stop(1) end
      assert.truthy(code and code ~= 0, "exit status " .. tostring(code))
      local err = p.stderr()
      assert.falsy(err:find("listening on", 1, true), err)
      return err
    end

    it("says ok for a good script", function()
      local file = FIXTURES .. "order.lua"
      local code, out, err = check(file)
      assert.are.equal(0, code, err)
      assert.are.equal(file .. ": ok (5 hooks)\n", out)
    end)

    it("names file and line of a syntax error", function()
      local file = FIXTURES .. "check_syntax.lua"
      local code, out, err = check(file)
      assert.are.equal(1, code)
      assert.falsy(out:find("ok", 1, true), out)
      local line = line_of(file, "then then")
      assert.truthy(err:find(file .. ":" .. line .. ":", 1, true), err)
    end)

    it("names a misspelt hook", function()
      local file = FIXTURES .. "check_misspelt.lua"
      local code, out, err = check(file)
      assert.are.equal(1, code)
      assert.truthy(err:find("'on_requset' is not a hook", 1, true), err)
      assert.truthy(err:find(file, 1, true), err)
    end)

    it("fails when any of several scripts has a problem", function()
      local good, bad = FIXTURES .. "counter.lua", FIXTURES .. "check_syntax.lua"
      local code, out, err = check(good, bad)
      assert.are.equal(1, code)
      assert.truthy(out:find(good .. ": ok (1 hook)", 1, true), out)
      assert.truthy(err:find(bad, 1, true), err)
    end)

    it("exits non-zero with the error when a script fails while loading", function()
      local file = FIXTURES .. "load_error.lua"
      local err = start_refused(file)
      assert.truthy(err:find("this script refuses to load: no config", 1, true), err)
      local line = line_of(file, "error(")
      assert.truthy(err:find(file .. ":" .. line .. ":", 1, true), err)
    end)

    it("stops top-level code that never ends, and exits non-zero", function()
      local file = FIXTURES .. "load_loop.lua"
      local err = start_refused(file, 10)
      assert.truthy(err:find(file .. ": its top-level code ran longer than 1 s", 1, true), err)
    end)

    it("stops a pattern match at the top level that would run for minutes", function()
      local file = FIXTURES .. "load_pattern.lua"
      local err = start_refused(file, 10)
      assert.truthy(err:find("top-level code timed out in a pattern match", 1, true), err)
      assert.truthy(err:find(file .. ":" .. line_of(file, "string.find(") .. ":", 1, true), err)
    end)

    it("stops a library call at the top level that would run for ever", function()
      local file = h.tmpfile('local s = string.rep("", 1e15)\nlocal t = table.move({}, 1, 2^62, 2)\n',
        "load_library_loop.lua")
      local err = start_refused(file, 10)
      assert.truthy(err:find(file .. ": its top-level code ran longer than 1 s", 1, true), err)
      assert.truthy(err:find(file .. ":2: top-level code timed out in table.move", 1, true), err)
    end)

    -- A NUL in the message must not hide what follows it (as in what a
    -- script logs): it is written as \x00, at startup and by --check,
    -- with the script's position (level 1) or without (level 0).
    it("writes a NUL in a load error as \\x00 and keeps the rest", function()
      for _, level in ipairs({ 1, 0 }) do
        local file = h.tmpfile('error("before\\0after", ' .. level .. ')\n', "load_nul.lua")
        local err = start_refused(file)
        assert.truthy(err:find(file .. ":" .. (level == 1 and "1: " or " ") .. "before\\x00after", 1,
          true), err)
        local code, out
        code, out, err = check(file)
        assert.are.equal(1, code)
        assert.are.equal("", out)
        assert.truthy(err:find(file .. ":" .. (level == 1 and "1: " or " ") .. "before\\x00after", 1,
          true), err)
      end
    end)

    it("exits non-zero when a script has a syntax error at startup", function()
      local file = FIXTURES .. "check_syntax.lua"
      local err = start_refused(file)
      assert.truthy(err:find(file .. ":" .. line_of(file, "then then") .. ":", 1, true), err)
    end)
  end)
end)
