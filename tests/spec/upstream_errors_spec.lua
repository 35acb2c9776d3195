-- Upstream failures (contract: "Error responses" 502/504 and "reset
-- mid-body"). Each test also proves the proxy is still healthy afterwards
-- by sending an ordinary request through it.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local socket = require("socket")
local dead_address = require("support.dead_address")

describe("upstream errors", function()
  local origin, proxy
  local cleanups = {}

  before_each(function()
    origin = h.start_origin()
    proxy = h.start_proxy({ "--idle-timeout", "1", "--connect-timeout", "1" })
  end)

  after_each(function()
    for i = #cleanups, 1, -1 do pcall(cleanups[i]) end
    cleanups = {}
    local problem = h.stop_procs({ origin, proxy }, 2)
    proxy, origin = nil, nil
    assert(not problem, problem)
  end)

  local function get(url, opts)
    local resp, err = h.get(proxy.port, url, nil, opts)
    assert(resp, "no response for " .. url .. ": " .. tostring(err))
    return resp
  end

  local function assert_error(resp, status, reason)
    local ok, why = h.check_error_response(resp, status, reason)
    assert(ok, why)
  end

  local function assert_healthy()
    local resp = get(origin.url("/hello"))
    assert.are.equal("HTTP/1.1 200 OK", resp.status_line)
    assert.are.equal("hello\n", resp.body)
  end

  it("answers 502 when the connection is refused", function()
    local url = "http://127.0.0.1:" .. h.closed_port() .. "/SECRET-MARKER"
    local resp = get(url)
    assert_error(resp, 502, "Bad Gateway")
    assert.is_falsy(resp.body:find("SECRET", 1, true), "error body echoes the request")
    assert_healthy()
  end)

  -- The read loop of the first exchange went on reading after the next
  -- one had started connecting on a new socket, and took its refusal:
  -- "reset" then, and a connect error its own handling never saw.
  it("says refused for a refused request pipelined behind a kept-alive one", function()
    local closed = "127.0.0.1:" .. h.closed_port()
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("GET", origin.url("/hello"), { "Host: " .. origin.authority })
      .. h.request("GET", "http://" .. closed .. "/", { "Host: " .. closed })))
    assert.are.equal("hello\n", assert(h.read_response(s)).body)
    local resp = assert(h.read_response(s))
    s:close()
    assert.are.equal(502, resp.status)
    assert.truthy(resp.body:find("refused the connection", 1, true), resp.body)
  end)

  -- The connection ends after such an answer (the rest of the request
  -- body is never read): the answer says so rather than the connection
  -- just closing (RFC 9110 10.1.1).
  it("says Connection: close on an answer that comes before the request body", function()
    local server, port, target = h.raw_listener()
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, "POST http://" .. target .. "/ HTTP/1.1\r\nHost: " .. target
      .. "\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"))
    local up = assert(server:accept())
    h.skip_head(up)
    assert(up:send("HTTP/1.1 417 Expectation Failed\r\nContent-Length: 3\r\n\r\nno!"))
    local resp = assert(h.read_response(s))
    up:close()
    server:close()
    s:close()
    assert.are.equal(417, resp.status)
    assert.are.equal("close", resp.headers["connection"], resp.raw_head)
  end)

  it("answers a HEAD with the error's head alone, and the connection goes on", function()
    local closed = "127.0.0.1:" .. h.closed_port()
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("HEAD", "http://" .. closed .. "/", { "Host: " .. closed })
      .. h.request("GET", origin.url("/hello"), { "Host: " .. origin.authority })))
    local head = assert(h.read_response(s, { method = "HEAD" }))
    assert.are.equal(502, head.status)
    assert.is_truthy(tonumber(head.headers["content-length"]) > 0)
    -- before, the error text followed the head (and the connection closed)
    local next_resp = assert(h.read_response(s))
    s:close()
    assert.are.equal(200, next_resp.status, next_resp.raw_head)
    assert.are.equal("hello\n", next_resp.body)
  end)

  it("logs an error response with the body bytes it sent", function()
    local url = "http://127.0.0.1:" .. h.closed_port() .. "/gone"
    local resp = get(url)
    assert_error(resp, 502, "Bad Gateway")
    local line = proxy.wait_access_log('"GET ' .. url:gsub("%p", "%%%0") .. ' HTTP/1%.1" 502 ')
    assert(line, "no access log line:\n" .. proxy.access_log())
    assert.are.equal(tostring(#resp.body), line:match('" 502 (%d+) %d+$'), line)
  end)

  it("keeps the client connection usable after a 502 unless it says close", function()
    local s = assert(h.connect(proxy.port))
    cleanups[#cleanups + 1] = function() s:close() end
    local url = "http://127.0.0.1:" .. h.closed_port() .. "/"
    assert(h.send(s, h.request("GET", url, { "Host: 127.0.0.1" })))
    local resp = h.read_response(s)
    assert_error(resp, 502, "Bad Gateway")
    if (resp.headers["connection"] or ""):lower() == "close" then
      assert.is_true(h.is_closed(s, 3), "said Connection: close but kept the connection")
    else
      -- A persistent HTTP/1.1 connection: the next request must be served.
      assert(h.send(s, h.request("GET", origin.url("/hello"), { "Host: " .. origin.authority })))
      local next_resp = h.read_response(s)
      assert(next_resp, "connection unusable after a 502 without Connection: close")
      assert.are.equal("hello\n", next_resp.body)
    end
  end)

  it("answers 502 when the name does not resolve", function()
    local resp = get("http://nonexistent.invalid/x", { timeout = 15 })
    assert_error(resp, 502, "Bad Gateway")
    assert_healthy()
  end)

  for _, name in ipairs({ "cl-te", "dup-cl", "obs-fold", "space-colon", "bad-status",
                          "http09", "lf-only", "reset-before" }) do
    it("answers 502 for a malformed upstream response: " .. name, function()
      local resp = get(origin.url("/raw/" .. name))
      assert_error(resp, 502, "Bad Gateway")
      local reqs = origin.requests()
      assert.are.equal(1, #reqs)
      assert.are.equal("GET /raw/" .. name .. " HTTP/1.1", reqs[1].request_line)
      assert_healthy()
    end)
  end

  it("never relays a bad chunk size as if it were valid", function()
    -- Head and bad chunk arrive together, so a proxy may either reject the
    -- whole response (502) or have started relaying it (then it must cut
    -- the client off without a terminating chunk). Both are exact outcomes.
    local resp = get(origin.url("/raw/bad-chunk"))
    if resp.status == 502 then
      assert_error(resp, 502, "Bad Gateway")
    else
      assert.are.equal(200, resp.status)
      assert.are.equal("chunked", resp.framing)
      assert.is_true(resp.incomplete, "bad chunk relayed as a complete response")
      assert.is_nil(resp.trailers)
    end
    assert_healthy()
  end)

  it("closes the client connection when upstream resets mid Content-Length body", function()
    local resp = get(origin.url("/raw/reset-mid-cl"))
    assert.are.equal(200, resp.status)
    assert.are.equal("100000", resp.headers["content-length"])
    assert.is_true(resp.incomplete, "body reported complete")
    assert.are.equal("closed", resp.error)
    assert.is_true(#resp.body <= 1000)
    assert.is_true(resp.body == h.pattern(#resp.body), "partial body corrupted")
    assert_healthy()
  end)

  it("closes the client connection when upstream resets mid chunked body", function()
    local resp = get(origin.url("/raw/reset-mid-chunked"))
    assert.are.equal(200, resp.status)
    assert.are.equal("chunked", resp.framing)
    assert.is_true(resp.incomplete, "no terminating chunk expected")
    assert.are.equal("closed", resp.error)
    assert.is_nil(resp.trailers)
    assert.are.equal(("hello"):sub(1, #resp.body), resp.body)
    assert_healthy()
  end)

  it("answers 504 when upstream sends no head within --idle-timeout", function()
    local t0 = h.now()
    local resp = get(origin.url("/hang"), { timeout = 8 })
    local waited = h.now() - t0
    assert_error(resp, 504, "Gateway Timeout")
    assert.is_true(waited >= 0.8 and waited <= 4, "504 after " .. waited .. " s")
    assert.are.equal("GET /hang HTTP/1.1", origin.requests()[1].request_line)
    assert_healthy()
  end)

  -- A raw upstream on an ephemeral port; the test reads the request and
  -- writes the answer itself. Returns the listening socket and its target.
  local function raw_upstream()
    local server = assert(socket.bind("127.0.0.1", 0))
    server:settimeout(5)
    cleanups[#cleanups + 1] = function() server:close() end
    local _, port = server:getsockname()
    return server, "127.0.0.1:" .. port
  end

  -- --header-timeout bounds a request head from its first byte; a response
  -- head is bounded the same way by --idle-timeout (1 s here), or a server
  -- sending a byte now and then would hold the exchange for ever.
  it("answers 504 when a response head trickles in past --idle-timeout from its start", function()
    local server, target = raw_upstream()
    local s = assert(h.connect(proxy.port))
    cleanups[#cleanups + 1] = function() s:close() end
    assert(h.send(s, h.request("GET", "http://" .. target .. "/", { "Host: " .. target })))
    local up = assert(server:accept())
    cleanups[#cleanups + 1] = function() up:close() end
    h.skip_head(up)
    assert(up:send("HTTP/1.1 200 OK\r\nX-Slow: "))
    -- One byte of the head every 0.25 s, for up to 10 s: the client's
    -- answer comes back meanwhile, or never (the head never ends).
    s:settimeout(0.25)
    local got = ""
    for _ = 1, 40 do
      local data, _, partial = s:receive(4096)
      got = got .. (data or partial or "")
      if got:find("\r\n\r\n", 1, true) then break end
      up:send("x")
    end
    assert.truthy(got:find("^HTTP/1%.1 504 "), got)
    assert.truthy(got:find("did not respond in time", 1, true), got)
    assert_healthy()
  end)

  -- The client, not the upstream, stopped: 408, and no upstream timeout.
  it("answers 408 when the client stops sending its request body", function()
    local server, target = raw_upstream()
    local s = assert(h.connect(proxy.port))
    cleanups[#cleanups + 1] = function() s:close() end
    assert(h.send(s, "POST http://" .. target .. "/ HTTP/1.1\r\nHost: " .. target
      .. "\r\nContent-Length: 10\r\n\r\nabc"))
    local up = assert(server:accept())
    cleanups[#cleanups + 1] = function() up:close() end
    local resp = assert(h.read_response(s, { timeout = 8 }))
    assert.are.equal(408, resp.status, resp.raw_head)
    assert.truthy(resp.body:find("stopped sending its request body", 1, true), resp.body)
    assert.are.equal("close", resp.headers["connection"], resp.raw_head)
    assert_healthy()
  end)

  it("answers 504 when the upstream connect times out", function()
    -- A connect to it hangs until the proxy's --connect-timeout.
    local lport = h.hanging_port(cleanups)
    if not lport then
      pending("cannot make a loopback connect hang here (accept queue never fills)")
      return
    end

    local t0 = h.now()
    local resp = get("http://127.0.0.1:" .. lport .. "/x", { timeout = 8 })
    local waited = h.now() - t0
    assert_error(resp, 504, "Gateway Timeout")
    assert.is_true(waited >= 0.8 and waited <= 4, "504 after " .. waited .. " s")
    assert_healthy()
  end)
end)

-- A wildcard listener (0.0.0.0) is reached through every address of the
-- machine, not only loopback: a request to the machine's own LAN address
-- and the proxy's port came straight back to the proxy, whose answer to
-- itself (a 400 for the origin-form request it was sent) reached the
-- client in place of the 508; a CONNECT allowed to that port opened a
-- tunnel to the proxy itself.
-- An IPv4 address of this machine that is not loopback, or nil.
local function own_lan_address()
  local out = h.sh("ip -o -4 addr show scope global 2>/dev/null") or ""
  return out:match("inet (%d+%.%d+%.%d+%.%d+)/")
end

describe("loop detection through a wildcard listener", function()
  local procs = require("support.each_test").processes()

  it("answers 508 for the machine's own non-loopback address and the proxy's port", function()
    local ip = own_lan_address()
    if not ip then
      pending("this machine has no non-loopback IPv4 address")
      return
    end
    local origin = procs.origin()
    local proxy = procs.proxy({ "--listen", "0.0.0.0:0", "--allow", "127.0.0.0/8",
                                "--allow", ip .. "/32" })
    local url = "http://" .. ip .. ":" .. proxy.port .. "/looped"
    local resp = assert(h.get(proxy.port, url))
    assert(h.check_error_response(resp, 508, "Loop Detected"))
    -- refused before the request went anywhere, not by the Via chain
    -- after it had come round eight times
    assert.truthy(resp.body:find("would loop back to this proxy", 1, true), resp.body)
    local line = proxy.wait_access_log('"GET ' .. url:gsub("%p", "%%%0") .. ' HTTP/1%.1" 508 ')
    assert(line, proxy.access_log())
    local _, served = proxy.access_log():gsub("/looped", "")
    assert.are.equal(1, served, proxy.access_log())
    -- and the proxy carries on
    local ok = assert(h.get(proxy.port, origin.url("/hello")))
    assert.are.equal("hello\n", ok.body)
  end)
end)

-- A client on another machine reached, through the proxy, what only the
-- proxy's machine may reach: services bound to its loopback (a database,
-- an admin console) and the link-local cloud metadata address, which
-- hands out credentials. A client connecting through the machine's LAN
-- address stands for one on another machine here: it is not loopback.
describe("destinations only this machine may reach", function()
  local procs = require("support.each_test").processes()
  local ip, origin

  before_each(function()
    ip = own_lan_address()
    origin = procs.origin()
  end)

  local function lan_proxy(extra)
    local args = { "--listen", "0.0.0.0:0", "--allow", "127.0.0.0/8", "--allow", ip .. "/32",
                   "--connect-ports", tostring(origin.port) }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    return procs.proxy(args)
  end

  -- One request from the LAN address, on its own connection.
  local function from_lan(proxy, method, target)
    local s = assert(h.connect(proxy.port, ip))
    local authority = target:match("^%a+://([^/]+)") or target
    assert(h.send(s, h.request(method, target, { "Host: " .. authority })))
    local resp = assert(h.read_response(s, { method = method }))
    s:close()
    return resp
  end

  local function assert_refused(resp)
    assert(h.check_error_response(resp, 403, "Forbidden"))
    assert.truthy(resp.body:find("only this machine may reach", 1, true), resp.body)
  end

  it("refuses a client on another machine every spelling of loopback, and tunnels there",
     function()
    if not ip then return pending("this machine has no non-loopback IPv4 address") end
    local proxy = lan_proxy()
    local port = origin.port
    for _, host in ipairs({ "127.0.0.1", "localhost", "127.0.0.2", "[::ffff:127.0.0.1]",
                            "0.0.0.0", "[::1]" }) do
      assert_refused(from_lan(proxy, "GET", "http://" .. host .. ":" .. port .. "/hello"))
    end
    assert_refused(from_lan(proxy, "CONNECT", "127.0.0.1:" .. port))
    -- a loopback client of the same proxy is served, and is the first
    -- the origin hears of
    local ok = assert(h.get(proxy.port, origin.url("/hello")))
    assert.are.equal("hello\n", ok.body)
    assert.are.equal(1, #origin.requests())
  end)

  it("serves them with --allow-local-destinations", function()
    if not ip then return pending("this machine has no non-loopback IPv4 address") end
    local proxy = lan_proxy({ "--allow-local-destinations" })
    local resp = from_lan(proxy, "GET", origin.url("/hello"))
    assert.are.equal("hello\n", resp.body)
  end)

  -- Through a parent the proxy resolves nothing: the parent connects, as
  -- often as not from this machine (a Squid or cntlm on loopback). What
  -- the target's spelling says is held to the same rule.
  it("refuses them through a parent proxy too, as the target is spelt", function()
    if not ip then return pending("this machine has no non-loopback IPv4 address") end
    local parent = procs.add(h.start_parent())
    local proxy = lan_proxy({ "--upstream", parent.url() })
    local port = origin.port
    for _, host in ipairs({ "127.0.0.1", "localhost", "LocalHost.", "app.localhost", "127.1",
                            "2130706433", "0", "[::1]", "[::ffff:127.0.0.1]",
                            "169.254.169.254" }) do
      assert_refused(from_lan(proxy, "GET", "http://" .. host .. ":" .. port .. "/hello"))
    end
    assert_refused(from_lan(proxy, "CONNECT", "127.0.0.1:" .. port))
    assert.are.equal(0, #parent.requests())
    -- other names are the parent's to resolve; a loopback client may
    -- reach loopback through it, and so may anyone with the option
    assert.are.equal(200, from_lan(proxy, "GET", "http://a.example.invalid/x").status)
    assert.are.equal(200, assert(h.get(proxy.port, origin.url("/hello"))).status)
    local open = lan_proxy({ "--upstream", parent.url(), "--allow-local-destinations" })
    assert.are.equal(200, from_lan(open, "GET", origin.url("/hello")).status)
    assert.are.equal(3, #parent.wait_requests(3))
  end)

  it("does not hand a client on another machine a pooled connection to loopback", function()
    if not ip then return pending("this machine has no non-loopback IPv4 address") end
    local proxy = lan_proxy({ "--trace" })
    local url = "http://localhost:" .. origin.port .. "/hello"
    -- a local client's connection to localhost, parked once it leaves
    local ok = assert(h.get(proxy.port, url))
    assert.are.equal("hello\n", ok.body)
    assert(proxy.log_has("parked in the pool"), proxy.log())
    assert_refused(from_lan(proxy, "GET", url))
  end)

  -- The connection a session keeps between requests was reused without a
  -- look at the rule: one to loopback, kept while --allow-local-destinations
  -- was in force, still served a client on another machine after a reload
  -- had taken the option away.
  it("does not reuse a session's kept connection to loopback the reloaded rule forbids",
     function()
    if not ip then return pending("this machine has no non-loopback IPv4 address") end
    local conf = h.tmpfile("allow-local-destinations\n", "luaproxy.conf")
    local proxy = lan_proxy({ "-c", conf, "--trace" })
    local url = origin.url("/hello")
    local s = assert(h.connect(proxy.port, ip))
    local authority = url:match("^%a+://([^/]+)")
    local function get()
      assert(h.send(s, h.request("GET", url, { "Host: " .. authority })))
      return assert(h.read_response(s))
    end
    assert.are.equal("hello\n", get().body)
    assert(proxy.log_has("kept by the session"), proxy.log())
    h.write_file(conf, "# the option is gone\n")
    proxy.signal("HUP")
    -- the reload is in force once a new client on the LAN is refused
    assert(h.wait_for(function()
      return from_lan(proxy, "GET", url).status == 403
    end, 5, 0.05), proxy.log())
    -- (the probes made before the reload was in force reached the origin)
    local before = #origin.requests()
    assert_refused(get())
    s:close()
    assert.are.equal(before, #origin.requests())
  end)
end)

-- A name with several addresses is tried address by address. One that
-- never answers (a firewall dropping SYNs, an IPv6 address without a
-- route) took the whole --connect-timeout, a 504, and the next address,
-- which answers, was never tried.
describe("a name with several addresses", function()
  local procs = require("support.each_test").processes()

  it("tries the next address when one never answers, within --connect-timeout", function()
    local d, why = dead_address.open()
    if not d then return pending(why) end
    local proxy = procs.proxy({ "--connect-timeout", "2", "--trace" }, { prefix = d.prefix })
    local s = assert(h.connect(proxy.port))
    local target = "twice.test:" .. d.port
    assert(h.send(s, h.request("GET", "http://" .. target .. "/", { "Host: " .. target })))
    local ok, err = pcall(function()
      assert(dead_address.answer(d))
      -- the blackholed address came first
      assert.truthy(proxy.log_has("connect() to [::1]:" .. d.port), proxy.log())
      local resp = assert(h.read_response(s, { timeout = 8 }))
      assert.are.equal(200, resp.status, resp.raw_head)
      assert.are.equal("yes", resp.body)
    end)
    s:close()
    d.close()
    assert(ok, err)
  end)
end)

-- A client that left while the proxy was still connecting for it was held
-- on to until the connect ended: its descriptors (and the upstream
-- socket) for up to --connect-timeout, and a connect that succeeded late
-- sent its request upstream for nobody. Nothing has gone up before the
-- connection is made, so the exchange ends as soon as the client leaves,
-- as it does while a request hook waits.
describe("a client that leaves while the upstream connection is made", function()
  local procs = require("support.each_test").processes()

  it("ends the exchange and closes the connect at once", function()
    local closers = {}
    local port = h.hanging_port(closers)
    if not port then
      return pending("cannot make a loopback connect hang here (accept queue never fills)")
    end
    local function close() for _, c in ipairs(closers) do c() end end
    local origin = procs.origin()
    local proxy = procs.proxy({ "--connect-timeout", "60", "--log-format", "json", "--trace" })
    local base = proxy.fd_count()
    local clients = {}
    for i = 1, 5 do
      local s = assert(h.connect(proxy.port))
      local target = "127.0.0.1:" .. port
      assert(h.send(s, h.request("GET", "http://" .. target .. "/" .. i, { "Host: " .. target })))
      clients[i] = s
    end
    local ok, err = pcall(function()
      -- every client's connect has started (a socket of its own each)
      assert(h.wait_for(function() return proxy.fd_count() == base + 10 end, 5, 0.05),
             "connects never started: " .. tostring(proxy.fd_count()) .. " fds\n" .. proxy.log())
      for _, s in ipairs(clients) do s:close() end
      for i = 1, 5 do
        local line = proxy.wait_access_log('"target":"http://127.0.0.1:' .. port .. '/' .. i .. '"', 5)
        assert(line, "no access log line for the client that left:\n" .. proxy.access_log())
        assert.truthy(line:find('"status":0,', 1, true), line)
        assert.truthy(line:find("the client went away while the upstream connection was made",
                                1, true), line)
      end
      assert(h.wait_for(function() return proxy.fd_count() == base end, 5, 0.05),
             "fd count " .. tostring(proxy.fd_count()) .. " never returned to " .. base)
      -- and the next client is served
      local resp = assert(h.get(proxy.port, origin.url("/hello")))
      assert.are.equal("hello\n", resp.body)
    end)
    close()
    assert(ok, err)
  end)
end)

-- An absolute name, with its trailing dot ("localhost."), is the same
-- name: the resolver looked it up in /etc/hosts with the dot, where no
-- entry has one, and a name that lives only there got a 502.
describe("an absolute name (a trailing dot)", function()
  local procs = require("support.each_test").processes()

  it("resolves through /etc/hosts as the name without it", function()
    local origin = procs.origin()
    local proxy = procs.proxy({ "--trace" })
    for _, host in ipairs({ "localhost.", "LocalHost." }) do
      local target = host .. ":" .. origin.port
      local resp = assert(h.get(proxy.port, "http://" .. target .. "/hello"))
      assert.are.equal(200, resp.status, resp.body)
      assert.are.equal("hello\n", resp.body)
    end
    assert.are.equal(2, #origin.requests())
  end)
end)

-- The lookup's own timeout (c-ares's tries, which together last
-- --connect-timeout) ends at about the moment the proxy's timer does: the
-- answer was 502 or 504 by whichever ran first. A lookup out of time is a
-- 504, as the README's --connect-timeout says. There is no DNS server
-- here, so the proxy runs in a network and mount namespace of its own,
-- where 127.0.0.1:53 is first closed (a refused lookup: 502) and then
-- taken by a socket that reads the questions and never answers.
describe("a DNS server that never answers", function()
  it("gets a 504 naming the lookup, once --connect-timeout is spent", function()
    if not h.sh("unshare -m -n true 2>/dev/null && command -v ip && echo yes"):find("yes", 1, true) then
      return pending("unshare -m -n or ip is not available here")
    end
    local dir = h.tmpfile("", "dns-marker"):match("^(.*)/")
    local resolv = h.tmpfile("nameserver 127.0.0.1\n", "resolv.conf")
    local hole = h.tmpfile([[
      local socket = require("socket")
      local u = assert(socket.udp())
      assert(u:setsockname("127.0.0.1", 53))
      io.stdout:write("ready\n"); io.stdout:flush()
      u:settimeout(20)
      while u:receivefrom() do end
    ]], "hole.lua")
    local script = h.tmpfile(([[
      set -u
      ip link set lo up && mount --bind RESOLV /etc/resolv.conf || exit 1
      BIN --listen 127.0.0.1:8080 --connect-timeout 1 2>DIR/proxy.err &
      proxy=$!
      for _ in 1 2 3 4 5 6 7 8 9 10; do
        curl -s -o /dev/null http://127.0.0.1:8080/ && break; sleep 0.2
      done
      ask() { curl -s -m 10 -o DIR/body.$1 -w "%{http_code} %{time_total}\n" \
                -x http://127.0.0.1:8080 http://never.example/; }
      ask refused
      lua5.4 HOLE > DIR/hole.out &
      hole=$!
      for _ in 1 2 3 4 5 6 7 8 9 10; do
        grep -q ready DIR/hole.out 2>/dev/null && break; sleep 0.2
      done
      ask silent
      kill $proxy $hole
      wait
    ]]):gsub("RESOLV", resolv):gsub("BIN", h.shell_quote(h.bin())):gsub("HOLE", hole)
       :gsub("DIR", dir), "dns_namespace.sh")
    local out = h.sh("timeout 60 unshare -m -n sh " .. h.shell_quote(script) .. " 2>&1")
    local refused, silent, took = out:match("^(%d+) [%d.]+\n(%d+) ([%d.]+)\n")
    assert.are.equal("502", refused, out)
    assert.are.equal("504", silent, out)
    -- the whole --connect-timeout, and not much more
    assert.is_true(tonumber(took) >= 0.9 and tonumber(took) < 3, out)
    assert.truthy(h.read_file(dir .. "/body.silent"):find("lookup timed out", 1, true),
      h.read_file(dir .. "/body.silent"))
    assert.truthy(h.read_file(dir .. "/proxy.err"):find("-> 504 (the upstream's name lookup "
      .. "timed out)", 1, true), h.read_file(dir .. "/proxy.err"))
  end)
end)
