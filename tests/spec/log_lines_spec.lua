-- The diagnostics on standard error stay one line per event whatever a
-- client sends: a value a script logs (or prints), a script's error
-- message, a TLS server name. Control bytes, bytes of no UTF-8 character and characters
-- that drive a terminal are written as \xNN, so nobody can forge a line
-- that looks like the proxy's own or send an escape sequence to whoever
-- reads the log; a script's traceback continues on indented lines.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local each_test = require("support.each_test")

-- What a client puts in a query string, percent-encoded: a newline and a
-- line of its own making, ESC [2J (clear the screen), a C1 CSI in UTF-8,
-- a right-to-left override, a byte of no character, an "é" that is a
-- character like any other, and a NUL, which must not hide what follows.
local HOSTILE = "x%0a2026-01-01T00:00:00.000Z%20error%20FORGED%1b%5b2J%c2%9b%e2%80%ae%ff%20%c3%a9"
  .. "%00after"
local ESCAPED = "x\\x0a2026-01-01T00:00:00.000Z error FORGED\\x1b[2J\\xc2\\x9b\\xe2\\x80\\xae\\xff \195\169"
  .. "\\x00after"

local SCRIPT = [[
local function unescape(s)
  return (s:gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end))
end
function on_request(tx)
  local q = unescape(tx.req.path:match("%?q=(.*)$") or "")
  if tx.req.path:find("^/fail") then error("bad q: " .. q) end
  if tx.req.path:find("^/print") then
    print("q", q)
    return tx:respond(200, "ok\n")
  end
  if tx.req.path:find("^/io") then
    io.write("w ", q, "\n")
    io.stdout:write("o ", q, "\n")
    io.stderr:write("e ", q, "\n")
    io.output():write("d ", q, "\nsecond line\n")
    local closed, why = io.stdout:close()
    return tx:respond(200, tostring(closed) .. " " .. tostring(why) .. "\n")
  end
  proxy.log("q=" .. q)
  return tx:respond(200, "ok\n")
end
]]

-- Every line of <log> is one of the proxy's (it starts with its time) or
-- a traceback's continuation (it starts with a tab); none was made by a
-- client, and no raw escape or C1 control is left.
local function assert_lines_are_the_proxys(log)
  for line in log:gmatch("[^\n]+") do
    assert.truthy(line:find("^%d%d%d%d%-%d%d%-%d%dT") or line:find("^\t"), "a stray line: " .. line)
    assert.falsy(line:find("^2026%-01%-01T"), "a forged line: " .. line)
  end
  assert.falsy(log:find("\27", 1, true), "a raw ESC in the log")
  assert.falsy(log:find("\194\155", 1, true), "a raw C1 CSI in the log")
  assert.falsy(log:find("\226\128\174", 1, true), "a raw right-to-left override in the log")
  assert.falsy(log:find("\255", 1, true), "a raw byte of no character in the log")
end

describe("log lines", function()
  local procs = each_test.processes()
  local origin
  before_each(function() origin = procs.origin() end)

  it("escape what a script logs from a client's request", function()
    local proxy = procs.proxy({ "-s", h.tmpfile(SCRIPT, "log_q.lua") })
    local resp = assert(h.get(proxy.port, origin.url("/log?q=" .. HOSTILE)))
    assert.are.equal(200, resp.status)
    assert.truthy(proxy.log_has("q=" .. ESCAPED), proxy.log())
    assert_lines_are_the_proxys(proxy.log())
  end)

  it("escape a script's error message, and indent its traceback", function()
    local proxy = procs.proxy({ "-s", h.tmpfile(SCRIPT, "log_q.lua") })
    local resp = assert(h.get(proxy.port, origin.url("/fail?q=" .. HOSTILE)))
    assert.are.equal(500, resp.status)
    assert.truthy(proxy.log_has("bad q: " .. ESCAPED), proxy.log())
    assert.truthy(proxy.log_has("\n\tstack traceback:\n\t"), proxy.log())
    assert_lines_are_the_proxys(proxy.log())
  end)

  it("take what a script prints, which never reaches standard output (the access log)", function()
    local proxy = procs.proxy({ "-s", h.tmpfile(SCRIPT, "log_q.lua"), "--access-log", "-" })
    local resp = assert(h.get(proxy.port, origin.url("/print?q=" .. HOSTILE)))
    assert.are.equal(200, resp.status)
    assert.truthy(proxy.log_has("] q\t" .. ESCAPED), proxy.log())
    assert_lines_are_the_proxys(proxy.log())
    -- before, print wrote the client's line into the access log
    assert.truthy(h.wait_for(function() return proxy.stdout():find("/print?q=", 1, true) end),
      proxy.stdout())
    for line in proxy.stdout():gmatch("[^\n]+") do
      assert.truthy(line:find("^127%.0%.0%.1 %- %- %["), "not an access log line: " .. line)
    end
  end)

  it("take what a script writes to io's standard files, which never reach the proxy's own",
     function()
    local proxy = procs.proxy({ "-s", h.tmpfile(SCRIPT, "log_q.lua"), "--access-log", "-" })
    local resp = assert(h.get(proxy.port, origin.url("/io?q=" .. HOSTILE)))
    assert.are.equal(200, resp.status)
    assert.are.equal("nil cannot close standard file\n", resp.body)
    -- a stream: the client's newline ends a line, the rest is another
    -- line of the script's, escaped
    local rest = ESCAPED:sub(#"x\\x0a" + 1)
    for _, what in ipairs({ "w", "o", "e", "d" }) do
      assert.truthy(proxy.log_has("log_q.lua] " .. what .. " x\n"), proxy.log())
    end
    assert.truthy(proxy.log_has("log_q.lua] second line\n"), proxy.log())
    local _, pieces = proxy.log():gsub("log_q%.lua%] " .. rest:gsub("%p", "%%%0"), "")
    assert.are.equal(4, pieces, proxy.log())
    assert_lines_are_the_proxys(proxy.log())
    assert.truthy(h.wait_for(function() return proxy.stdout():find("/io?q=", 1, true) end),
      proxy.stdout())
    for line in proxy.stdout():gmatch("[^\n]+") do
      assert.truthy(line:find("^127%.0%.0%.1 %- %- %["), "not an access log line: " .. line)
    end
    -- and the stream still writes after the refused close
    assert(h.get(proxy.port, origin.url("/io?q=again")))
    assert.truthy(proxy.log_has("log_q.lua] d again"), proxy.log())
  end)

  it("escape a TLS server name a client sent into an intercepted tunnel", function()
    local tls_origin = procs.add(h.start_https_origin())
    local ca_dir = h.new_ca_dir()
    local proxy = procs.proxy({ "--intercept", "*", "--ca-dir", ca_dir, "-v",
      "--upstream-ca", h.test_pki().ca, "--connect-ports", tostring(tls_origin.port) })
    local input = "GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    local out, _, err = h.s_client({ proxy_port = proxy.port, cafile = ca_dir .. "/ca.pem",
      servername = "x\n2026-01-01T00:00:00.000Z error FORGED\27[2J" },
      "localhost:" .. tls_origin.port, input)
    assert.truthy(out:find("^HTTP/1.1 200"), out .. err)
    assert.truthy(proxy.log_has("x\\x0a2026-01-01T00:00:00.000Z error FORGED\\x1b[2J"),
      proxy.log())
    assert_lines_are_the_proxys(proxy.log())
  end)
end)
