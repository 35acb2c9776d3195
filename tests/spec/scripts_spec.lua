-- The example scripts in scripts/: each one run in the real proxy against a
-- test origin, with exact checks of what reaches the origin and what comes
-- back. Every script keeps its settings in one `local config = { ... }`
-- block; a test either runs the script as shipped or runs a copy whose
-- config block is replaced (configured() below), e.g. to point it at the
-- test origin's port.
--
-- inject_html.lua is checked against a small origin run inside this spec
-- (local_origin()), because only there can a test choose where the body is
-- cut into pieces and wait until the proxy has passed each piece on before
-- sending the next.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local socket = require("socket")

local SCRIPT_NAMES = {
  "add_latency", "api_key_auth", "block_hosts", "demo", "inject_html", "jwt_auth", "log_exchanges",
  "mock_responses", "rate_limit", "redirect_host", "rewrite_json", "rewrite_urls",
  "security_headers", "strip_tracking", "throttle",
}

------------------------------------------------------------------------------
-- Helpers

local function script_path(name) return "scripts/" .. name .. ".lua" end

-- A copy of scripts/NAME.lua whose `local config = {...}` block is replaced
-- by <config_src> (Lua source of a table). Returns the copy's path.
local function configured(name, config_src)
  local src = assert(h.read_file(script_path(name)), "cannot read " .. script_path(name))
  local out, n = src:gsub("\nlocal config = %b{}", function()
    return "\nlocal config = " .. config_src
  end, 1)
  assert(n == 1, script_path(name) .. " has no `local config = {...}` block")
  return h.tmpfile(out, name .. ".lua")
end

-- One request on a fresh connection; returns the response.
local function exchange(port, bytes, opts)
  local s = assert(h.connect(port))
  assert(h.send(s, bytes))
  local resp, err = h.read_response(s, opts)
  s:close()
  assert(resp, "no response: " .. tostring(err))
  return resp
end

-- GET <url> with a Host header matching it, plus <headers>.
local function get(port, url, headers, method)
  local all = { "Host: " .. url:match("^%a+://([^/?#]+)") }
  for _, x in ipairs(headers or {}) do all[#all + 1] = x end
  return exchange(port, h.request(method or "GET", url, all), { method = method })
end

-- Opens a CONNECT tunnel; returns the socket and the proxy's response.
local function connect_tunnel(port, authority)
  local s = assert(h.connect(port))
  assert(h.send(s, h.request("CONNECT", authority, { "Host: " .. authority })))
  local resp = assert(h.read_response(s, { method = "CONNECT" }))
  return s, resp
end

-- Waits (bounded) until the proxy's log has a line containing <text>
-- (plain text, not a pattern) or matching <pattern>; returns the line.
local function wait_log(proxy, pattern, plain)
  return h.wait_for(function()
    for line in proxy.log():gmatch("[^\n]+") do
      if line:find(pattern, 1, plain) then return line end
    end
  end)
end

-- Lua pattern-escapes a string.
local function esc(s) return (s:gsub("%p", "%%%0")) end

------------------------------------------------------------------------------
-- A one-shot origin inside the spec: accepts one connection, reads the
-- request head, and lets the test send the response in pieces it chooses.

local function local_origin()
  local server = assert(socket.bind("127.0.0.1", 0))
  server:settimeout(h.DEFAULT_TIMEOUT)
  local _, port = server:getsockname()
  local o = { port = tonumber(port) }

  -- Accepts the proxy's connection and reads the request head (no body).
  function o.accept()
    local c = assert(server:accept())
    c:settimeout(h.DEFAULT_TIMEOUT)
    local lines = {}
    while true do
      local line = assert(c:receive("*l"))
      if line == "" then break end
      lines[#lines + 1] = line
    end
    o.conn = c
    o.request_head = table.concat(lines, "\r\n") .. "\r\n\r\n"
    o.request_headers = h.parse_header_block(table.concat(lines, "\n", 2) .. "\n\n")
    return c
  end

  function o.send(data) assert(h.send(o.conn, data)) end

  function o.close()
    if o.conn then o.conn:close() end
    server:close()
  end
  return o
end

-- The body so far of a chunked message whose raw bytes are <raw> (the part
-- after the head): returns the decoded bytes of the complete chunks, and
-- true once the last chunk and trailer section are in.
local function decode_so_far(raw)
  local pos, parts = 1, {}
  while true do
    local size_hex, after = raw:match("^(%x+)[^\r\n]*\r\n()", pos)
    if not size_hex then return table.concat(parts), false end
    local size = tonumber(size_hex, 16)
    if size == 0 then
      -- complete once the trailer section's empty line is in
      return table.concat(parts), raw:find("\r\n\r\n", after - 2, true) ~= nil
    end
    if #raw < after + size + 1 then return table.concat(parts), false end
    assert(raw:sub(after + size, after + size + 1) == "\r\n", "bad chunk framing")
    parts[#parts + 1] = raw:sub(after, after + size - 1)
    pos = after + size + 2
  end
end

------------------------------------------------------------------------------

describe("example scripts", function()
  local procs = {}   -- everything a test started, stopped after it

  local function track(p)
    procs[#procs + 1] = p
    if p.args then p.is_proxy = true end
    return p
  end
  local function start_origin(mode) return track(h.start_origin(mode)) end
  local function start_proxy(args, opts) return track(h.start_proxy(args, opts)) end

  after_each(function()
    local problem = h.stop_procs(procs)
    procs = {}
    assert(not problem, problem)
  end)

  teardown(function() h.stop_all() end)

  ----------------------------------------------------------------------------
  describe("all of them", function()
    it("pass luaproxy --check", function()
      for _, name in ipairs(SCRIPT_NAMES) do
        local out, code = h.sh(h.shell_quote(h.bin()) .. " --check "
          .. h.shell_quote(script_path(name)) .. " 2>&1")
        assert.are.equal(0, code, out)
        assert.matches("^" .. esc(script_path(name)) .. ": ok %(%d+ hooks?%)\n$", out)
      end
    end)

    it("are every .lua file in scripts/, and each is in scripts/README.md", function()
      local listed = {}
      for line in h.sh("ls scripts/*.lua"):gmatch("[^\n]+") do listed[#listed + 1] = line end
      table.sort(listed)
      local expected = {}
      for _, name in ipairs(SCRIPT_NAMES) do expected[#expected + 1] = script_path(name) end
      assert.are.same(expected, listed)
      local readme = assert(h.read_file("scripts/README.md"))
      for _, name in ipairs(SCRIPT_NAMES) do
        assert.truthy(readme:find(name .. ".lua", 1, true), name .. " missing from README")
      end
    end)

    it("include README examples that all pass --check", function()
      local readme = assert(h.read_file("scripts/README.md"))
      local n = 0
      for block in readme:gmatch("```lua\n(.-)```") do
        n = n + 1
        local file = h.tmpfile(block, "readme_example_" .. n .. ".lua")
        local out, code = h.sh(h.shell_quote(h.bin()) .. " --check " .. h.shell_quote(file)
          .. " 2>&1")
        assert.are.equal(0, code, "README example " .. n .. ":\n" .. block .. "\n" .. out)
      end
      assert.is_true(n >= 15, "only " .. n .. " lua examples in the README")
    end)

    -- Compiling proves little: an example that reads a field the tx does
    -- not have (tx.client_ip for tx.client.ip) compiles, and fails on its
    -- first request. Each one serves a GET and a form POST here, and its
    -- log, read once the proxy has exited (complete then), holds no hook
    -- failure. Requests for the hosts an example names (api.example.com)
    -- do not come; what it does for every request runs.
    it("include README examples that each serve requests without a script error", function()
      local readme = assert(h.read_file("scripts/README.md"))
      local origin = start_origin()
      local n = 0
      for block in readme:gmatch("```lua\n(.-)```") do
        n = n + 1
        local file = h.tmpfile(block, "readme_run_" .. n .. ".lua")
        local proxy = start_proxy({ "-s", file })
        local got = get(proxy.port, origin.url("/hello"))
        local posted = exchange(proxy.port, h.request("POST", origin.url("/echo"), {
          "Host: " .. origin.authority, "Content-Type: application/x-www-form-urlencoded",
          "Content-Length: 7" }, "a=b&c=d"))
        local code = proxy.stop()
        local log = proxy.log()
        local where = "README example " .. n .. ":\n" .. block .. "\n" .. log
        assert.are.equal(0, code, where)
        assert.is_nil(log:find(" failed: ", 1, true), where)
        assert.is_nil(log:find("took longer than", 1, true), where)
        assert.is_nil(log:find("ran out of memory", 1, true), where)
        assert.are_not.equal(500, got.status, where)
        assert.are_not.equal(500, posted.status, where)
      end
      assert.is_true(n >= 15, "only " .. n .. " lua examples in the README")
    end)

    it("each have a header comment with a run line and a config block", function()
      for _, name in ipairs(SCRIPT_NAMES) do
        local src = h.read_file(script_path(name))
        assert.matches("^%-%- " .. name .. "%.lua %- ", src)
        assert.truthy(src:find("luaproxy -s scripts/" .. name .. ".lua", 1, true)
          or src:find("luaproxy --script scripts/" .. name .. ".lua", 1, true), name)
        assert.truthy(src:find("curl ", 1, true), name .. ": no curl line")
        assert.truthy(src:find("\nlocal config = {", 1, true), name .. ": no config block")
      end
    end)

    it("load together in one proxy", function()
      local args = {}
      for _, name in ipairs(SCRIPT_NAMES) do
        args[#args + 1] = "-s"; args[#args + 1] = script_path(name)
      end
      local proxy = start_proxy(args)
      for _, name in ipairs(SCRIPT_NAMES) do
        assert.truthy(proxy.log():find("script loaded: " .. script_path(name), 1, true))
      end
    end)
  end)

  -- The reference's proxy.log example logs at load; its line must say
  -- which script it came from, as a hook's line does.
  describe("the reference's proxy.log at a script's top level", function()
    it("names the script, not just [script]", function()
      local first = h.tmpfile('proxy.log("loaded first")\n', "first.lua")
      local second = h.tmpfile('proxy.log("loaded at", os.date())\n', "second.lua")
      local proxy = start_proxy({ "-s", first, "-s", second })
      assert.truthy(proxy.log_has("[" .. first .. "] loaded first"), proxy.log())
      assert.truthy(proxy.log_has("[" .. second .. "] loaded at"), proxy.log())
    end)
  end)

  ----------------------------------------------------------------------------
  describe("block_hosts.lua", function()
    local origin, proxy
    before_each(function()
      origin = start_origin()
      proxy = start_proxy({ "-s", configured("block_hosts", [[{
        hosts = { "ads.example", "host" },
        status = 403,
        message = "blocked here\n",
      }]]) })
    end)

    it("answers 403 for a listed host without contacting anything", function()
      local resp = get(proxy.port, "http://ads.example/banner.js")
      assert.are.equal("HTTP/1.1 403 Forbidden", resp.status_line)
      assert.are.equal("blocked here\n", resp.body)
      assert.are.equal("text/plain; charset=utf-8", resp.headers["content-type"])
      assert.truthy(wait_log(proxy, "blocked GET ads.example", true))
    end)

    it("blocks subdomains, in any case and with a trailing dot", function()
      for _, url in ipairs({ "http://x.ads.example/", "http://a.b.ADS.Example/p?q=1",
                             "http://ads.example./", "http://ads.example../",
                             "http://x.ads.example...:8080/" }) do
        local resp = get(proxy.port, url)
        assert.are.equal(403, resp.status, url)
        assert.are.equal("blocked here\n", resp.body, url)
      end
    end)

    it("lets other hosts through, even ones ending in the same letters", function()
      -- "host" is on the list; "localhost" is not a subdomain of it.
      local resp = get(proxy.port, "http://localhost:" .. origin.port .. "/hello")
      assert.are.equal(200, resp.status)
      assert.are.equal("hello\n", resp.body)
      resp = get(proxy.port, origin.url("/hello"))
      assert.are.equal("hello\n", resp.body)
      assert.are.equal(2, #origin.wait_requests(2))
    end)

    it("refuses a CONNECT to a listed host", function()
      local s, resp = connect_tunnel(proxy.port, "cdn.ads.example:443")
      s:close()
      assert.are.equal("HTTP/1.1 403 Forbidden", resp.status_line)
      assert.are.equal("blocked here\n", resp.body)
    end)
  end)

  -- An address on the list was reached by writing it another way: an
  -- IPv4 address as IPv6 ([::ffff:127.0.0.1]), an IPv6 address with its
  -- zero groups or leading zeros written out.
  describe("block_hosts.lua with addresses", function()
    it("blocks a listed address however it is written", function()
      local origin = start_origin()
      local proxy = start_proxy({ "-s", configured("block_hosts", [[{
        hosts = { "127.0.0.1", "::1" }, status = 403, message = "blocked here\n" }]]) })
      for _, host in ipairs({ "127.0.0.1", "[::ffff:127.0.0.1]", "[::FFFF:7f00:1]",
                              "[0:0:0:0:0:ffff:127.0.0.1]", "[::1]", "[0:0::0001]",
                              "[0000:0:0:0:0:0:0:1]", "127.000.0.01", "127.0.0.001" }) do
        local resp = get(proxy.port, "http://" .. host .. ":" .. origin.port .. "/hello")
        assert.are.equal(403, resp.status, host)
        assert.are.equal("blocked here\n", resp.body, host)
      end
      assert.are.equal(0, #origin.requests())
      -- a name is not an address: localhost is not on the list
      assert.are.equal("hello\n", get(proxy.port, "http://localhost:" .. origin.port .. "/hello").body)
    end)
  end)

  describe("block_hosts.lua with CONNECT", function()
    it("refuses a blocked tunnel and opens an allowed one", function()
      local echo = start_origin("echo")
      local proxy = start_proxy({ "--connect-ports", "443," .. echo.port,
        "-s", configured("block_hosts", [[{
          hosts = { "ads.example" }, status = 403, message = "no tunnel\n" }]]) })
      local s, resp = connect_tunnel(proxy.port, "x.ads.example:443")
      assert.are.equal(403, resp.status)
      assert.are.equal("no tunnel\n", resp.body)
      s:close()

      s, resp = connect_tunnel(proxy.port, "127.0.0.1:" .. echo.port)
      assert.are.equal(200, resp.status)
      assert(h.send(s, "ping"))
      assert.are.equal("ping", h.recv_exact(s, 4))
      s:close()
    end)
  end)

  -- Other scripts may point a request somewhere else: what counts is
  -- where it finally goes. A rewrite in on_request is seen whatever the
  -- order; a move in before_connect when that script comes first.
  describe("block_hosts.lua with scripts that move requests", function()
    it("refuses a request rewritten, or redirected, to a listed host", function()
      local origin = start_origin()
      local proxy = start_proxy({
        "-s", configured("redirect_host", string.format([[{
          routes = { ["localhost"] = { host = "ads.example", port = %d } } }]], origin.port)),
        "-s", configured("block_hosts", [[{
          hosts = { "ads.example" }, status = 403, message = "blocked here\n" }]]),
        "-s", configured("rewrite_urls", [[{
          rules = { { "^http://old%.example/(.*)$", "http://x.ads.example/%1" } } }]]) })
      for _, url in ipairs({ "http://old.example/p", "http://localhost:" .. origin.port .. "/hello" }) do
        local resp = get(proxy.port, url)
        assert.are.equal(403, resp.status, url)
        assert.are.equal("blocked here\n", resp.body, url)
      end
      assert.are.equal(0, #origin.requests())
    end)
  end)

  describe("block_hosts.lua as shipped", function()
    it("blocks tracker.example and its subdomains with its own message", function()
      local proxy = start_proxy({ "-s", script_path("block_hosts") })
      local resp = get(proxy.port, "http://pixel.tracker.example/t.gif")
      assert.are.equal(403, resp.status)
      assert.are.equal("Blocked by luaproxy: this host is on the block list.\n", resp.body)
    end)
  end)

  ----------------------------------------------------------------------------
  describe("rewrite_urls.lua", function()
    local origin, proxy
    before_each(function()
      origin = start_origin()
      proxy = start_proxy({ "-s", configured("rewrite_urls", string.format([[{
        rules = {
          { "^http://old%%.example/(.*)$", "http://127.0.0.1:%d/%%1" },
          { "^http://127%%.0%%.0%%.1:(%%d+)/v1/(.*)$", "http://localhost:%%1/%%2" },
          { "^http://127%%.0%%.0%%.1:(%%d+)/v1/hello$", "http://never.example/" },
        },
      }]], origin.port)) })
    end)

    it("sends a matching request to the rewritten URL, Host following", function()
      local resp = get(proxy.port, "http://old.example/echo?a=1&b=2")
      assert.are.equal(200, resp.status)
      local r = origin.wait_requests(1)[1]
      assert.are.equal("GET /echo?a=1&b=2 HTTP/1.1", r.request_line)
      assert.are.equal("127.0.0.1:" .. origin.port, r.headers["host"])
      assert.are.equal(1, h.header_count(r.headers, "Host"))
      assert.truthy(wait_log(proxy, "rewrote http://old.example/echo?a=1&b=2 -> http://127.0.0.1:"
        .. origin.port .. "/echo?a=1&b=2", true))
    end)

    it("uses the first matching rule, with several captures", function()
      local resp = get(proxy.port, origin.url("/v1/hello"))
      assert.are.equal("hello\n", resp.body)
      local r = origin.wait_requests(1)[1]
      assert.are.equal("GET /hello HTTP/1.1", r.request_line)
      assert.are.equal("localhost:" .. origin.port, r.headers["host"])
    end)

    it("keeps the method and the body", function()
      local resp = exchange(proxy.port, h.request("POST", "http://old.example/echo",
        { "Host: old.example", "Content-Length: 5" }, "hello"))
      assert.are.equal(200, resp.status)
      local r = origin.wait_requests(1)[1]
      assert.are.equal("POST /echo HTTP/1.1", r.request_line)
      assert.are.equal("hello", r.body)
    end)

    it("leaves other URLs alone", function()
      local resp = get(proxy.port, origin.url("/echo?x=%41"))
      assert.are.equal(200, resp.status)
      local r = origin.wait_requests(1)[1]
      assert.are.equal("GET /echo?x=%41 HTTP/1.1", r.request_line)
      assert.are.equal("127.0.0.1:" .. origin.port, r.headers["host"])
    end)
  end)

  -- A host name is the same in any case and with a trailing dot; the
  -- rule was matched against the URL as the client wrote it, so
  -- http://OLD.example/ went to old.example itself.
  describe("rewrite_urls.lua with a host written another way", function()
    it("rewrites it all the same", function()
      local origin = start_origin()
      local proxy = start_proxy({ "-s", configured("rewrite_urls", string.format([[{
        rules = { { "^http://old%%.example/(.*)$", "http://127.0.0.1:%d/%%1" } } }]], origin.port)) })
      for _, url in ipairs({ "http://OLD.Example/echo?a", "http://old.example./echo?a",
                             "http://old.example:80/echo?a" }) do
        local resp = get(proxy.port, url)
        assert.are.equal(200, resp.status, url)
      end
      local reqs = origin.wait_requests(3)
      for i = 1, 3 do assert.are.equal("GET /echo?a HTTP/1.1", reqs[i].request_line) end
    end)
  end)

  -- The shipped /v1/ -> /v2/ rule is meant for any server: one named with
  -- a port, or reached inside an intercepted tunnel (https://), too.
  describe("rewrite_urls.lua as shipped", function()
    it("moves /v1/ to /v2/ on a server with a port", function()
      local origin = start_origin()
      local proxy = start_proxy({ "-s", script_path("rewrite_urls") })
      get(proxy.port, origin.url("/v1/echo?a=1"))
      assert.are.equal("GET /v2/echo?a=1 HTTP/1.1", origin.wait_requests(1)[1].request_line)
    end)
  end)

  ----------------------------------------------------------------------------
  describe("redirect_host.lua", function()
    local origin, echo, proxy
    before_each(function()
      origin = start_origin()
      echo = start_origin("echo")
      -- A tunnel the script moves must still end at a port the operator
      -- allows: the echo server's is one here, beside 443.
      proxy = start_proxy({ "-s", configured("redirect_host", string.format([[{
        routes = {
          ["www.example.com"] = { host = "127.0.0.1", port = %d },
          ["secure.example"] = { host = "127.0.0.1", port = %d },
        },
      }]], origin.port, echo.port)), "--connect-ports", "443," .. echo.port })
    end)

    it("connects to the configured server and keeps path and Host", function()
      local resp = get(proxy.port, "http://www.example.com/echo?q=1")
      assert.are.equal(200, resp.status)
      local r = origin.wait_requests(1)[1]
      assert.are.equal("GET /echo?q=1 HTTP/1.1", r.request_line)
      assert.are.equal("www.example.com", r.headers["host"])
    end)

    it("matches the host case-insensitively, and with a trailing dot", function()
      -- "www.example.com." is the same site: it must not reach the real one
      for _, url in ipairs({ "http://WWW.Example.Com/hello", "http://www.example.com./hello" }) do
        local resp = get(proxy.port, url)
        assert.are.equal("hello\n", resp.body, url)
      end
    end)

    it("redirects a CONNECT tunnel", function()
      local s, resp = connect_tunnel(proxy.port, "secure.example:443")
      assert.are.equal(200, resp.status)
      assert(h.send(s, "through the tunnel"))
      assert.are.equal("through the tunnel", h.recv_exact(s, 18))
      s:close()
    end)

    it("leaves other hosts alone", function()
      local resp = get(proxy.port, origin.url("/echo"))
      assert.are.equal(200, resp.status)
      assert.are.equal("127.0.0.1:" .. origin.port, origin.wait_requests(1)[1].headers["host"])
    end)
  end)

  ----------------------------------------------------------------------------
  describe("strip_tracking.lua as shipped", function()
    local origin, proxy
    before_each(function()
      origin = start_origin()
      proxy = start_proxy({ "-s", script_path("strip_tracking") })
    end)

    it("removes the tracking headers and keeps the others", function()
      local resp = get(proxy.port, origin.url("/echo"), {
        "Referer: http://from.example/", "X-Forwarded-For: 10.0.0.1", "X-Real-IP: 10.0.0.2",
        "From: me@example.com", "referer: http://again.example/", "Cookie: a=1",
        "User-Agent: spec" })
      assert.are.equal(200, resp.status)
      local r = origin.wait_requests(1)[1]
      for _, name in ipairs({ "Referer", "X-Forwarded-For", "X-Real-IP", "From" }) do
        assert.are.equal(0, h.header_count(r.headers, name), name)
      end
      assert.are.equal("a=1", r.headers["cookie"])
      assert.are.equal("spec", r.headers["user-agent"])
    end)

    it("removes utm_* parameters and keeps the others in order", function()
      get(proxy.port, origin.url("/echo?utm_source=mail&page=2&utm_medium=x&flag&utm_=1"))
      assert.are.equal("GET /echo?page=2&flag HTTP/1.1", origin.wait_requests(1)[1].request_line)
    end)

    -- A server decodes %XX in a name before it reads it: utm%5Fsource is
    -- utm_source to it. %26 is a "&" inside a value, not a separator.
    it("removes tracking parameters whose names are percent-encoded", function()
      get(proxy.port, origin.url("/echo?utm%5Fsource=a&%75tm_medium=b&q=x%26utm_c%3D1&k=2"))
      assert.are.equal("GET /echo?q=x%26utm_c%3D1&k=2 HTTP/1.1",
        origin.wait_requests(1)[1].request_line)
    end)

    -- Some servers split the query on ";" as well as "&": a tracking
    -- parameter after a ";" went through to them, and one before a ";"
    -- took the parameters after it along. A ";" inside a value that is
    -- not followed by a tracking name stays as it is.
    it("removes tracking parameters separated by ;, and leaves other ; alone", function()
      get(proxy.port, origin.url("/echo?page=2;utm_source=x"))
      get(proxy.port, origin.url("/echo?utm_source=x;page=2&k=1"))
      get(proxy.port, origin.url("/echo?a=1&utm_medium=y;b=2;;c&d=e;f"))
      get(proxy.port, origin.url("/echo?q=a;b&style=color:red;x=1"))
      get(proxy.port, origin.url("/echo?;utm_id=1"))
      local reqs = origin.wait_requests(5)
      assert.are.equal("GET /echo?page=2 HTTP/1.1", reqs[1].request_line)
      assert.are.equal("GET /echo?page=2&k=1 HTTP/1.1", reqs[2].request_line)
      assert.are.equal("GET /echo?a=1&b=2;;c&d=e;f HTTP/1.1", reqs[3].request_line)
      assert.are.equal("GET /echo?q=a;b&style=color:red;x=1 HTTP/1.1", reqs[4].request_line)
      assert.are.equal("GET /echo HTTP/1.1", reqs[5].request_line)
    end)

    it("drops the ? when only tracking parameters were there", function()
      get(proxy.port, origin.url("/echo?utm_source=a&utm_campaign=b"))
      assert.are.equal("GET /echo HTTP/1.1", origin.wait_requests(1)[1].request_line)
    end)

    it("leaves a path without tracking parameters byte for byte", function()
      get(proxy.port, origin.url("/echo?a=1&&b=%20&utm"))
      get(proxy.port, origin.url("/echo"))
      local reqs = origin.wait_requests(2)
      assert.are.equal("GET /echo?a=1&&b=%20&utm HTTP/1.1", reqs[1].request_line)
      assert.are.equal("GET /echo HTTP/1.1", reqs[2].request_line)
    end)
  end)

  ----------------------------------------------------------------------------
  describe("security_headers.lua", function()
    local SHIPPED = {
      { "Access-Control-Allow-Origin", "*" },
      { "Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS" },
      { "Access-Control-Allow-Headers", "Content-Type, Authorization" },
      { "X-Content-Type-Options", "nosniff" },
      { "X-Frame-Options", "DENY" },
      { "Referrer-Policy", "no-referrer" },
      { "Permissions-Policy", "camera=(), microphone=(), geolocation=()" },
    }

    it("adds every configured header once, as shipped", function()
      local origin = start_origin()
      local proxy = start_proxy({ "-s", script_path("security_headers") })
      local resp = get(proxy.port, origin.url("/hello"))
      assert.are.equal(200, resp.status)
      assert.are.equal("hello\n", resp.body)
      for _, f in ipairs(SHIPPED) do
        assert.are.equal(1, h.header_count(resp.headers, f[1]), f[1])
        assert.are.equal(f[2], resp.headers[f[1]:lower()], f[1])
      end
    end)

    it("keeps the server's own value unless replace is set", function()
      local origin = start_origin()
      local path = "/headers?X-Frame-Options=SAMEORIGIN&Access-Control-Allow-Origin=http://a.example"
      local keep = start_proxy({ "-s", configured("security_headers", [[{
        headers = { { "X-Frame-Options", "DENY" }, { "Access-Control-Allow-Origin", "*" },
                    { "X-Content-Type-Options", "nosniff" } },
        replace = false }]]) })
      local resp = get(keep.port, origin.url(path))
      assert.are.equal("SAMEORIGIN", resp.headers["x-frame-options"])
      assert.are.equal("http://a.example", resp.headers["access-control-allow-origin"])
      assert.are.equal("nosniff", resp.headers["x-content-type-options"])
      assert.are.equal(1, h.header_count(resp.headers, "X-Frame-Options"))

      local replace = start_proxy({ "-s", configured("security_headers", [[{
        headers = { { "X-Frame-Options", "DENY" }, { "Access-Control-Allow-Origin", "*" } },
        replace = true }]]) })
      resp = get(replace.port, origin.url(path))
      assert.are.equal("DENY", resp.headers["x-frame-options"])
      assert.are.equal("*", resp.headers["access-control-allow-origin"])
      assert.are.equal(1, h.header_count(resp.headers, "X-Frame-Options"))
      assert.are.equal(1, h.header_count(resp.headers, "Access-Control-Allow-Origin"))
    end)
  end)

  ----------------------------------------------------------------------------
  describe("inject_html.lua", function()
    local SNIPPET = "<!--LP-->"
    local proxy, origin

    before_each(function()
      proxy = start_proxy({ "-s", configured("inject_html", string.format([[{
        snippet = %q,
      }]], SNIPPET)) })
    end)
    after_each(function()
      if origin then origin.close() end
      origin = nil
    end)

    -- Fetches a page from a fresh local origin that answers with <headers>
    -- (a string of "Name: value\r\n" lines) and a chunked body made of
    -- <pieces>. Before sending each next piece it waits until the client
    -- has all but the last 6 bytes of what was sent so far (the most the
    -- script may hold back), so the proxy really sees the pieces one by one.
    -- Returns the response (body decoded) and the origin.
    local function fetch(pieces, headers, status)
      origin = local_origin()
      local client = assert(h.connect(proxy.port))
      local url = "http://127.0.0.1:" .. origin.port .. "/page"
      assert(h.send(client, h.request("GET", url, { "Host: 127.0.0.1:" .. origin.port,
        "Accept-Encoding: gzip, br" })))
      origin.accept()
      origin.send("HTTP/1.1 " .. (status or "200 OK") .. "\r\n"
        .. (headers or "Content-Type: text/html\r\n")
        .. "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
      local resp = assert(h.read_response(client, { head_only = true }))
      assert.are.equal(tonumber((status or "200"):match("^%d+")), resp.status)
      assert.are.equal("chunked", (resp.headers["transfer-encoding"] or ""):lower())

      local raw, sent = "", 0
      local function body_now()
        local d, err = h.recv_some(client, 0.05)
        raw = raw .. (d or "")
        assert(err == nil or err == "timeout", "client connection: " .. tostring(err))
        return decode_so_far(raw)
      end
      for i, piece in ipairs(pieces) do
        origin.send(string.format("%x\r\n%s\r\n", #piece, piece))
        sent = sent + #piece
        if i < #pieces then
          assert(h.wait_for(function() return #body_now() >= sent - 6 end),
            "the proxy did not pass on piece " .. i)
        end
      end
      origin.send("0\r\n\r\n")
      local body, complete
      h.wait_for(function()
        body, complete = body_now()
        return complete
      end)
      assert(complete, "incomplete body: " .. string.format("%q", raw))
      client:close()
      resp.body = body
      return resp, origin
    end

    it("inserts the snippet before </body> in one piece", function()
      local resp, o = fetch({ "<html><body><p>hi</p></body></html>\n" })
      assert.are.equal("<html><body><p>hi</p>" .. SNIPPET .. "</body></html>\n", resp.body)
      -- Compressed pages are fine now: the client's Accept-Encoding goes up.
      assert.are.equal("gzip, br", o.request_headers["accept-encoding"])
    end)

    it("inserts it exactly once when </body> is cut at any point between pieces", function()
      local mark = "</body>"
      for cut = 1, #mark - 1 do
        local resp = fetch({ "<html><body>" .. ("x"):rep(20) .. mark:sub(1, cut),
                             mark:sub(cut + 1) .. "</html>\n" })
        assert.are.equal("<html><body>" .. ("x"):rep(20) .. SNIPPET .. "</body></html>\n",
          resp.body, "cut after " .. cut)
        origin.close(); origin = nil
      end
    end)

    it("matches </BODY> in any case across three pieces", function()
      local resp = fetch({ "<HTML><BODY>page</", "Bo", "DY></HTML>" })
      assert.are.equal("<HTML><BODY>page" .. SNIPPET .. "</BoDY></HTML>", resp.body)
    end)

    it("handles pieces shorter than the held-back tail", function()
      local resp = fetch({ "<", "b>", "a", "</bo", "dy>", "!" })
      assert.are.equal("<b>a" .. SNIPPET .. "</body>!", resp.body)
    end)

    it("injects only before the first </body>", function()
      local resp = fetch({ "<body>a</body>", "<body>b</body>" })
      assert.are.equal("<body>a" .. SNIPPET .. "</body><body>b</body>", resp.body)
    end)

    it("passes a page without </body> unchanged, flushing what it held at the end", function()
      local resp = fetch({ "<html>no end tag", " here</bod", "y" })
      assert.are.equal("<html>no end tag here</body", resp.body)
    end)

    it("leaves other content types alone and edits gzip HTML decoded", function()
      local resp = fetch({ "text </body> text" }, "Content-Type: text/plain\r\n")
      assert.are.equal("text </body> text", resp.body)
      origin.close(); origin = nil
      local gz = h.sh("printf '%s' '<html><body>zipped</body></html>' | gzip -c")
      resp = fetch({ gz }, "Content-Type: text/html\r\nContent-Encoding: gzip\r\n")
      assert.is_nil(resp.headers["content-encoding"])
      assert.are.equal("<html><body>zipped" .. SNIPPET .. "</body></html>", resp.body)
      origin.close(); origin = nil
      resp = fetch({ "unknown </body> coding" }, "Content-Type: text/html\r\nContent-Encoding: compress\r\n")
      assert.are.equal("unknown </body> coding", resp.body)
    end)

    -- A range is a slice of the page: the snippet would shift every byte
    -- after it and make the slice disagree with its Content-Range.
    it("leaves a 206 range alone, even with </body> in it", function()
      local resp = fetch({ "<p>end</body></html>" },
        "Content-Type: text/html\r\nContent-Range: bytes 100-120/121\r\n", "206 Partial Content")
      assert.are.equal("<p>end</body></html>", resp.body)
      assert.are.equal("bytes 100-120/121", resp.headers["content-range"])
    end)

    it("works on a Content-Length body from the test origin (sent on chunked)", function()
      local o = start_origin()
      local resp = get(proxy.port, o.url("/headers?Content-Type=text/html%3B%20charset%3Dutf-8"))
      assert.are.equal(200, resp.status)
      assert.are.equal("headers\n", resp.body) -- no </body>: unchanged
      assert.are.equal("chunked", resp.headers["transfer-encoding"])
    end)
  end)

  ----------------------------------------------------------------------------
  describe("log_exchanges.lua", function()
    local origin
    before_each(function() origin = start_origin() end)

    local function configured_log(only_problems, show_up)
      return configured("log_exchanges", string.format(
        "{ only_problems = %s, slow_ms = 1000, show_request_bytes = %s }",
        tostring(only_problems), tostring(show_up)))
    end

    it("logs method, URL, status, bytes and duration once each exchange is over", function()
      local script = configured_log(false, true)
      local proxy = start_proxy({ "-s", script })
      get(proxy.port, origin.url("/hello"))
      local line = wait_log(proxy, "%[" .. esc(script) .. "%] #1 GET " .. esc(origin.url("/hello"))
        .. " %-> 200, 6 bytes %(0 bytes up%), %d+ ms$")
      assert.truthy(line, proxy.log())
      exchange(proxy.port, h.request("POST", origin.url("/echo"),
        { "Host: " .. origin.authority, "Content-Length: 5" }, "abcde"))
      assert.truthy(wait_log(proxy, "#2 POST " .. esc(origin.url("/echo"))
        .. " %-> 200, %d+ bytes %(5 bytes up%), %d+ ms$"), proxy.log())
    end)

    it("logs the error of a failed exchange", function()
      local proxy = start_proxy({ "-s", script_path("log_exchanges") })
      local port = h.closed_port()
      local resp = get(proxy.port, "http://127.0.0.1:" .. port .. "/x")
      assert.are.equal(502, resp.status)
      assert.truthy(wait_log(proxy, "#1 GET http://127%.0%.0%.1:" .. port
        .. "/x %-> 502, %d+ bytes, %d+ ms, error: .+$"), proxy.log())
    end)

    it("with only_problems, logs only failures", function()
      local proxy = start_proxy({ "-s", configured_log(true, false) })
      get(proxy.port, origin.url("/hello"))
      get(proxy.port, origin.url("/status/404"))
      assert.truthy(wait_log(proxy, "#2 GET " .. esc(origin.url("/status/404")) .. " %-> 404, "))
      assert.is_nil(proxy.log():find("#1 GET", 1, true))
    end)

    -- tx.bytes_sent counts the body bytes sent to the client, after every
    -- on_response_chunk (the access log's number), not those the upstream
    -- sent.
    it("reports the bytes sent after another script changed the body", function()
      local page = local_origin()
      local inject = configured("inject_html", '{ snippet = "12345" }')
      local proxy = start_proxy({ "-s", inject, "-s", script_path("log_exchanges") })
      local client = assert(h.connect(proxy.port))
      assert(h.send(client, h.request("GET", "http://127.0.0.1:" .. page.port .. "/",
        { "Host: 127.0.0.1:" .. page.port })))
      page.accept()
      page.send("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 13\r\n"
        .. "Connection: close\r\n\r\n<body></body>")
      local resp = assert(h.read_response(client))
      client:close()
      page.close()
      assert.are.equal("<body>12345</body>", resp.body)
      assert.truthy(wait_log(proxy, "-> 200, 18 bytes", true), proxy.log())
    end)

    -- For CONNECT, tx.req.url is "host:port", as documented (not
    -- "://host:port").
    it("logs a CONNECT by its host:port", function()
      local echo = start_origin("echo")
      local proxy = start_proxy({ "--connect-ports", tostring(echo.port),
        "-s", script_path("log_exchanges") })
      local s, resp = connect_tunnel(proxy.port, "127.0.0.1:" .. echo.port)
      assert.are.equal(200, resp.status)
      s:close()
      assert.truthy(wait_log(proxy, "#1 CONNECT 127.0.0.1:" .. echo.port .. " -> 200", true),
        proxy.log())
    end)
  end)

  ----------------------------------------------------------------------------
  describe("add_latency.lua", function()
    local origin
    before_each(function() origin = start_origin() end)

    local function timed_get(port, url)
      local t0 = h.now()
      local resp = get(port, url)
      return resp, h.now() - t0
    end

    it("delays every request by the default, except hosts set to 0", function()
      local proxy = start_proxy({ "-s", configured("add_latency",
        '{ default = 0.4, hosts = { ["localhost"] = 0 } }') })
      local resp, took = timed_get(proxy.port, origin.url("/hello"))
      assert.are.equal("hello\n", resp.body)
      assert.is_true(took >= 0.4, "took " .. took)
      -- the same host, however it is written
      for _, host in ipairs({ "localhost", "LocalHost", "localhost." }) do
        resp, took = timed_get(proxy.port, "http://" .. host .. ":" .. origin.port .. "/hello")
        assert.are.equal("hello\n", resp.body)
        assert.is_true(took < 0.4, host .. " took " .. took)
      end
    end)

    -- A delay meant to test a client's own timeout may be longer than one
    -- wait of a hook may last (--hook-wait-timeout): still a delay, not a 500.
    it("delays longer than one wait may last", function()
      local proxy = start_proxy({ "--hook-wait-timeout", "0.2", "-s", configured("add_latency",
        '{ default = 0.5, hosts = {} }') })
      local resp = get(proxy.port, origin.url("/hello"))
      assert.are.equal(200, resp.status)
      assert.are.equal("hello\n", resp.body)
    end)

    it("delays per host, holding up only that request", function()
      local proxy = start_proxy({ "-s", configured("add_latency",
        '{ default = 0, hosts = { ["127.0.0.1"] = 1.0 } }') })
      local t0 = h.now()
      local slow = assert(h.connect(proxy.port))
      assert(h.send(slow, h.request("GET", origin.url("/hello"), { "Host: " .. origin.authority })))
      -- Meanwhile another request goes through at once.
      local resp = get(proxy.port, "http://localhost:" .. origin.port .. "/hello")
      assert.are.equal("hello\n", resp.body)
      assert.is_true(h.now() - t0 < 1.0, "the fast request waited for the slow one")
      -- The origin has seen only the fast one so far.
      assert.are.equal(1, #origin.requests())
      local slow_resp = assert(h.read_response(slow))
      slow:close()
      assert.are.equal("hello\n", slow_resp.body)
      assert.is_true(h.now() - t0 >= 1.0)
    end)
  end)

  ----------------------------------------------------------------------------
  describe("mock_responses.lua", function()
    it("answers from exact and pattern mocks and lets the rest through", function()
      local origin = start_origin()
      local proxy = start_proxy({ "-s", configured("mock_responses", string.format([[{
        mocks = {
          { url = "http://api.example/health", status = 200, body = "ok\n" },
          { pattern = "^http://api%%.example/users/(%%d+)/(%%a+)$", status = 200,
            body = '{"id": %%1, "tab": "%%2"}',
            headers = { ["Content-Type"] = "application/json" } },
          { pattern = "^http://api%%.example/broken", status = 503, body = "down\n",
            headers = { { "Retry-After", "30" }, { "X-Mock", "a" }, { "X-Mock", "b" } } },
          { url = "http://127.0.0.1:%d/hello", status = 201, body = "mocked hello\n" },
        },
      }]], origin.port)) })

      local resp = get(proxy.port, "http://api.example/health")
      assert.are.equal("HTTP/1.1 200 OK", resp.status_line)
      assert.are.equal("ok\n", resp.body)
      assert.are.equal("text/plain; charset=utf-8", resp.headers["content-type"])

      resp = get(proxy.port, "http://api.example/users/42/posts")
      assert.are.equal(200, resp.status)
      assert.are.equal('{"id": 42, "tab": "posts"}', resp.body)
      assert.are.equal("application/json", resp.headers["content-type"])

      resp = get(proxy.port, "http://api.example/broken/anything?x")
      assert.are.equal("HTTP/1.1 503 Service Unavailable", resp.status_line)
      assert.are.equal("down\n", resp.body)
      assert.are.equal("30", resp.headers["retry-after"])
      assert.are.equal("a, b", resp.headers["x-mock"])

      -- An exact URL on a live server: the server is not asked.
      resp = get(proxy.port, origin.url("/hello"))
      assert.are.equal("HTTP/1.1 201 Created", resp.status_line)
      assert.are.equal("mocked hello\n", resp.body)
      resp = get(proxy.port, origin.url("/echo"))
      assert.are.equal(200, resp.status)
      local reqs = origin.wait_requests(1)
      assert.are.equal(1, #reqs)
      assert.are.equal("GET /echo HTTP/1.1", reqs[1].request_line)
    end)

    -- The mock's URL names a host, which a client may write in any case
    -- or with a trailing dot: the real server was asked instead.
    it("answers a URL whose host is written another way", function()
      local origin = start_origin()
      local proxy = start_proxy({ "-s", configured("mock_responses", string.format([[{
        mocks = { { url = "http://localhost:%d/hello", status = 200, body = "mocked\n" },
                  { url = "http://127.0.0.1:%d/hello", status = 200, body = "mocked\n" },
                  { pattern = "^http://api%%.example/(%%a+)$", status = 200, body = "%%1\n" } },
      }]], origin.port, origin.port)) })
      for _, host in ipairs({ "LocalHost", "localhost.", "LOCALHOST.." }) do
        local resp = get(proxy.port, "http://" .. host .. ":" .. origin.port .. "/hello")
        assert.are.equal("mocked\n", resp.body, host)
      end
      assert.are.equal("users\n", get(proxy.port, "http://API.example./users").body)
      -- an address in another spelling: 127.000.0.01 is 127.0.0.1
      assert.are.equal("mocked\n",
        get(proxy.port, "http://127.000.0.01:" .. origin.port .. "/hello").body)
      assert.are.equal(0, #origin.requests())
    end)

    -- tx:respond(204) sends no Content-Length, which a 204 must not carry
    -- (RFC 9110 8.6); nor does a 304 (RFC 9110 8.6, 15.4.5).
    it("answers a 204 mock without Content-Length", function()
      local proxy = start_proxy({ "-s", configured("mock_responses",
        '{ mocks = { { pattern = "^http://ads%.example/", status = 204 } } }') })
      local resp = get(proxy.port, "http://ads.example/pixel")
      assert.are.equal("HTTP/1.1 204 No Content", resp.status_line)
      assert.is_nil(resp.headers["content-length"])
    end)

    it("as shipped, answers http://api.example/users/42", function()
      local proxy = start_proxy({ "-s", script_path("mock_responses") })
      local resp = get(proxy.port, "http://api.example/users/42")
      assert.are.equal(200, resp.status)
      assert.are.equal('{"id": 42, "name": "User 42"}\n', resp.body)
      assert.are.equal("application/json", resp.headers["content-type"])
      resp = get(proxy.port, "http://api.example/health", {}, "HEAD")
      assert.are.equal(200, resp.status)
      assert.are.equal("3", resp.headers["content-length"])
      assert.are.equal("", resp.body)
    end)
  end)

  ----------------------------------------------------------------------------
  describe("demo.lua", function()
    local origin, proxy
    before_each(function()
      origin = start_origin()
      proxy = start_proxy({ "--script", script_path("demo") })
    end)

    local function count_on(page)
      return tonumber(page:match("Requests seen since the script was loaded %d+ seconds ago: (%d+)"))
    end

    it("answers http://luaproxy.demo/ with its own page", function()
      local resp = get(proxy.port, "http://luaproxy.demo/")
      assert.are.equal("HTTP/1.1 200 OK", resp.status_line)
      assert.are.equal("text/html; charset=utf-8", resp.headers["content-type"])
      assert.are.equal("local page", resp.headers["x-luaproxy-demo"])
      assert.truthy(resp.body:find("<h1>luaproxy 0.1.0: the demo script is running</h1>", 1, true))
      assert.are.equal(1, count_on(resp.body))
      -- the host in any case, with a trailing dot
      assert.are.equal("local page", get(proxy.port, "http://LuaProxy.Demo./").headers["x-luaproxy-demo"])
      resp = get(proxy.port, "http://luaproxy.demo/other")
      assert.are.equal(404, resp.status)
      assert.are.equal("Only http://luaproxy.demo/ exists.\n", resp.body)
    end)

    it("marks forwarded responses and counts every request", function()
      local resp = get(proxy.port, origin.url("/hello"))
      assert.are.equal("hello\n", resp.body)
      assert.are.equal("this response passed through demo.lua", resp.headers["x-luaproxy-demo"])
      resp = get(proxy.port, origin.url("/status/404"))
      assert.are.equal(1, h.header_count(resp.headers, "X-Luaproxy-Demo"))
      resp = get(proxy.port, "http://luaproxy.demo/")
      assert.are.equal(3, count_on(resp.body))
    end)

    it("logs each exchange", function()
      get(proxy.port, origin.url("/hello"))
      assert.truthy(wait_log(proxy, "%[scripts/demo%.lua%] #1 GET " .. esc(origin.url("/hello"))
        .. " %-> 200 %(6 bytes, %d+ ms%)$"), proxy.log())
      get(proxy.port, "http://127.0.0.1:" .. h.closed_port() .. "/")
      assert.truthy(wait_log(proxy, "%[scripts/demo%.lua%] #2 GET .* %-> 502 %(%d+ bytes, %d+ ms%), .+$"),
        proxy.log())
    end)

    -- When tx:respond answered the request, every script's on_done still
    -- runs: the answer ends the phase it was given in, not on_done.
    it("lets a later script's on_done see the exchange it answered", function()
      local both = start_proxy({ "-s", script_path("demo"), "-s", script_path("log_exchanges") })
      get(both.port, "http://luaproxy.demo/")
      assert.truthy(wait_log(both, "[scripts/demo.lua] #1 GET http://luaproxy.demo/ -> 200", true))
      assert.truthy(wait_log(both, "[scripts/log_exchanges.lua] #1 GET http://luaproxy.demo/ -> 200",
        true), both.log())
    end)

    it("starts counting afresh when SIGHUP reloads it", function()
      get(proxy.port, "http://luaproxy.demo/")
      assert.are.equal(2, count_on(get(proxy.port, "http://luaproxy.demo/").body))
      proxy.signal("HUP")
      assert.truthy(wait_log(proxy, "SIGHUP: 1 script(s) reloaded", true))
      assert.are.equal(1, count_on(get(proxy.port, "http://luaproxy.demo/").body))
    end)
  end)
end)
