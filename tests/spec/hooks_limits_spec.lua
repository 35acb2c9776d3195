-- What a script may not do to the proxy through the standard library: a
-- backtracking Lua pattern is stopped by the hook's time budget like a
-- loop (the worker then serves the next client), os.exit fails only the
-- exchange (or the load, at a script's top level), and os.execute cannot
-- block a worker from inside a hook.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local each_test = require("support.each_test")

local SCRIPT_FAILED = "500 Internal Server Error: a script failed while handling this request\n"

describe("hook limits", function()
  local procs = each_test.processes()
  local origin, proxy
  before_each(function() origin = procs.origin() end)

  local function get(path, timeout)
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("GET", origin.url(path), { "Host: " .. origin.authority })))
    local resp, err = h.read_response(s, { timeout = timeout })
    s:close()
    return assert(resp, "no response: " .. tostring(err))
  end

  -- Asks for each of <paths> in turn: /hello must be served, every other
  -- one stopped by the budget (500). An answer that never comes fails.
  local function each_answered(paths)
    for _, path in ipairs(paths) do
      local resp = get(path, 10)
      if path == "/hello" then
        assert.are.equal("hello\n", resp.body)
      else
        assert.are.equal(500, resp.status, path)
      end
    end
  end

  -- The budget's watchdog thread ticks while hooks run often, and sleeps
  -- until the next hook once they stop: an idle proxy (a debugging one on
  -- a laptop, say) does not wake it hundreds of times after each request.
  it("lets the hook timeout's watchdog sleep soon after hooks stop running", function()
    proxy = procs.proxy({ "-s", h.tmpfile("function on_request(tx) end", "noop.lua"),
      "--workers", "1" })
    assert.are.equal("hello\n", get("/hello").body)
    local task = "/proc/" .. proxy.pid .. "/task/"
    local status
    for tid in h.sh("ls " .. task):gmatch("%d+") do
      if (h.read_file(task .. tid .. "/comm") or ""):match("^hook watchdog") then
        status = task .. tid .. "/status"
      end
    end
    assert(status, "no thread named 'hook watchdog'")
    local function wakes()
      return tonumber((h.read_file(status) or ""):match("voluntary_ctxt_switches:%s*(%d+)"))
    end
    -- Idle from here on: what the thread does over a second, after a
    -- moment to settle, is what an idle proxy costs.
    h.sleep(0.6)
    local before = wakes()
    h.sleep(1)
    local after = wakes()
    assert.is_true(after - before <= 2, (after - before) .. " wake-ups in a second of idling")
    -- and it wakes for the next hook, which the budget still covers
    assert.are.equal("hello\n", get("/hello").body)
  end)

  it("stops a backtracking pattern at the hook budget and keeps serving", function()
    -- 2^30 backtracking steps: a minute of CPU without a step budget.
    local script = h.tmpfile([[
      function on_request(tx)
        if tx.req.path:find("bomb", 1, true) then
          local s = string.rep("a", 30)
          local ok = pcall(string.find, s, string.rep("a?", 30) .. string.rep("a", 30))
          tx.req.headers["X-Caught"] = tostring(ok) -- never reached: the hook is stopped
        end
      end
    ]], "pattern.lua")
    proxy = procs.proxy({ "-s", script, "--hook-timeout", "300" })
    local resp = get("/bomb", 20)
    assert.are.equal("HTTP/1.1 500 Internal Server Error", resp.status_line)
    assert.are.equal(SCRIPT_FAILED, resp.body)
    assert.is_truthy(h.wait_for(function()
      return proxy.log():find("took longer than 300 ms", 1, true)
    end))
    -- the one worker is free again
    assert.are.equal("hello\n", get("/hello").body)
  end)

  -- A hook stopped inside a function called from C raises its error from
  -- within Lua's debug hook, which leaves hooks off on that coroutine: one
  -- reused after it let the next endless hook run for ever.
  it("stops every endless hook after one stopped inside a callback from C", function()
    local script = h.tmpfile([[
      function on_request(tx)
        if tx.req.path == "/in-callback" then
          string.gsub("abc", "%w", function() while true do end end)
        elseif tx.req.path == "/in-sort" then
          table.sort({ 3, 2, 1 }, function() while true do end end)
        elseif tx.req.path == "/plain" then
          while true do end
        end
      end
    ]], "callback_loop.lua")
    proxy = procs.proxy({ "-s", script, "--hook-timeout", "200" })
    each_answered({ "/in-callback", "/plain", "/in-sort", "/hello", "/plain", "/plain" })
  end)

  -- Lua's debug hook never fires inside a C function, and some library
  -- functions loop for as long as their arguments say, allocating
  -- nothing: each one held the worker for good.
  it("stops a hook stuck in a long library call and keeps serving", function()
    local script = h.tmpfile([[
      local endless = { __close = function() while true do end end }
      local long = { __len = function() return math.maxinteger - 1 end }
      local paths = {
        ["/move"] = function() table.move({}, 1, math.maxinteger - 1, 2) end,
        ["/insert"] = function() table.insert(setmetatable({}, long), 1, "x") end,
        ["/remove"] = function() table.remove(setmetatable({}, long), 1) end,
        ["/concat"] = function() -- every number indexes as "", from C
          debug.setmetatable(0, { __index = string.sub, __len = long.__len })
          table.concat(5, "", 2, math.maxinteger)
        end,
        ["/sort"] = function()
          debug.setmetatable(0, { __index = math.abs, __newindex = math.abs,
                                  __len = function() return 2^31 - 2 end })
          table.sort(5)
        end,
        ["/load"] = function() load(os.time) end, -- one long numeral, read from C
        ["/close"] = function()
          local co = coroutine.create(function()
            local x <close> = setmetatable({}, endless)
            coroutine.yield()
          end)
          coroutine.resume(co)
          coroutine.close(co)
        end,
        ["/wrap-close"] = function()
          pcall(coroutine.wrap(function()
            local x <close> = setmetatable({}, endless)
            error("closes x")
          end))
        end,
        ["/bomb-close"] = function() -- the failed hook's coroutine is closed
          local x <close> = setmetatable({}, endless)
          local t = {}
          for i = 1, math.maxinteger do t[i] = i end
        end,
        ["/sethook"] = function() debug.sethook(function() while true do end end, "", 1) end,
      }
      function on_request(tx)
        if tx.req.path == "/rep" then
          return tx:respond(200, "#" .. #string.rep("", 1e15) .. #("x"):rep(0) .. #string.rep("", 1e15, ""))
        end
        local f = paths[tx.req.path]
        if f then f() end
      end
    ]], "library_loops.lua")
    proxy = procs.proxy({ "-s", script, "--hook-timeout", "100" })
    assert.are.equal("#000", get("/rep", 10).body)
    each_answered({ "/move", "/hello", "/insert", "/remove", "/concat", "/sort", "/load", "/close",
                    "/wrap-close", "/bomb-close", "/sethook", "/hello" })
    -- /sethook came last: once its line is out, so are the others'.
    assert.truthy(proxy.log_has("debug.sethook cannot be used in a script"), proxy.log())
    local log = proxy.log()
    for _, fn in ipairs({ "table.move", "table.insert", "table.remove", "table.concat", "table.sort" }) do
      assert.truthy(log:find("hook timed out in " .. fn, 1, true), fn .. "\n" .. log)
    end
    assert.truthy(log:find("debug.sethook cannot be used in a script", 1, true), log)
  end)

  -- Lua does not check precompiled chunks (a crafted one can crash it),
  -- and the registry and the guarded functions' upvalues are the proxy's:
  -- a script gets text chunks only, and not those parts of debug.
  it("loads text chunks only, and keeps the registry and upvalues from scripts", function()
    local script = h.tmpfile([[
      function on_request(tx)
        local dumped = string.dump(function() return 1 end)
        local f, err = load(dumped)
        local sent = false
        local r = load(function() if not sent then sent = true return dumped end end)
        local g = load("return 2", "two", "t")
        local gone = {}
        for _, name in ipairs({ "getregistry", "getupvalue", "setupvalue", "upvaluejoin",
                                "setlocal" }) do
          if debug[name] == nil then gone[#gone + 1] = name end
        end
        return tx:respond(200, table.concat({ tostring(f), err or "", tostring(r), tostring(g and g()),
          table.concat(gone, ","), tostring(debug.traceback ~= nil) }, "|"))
      end
    ]], "debug_load.lua")
    proxy = procs.proxy({ "-s", script })
    local body = get("/x", 10).body
    assert.are.equal("nil|attempt to load a binary chunk (scripts may load text chunks only)|nil|2|"
      .. "getregistry,getupvalue,setupvalue,upvaluejoin,setlocal|true", body)
  end)

  -- lua-cjson wrote a table that holds another twice, forty levels deep,
  -- as 2^40 copies, in C memory and with no time limit: the worker grew
  -- by gigabytes. proxy.json's text is in Lua memory and counts steps.
  it("stops a proxy.json.encode that would write for ever", function()
    local script = h.tmpfile([[
      function on_request(tx)
        if tx.req.path == "/twice" then
          local t = {}
          for _ = 1, 40 do t = { t, t } end
          proxy.json.encode(t)
        end
      end
    ]], "json_bomb.lua")
    proxy = procs.proxy({ "-s", script, "--hook-timeout", "100" })
    local before = assert(proxy.peak_rss_kb())
    each_answered({ "/twice", "/hello" })
    assert.truthy(proxy.log_has("hook timed out in proxy.json.encode"), proxy.log())
    local grew = assert(proxy.peak_rss_kb()) - before
    assert.truthy(grew < 128 * 1024, ("the worker grew by %d KiB"):format(grew))
  end)

  -- A hash or a base64 call on a long string is one C call: it looks at
  -- the budget between pieces, so one call cannot run past it.
  it("stops a hash or a base64 call that runs past the hook's budget", function()
    local script = h.tmpfile([[
      local big = string.rep("0123456789abcdef", 512 * 1024) -- 8 MiB
      local big64 = proxy.base64.encode(big)
      local calls = {
        ["/sha256"] = function() return proxy.sha256(big) end,
        ["/hmac"] = function() return proxy.hmac_sha256("k", big) end,
        ["/encode"] = function() return proxy.base64.encode(big) end,
        ["/decode"] = function() return proxy.base64.decode(big64) end,
      }
      function on_request(tx)
        local call = calls[tx.req.path]
        if call then call() end
      end
    ]], "long_calls.lua")
    proxy = procs.proxy({ "-s", script, "--hook-timeout", "1" })
    each_answered({ "/sha256", "/hello", "/hmac", "/hello", "/encode", "/hello", "/decode",
                    "/hello" })
    for _, what in ipairs({ "proxy.sha256", "proxy.hmac_sha256", "proxy.base64.encode",
                            "proxy.base64.decode" }) do
      assert.truthy(proxy.log_has("hook timed out in " .. what), proxy.log())
    end
  end)

  -- A blocking system call (here an open of a FIFO no one writes to) is
  -- cut short by the watchdog's signal: the hook meets its limit as the
  -- call returns, and only that exchange fails.
  it("ends a hook blocked in a system call at its deadline", function()
    local fifo = h.tmpfile("", "unused"):gsub("unused$", "fifo")
    assert(os.execute("mkfifo " .. h.shell_quote(fifo)))
    local script = h.tmpfile(([[
      function on_request(tx)
        if tx.req.path == "/stuck" then io.open(%q, "r") end
      end
    ]]):format(fifo), "blocked.lua")
    proxy = procs.proxy({ "-s", script, "--hook-timeout", "100" })
    local resp = get("/stuck")
    assert.are.equal(500, resp.status)
    assert.truthy(proxy.log_has("on_request took longer than 100 ms and was stopped"), proxy.log())
    assert.is_true(proxy.alive())
    for _ = 1, 4 do assert.are.equal("hello\n", get("/hello").body) end
  end)

  -- A C function that never returns, even when a signal interrupts it
  -- (luasocket's sleep goes back to sleep), is beyond any time limit: once
  -- it has run 10 budgets (at least 5 s) past its deadline the worker
  -- ends, and the supervisor starts another, rather than the worker
  -- holding its clients for good.
  it("ends a worker whose hook is stuck in a C call", function()
    local script = h.tmpfile([[
      local socket = require("socket")
      function on_request(tx)
        if tx.req.path == "/stuck" then socket.sleep(600) end
      end
    ]], "stuck.lua")
    proxy = procs.proxy({ "-s", script, "--hook-timeout", "100", "--workers", "2" })
    local stuck = assert(h.connect(proxy.port))
    assert(h.send(stuck, h.request("GET", origin.url("/stuck"), { "Host: " .. origin.authority })))
    assert.truthy(h.wait_for(function()
      return proxy.log():find("exited with status 70; starting a new one", 1, true)
    end, 30), proxy.log())
    stuck:close()
    assert.truthy(proxy.log():find("stuck.lua: on_request has run %d+%.%d s past %-%-hook%-timeout "
      .. "inside a C function that cannot be interrupted"), proxy.log())
    for _ = 1, 4 do assert.are.equal("hello\n", get("/hello").body) end
  end)

  -- Lua runs finalizers with debug hooks off: an endless one was beyond
  -- every time limit and held the worker for good.
  it("refuses finalizers (__gc), which no time limit reaches", function()
    local script = h.tmpfile([[
      function on_request(tx)
        local gc = { __gc = function() while true do end end }
        if tx.req.path == "/plain" then setmetatable({}, gc) end
        if tx.req.path == "/debug" then debug.setmetatable({}, gc) end
        collectgarbage()
      end
    ]], "finalizer.lua")
    proxy = procs.proxy({ "-s", script, "--hook-timeout", "200" })
    assert.are.equal(500, get("/plain", 10).status)
    assert.are.equal(500, get("/debug", 10).status)
    assert.are.equal("hello\n", get("/hello").body)
    assert.truthy(proxy.log_has("a metatable with __gc cannot be used in a script"), proxy.log())
  end)

  -- The proxy reads tx back after a hook returns; a metamethod the script
  -- left there runs then, and had no time limit.
  it("stops a script's metamethod that loops while tx is read back", function()
    local script = h.tmpfile([[
      function before_connect(tx)
        if tx.req.path == "/loop" then
          tx.upstream = setmetatable({}, { __index = function() while true do end end })
        end
      end
    ]], "readback_loop.lua")
    proxy = procs.proxy({ "-s", script, "--hook-timeout", "200" })
    each_answered({ "/loop", "/loop", "/hello" })
    assert.truthy(proxy.log_has("hook timed out"), proxy.log())
  end)

  it("matches patterns as Lua does", function()
    local script = h.tmpfile([[
      function on_request(tx)
        local k, v = ("key=value"):match("^(%w+)=(%w+)$")
        local n = select(2, ("a,b,,c"):gsub(",", ";"))
        local words = {}
        for w in ("one two  three"):gmatch("%a+") do words[#words + 1] = w end
        tx:respond(200, k .. ":" .. v .. ":" .. n .. ":" .. table.concat(words, "|"))
      end
    ]], "patterns_ok.lua")
    proxy = procs.proxy({ "-s", script })
    assert.are.equal("key:value:3:one|two|three", get("/").body)
  end)

  -- coroutine.resume and coroutine.wrap are the proxy's own (so the hook
  -- budget reaches into a script's coroutines); they answer as Lua's do.
  it("runs a script's coroutines as Lua does", function()
    local script = h.tmpfile([[
      function on_request(tx)
        local out = {}
        local co = coroutine.create(function(a, b)
          local c = coroutine.yield(a + b)
          error("bad " .. c)
        end)
        local ok, sum = coroutine.resume(co, 1, 2)
        out[#out + 1] = tostring(ok) .. "," .. tostring(sum)
        local err
        ok, err = coroutine.resume(co, "x")
        out[#out + 1] = tostring(ok) .. "," .. tostring(err):gsub("^.-:%d+: ", "")
        ok, err = coroutine.resume(co)
        out[#out + 1] = tostring(ok) .. "," .. tostring(err)
        local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
        out[#out + 1] = gen() .. gen() .. gen()
        local w = coroutine.wrap(function() error("inner") end)
        ok, err = pcall(w)
        out[#out + 1] = tostring(ok) .. "," .. tostring(err):gsub("^.-:%d+: ", "")
        ok, err = pcall(coroutine.resume, 42)
        out[#out + 1] = tostring(ok)
        tx:respond(200, table.concat(out, "|"))
      end
    ]], "coroutines.lua")
    proxy = procs.proxy({ "-s", script })
    assert.are.equal("true,3|false,bad x|false,cannot resume dead coroutine|123|false,inner|false",
      get("/").body)
  end)

  -- The hook's coroutine is the one that waits: inside one of the
  -- script's own, a sleep would be taken by the script's resume and
  -- return at once, with the proxy's marker as the resume's values.
  it("refuses proxy.sleep inside a coroutine of the script", function()
    local script = h.tmpfile([[
      function on_request(tx)
        if tx.req.path == "/plain" then
          proxy.sleep(0.001)
          return tx:respond(200, "slept")
        end
        local co = coroutine.wrap(function() proxy.sleep(0.001); return "woke" end)
        tx:respond(200, tostring(co()))
      end
    ]], "sleep_in_coroutine.lua")
    proxy = procs.proxy({ "-s", script })
    local resp = get("/")
    assert.are.equal(500, resp.status)
    assert.truthy(proxy.log_has("proxy.sleep cannot wait here"), proxy.log())
    assert.truthy(proxy.log_has("sleep_in_coroutine.lua:7:"), proxy.log())
    assert.are.equal("slept", get("/plain").body)
  end)

  -- A hook's coroutine is the proxy's: resumed from another exchange's
  -- hook, the waiting one ran on there, and its own exchange failed when
  -- its wait ended ("cannot resume dead coroutine").
  it("keeps a hook's own coroutine from being resumed or closed by another hook", function()
    local script = h.tmpfile([[
      local kept
      function on_request(tx)
        if tx.req.path == "/waits" then
          kept = coroutine.running()
          proxy.log("waiting now")
          local got = proxy.sleep(0.5)
          return tx:respond(200, "woke with " .. tostring(got))
        end
        local ok, err = coroutine.resume(kept, "forged")
        local closed, why = pcall(coroutine.close, kept)
        tx:respond(200, tostring(ok) .. " " .. err .. " | " .. tostring(closed) .. " "
          .. tostring(why):gsub("^.-:%d+: ", ""))
      end
    ]], "resume_other.lua")
    proxy = procs.proxy({ "-s", script })
    local waiting = assert(h.connect(proxy.port))
    assert(h.send(waiting, h.request("GET", origin.url("/waits"), { "Host: " .. origin.authority })))
    assert.truthy(proxy.log_has("waiting now"), proxy.log())
    assert.are.equal("false cannot resume a hook's own coroutine (the proxy resumes it) | "
      .. "false cannot close a hook's own coroutine (the proxy ends it)", get("/other").body)
    local resp = assert(h.read_response(waiting, { timeout = 5 }))
    waiting:close()
    assert.are.equal(200, resp.status)
    assert.are.equal("woke with nil", resp.body)
  end)

  it("turns os.exit in a hook into a failed exchange", function()
    local script = h.tmpfile([[
      function on_request(tx)
        if tx.req.path == "/exit" then os.exit(0) end
      end
    ]], "exit.lua")
    proxy = procs.proxy({ "-s", script })
    local resp = get("/exit")
    assert.are.equal("HTTP/1.1 500 Internal Server Error", resp.status_line)
    assert.is_truthy(proxy.log_has("os.exit cannot be used"), proxy.log())
    assert.are.equal("hello\n", get("/hello").body)
    assert.is_true(proxy.alive())
  end)

  it("refuses a script that calls os.exit at its top level", function()
    local script = h.tmpfile("os.exit(3)\n", "exit_top.lua")
    local code, _, err = h.run_proxy({ "-s", script })
    assert.are_not.equal(0, code)
    assert.is_truthy(err:find("os.exit cannot be used", 1, true))
  end)

  -- The locale is the process's: one set by a script would change how
  -- the proxy writes numbers for every exchange after it ("1,5").
  it("lets a script read the locale but not change it", function()
    local script = h.tmpfile([[
      function on_request(tx)
        if tx.req.path == "/set" then os.setlocale("C.UTF-8") end
        tx:respond(200, tostring(os.setlocale()) .. " " .. tostring(os.setlocale(nil, "numeric"))
          .. " " .. tostring(1.5))
      end
    ]], "locale.lua")
    proxy = procs.proxy({ "-s", script })
    local resp = get("/set")
    assert.are.equal("HTTP/1.1 500 Internal Server Error", resp.status_line)
    assert.is_truthy(proxy.log_has("os.setlocale cannot change the locale"), proxy.log())
    assert.are.equal("C C 1.5", get("/read").body)
  end)

  it("refuses os.execute inside a hook", function()
    local script = h.tmpfile([[
      function on_request(tx) os.execute("sleep 5") end
    ]], "execute.lua")
    proxy = procs.proxy({ "-s", script })
    local resp = get("/")
    assert.are.equal("HTTP/1.1 500 Internal Server Error", resp.status_line)
    assert.is_truthy(proxy.log_has("os.execute cannot be used in a hook"), proxy.log())
  end)
end)
