-- HTTPS interception: the CA (luaproxy ca init and loading it at start),
-- decrypted tunnels seen by real clients (curl, openssl s_client) and raw
-- sockets, upstream certificate checks, hooks on https requests, clients
-- that refuse our certificate, the key log and the luaproxy.ca page.
--
-- The HTTPS origin is origin.lua behind tls_front.py, with certificates from
-- a test CA made here with the openssl CLI (support/harness.lua test_pki);
-- the proxy trusts that CA through --upstream-ca.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local json = require("cjson")

local q = h.shell_quote

local function script(src) return h.tmpfile(src, "hook.lua") end

-- Parses a run of HTTP/1.1 responses with Content-Length bodies (what
-- s_client prints) into a list of {status, headers, body}.
local function split_responses(data)
  local out, pos = {}, 1
  while pos <= #data do
    local head_end = data:find("\r\n\r\n", pos, true)
    if not head_end then break end
    local head = data:sub(pos, head_end - 1)
    local status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
    local len = tonumber(head:lower():match("\ncontent%-length: *(%d+)")) or 0
    out[#out + 1] = { status = status, head = head, body = data:sub(head_end + 4, head_end + 3 + len) }
    pos = head_end + 4 + len
  end
  return out
end

describe("luaproxy ca init", function()
  it("makes a 10-year CA with a private key only the owner can read, and never overwrites it", function()
    local dir = h.tmpfile("", "x") .. ".ca"
    local out, code = h.sh(q(h.bin()) .. " ca init --ca-dir " .. q(dir) .. " 2>&1")
    assert.are.equal(0, code, out)
    assert.truthy(out:find("update-ca-certificates", 1, true))
    assert.truthy(out:find("certutil", 1, true))
    assert.truthy(out:find("--cacert", 1, true))
    local mode = h.sh("stat -c %a " .. q(dir .. "/ca.key"))
    assert.are.equal("600", mode:match("%d+"))
    local subject = h.sh("openssl x509 -in " .. q(dir .. "/ca.pem") .. " -noout -subject -enddate -ext basicConstraints")
    assert.truthy(subject:find("CN = luaproxy CA (", 1, true), subject)
    assert.truthy(subject:find("CA:TRUE", 1, true), subject)
    local year = tonumber(subject:match("notAfter=%a+%s+%d+ [%d:]+ (%d+)"))
    assert.is_true(year >= tonumber(os.date("!%Y")) + 9, subject)
    -- DER and PEM hold the same certificate.
    local der_as_pem = h.sh("openssl x509 -inform DER -in " .. q(dir .. "/ca.der"))
    assert.are.equal(h.read_file(dir .. "/ca.pem"), der_as_pem)

    local key = h.read_file(dir .. "/ca.key")
    out, code = h.sh(q(h.bin()) .. " ca init --ca-dir " .. q(dir) .. " 2>&1")
    assert.are_not.equal(0, code)
    assert.truthy(out:find("--force", 1, true), out)
    assert.are.equal(key, h.read_file(dir .. "/ca.key"))
    out, code = h.sh(q(h.bin()) .. " ca init --force --ca-dir " .. q(dir) .. " 2>&1")
    assert.are.equal(0, code, out)
    assert.are_not.equal(key, h.read_file(dir .. "/ca.key"))
  end)

  it("takes the directory from LUAPROXY_CA_DIR, else ~/.luaproxy", function()
    local base = h.tmpfile("", "y") .. ".d"
    assert(os.execute("mkdir -p " .. q(base .. "/home")))
    local _, code = h.sh("LUAPROXY_CA_DIR=" .. q(base .. "/env") .. " " .. q(h.bin()) .. " ca init >/dev/null 2>&1")
    assert.are.equal(0, code)
    assert.truthy(h.read_file(base .. "/env/ca.pem"))
    _, code = h.sh("env -u LUAPROXY_CA_DIR HOME=" .. q(base .. "/home") .. " " .. q(h.bin()) .. " ca init >/dev/null 2>&1")
    assert.are.equal(0, code)
    assert.truthy(h.read_file(base .. "/home/.luaproxy/ca.pem"))
  end)
end)

describe("starting with a CA", function()
  it("creates a CA when --intercept is given and there is none, and says where", function()
    local dir = h.tmpfile("", "z") .. ".ca"
    local p = h.start_proxy({ "--intercept", "*", "--ca-dir", dir })
    assert.truthy(p.log():find("created a CA for interception in " .. dir, 1, true))
    assert.truthy(h.read_file(dir .. "/ca.pem"))
    assert.are.equal(0, p.stop())
  end)

  it("refuses to start (status 2) with a key that does not match or a CA it cannot read", function()
    local a, b = h.new_ca_dir(), h.new_ca_dir()
    assert(os.execute("cp " .. q(b .. "/ca.key") .. " " .. q(a .. "/ca.key")))
    local code, _, err = h.run_proxy({ "--intercept", "*", "--ca-dir", a })
    assert.are.equal(2, code)
    assert.truthy(err:find("does not match", 1, true), err)

    h.write_file(b .. "/ca.pem", "not a certificate\n")
    code, _, err = h.run_proxy({ "--ca-dir", b })
    assert.are.equal(2, code)
    assert.truthy(err:find("ca.pem", 1, true), err)

    code, _, err = h.run_proxy({ "--ca-dir", a .. "/missing" })
    assert.are.equal(2, code)
    assert.truthy(err:find("ca init", 1, true), err)
  end)

  it("refuses (status 2) a CA key other users can read and a CA directory every user can write to", function()
    local dir = h.new_ca_dir()
    assert(os.execute("chmod 644 " .. q(dir .. "/ca.key")))
    local code, _, err = h.run_proxy({ "--intercept", "*", "--ca-dir", dir })
    assert.are.equal(2, code, err)
    assert.truthy(err:find("chmod 600", 1, true), err)
    assert(os.execute("chmod 600 " .. q(dir .. "/ca.key") .. " && chmod 777 " .. q(dir)))
    code, _, err = h.run_proxy({ "--intercept", "*", "--ca-dir", dir })
    assert.are.equal(2, code, err)
    assert.truthy(err:find("writable by every user", 1, true), err)
    -- ca init writes no key into such a directory either.
    local shared = h.tmpfile("", "shared") .. ".d"
    assert(os.execute("mkdir -m 777 " .. q(shared)))
    local out, status = h.sh(q(h.bin()) .. " ca init --ca-dir " .. q(shared) .. " 2>&1")
    assert.are_not.equal(0, status, out)
    assert.truthy(out:find("writable by every user", 1, true), out)
    assert.falsy(h.read_file(shared .. "/ca.key"))
  end)

  it("ca init writes the key to a file of its own, not through a name that was there", function()
    local dir = h.tmpfile("", "w") .. ".ca"
    assert(os.execute("mkdir -m 700 " .. q(dir)))
    local victim = h.tmpfile("not a key\n", "victim")
    assert(os.execute("ln -s " .. q(victim) .. " " .. q(dir .. "/ca.key.tmp")))
    local out, code = h.sh(q(h.bin()) .. " ca init --ca-dir " .. q(dir) .. " 2>&1")
    assert.are.equal(0, code, out)
    assert.are.equal("not a key\n", h.read_file(victim))
    local link = h.sh("stat -c %F " .. q(dir .. "/ca.key"))
    assert.truthy(link:find("regular file", 1, true), link)
  end)

  it("refuses (status 2) an --intercept or --no-intercept pattern with a port: it would match nothing", function()
    local dir = h.new_ca_dir()
    for _, opt in ipairs({ "--intercept", "--no-intercept" }) do
      local code, _, err = h.run_proxy({ "--ca-dir", dir, opt, "bank.example:443" })
      assert.are.equal(2, code, err)
      assert.truthy(err:find("invalid " .. opt .. " 'bank.example:443'", 1, true), err)
    end
    -- An IPv6 address is a host: its colons are no port.
    local p = h.start_proxy({ "--ca-dir", dir, "--no-intercept", "::1" })
    assert.are.equal(0, p.stop())
  end)

  it("refuses to start (status 2) with an --upstream-ca it cannot read, in any number of workers",
    function()
    local bad = h.tmpfile("not a certificate\n", "upstream-ca.pem")
    for _, workers in ipairs({ "1", "2" }) do
      local code, _, err = h.run_proxy({ "--workers", workers, "--upstream-ca", bad })
      assert.are.equal(2, code)
      assert.truthy(err:find("cannot read --upstream-ca " .. bad .. ": not a PEM certificate file",
        1, true), err)
    end
  end)
end)

describe("intercepted tunnels", function()
  local pki, origin, proxy, ca_dir
  local extra = {}

  local function start_proxy(args, opts)
    local full = { "--ca-dir", ca_dir, "--upstream-ca", pki.ca,
                   "--connect-ports", "443," .. origin.port }
    for _, a in ipairs(args or {}) do full[#full + 1] = a end
    proxy = h.start_proxy(full, opts)
    return proxy
  end

  local function curl(args)
    local full = { "--cacert", ca_dir .. "/ca.pem", "-x", "http://127.0.0.1:" .. proxy.port }
    for _, a in ipairs(args) do full[#full + 1] = a end
    return h.curl(full)
  end

  before_each(function()
    pki = h.test_pki()
    origin = h.start_https_origin()
    ca_dir = h.new_ca_dir()
  end)

  after_each(function()
    for _, p in ipairs(extra) do p.stop() end
    extra = {}
    local problem = proxy and h.stop_procs({ proxy })
    proxy = nil
    origin.stop()
    assert(not problem, problem)
  end)

  it("GET: curl trusts the minted certificate and the request reaches the origin", function()
    start_proxy({ "--intercept", "*" })
    local out, code, err = curl({ origin.url("/hello") })
    assert.are.equal(0, code, err)
    assert.are.equal("hello\n", out)
    local reqs = origin.wait_requests(1)
    assert.are.equal("GET /hello HTTP/1.1", reqs[1].request_line)
    assert.are.equal(origin.authority, reqs[1].headers["host"])
    -- The CONNECT, then the decrypted request with its https:// URL.
    assert(proxy.wait_access_log('"GET https://' .. origin.authority:gsub("%p", "%%%0") .. '/hello HTTP/1.1" 200'))
    assert(proxy.wait_access_log('"CONNECT ' .. origin.authority:gsub("%p", "%%%0") .. ' HTTP/1.1" 200'))
  end)

  -- RFC 9112 9.8: over TLS a close without close_notify may be someone
  -- cutting the stream, so a body that only the close ends is not passed
  -- on as whole without it. The front sends none unless told to.
  it("takes a body the upstream's close ends as whole only after its close_notify", function()
    local notify = h.start_https_origin({ close_notify = true })
    extra[#extra + 1] = notify
    start_proxy({ "--intercept", "*", "--connect-ports", origin.port .. "," .. notify.port })
    -- The bytes that came go on, but no last chunk: curl sees a cut.
    local out, code, err = curl({ origin.url("/close?size=5000") })
    assert.are.equal(18, code, err)
    assert.are.equal(h.pattern(5000), out)
    assert.truthy(proxy.log_has("the upstream's TLS connection ended without close_notify: the "
      .. "body may be cut short"), proxy.log())
    out, code, err = curl({ notify.url("/close?size=5000") })
    assert.are.equal(0, code, err)
    assert.are.equal(h.pattern(5000), out)
  end)

  -- A client that sent its ClientHello in the same write as its CONNECT,
  -- without waiting for the 200, got a plain tunnel: any client could
  -- choose not to be intercepted, and so pass every script by.
  it("decrypts a tunnel whose client sends its ClientHello before the 200", function()
    start_proxy({ "--intercept", "*", "--trace" })
    local out, code, err = h.sh(table.concat({ "python3",
      h.shell_quote("tests/spec/support/eager_tls.py"), tostring(proxy.port), "127.0.0.1",
      tostring(origin.port), h.shell_quote(ca_dir .. "/ca.pem"), "/hello", "2>&1" }, " "))
    assert.are.equal(0, code, tostring(out) .. tostring(err) .. proxy.log())
    assert.truthy(out:find("issuer: luaproxy", 1, true), out)
    assert.truthy(out:find("\r\n\r\nhello\n$"), out)
    assert.truthy(proxy.log_has("bytes it sent before our 200 are read first"), proxy.log())
    assert(proxy.wait_access_log('"GET https://' .. origin.authority:gsub("%p", "%%%0") .. '/hello HTTP/1.1" 200'))
  end)

  -- At --max-connections a new client closes the longest-idle one; an
  -- intercepted client is ended as TLS should be, with a close_notify,
  -- so it can tell a clean close from a connection cut short.
  it("ends an idle intercepted client with a close_notify when a new client takes its slot", function()
    start_proxy({ "--intercept", "*", "--max-connections", "2" })
    local idle = h.start_command(table.concat({ "exec python3",
      q("tests/spec/support/idle_tls.py"), tostring(proxy.port), "127.0.0.1",
      tostring(origin.port), q(ca_dir .. "/ca.pem"), "/hello", "10" }, " "))
    extra[#extra + 1] = idle
    assert(h.wait_for(function() return idle.stdout():find("response: 200", 1, true) end),
      idle.stdout() .. idle.stderr() .. proxy.log())
    -- A plain client, idle since after the intercepted one.
    local backend = origin.backend
    local request = h.request("GET", backend.url("/hello"), { "Host: " .. backend.authority })
    local newer = assert(h.connect(proxy.port))
    h.send(newer, request)
    assert.are.equal(200, assert(h.read_response(newer)).status)

    -- The proxy is full: a third client is served all the same.
    local third = assert(h.connect(proxy.port))
    h.send(third, request)
    assert.are.equal(200, assert(h.read_response(third)).status)
    assert(h.wait_for(function() return idle.stdout():find("end: ", 1, true) end, 15),
      idle.stdout() .. idle.stderr())
    assert.truthy(idle.stdout():find("end: close_notify", 1, true), idle.stdout())
    assert.are.equal(0, idle.wait_exit(5), idle.stderr())
    -- The newer idle client was left alone.
    h.send(newer, request)
    assert.are.equal(200, assert(h.read_response(newer)).status)
    newer:close()
    third:close()
  end)

  it("POST with a body, a chunked upload and a chunked response", function()
    start_proxy({ "--intercept", "127.0.0.1" })
    local out, code = curl({ "--data-binary", "a=1&b=2", origin.url("/echo") })
    assert.are.equal(0, code)
    assert.truthy(out:find("\r\n\r\na=1&b=2$"), out)
    local body = h.tmpfile(h.pattern(100000), "up.bin")
    out, code = curl({ "-H", "Transfer-Encoding: chunked", "--data-binary", "@" .. body, origin.url("/echo") })
    assert.are.equal(0, code)
    local reqs = origin.wait_requests(2)
    assert.are.equal(h.pattern(100000), reqs[2].decoded)
    out, code = curl({ origin.url("/chunked?n=5&size=1000") })
    assert.are.equal(0, code)
    assert.are.equal(string.rep("x", 5000), out)
  end)

  it("large bodies both ways arrive byte for byte through both TLS legs", function()
    start_proxy({ "--intercept", "*" })
    local n = 24 * 1024 * 1024
    local file = h.tmpfile("", "big.bin")
    local _, code = curl({ "-o", file, origin.url("/bytes?n=" .. n) })
    assert.are.equal(0, code)
    local got = h.read_file(file)
    assert.are.equal(n, #got)
    assert.is_true(got == h.pattern(n), "the downloaded body differs")
    got = nil
    local up = h.tmpfile(h.pattern(5 * 1024 * 1024, 7), "up.bin")
    _, code = curl({ "-o", "/dev/null", "--data-binary", "@" .. up, origin.url("/echo") })
    assert.are.equal(0, code)
    local reqs = origin.wait_requests(2)
    assert.is_true(reqs[2].body == h.pattern(5 * 1024 * 1024, 7), "the uploaded body differs")
  end)

  it("TLS 1.2 clients, and HTTP/2 clients fall back to HTTP/1.1 (ALPN)", function()
    start_proxy({ "--intercept", "*" })
    local out, code, err = curl({ "--tls-max", "1.2", "-v", origin.url("/hello") })
    assert.are.equal(0, code, err)
    assert.are.equal("hello\n", out)
    assert.truthy(err:find("TLSv1.2", 1, true), err)
    out, code, err = curl({ "--http2", "-v", origin.url("/hello") })
    assert.are.equal(0, code, err)
    assert.are.equal("hello\n", out)
    assert.truthy(err:find("ALPN: server accepted http/1.1", 1, true)
      or err:find("ALPN, server accepted to use http/1.1", 1, true), err)
  end)

  it("keep-alive and pipelining inside TLS (openssl s_client)", function()
    start_proxy({ "--intercept", "*" })
    local host = "Host: " .. origin.authority .. "\r\n"
    local input = "GET /hello HTTP/1.1\r\n" .. host .. "\r\n"
      .. "GET /bytes?n=70000 HTTP/1.1\r\n" .. host .. "\r\n"
      .. "GET / HTTP/1.1\r\n" .. host .. "Connection: close\r\n\r\n"
    local out, _, err = h.s_client({ proxy_port = proxy.port, cafile = ca_dir .. "/ca.pem" },
      origin.authority, input)
    local res = split_responses(out)
    assert.are.equal(3, #res, err)
    assert.are.equal("hello\n", res[1].body)
    assert.are.equal(h.pattern(70000), res[2].body)
    assert.are.equal("root\n", res[3].body)
    -- One client connection, one upstream connection for all three.
    assert.are.equal(3, #origin.wait_requests(3))
  end)

  -- A mocked upload inside the tunnel: its body, which looks like a
  -- request, is dropped by its framing (length, then chunked with the
  -- full URL), and only the request behind it reaches the origin.
  it("tx:respond before a request body inside TLS: the body dropped, the next request served", function()
    local s = script([[
      function on_request(tx) if tx.req.method == "POST" then tx:respond(201, "mocked\n") end end
    ]])
    start_proxy({ "--intercept", "*", "-s", s })
    local host = "Host: " .. origin.authority .. "\r\n"
    local inner = "GET /bytes?n=5 HTTP/1.1\r\n" .. host .. "\r\n"
    local input = "POST /upload HTTP/1.1\r\n" .. host .. "Content-Length: " .. #inner .. "\r\n\r\n"
      .. inner
      .. "POST https://" .. origin.authority .. "/upload HTTP/1.1\r\n" .. host
      .. "Transfer-Encoding: chunked\r\n\r\n" .. string.format("%x\r\n%s\r\n0\r\n\r\n", #inner, inner)
      .. "GET /hello HTTP/1.1\r\n" .. host .. "Connection: close\r\n\r\n"
    local out, _, err = h.s_client({ proxy_port = proxy.port, cafile = ca_dir .. "/ca.pem" },
      origin.authority, input)
    local res = split_responses(out)
    assert.are.equal(3, #res, err)
    assert.are.equal("mocked\n", res[1].body)
    assert.are.equal("mocked\n", res[2].body)
    assert.are.equal("hello\n", res[3].body)
    local seen = origin.wait_requests(1)
    assert.are.equal(1, #seen)
  end)

  -- A tunnel to a port nothing listens on: each request inside gets a 502
  -- (connect refused) before its body went up. The body, which looks
  -- like a request, is dropped by its framing, and the request behind
  -- it gets its own answer on the same connection.
  it("a 502 before a request body inside TLS: the body dropped, the next request answered", function()
    local closed = "127.0.0.1:" .. h.closed_port()
    start_proxy({ "--intercept", "*", "--connect-ports", closed:match("%d+$") })
    local host = "Host: " .. closed .. "\r\n"
    local inner = "GET /bytes?n=5 HTTP/1.1\r\n" .. host .. "\r\n"
    local input = "POST /upload HTTP/1.1\r\n" .. host .. "Content-Length: " .. #inner .. "\r\n\r\n"
      .. inner .. "GET /hello HTTP/1.1\r\n" .. host .. "Connection: close\r\n\r\n"
    local out, _, err = h.s_client({ proxy_port = proxy.port, cafile = ca_dir .. "/ca.pem" },
      closed, input)
    local res = split_responses(out)
    assert.are.equal(2, #res, err .. out)
    assert.are.equal(502, res[1].status, res[1].head)
    assert.falsy(res[1].head:lower():find("connection: close", 1, true), res[1].head)
    assert.are.equal(502, res[2].status, res[2].head)
    assert(proxy.wait_access_log('"GET https://' .. closed:gsub("%p", "%%%0") .. '/hello HTTP/1.1" 502'))
  end)

  it("a full URL inside the tunnel: the tunnel's server is served, another gets 421", function()
    start_proxy({ "--intercept", "*" })
    local other = "127.0.0.1:" .. h.closed_port()
    local input = "GET https://" .. origin.authority .. "/hello HTTP/1.1\r\nHost: "
      .. origin.authority .. "\r\n\r\n"
      .. "GET https://" .. other .. "/hello HTTP/1.1\r\nHost: " .. other .. "\r\n\r\n"
    local out, _, err = h.s_client({ proxy_port = proxy.port, cafile = ca_dir .. "/ca.pem" },
      origin.authority, input)
    local res = split_responses(out)
    assert.are.equal(2, #res, err)
    assert.are.equal(200, res[1].status)
    assert.are.equal("hello\n", res[1].body)
    -- Not a connection to the other port (502 once it is refused): the
    -- CONNECT chose the server, and --connect-ports allowed only its port.
    assert.are.equal(421, res[2].status, res[2].head)
    assert.are.equal(1, #origin.wait_requests(1))
  end)

  -- Inside the tunnel the client talks to the server, so its OPTIONS *
  -- asks about the server (RFC 9110 9.3.7) and goes there as it came.
  it("OPTIONS * inside the tunnel reaches the tunnel's server as OPTIONS *", function()
    start_proxy({ "--intercept", "*" })
    local host = "Host: " .. origin.authority .. "\r\n"
    local input = "OPTIONS * HTTP/1.1\r\n" .. host .. "\r\n"
      .. "GET /hello HTTP/1.1\r\n" .. host .. "Connection: close\r\n\r\n"
    local out, _, err = h.s_client({ proxy_port = proxy.port, cafile = ca_dir .. "/ca.pem" },
      origin.authority, input)
    local res = split_responses(out)
    assert.are.equal(2, #res, err)
    assert.are.equal("hello\n", res[2].body)
    local reqs = origin.wait_requests(2)
    assert.are.equal("OPTIONS * HTTP/1.1", reqs[1].request_line)
    assert.are.equal(origin.authority, reqs[1].headers["host"])
    assert.are.equal("GET /hello HTTP/1.1", reqs[2].request_line)
  end)

  it("WebSocket (wss) upgrade inside TLS, then bytes both ways", function()
    start_proxy({ "--intercept", "*" })
    local input = "GET /ws HTTP/1.1\r\nHost: " .. origin.authority .. "\r\n"
      .. "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\nping over wss"
    local out = h.s_client({ proxy_port = proxy.port, cafile = ca_dir .. "/ca.pem" },
      origin.authority, input)
    assert.truthy(out:find("^HTTP/1.1 101 "), out)
    assert.truthy(out:find("\r\n\r\nping over wss$"), out)
  end)

  it("hooks see https requests and rewrite the request and the response body", function()
    local s = script([[
      function on_request(tx)
        if tx.req.method == "CONNECT" then return end -- a tunnel has no path
        tx.req.headers["X-Seen"] = tx.req.scheme .. " " .. tx.req.url .. " " .. tostring(tx.upstream.tls)
        tx.req.path = "/echo"
      end
      function on_response_chunk(tx, chunk, eof)
        return (chunk:gsub("X%-Seen", "X-Rewritten"))
      end
      function on_done(tx) proxy.log("done " .. tx.req.url) end
    ]])
    start_proxy({ "--intercept", "*", "-s", s })
    local out, code = curl({ origin.url("/anything") })
    assert.are.equal(0, code)
    local want = "X-Rewritten: https " .. origin.url("/anything") .. " true"
    assert.truthy(out:find(want, 1, true), out)
    assert(h.wait_for(function() return proxy.log():find("done " .. origin.url("/echo"), 1, true) end))
  end)

  it("tx:respond answers an https URL with no upstream at all", function()
    local s = script([[
      function on_request(tx)
        if tx.req.url == "https://api.invalid/v1/users" then
          tx:respond(200, '{"users":[]}', { ["Content-Type"] = "application/json" })
        end
      end
    ]])
    start_proxy({ "--intercept", "*.invalid", "-s", s })
    local out, code, err = curl({ "-i", "https://api.invalid/v1/users" })
    assert.are.equal(0, code, err)
    assert.truthy(out:find("^HTTP/1.1 200"), out)
    assert.truthy(out:find('{"users":[]}', 1, true), out)
  end)

  it("tx.upstream.tls = false sends the decrypted request to a plain-HTTP server", function()
    local plain = h.start_origin()
    extra[#extra + 1] = plain
    local s = script(string.format([[
      function before_connect(tx)
        if tx.req.scheme ~= "https" then return end -- not the CONNECT: its port is checked
        tx.upstream.host, tx.upstream.port, tx.upstream.tls = "127.0.0.1", %d, false
      end
    ]], plain.port))
    start_proxy({ "--intercept", "*", "-s", s })
    local out, code = curl({ origin.url("/hello") })
    assert.are.equal(0, code)
    assert.are.equal("hello\n", out)
    assert.are.equal(1, #plain.wait_requests(1))
    assert.are.equal(0, #origin.requests())
  end)

  -- A browser sends a ws:// WebSocket through a proxy as a CONNECT to port
  -- 80 and speaks plain HTTP in the tunnel: an interception pattern that
  -- matches the host must not answer it with TLS.
  it("a client that speaks plain HTTP in an intercepted tunnel is served as http://", function()
    local plain = h.start_origin()
    extra[#extra + 1] = plain
    local s = script([[
      function on_request(tx) tx.req.headers["X-Seen-Scheme"] = tx.req.scheme end
    ]])
    start_proxy({ "--intercept", "*", "-s", s, "--connect-ports", tostring(plain.port) })
    local function through_tunnel(eager)
      local c = assert(h.connect(proxy.port))
      local connect = "CONNECT " .. plain.authority .. " HTTP/1.1\r\nHost: " .. plain.authority .. "\r\n\r\n"
      local get = "GET /hello HTTP/1.1\r\nHost: " .. plain.authority .. "\r\n\r\n"
      if eager then
        h.send(c, connect .. get) -- the request does not wait for the 200
      else
        h.send(c, connect)
      end
      local established = h.read_response(c, { head_only = true })
      assert.are.equal(200, established.status)
      if not eager then h.send(c, get) end
      local resp = h.read_response(c)
      -- An https:// URL has no place in this tunnel.
      h.send(c, "GET https://" .. plain.authority .. "/hello HTTP/1.1\r\nHost: " .. plain.authority .. "\r\n\r\n")
      local refused = h.read_response(c)
      c:close()
      return resp, refused
    end
    for _, eager in ipairs({ false, true }) do
      local resp, refused = through_tunnel(eager)
      assert.are.equal(200, resp.status)
      assert.are.equal("hello\n", resp.body)
      assert.are.equal(400, refused.status)
      assert.matches("only http:// URLs", refused.body, 1, true)
    end
    local reqs = plain.wait_requests(2)
    assert.are.equal("GET /hello HTTP/1.1", reqs[1].request_line)
    assert.are.equal("http", reqs[1].headers["x-seen-scheme"])
    assert.are.equal("http", reqs[2].headers["x-seen-scheme"])
    assert(proxy.wait_access_log('"GET http://' .. plain.authority:gsub("%p", "%%%0") .. '/hello HTTP/1.1" 200'))
    -- and nobody's tunnels were put on the pass-through list
    assert.is_nil(proxy.stderr():find("pass through", 1, true), proxy.stderr())
  end)

  it("answers 502 inside the client's TLS naming an expired or wrongly named upstream certificate", function()
    local expired = h.start_https_origin({ cert = "expired" })
    local wrong = h.start_https_origin({ cert = "wrong" })
    extra[#extra + 1] = expired
    extra[#extra + 1] = wrong
    start_proxy({ "--intercept", "*", "--connect-ports", expired.port .. "," .. wrong.port })
    local out, code = curl({ "-i", expired.url("/hello") })
    assert.are.equal(0, code)
    assert.truthy(out:find("\r\nHTTP/1.1 502 ", 1, true), out)
    assert.truthy(out:find("certificate has expired", 1, true), out)
    out, code = curl({ "-i", wrong.url("/hello") })
    assert.are.equal(0, code)
    assert.truthy(out:find("\r\nHTTP/1.1 502 ", 1, true), out)
    assert.truthy(out:find("host name mismatch", 1, true), out)
    assert.are.equal(0, #expired.requests())
  end)

  -- OpenSSL's own words ("wrong version number", "sslv3 alert handshake
  -- failure") do not tell the person at the client what is wrong.
  it("says in words why TLS with the upstream failed: no TLS there, only old versions, a client certificate asked for, HTTP/2 only", function()
    local old = h.start_https_origin({ max_tls = "1.1" })
    local certs12 = h.start_https_origin({ client_ca = pki.ca, max_tls = "1.2" })
    local certs13 = h.start_https_origin({ client_ca = pki.ca })
    extra[#extra + 1] = old
    extra[#extra + 1] = certs12
    extra[#extra + 1] = certs13
    -- A plain HTTP server answers the ClientHello's first bytes at once,
    -- as nginx does (0x16 cannot start a method).
    local plain = h.start_command("exec python3 -c " .. q(table.concat({
      "import socket", "s = socket.create_server(('127.0.0.1', 0))",
      "print(s.getsockname()[1], flush=True)",
      "while True:",
      "  c = s.accept()[0]; c.recv(4096)",
      "  c.sendall(b'HTTP/1.1 400 Bad Request\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n')",
      "  c.close()" }, "\n")))
    extra[#extra + 1] = plain
    plain.port = assert(h.wait_for(function() return tonumber(plain.stdout():match("^(%d+)\n")) end))
    -- One that speaks HTTP/2 alone, and says so with a fatal ALPN alert.
    local h2 = h.start_command("exec openssl s_server -accept 127.0.0.1:0 -www -alpn h2 -cert "
      .. q(pki.good.cert) .. " -key " .. q(pki.good.key))
    extra[#extra + 1] = h2
    h2.port = assert(h.wait_for(function() return tonumber(h2.stdout():match("ACCEPT [%d.]+:(%d+)")) end))
    start_proxy({ "--intercept", "*", "--connect-ports",
                  table.concat({ old.port, certs12.port, certs13.port, plain.port, h2.port }, ",") })
    local function answer(url, words)
      local out, code, err = curl({ "-i", url })
      assert.are.equal(0, code, err)
      assert.truthy(out:find("\r\nHTTP/1.1 502 ", 1, true), out)
      assert.truthy(out:find(words, 1, true), out)
    end
    answer("https://127.0.0.1:" .. plain.port .. "/hello",
      "it did not answer in TLS (plain HTTP on this port?)")
    answer(old.url("/hello"), "it offers no TLS version the proxy accepts (1.2 or 1.3)")
    answer(certs12.url("/hello"), "it asks for a client certificate, and the proxy has none to give")
    answer(certs13.url("/hello"), "it asks for a client certificate, and the proxy has none to give")
    answer("https://127.0.0.1:" .. h2.port .. "/", "it does not speak HTTP/1.1, the only protocol the proxy offers")
  end)

  -- A TLS 1.2 server may ask to renegotiate part-way (to ask for a client
  -- certificate on some paths). The proxy refuses, and the server's
  -- handshake_failure that follows said only "handshake failure".
  it("says so when a TLS 1.2 upstream asks to renegotiate part-way, which the proxy refuses", function()
    local fifo = h.tmpfile("", "placeholder"):match("^(.*)/") .. "/s_server.in"
    assert(os.execute("mkfifo " .. q(fifo)))
    -- s_server reads its commands from the FIFO: "R" asks the client to renegotiate.
    -- (Through sh -c: start_command gives its command /dev/null as input.)
    local server = h.start_command("exec sh -c " .. q("exec openssl s_server -tls1_2 -accept 127.0.0.1:0"
      .. " -naccept 1 -cert " .. q(pki.good.cert) .. " -key " .. q(pki.good.key) .. " < " .. q(fifo)))
    extra[#extra + 1] = server
    local commands = assert(io.open(fifo, "w")) -- once the shell has opened its end
    local port = assert(h.wait_for(function()
      return tonumber(server.stdout():match("ACCEPT [%d.]+:(%d+)"))
    end), server.stderr())
    start_proxy({ "-s", script(("function on_request(tx) tx.req.url = 'https://127.0.0.1:%d/' end")
      :format(port)) })
    local c = assert(h.connect(proxy.port))
    h.send(c, "GET http://example.invalid/ HTTP/1.1\r\nHost: example.invalid\r\n\r\n")
    assert.truthy(h.wait_for(function()
      return server.stdout():find("GET / HTTP/1.1", 1, true)
    end), server.stdout() .. proxy.log())
    commands:write("R\n")
    commands:flush()
    local resp = h.read_response(c)
    c:close()
    commands:close()
    assert.are.equal(502, resp.status, resp.body)
    assert.truthy(resp.body:find("it asked to renegotiate TLS part-way", 1, true), resp.body)
  end)

  it("checks the upstream's name as browsers do: no common name in place of a subjectAltName, no partial wildcard", function()
    local cn_only = h.start_https_origin({ cert = "cn_only" })
    local partial = h.start_https_origin({ cert = "partial" })
    -- No DNS here: a parent that takes every name for this machine.
    local parent = h.start_parent("tunnel")
    extra[#extra + 1] = cn_only
    extra[#extra + 1] = partial
    extra[#extra + 1] = parent
    start_proxy({ "--intercept", "*", "--upstream", parent.url(),
                  "--connect-ports", cn_only.port .. "," .. partial.port })
    -- CN=localhost, no subjectAltName at all.
    local out, code = curl({ "-i", "https://localhost:" .. cn_only.port .. "/hello" })
    assert.are.equal(0, code)
    assert.truthy(out:find("\r\nHTTP/1.1 502 ", 1, true), out)
    assert.truthy(out:find("host name mismatch", 1, true), out)
    -- DNS:f*.example.invalid for foo.example.invalid.
    out, code = curl({ "-i", "https://foo.example.invalid:" .. partial.port .. "/hello" })
    assert.are.equal(0, code)
    assert.truthy(out:find("\r\nHTTP/1.1 502 ", 1, true), out)
    assert.truthy(out:find("host name mismatch", 1, true), out)
    assert.are.equal(0, #cn_only.requests())
    assert.are.equal(0, #partial.requests())
  end)

  -- A second CA, and a certificate for this machine that only it signs.
  local function other_ca()
    local dir = h.tmpfile("", "placeholder"):match("^(.*)/")
    local function run(cmd)
      local out, code = h.sh("cd " .. q(dir) .. " && " .. cmd .. " 2>&1")
      assert(code == 0, cmd .. ":\n" .. out)
    end
    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca2.key"
      .. " -out ca2.pem -days 30 -subj '/CN=luaproxy second test CA'"
      .. " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign")
    h.write_file(dir .. "/host2.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout host2.key"
      .. " -out host2.csr -subj /CN=localhost")
    run("openssl x509 -req -in host2.csr -CA ca2.pem -CAkey ca2.key -days 30 -extfile host2.ext"
      .. " -out host2.pem")
    return { ca = dir .. "/ca2.pem", host = { cert = dir .. "/host2.pem", key = dir .. "/host2.key" } }
  end

  -- An internal CA rotated in --upstream-ca's file takes a reload, not a
  -- restart. The sessions kept for resumption go with the old
  -- certificates: resuming one would skip the check the new ones make.
  for _, workers in ipairs({ "1", "2" }) do
    it("reads --upstream-ca again on SIGHUP once its file changed (" .. workers .. " worker(s))", function()
      local ca2 = other_ca()
      local other = h.start_https_origin({ cert = ca2.host })
      extra[#extra + 1] = other
      local trusted = h.tmpfile(h.read_file(pki.ca), "trusted.pem")
      local conf = h.tmpfile("upstream-ca " .. trusted .. "\n", "luaproxy.conf")
      proxy = h.start_proxy({ "-c", conf, "--ca-dir", ca_dir, "--intercept", "*", "--workers", workers,
        "--connect-ports", origin.port .. "," .. other.port })
      local function status(o)
        local out, code, err = curl({ "-i", o.url("/hello") })
        assert.are.equal(0, code, err)
        return tonumber(out:match("\r\nHTTP/1%.1 (%d+) ")), out
      end
      local function count(text)
        local _, n = proxy.log():gsub(text:gsub("%p", "%%%0"), "")
        return n
      end
      for _ = 1, 4 do -- a session for origin is kept (in each worker asked)
        assert.are.equal(200, (status(origin)))
        local code, out = status(other)
        assert.are.equal(502, code, out)
        assert.truthy(out:find("unable to get local issuer certificate", 1, true), out)
      end

      h.write_file(trusted, h.read_file(ca2.ca)) -- rewritten in place
      proxy.signal("HUP")
      assert.truthy(h.wait_for(function()
        return count("SIGHUP: no scripts to reload") == tonumber(workers)
      end), proxy.log())
      for _ = 1, 4 do
        assert.are.equal(200, (status(other)))
        local code, out = status(origin)
        assert.are.equal(502, code, out)
      end

      assert.are.equal(tonumber(workers),
        count("the certificates upstreams are checked against were read again"))

      -- A reload that changes nothing of them reads nothing again.
      proxy.signal("HUP")
      assert.truthy(h.wait_for(function()
        return count("SIGHUP: no scripts to reload") == 2 * tonumber(workers)
      end), proxy.log())
      assert.are.equal(tonumber(workers),
        count("the certificates upstreams are checked against were read again"))

      -- A file that is not PEM fails the reload; the certificates in force stay.
      h.write_file(trusted, "not a certificate\n")
      proxy.signal("HUP")
      assert.truthy(h.wait_for(function()
        return count("cannot read --upstream-ca " .. trusted .. ": not a PEM certificate file") >= 1
      end), proxy.log())
      for _ = 1, 4 do assert.are.equal(200, (status(other))) end
    end)
  end

  it("--insecure-upstream accepts a bad upstream certificate, with a warning at start", function()
    local expired = h.start_https_origin({ cert = "expired" })
    extra[#extra + 1] = expired
    start_proxy({ "--intercept", "*", "--insecure-upstream", "--connect-ports", tostring(expired.port) })
    assert.truthy(proxy.log():find("--insecure-upstream", 1, true))
    local out, code = curl({ expired.url("/hello") })
    assert.are.equal(0, code)
    assert.are.equal("hello\n", out)
  end)

  it("a client that refuses the certificate is logged once, then its tunnels to that host pass through", function()
    start_proxy({ "--intercept", "*" })
    -- This client trusts only the origin's CA, not the proxy's.
    local args = { "--cacert", pki.ca, "-x", "http://127.0.0.1:" .. proxy.port, origin.url("/hello") }
    local _, code = h.curl(args)
    assert.are.equal(60, code) -- curl: peer certificate cannot be authenticated
    assert(h.wait_for(function() return proxy.log():find("pass through for 600 s", 1, true) end))
    local out
    out, code = h.curl(args)
    assert.are.equal(0, code)
    assert.are.equal("hello\n", out)
    out, code = h.curl(args)
    assert.are.equal(0, code)
    local _, count = proxy.log():gsub("pass through for", "")
    assert.are.equal(1, count)
  end)

  it("a client that leaves before its ClientHello refused no certificate: its tunnels stay decrypted", function()
    start_proxy({ "--intercept", "*", "--trace" })
    -- One closes right after the 200; one speaks plain HTTP inside.
    for _, first in ipairs({ "", "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" }) do
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, "CONNECT " .. origin.authority .. " HTTP/1.1\r\nHost: x\r\n\r\n"))
      local resp = h.read_response(s, { method = "CONNECT" })
      assert.are.equal("HTTP/1.1 200 Connection Established", resp.status_line)
      if first ~= "" then assert(h.send(s, first)) end
      s:close()
    end
    assert(h.wait_for(function()
      return select(2, proxy.log():gsub("the session is freed", "")) >= 2
    end), proxy.log())
    -- Still intercepted: curl trusting only the proxy's CA gets through.
    local out, code, err = curl({ origin.url("/hello") })
    assert.are.equal(0, code, err)
    assert.are.equal("hello\n", out)
    assert.falsy(proxy.log():find("pass through for", 1, true), proxy.log())
  end)

  -- A ClientHello the proxy itself turns down (here one offering only TLS
  -- 1.0) ends the handshake before any certificate is sent: the client
  -- refused nothing, and must not be able to opt out of interception so.
  it("a ClientHello the proxy refuses (TLS 1.0 only) is not taken for a refused certificate", function()
    start_proxy({ "--intercept", "*" })
    local body = "\3\1" .. string.rep("\42", 32) .. "\0" .. "\0\2\0\47" .. "\1\0"
    local hello = "\1\0\0" .. string.char(#body) .. body
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, "CONNECT " .. origin.authority .. " HTTP/1.1\r\nHost: x\r\n\r\n"))
    local resp = h.read_response(s, { method = "CONNECT" })
    assert.are.equal("HTTP/1.1 200 Connection Established", resp.status_line)
    assert(h.send(s, "\22\3\1\0" .. string.char(#hello) .. hello))
    local alert, how = h.recv_until_close(s, 5)
    assert.are.equal("closed", how)
    assert.are.equal("\21", alert:sub(1, 1)) -- an alert (protocol_version), then the close
    s:close()
    -- The client saw only an alert: the log says why.
    assert.truthy(proxy.log_has("the TLS handshake with the client failed: unsupported protocol "
      .. "(client 127.0.0.1, host 127.0.0.1)"), proxy.log())
    -- Still intercepted: curl trusting only the proxy's CA gets through.
    local out, code, err = curl({ origin.url("/hello") })
    assert.are.equal(0, code, err)
    assert.are.equal("hello\n", out)
    assert.falsy(proxy.log():find("pass through for", 1, true), proxy.log())
  end)

  it("--tls-passthrough-ttl 0 keeps intercepting a refusing client", function()
    start_proxy({ "--intercept", "*", "--tls-passthrough-ttl", "0" })
    local args = { "--cacert", pki.ca, "-x", "http://127.0.0.1:" .. proxy.port, origin.url("/hello") }
    local _, code = h.curl(args)
    assert.are.equal(60, code)
    _, code = h.curl(args)
    assert.are.equal(60, code)
    -- No pass-through is noted, but the operator still learns why the
    -- client failed (npm says "unable to verify the first certificate"),
    -- once per refusal.
    assert(h.wait_for(function()
      return select(2, proxy.log():gsub("it may not trust the luaproxy CA", "")) == 2
    end), proxy.log())
    assert.truthy(proxy.log_has("the client ended the TLS handshake: tlsv1 alert unknown ca "
      .. "(client 127.0.0.1, host 127.0.0.1): it may not trust the luaproxy CA or pins certificates; "
      .. "--tls-passthrough-ttl is 0, so its next tunnels are decrypted too"), proxy.log())
    assert.falsy(proxy.log():find("pass through for", 1, true), proxy.log())
  end)

  -- The CONNECT's 200 goes out before the handshake; its access-log line
  -- waits for the handshake's end, so a client that then refused the
  -- proxy's certificate is not logged as a tunnel that went well.
  it("logs an intercepted CONNECT once the handshake ended, with its error", function()
    start_proxy({ "--intercept", "*", "--log-format", "json", "--tls-passthrough-ttl", "0" })
    local _, code = h.curl({ "--cacert", pki.ca, "-x", "http://127.0.0.1:" .. proxy.port,
                             origin.url("/hello") })
    assert.are.equal(60, code) -- curl does not trust the proxy's CA
    local out, ok_code, err = curl({ origin.url("/hello") })
    assert.are.equal(0, ok_code, err)
    assert.are.equal("hello\n", out)
    local lines = assert(h.wait_for(function()
      local found = {}
      for line in proxy.access_log():gmatch("[^\n]+") do found[#found + 1] = json.decode(line) end
      return #found >= 3 and found
    end), proxy.access_log())
    local refused, trusted, inner = lines[1], lines[2], lines[3]
    assert.are.equal("CONNECT", refused.method)
    assert.are.equal(200, refused.status)
    assert.truthy(tostring(refused.error):find("unknown ca", 1, true), proxy.access_log())
    assert.are.equal("CONNECT", trusted.method)
    assert.is_true(trusted.error == nil or trusted.error == json.null)
    assert.are.equal("GET", inner.method)
  end)

  it("writes both legs' secrets to --tls-keylog in the NSS key log format", function()
    local keylog = h.tmpfile("", "keys.log")
    -- Made readable by all beforehand: the proxy makes it its owner's alone.
    assert(os.execute("chmod 644 " .. h.shell_quote(keylog)))
    start_proxy({ "--intercept", "*", "--tls-keylog", keylog })
    assert.are.equal("600\n", (h.sh("stat -c %a " .. h.shell_quote(keylog))))
    assert.truthy(proxy.log_has("was readable by others; it is 0600 now"), proxy.log())
    local _, code = curl({ origin.url("/hello") })
    assert.are.equal(0, code)
    local randoms = {}
    for label, random in (h.read_file(keylog) or ""):gmatch("(%u[%u_]+) (%x+) %x+\n") do
      assert.truthy(label:find("SECRET", 1, true), label)
      randoms[random] = true
    end
    local n = 0
    for _ in pairs(randoms) do n = n + 1 end
    assert.are.equal(2, n) -- the client's handshake and the upstream's
  end)

  it("resumes the upstream's TLS session on the next connection to it, and the client's", function()
    start_proxy({ "--intercept", "*", "-v" })
    local sess = h.tmpfile("", "client.sess")
    -- Two client connections, each with its own upstream connection.
    local input = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    local out = h.s_client({ proxy_port = proxy.port, cafile = ca_dir .. "/ca.pem",
      sess_out = sess }, origin.authority, input)
    assert.truthy(out:find("hello\n", 1, true), out)
    out = h.s_client({ proxy_port = proxy.port, cafile = ca_dir .. "/ca.pem", sess_in = sess },
      origin.authority, input)
    assert.truthy(out:find("hello\n", 1, true), out)
    assert(h.wait_for(function()
      return proxy.log():find("TLS connected with 127.0.0.1: TLSv1.3, resumed", 1, true)
    end), proxy.log())
    assert.truthy(proxy.log_has("TLS accepted with 127.0.0.1: TLSv1.3, resumed"), proxy.log())
  end)

  it("refuses a --tls-keylog file another user owns", function()
    -- One who made it beforehand (in /tmp, say) would read every secret.
    if h.sh("id -u") ~= "0\n" then return pending("needs root, to give the file away") end
    local keylog = h.tmpfile("", "theirs.log")
    assert(os.execute("chmod 600 " .. h.shell_quote(keylog) .. " && chown nobody "
      .. h.shell_quote(keylog)))
    local code, _, err = h.run_proxy({ "--ca-dir", ca_dir, "--intercept", "*",
      "--tls-keylog", keylog })
    assert.are_not.equal(0, code)
    assert.truthy(err:find("belongs to another user", 1, true), err)
    assert.are.equal("", h.read_file(keylog))
  end)

  it("SSLKEYLOGFILE works like --tls-keylog", function()
    local keylog = h.tmpfile("", "env-keys.log")
    start_proxy({ "--intercept", "*" }, { env = { SSLKEYLOGFILE = keylog } })
    local _, code = curl({ origin.url("/hello") })
    assert.are.equal(0, code)
    assert.truthy((h.read_file(keylog) or ""):find("CLIENT_TRAFFIC_SECRET_0 ", 1, true))
  end)

  it("without SNI the certificate names the CONNECT host", function()
    start_proxy({ "--intercept", "*" })
    local input = "GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    local target = "localhost:" .. origin.port
    local out, _, err = h.s_client({ proxy_port = proxy.port, cafile = ca_dir .. "/ca.pem",
      servername = false, verify_hostname = "localhost" }, target, input)
    assert.truthy(out:find("^HTTP/1.1 200"), out .. err)
    assert.truthy(out:find("hello\n", 1, true))
  end)

  it("a fully qualified name (a trailing dot) reaches its origin: SNI and the check leave the dot out", function()
    -- No DNS here: a parent that takes every name for this machine
    -- resolves it; TLS with the origin is still the proxy's own.
    local parent = h.start_parent("tunnel")
    extra[#extra + 1] = parent
    start_proxy({ "--intercept", "*", "--upstream", parent.url() })
    local out, code, err = curl({ "https://localhost.:" .. origin.port .. "/hello" })
    assert.are.equal(0, code, err)
    assert.are.equal("hello\n", out)
    assert(proxy.wait_access_log('"GET https://localhost%.:' .. origin.port .. '/hello HTTP/1%.1" 200'))
  end)

  it("IPv6 literals: a certificate with the IP address, and the upstream checked against it", function()
    local v6 = h.start_https_origin({ host = "::1" })
    extra[#extra + 1] = v6
    start_proxy({ "--intercept", "::1", "--connect-ports", tostring(v6.port) })
    local out, code, err = curl({ "-g", v6.url("/hello") })
    assert.are.equal(0, code, err)
    assert.are.equal("hello\n", out)
    assert(proxy.wait_access_log('"GET https://%[::1%]:' .. v6.port .. '/hello'))
  end)

  it("tx:intercept overrides the patterns; --no-intercept wins over --intercept", function()
    local s = script([[
      function on_request(tx)
        if tx.req.method == "CONNECT" then tx:intercept(tx.req.port ~= 443) end
      end
    ]])
    -- --intercept is absent: only the script asks (the CA comes from --ca-dir).
    start_proxy({ "-s", s })
    local out, code = curl({ origin.url("/hello") })
    assert.are.equal(0, code)
    assert.are.equal("hello\n", out)
    assert(proxy.wait_access_log('"GET https://'))
    proxy.stop()

    start_proxy({ "--intercept", "*", "--no-intercept", "127.0.0.1" })
    out, code = h.curl({ "--cacert", pki.ca, "-x", "http://127.0.0.1:" .. proxy.port, origin.url("/hello") })
    assert.are.equal(0, code) -- the origin's own certificate: not intercepted
    assert.are.equal("hello\n", out)
  end)

  it("patterns match a host however it is spelt: case, a trailing dot, any form of an IP address", function()
    -- Each CONNECT is only sent: the trace says what the patterns decided.
    local function decided(host, port, text)
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, "CONNECT " .. host .. ":" .. port .. " HTTP/1.1\r\nHost: x\r\n\r\n"))
      local ok = proxy.log_has(text)
      s:close()
      return ok
    end
    local port = h.closed_port()
    start_proxy({ "--trace", "--connect-ports", tostring(port),
                  "--intercept", "*.example.invalid", "--intercept", "::1" })
    assert.truthy(decided("WWW.Example.INVALID.", port, "CONNECT WWW.Example.INVALID.:" .. port .. " intercepted"),
      proxy.log())
    assert.truthy(decided("[0:0:0:0:0:0:0:1]", port, "CONNECT 0:0:0:0:0:0:0:1:" .. port .. " intercepted"),
      proxy.log())
    proxy.stop()
    -- --no-intercept promises these are never decrypted.
    start_proxy({ "--trace", "--connect-ports", tostring(port), "--intercept", "*",
                  "--no-intercept", "bank.example.invalid", "--no-intercept", "127.0.0.1" })
    assert.truthy(decided("bank.example.invalid.", port, "CONNECT bank.example.invalid.: not intercepted"),
      proxy.log())
    assert.truthy(decided("[::ffff:127.0.0.1]", port, "CONNECT ::ffff:127.0.0.1: not intercepted"),
      proxy.log())
  end)

  it("with --auth-file, the CONNECT's credentials cover the requests inside, and tx.user names them", function()
    local users = h.tmpfile("", "users")
    assert(select(2, h.sh("htpasswd -B -C 5 -b -c " .. q(users) .. " alice wonderland 2>&1")) == 0)
    local s = script([[
      function on_request(tx)
        if tx.req.scheme == "https" then tx.req.headers["X-User"] = tostring(tx.user) end
      end
    ]])
    start_proxy({ "--intercept", "*", "--auth-file", users, "-s", s })
    local out, code = curl({ origin.url("/echo") })
    assert.are_not.equal(0, code) -- no credentials: 407 to the CONNECT
    out, code = curl({ "--proxy-user", "alice:wonderland", origin.url("/echo") })
    assert.are.equal(0, code)
    assert.truthy(out:find("X-User: alice\r\n", 1, true), out)
    assert.falsy(out:lower():find("proxy-authorization", 1, true))
  end)

  -- Each step of the upstream handshake came back through the check of the
  -- TCP connect, which took the socket's pending error for a failed
  -- connect: a reset during the handshake read "could not connect to the
  -- upstream" (with the next address tried), and an alert the upstream
  -- sent just before it was never read.
  it("an upstream that resets in the TLS handshake failed the handshake, not the connect", function()
    local function server(alert)
      local p = h.start_command("exec python3 -c " .. q(table.concat({
        "import socket, struct", "s = socket.create_server(('127.0.0.1', 0))",
        "print(s.getsockname()[1], flush=True)",
        "while True:",
        "  c = s.accept()[0]; c.recv(4096)",
        alert and "  c.sendall(b'\\x15\\x03\\x03\\x00\\x02\\x02\\x28')" or "",
        "  c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))",
        "  c.close()" }, "\n")))
      extra[#extra + 1] = p
      p.port = assert(h.wait_for(function() return tonumber(p.stdout():match("^(%d+)\n")) end))
      return p
    end
    local reset, alert = server(false), server(true)
    start_proxy({ "--intercept", "*", "--connect-ports", reset.port .. "," .. alert.port })
    local out, code, err = curl({ "-i", "https://127.0.0.1:" .. reset.port .. "/" })
    assert.are.equal(0, code, err)
    assert.truthy(out:find("\r\n502 Bad Gateway: the TLS [^\r\n]* with the upstream failed"), out)
    out, code, err = curl({ "-i", "https://127.0.0.1:" .. alert.port .. "/" })
    assert.are.equal(0, code, err)
    assert.truthy(out:find("502 Bad Gateway: the TLS handshake with the upstream failed: sslv3 alert "
      .. "handshake failure", 1, true), out)
  end)

  it("a client that stalls in the handshake costs one connection until the connect timeout", function()
    start_proxy({ "--intercept", "*", "--connect-timeout", "0.5" })
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, "CONNECT " .. origin.authority .. " HTTP/1.1\r\nHost: x\r\n\r\n"))
    local resp = h.read_response(s, { method = "CONNECT" })
    assert.are.equal("HTTP/1.1 200 Connection Established", resp.status_line)
    assert(h.send(s, "\22\3\1\0\200")) -- the start of a ClientHello, then nothing
    assert.is_true(h.is_closed(s, 5))
    s:close()
    -- Meanwhile others are served.
    local out, code = curl({ origin.url("/hello") })
    assert.are.equal(0, code)
    assert.are.equal("hello\n", out)
  end)
end)

describe("http://luaproxy.ca/", function()
  it("is answered by the proxy: a page, the PEM and the DER, never the key", function()
    local ca_dir = h.new_ca_dir()
    local p = h.start_proxy({ "--ca-dir", ca_dir })
    local base = { "-x", "http://127.0.0.1:" .. p.port }
    local function get(url)
      local args = { table.unpack(base) }
      args[#args + 1] = url
      return h.curl(args)
    end
    local page, code = get("http://luaproxy.ca/")
    assert.are.equal(0, code)
    assert.truthy(page:find("<h1>", 1, true))
    assert.truthy(page:find("ca.der", 1, true))
    assert.truthy(page:find(h.read_file(ca_dir .. "/ca.pem"), 1, true))
    assert.falsy(page:find("PRIVATE", 1, true))
    assert.are.equal(h.read_file(ca_dir .. "/ca.pem"), (get("http://luaproxy.ca/ca.pem")))
    assert.are.equal(h.read_file(ca_dir .. "/ca.der"), (get("http://luaproxy.ca/ca.der")))
    local out = get("http://luaproxy.ca/ca.key")
    assert.falsy(out:find("PRIVATE", 1, true))
    -- The same name fully qualified (a trailing dot) is the same page, not
    -- a request to whoever holds the real domain.
    assert.are.equal(h.read_file(ca_dir .. "/ca.pem"), (get("http://LuaProxy.CA./ca.pem")))
    local problem = h.stop_procs({ p })
    assert(not problem, problem)
  end)

  it("https://luaproxy.ca/ is the same page, decrypted whatever the patterns say, and never forwarded", function()
    local ca_dir = h.new_ca_dir()
    -- A CA, and a pattern that would pass it through.
    local p = h.start_proxy({ "--ca-dir", ca_dir, "--intercept", "*", "--no-intercept", "*.ca" })
    local out, code, err = h.curl({ "--cacert", ca_dir .. "/ca.pem", "-x", "http://127.0.0.1:" .. p.port,
                                    "https://luaproxy.ca/ca.pem" })
    assert.are.equal(0, code, err)
    assert.are.equal(h.read_file(ca_dir .. "/ca.pem"), out)
    -- No CA: the CONNECT is refused, and no name is looked up.
    local bare = h.start_proxy({ "--trace" })
    local s = assert(h.connect(bare.port))
    assert(h.send(s, "CONNECT luaproxy.ca:443 HTTP/1.1\r\nHost: luaproxy.ca:443\r\n\r\n"))
    local resp = h.read_response(s, { method = "CONNECT" })
    assert.are.equal(404, resp.status)
    s:close()
    assert(h.wait_for(function() return bare.log():find("the session is freed", 1, true) end), bare.log())
    assert.falsy(bare.log():find("DNS question", 1, true), bare.log())
    local problem = h.stop_procs({ p, bare })
    assert(not problem, problem)
  end)
end)
