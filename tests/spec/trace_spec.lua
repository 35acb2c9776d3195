-- --trace and -v: the proxy's steps for each exchange, one line each, with
-- the connection and exchange ids, the time since the exchange began and
-- the src/file.c:function that took the step. Every file:function a trace
-- names must exist in that file, so the trace stays an index into the code.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")

-- "... trace c3 #7 +0.123ms src/exchange.c:exchange_begin head complete: ..."
local LINE = "trace (c%d+) ?(#?%d*) %+[%d%.]+ms (src/[%w_]+%.c):([%w_]+) ([^\n]*)"

local function trace_lines(log)
  local out = {}
  for conn, id, file, func, text in log:gmatch(LINE) do
    out[#out + 1] = { conn = conn, id = id, file = file, func = func, text = text }
  end
  return out
end

-- Every src/file.c:function seen in any trace of this file.
local seen = {}

local function remember(lines)
  for _, l in ipairs(lines) do seen[l.file .. ":" .. l.func] = l end
end

-- The lines of one exchange, in order; fails naming the first missing step.
local function expect_steps(lines, steps)
  local at = 1
  for _, step in ipairs(steps) do
    local found
    for i = at, #lines do
      if lines[i].text:find(step) then found = i; break end
    end
    assert(found, "no trace step matching '" .. step .. "' (in order) in:\n" ..
      table.concat((function()
        local t = {}
        for _, l in ipairs(lines) do t[#t + 1] = l.file .. ":" .. l.func .. " " .. l.text end
        return t
      end)(), "\n"))
    at = found + 1
  end
end

describe("--trace", function()
  local origin, proxy

  after_each(function()
    local problem = h.stop_procs({ origin, proxy }, 2)
    origin, proxy = nil, nil
    assert(not problem, problem)
  end)

  -- Waits until the trace shows the connection closed, then returns its lines.
  local function traced(pattern)
    local log = h.wait_for(function()
      local l = proxy.log()
      if l:find(pattern) then return l end
    end)
    assert(log, "the trace never showed '" .. pattern .. "':\n" .. proxy.log())
    local lines = trace_lines(log)
    remember(lines)
    return lines
  end

  it("shows every step of a plain GET, from accept to close", function()
    origin = h.start_origin()
    proxy = h.start_proxy({ "--trace" })
    local out, code, err = h.curl({ "-x", "http://127.0.0.1:" .. proxy.port, origin.url("/hello") })
    assert.are.equal(0, code, err)
    assert.are.equal("hello\n", out)
    local lines = traced("connection closed after 1 exchange")
    expect_steps(lines, {
      "^accepted 127%.0%.0%.1:%d+; allow%-list: allowed",
      "^head complete: %d+ bytes, %d+ fields, HTTP/1%.1: GET http://",
      "^target split: host 127%.0%.0%.1, port %d+, path /hello",
      "^fields: %d+ in, %d+ out; dropped: Proxy%-Connection; added: Via",
      "^127%.0%.0%.1 is an IP address: no DNS",
      "^connect%(%) to 127%.0%.0%.1:%d+ %(address 1 of 1%): fresh connection",
      "^state head %-> connecting",
      "^the socket is writable: connected in",
      "^request head queued upstream: %d+ bytes, GET /hello HTTP/1%.1",
      "^state connecting %-> exchange",
      "^response head complete: %d+ bytes, HTTP/1%.%d 200, body framing in: length",
      "^response head queued for the client: %d+ bytes, 200, body framing out: length",
      "^response body: 6 bytes to the client %(length in, length out%): %d+ by swapping",
      "^keep%-alive: yes",
      "^upstream connection ",
      "^state exchange %-> head: exchange over, connection kept alive",
      "^state head %-> draining",
      "^state draining %-> closed",
      "^connection closed after 1 exchange",
    })
    -- One numbering: every line of the exchange carries c<N> #<M>.
    local conn, id
    for _, l in ipairs(lines) do
      if l.text:find("^head complete") then conn, id = l.conn, l.id end
    end
    assert.truthy(id and id:match("^#%d+$"))
    for _, l in ipairs(lines) do
      if l.text:find("^response head") then
        assert.are.equal(conn, l.conn)
        assert.are.equal(id, l.id)
      end
    end
    -- The access log still gets its line; a trace changes nothing relayed.
    assert.truthy(proxy.wait_access_log('"GET http://'))
  end)

  it("shows each hook with its script, result, time and whether it changed the request", function()
    origin = h.start_origin()
    local edits = h.tmpfile([[
function on_request(tx)
  tx.req.headers["X-Traced"] = "yes"
end
]], "edits.lua")
    local looks = h.tmpfile([[
function on_request(tx)
  local _ = tx.req.headers["Host"]
end
function on_response(tx)
  tx.res.headers["X-Seen"] = "1"
end
]], "looks.lua")
    proxy = h.start_proxy({ "--trace", "--script", edits, "--script", looks })
    local out, code, err = h.curl({ "-s", "-D", "-", "-x", "http://127.0.0.1:" .. proxy.port,
                                    origin.url("/hello") })
    assert.are.equal(0, code, err)
    assert.truthy(out:find("X%-Seen: 1"))
    local lines = traced("connection closed after 1 exchange")
    expect_steps(lines, {
      "^state head %-> hook: request hooks to run",
      "^hook on_request in [^:]*edits%.lua: returned, [%d%.]+ ms running; changed the request: yes",
      "^hook on_request in [^:]*looks%.lua: returned, [%d%.]+ ms running; changed the request: no",
      "^state hook %-> connecting",
      "^response head complete",
      "^hook on_response in [^:]*looks%.lua: returned, [%d%.]+ ms running; changed the response: yes",
      "^response head queued for the client: %d+ bytes, 200, body framing out: %a+ %(rewritten after on_response%)",
    })
    assert.are.equal("yes", origin.requests()[1].headers["x-traced"])
  end)

  it("shows a script that answers itself", function()
    local mock = h.tmpfile([[
function on_request(tx)
  tx:respond(200, "mocked\n")
end
]], "mock.lua")
    proxy = h.start_proxy({ "--trace", "--script", mock })
    local out, code, err = h.curl({ "-x", "http://127.0.0.1:" .. proxy.port,
                                    "http://127.0.0.1:9/anything" })
    assert.are.equal(0, code, err)
    assert.are.equal("mocked\n", out)
    local lines = traced("connection closed after 1 exchange")
    expect_steps(lines, {
      "^hook on_request in [^:]*mock%.lua: answered itself %(tx:respond%)",
      "^a script answered itself %(tx:respond%): 200, %d+ bytes queued for the client",
      "^keep%-alive: yes",
      "^state hook %-> head",
    })
    for _, l in ipairs(lines) do
      assert.falsy(l.text:find("^connect%(%)"), "nothing may go upstream")
    end
  end)

  it("shows an error: the failed connect and the proxy's own answer", function()
    proxy = h.start_proxy({ "--trace" })
    local port = h.closed_port()
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("GET", "http://127.0.0.1:" .. port .. "/", { "Host: 127.0.0.1:" .. port })))
    local resp = assert(h.read_response(s))
    s:close()
    assert.are.equal(502, resp.status)
    local lines = traced("connection closed after 1 exchange")
    expect_steps(lines, {
      "^connect%(%) to 127%.0%.0%.1:" .. port,
      "connect%(%) failed",
      "^answered by the proxy: 502, the upstream refused the connection",
      "^keep%-alive: ",
    })
  end)

  it("shows a CONNECT tunnel: bytes each way and who closed first", function()
    origin = h.start_origin()
    proxy = h.start_proxy({ "--trace", "--connect-ports", origin.authority:match(":(%d+)$") })
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, "CONNECT " .. origin.authority .. " HTTP/1.1\r\nHost: " .. origin.authority ..
      "\r\n\r\n"))
    local established = h.recv_exact(s, #"HTTP/1.1 200 Connection Established\r\n\r\n")
    assert.truthy(established and established:find("^HTTP/1%.1 200"))
    assert(h.send(s, "GET /hello HTTP/1.1\r\nHost: " .. origin.authority .. "\r\nConnection: close\r\n\r\n"))
    local reply = h.recv_until_close(s)
    s:close()
    assert.truthy(reply and reply:find("hello"))
    local lines = traced("connection closed after 1 exchange")
    expect_steps(lines, {
      "^head complete: %d+ bytes, %d+ fields, HTTP/1%.1: CONNECT",
      "^CONNECT answered: 200 Connection Established",
      "^state connecting %-> tunnel",
      "^tunnel over: %d+ bytes client %-> upstream, %d+ bytes upstream %-> client; first to close: the upstream",
      "^keep%-alive: no, a tunnel ends its connection",
    })
  end)

  it("names only src/file.c:function places that exist in those files", function()
    assert.truthy(next(seen), "the tests above recorded trace lines")
    for place, l in pairs(seen) do
      local src = h.read_file(l.file)
      assert(src, place .. ": no such file")
      -- A definition: the name at the start of a line's declarator, e.g.
      -- "static int parse_request_head(struct session *s)".
      local found = false
      for line in src:gmatch("[^\n]+") do
        if line:find("^[%a_][%w_ %*]-[ %*]" .. l.func .. "%(") or line:find("^" .. l.func .. "%(") then
          found = true
          break
        end
      end
      assert(found, place .. ": no function " .. l.func .. " defined in " .. l.file)
    end
  end)
end)

describe("README", function()
  it("names only src/file.c:function places that exist in those files", function()
    local readme = assert(h.read_file("README.md"))
    local count = 0
    for file, func in readme:gmatch("(src/[%w_]+%.c):([%w_]+)") do
      if file == "src/file.c" then goto continue end -- the notation itself
      count = count + 1
      local src = h.read_file(file)
      assert(src, "README names " .. file .. ":" .. func .. ", but there is no " .. file)
      local found = false
      for line in src:gmatch("[^\n]+") do
        if line:find("^[%a_][%w_ %*]-[ %*]" .. func .. "%(") or line:find("^" .. func .. "%(") then
          found = true
          break
        end
      end
      assert(found, "README names " .. file .. ":" .. func .. ", not defined in " .. file)
      ::continue::
    end
    assert.is_true(count >= 50, "the walkthrough names the functions of three paths")
  end)
end)

describe("-v", function()
  it("writes one line per exchange, and --trace is off by default", function()
    local origin = h.start_origin()
    local proxy = h.start_proxy({ "-v" })
    for _ = 1, 2 do
      local _, code, err = h.curl({ "-x", "http://127.0.0.1:" .. proxy.port, origin.url("/hello") })
      assert.are.equal(0, code, err)
    end
    local log = h.wait_for(function()
      local l = proxy.log()
      local n = select(2, l:gsub(" debug c%d+ #%d+ 127%.0%.0%.1 GET http://[^\n]* %-> 200", ""))
      if n >= 2 then return l end
    end)
    assert(log, "no -v line per exchange:\n" .. proxy.log())
    local debug_lines = select(2, log:gsub("\n[^\n]* debug ", ""))
    assert.are.equal(2, debug_lines, "two exchanges, two debug lines:\n" .. log)
    assert.falsy(log:find(" trace "))
    local problem = h.stop_procs({ origin, proxy }, 2)
    assert(not problem, problem)
  end)
end)

describe("--trace and a script's call out over https", function()
  it("traces its TLS steps under no connection (it belongs to none)", function()
    local origin = h.start_origin()
    local tls_origin = h.start_https_origin()
    local pki = h.test_pki()
    local src = ([[
      function on_request(tx)
        local res, err = proxy.http{ url = "URL", timeout = 10 }
        tx:respond(200, res and res.body or ("error: " .. err))
      end
    ]]):gsub("URL", tls_origin.url("/hello"))
    local proxy = h.start_proxy({ "-s", h.tmpfile(src, "call_out.lua"), "--upstream-ca", pki.ca,
                                  "--trace" })
    assert.equals("hello\n", h.get(proxy.port, origin.url("/x")).body)
    local log = proxy.stderr()
    local problem = h.stop_procs({ origin, tls_origin, proxy })
    assert(not problem, problem)
    local line = log:match("trace [^\n]-src/tls%.c:tls_connect TLS to the upstream[^\n]*")
    assert(line, "no TLS line in:\n" .. log)
    assert.matches("^trace %- %+0%.000ms ", line)
  end)
end)
