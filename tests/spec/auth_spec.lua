-- End-to-end specs for proxy authentication (--auth-file): 407 with a Basic
-- challenge for GET and CONNECT, credentials checked against an htpasswd
-- file made by the real htpasswd, never forwarded, the user in hooks and the
-- access log, the cache of good checks, reloads, and a client hammering
-- wrong passwords while another is served.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local each_test = require("support.each_test")
local a = require("support.admin")
local raw_origin = require("support.raw_origin")

local mime = require("mime")

local function b64(s) return (mime.b64(s)) end

local function basic(user, password)
  return "Proxy-Authorization: Basic " .. b64(user .. ":" .. password)
end

-- An htpasswd file made by htpasswd itself: alice (bcrypt), bob (SHA-512
-- crypt), and dave (SHA-256 crypt, which the crypt library calls legacy).
local function users_file(cost)
  local path = h.tmpfile("", "users")
  assert(select(2, h.sh(("htpasswd -B -C %d -b -c %s alice wonderland 2>&1"):format(cost or 5, h.shell_quote(path)))) == 0)
  local bob = h.sh("openssl passwd -6 builder"):gsub("%s+$", "")
  local dave = h.sh("openssl passwd -5 diver"):gsub("%s+$", "")
  h.write_file(path, h.read_file(path) .. "# a comment\n\nbob:" .. bob .. "\ndave:" .. dave .. "\n")
  return path
end

describe("proxy authentication", function()
  local procs = each_test.processes()
  local origin, echo
  before_each(function()
    origin = procs.origin()
    echo = procs.origin("echo")
  end)

  -- The proxy, with its admin listener if <admin>: returns proxy, admin.
  local function start(args, admin)
    if admin then return procs.add(a.start(args)) end
    return procs.proxy(args)
  end

  it("answers 407 with a Basic challenge without right credentials, and serves with them (GET)", function()
    local script = h.tmpfile([[
function on_request(tx) tx.req.headers["X-Seen-User"] = tx.user or "none" end
]], "user.lua")
    local proxy = start({ "--auth-file", users_file(), "--script", script })
    for _, extra in ipairs({ {}, { basic("alice", "wrong") }, { basic("nobody", "x") },
                             { "Proxy-Authorization: Basic !!!" }, { "Proxy-Authorization: Bearer abc" } }) do
      local resp = h.get(proxy.port, origin.url("/hello"), extra)
      assert.equal(407, resp.status)
      assert.equal('Basic realm="luaproxy"', resp.headers["proxy-authenticate"])
    end
    assert.equal(0, #origin.requests())

    local resp = h.get(proxy.port, origin.url("/hello"), { basic("alice", "wonderland") })
    assert.equal(200, resp.status)
    assert.equal("hello\n", resp.body)
    resp = h.get(proxy.port, origin.url("/hello"), { basic("bob", "builder") })
    assert.equal(200, resp.status)
    resp = h.get(proxy.port, origin.url("/hello"), { basic("dave", "diver") })
    assert.equal(200, resp.status)
    -- two sets of credentials are refused even if one is right
    resp = h.get(proxy.port, origin.url("/hello"), { basic("alice", "wonderland"), basic("bob", "builder") })
    assert.equal(407, resp.status)

    local reqs = origin.wait_requests(2)
    for _, r in ipairs(reqs) do
      assert.is_nil(r.head:lower():find("proxy-authorization", 1, true), r.head)
    end
    assert.truthy(reqs[1].head:find("X-Seen-User: alice\r\n", 1, true), reqs[1].head)
    assert.truthy(reqs[2].head:find("X-Seen-User: bob\r\n", 1, true), reqs[2].head)
    assert.truthy(proxy.wait_access_log('^127%.0%.0%.1 %- alice %[.-" 200 6 '), proxy.access_log())
    assert.truthy(proxy.wait_access_log('^127%.0%.0%.1 %- bob %['), proxy.access_log())
  end)

  -- A browser posting a form through the proxy first sends it without
  -- credentials: the body of the refused POST is read and dropped, and
  -- the retry with credentials comes on the same connection.
  it("keeps the connection after a 407 to a POST, its body dropped", function()
    local proxy = start({ "--auth-file", users_file() })
    local sock = assert(h.connect(proxy.port))
    local function post(extra)
      local headers = { "Host: " .. origin.authority, "Content-Length: 9" }
      if extra then headers[#headers + 1] = extra end
      return h.request("POST", origin.url("/echo"), headers, "name=form")
    end
    assert(h.send(sock, post()))
    local resp = assert(h.read_response(sock))
    assert.equal(407, resp.status)
    assert.is_nil(resp.headers.connection)
    assert(h.send(sock, post(basic("alice", "wonderland"))))
    resp = assert(h.read_response(sock))
    sock:close()
    assert.equal(200, resp.status)
    assert.truthy(resp.body:find("\r\n\r\nname=form$"), resp.body)
    assert.equal(1, #origin.requests())
  end)

  -- The proxy answers a TRACE or OPTIONS that may go no further itself,
  -- but only to a client that has proven who it is, as any other answer.
  it("answers a TRACE or OPTIONS at Max-Forwards: 0 only with right credentials", function()
    local proxy = start({ "--auth-file", users_file() })
    for _, method in ipairs({ "TRACE", "OPTIONS" }) do
      local resp = h.get(proxy.port, origin.url("/t"), { "Max-Forwards: 0" }, { method = method })
      assert.equal(407, resp.status)
      resp = h.get(proxy.port, origin.url("/t"), { "Max-Forwards: 0", basic("alice", "wrong") },
        { method = method })
      assert.equal(407, resp.status)
      resp = h.get(proxy.port, origin.url("/t"), { "Max-Forwards: 0", basic("alice", "wonderland") },
        { method = method })
      assert.equal(200, resp.status)
      if method == "TRACE" then
        assert.equal("message/http", resp.headers["content-type"])
        assert.is_nil(resp.body:lower():find("proxy-authorization", 1, true), resp.body)
      end
    end
    assert.equal(0, #origin.requests())
    assert.truthy(proxy.wait_access_log('^127%.0%.0%.1 %- alice %[.-"TRACE [^"]*" 200 '),
      proxy.access_log())
  end)

  -- OPTIONS * asks about the proxy itself: the same rule.
  it("answers OPTIONS * only with right credentials", function()
    local proxy = start({ "--auth-file", users_file() })
    local function ask(extra)
      local headers = { "Host: 127.0.0.1:" .. proxy.port, extra }
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, h.request("OPTIONS", "*", headers)))
      local resp = assert(h.read_response(s))
      s:close()
      return resp
    end
    assert.equal(407, ask().status)
    assert.equal(407, ask(basic("alice", "wrong")).status)
    local resp = ask(basic("alice", "wonderland"))
    assert.equal(200, resp.status)
    assert.truthy(resp.headers["allow"]:find("OPTIONS", 1, true), resp.headers["allow"])
    assert.equal(0, #origin.requests())
  end)

  it("answers 407 to CONNECT without right credentials, and tunnels with them", function()
    local proxy = start({ "--auth-file", users_file(), "--connect-ports", tostring(echo.port) })
    local target = "127.0.0.1:" .. echo.port
    for _, extra in ipairs({ "", basic("alice", "nope") .. "\r\n" }) do
      local s = assert(h.connect(proxy.port))
      h.send(s, "CONNECT " .. target .. " HTTP/1.1\r\nHost: " .. target .. "\r\n" .. extra .. "\r\n")
      local resp = h.read_response(s, { method = "CONNECT" })
      s:close()
      assert.equal(407, resp.status)
      assert.equal('Basic realm="luaproxy"', resp.headers["proxy-authenticate"])
    end
    local s = assert(h.connect(proxy.port))
    h.send(s, "CONNECT " .. target .. " HTTP/1.1\r\nHost: " .. target .. "\r\n"
      .. basic("alice", "wonderland") .. "\r\n\r\n")
    assert.equal(200, h.read_response(s, { method = "CONNECT" }).status)
    h.send(s, "through the tunnel")
    assert.equal("through the tunnel", h.recv_exact(s, 18))
    s:close()
    -- curl, as users would
    local out, code = h.curl({ "-o", "/dev/null", "-w", "%{http_code}", "-x",
      "http://alice:wonderland@127.0.0.1:" .. proxy.port, origin.url("/hello") })
    assert.equal(0, code)
    assert.equal("200", out)
  end)

  it("remembers a good check, and forgets it when the file is read again", function()
    local users = users_file()
    local proxy, adm = start({ "--auth-file", users }, true)
    for _ = 1, 5 do
      assert.equal(200, h.get(proxy.port, origin.url("/hello"), { basic("alice", "wonderland") }).status)
    end
    local st = a.get_json(adm, "/status")
    assert.equal(1, st.auth_checks) -- one verification, four answers from the cache
    assert.equal(0, st.auth_failures)
    assert.equal(407, h.get(proxy.port, origin.url("/hello"), { basic("alice", "bad") }).status)
    assert.equal(1, a.get_json(adm, "/status").auth_failures)

    -- a new password: the old one stops working on SIGHUP, cached or not
    assert(select(2, h.sh(("htpasswd -B -b %s alice looking-glass 2>&1"):format(h.shell_quote(users)))) == 0)
    proxy.signal("HUP")
    assert.truthy(h.wait_for(function() return proxy.log():find("reloaded", 1, true)
      or proxy.log():find("SIGHUP", 1, true) end))
    assert.truthy(h.wait_for(function()
      return h.get(proxy.port, origin.url("/hello"), { basic("alice", "wonderland") }).status == 407
    end))
    assert.equal(200, h.get(proxy.port, origin.url("/hello"), { basic("alice", "looking-glass") }).status)
  end)

  -- Requests decrypted inside a tunnel carry no credentials: they pass on
  -- the CONNECT's check. A reload that removes the user must end that, as
  -- it does for everyone else, not leave the tunnel serving it. A tunnel
  -- idle between its requests is closed at the reload (with a
  -- close_notify: a browser then makes a new CONNECT, whose 407 it
  -- answers); one still in its TLS handshake then has its request
  -- refused with 407.
  it("stops serving a decrypted tunnel's requests once a reload removed its user", function()
    local users = users_file()
    local pki = h.test_pki()
    local tls_origin = procs.add(h.start_https_origin())
    local ca_dir = h.new_ca_dir()
    local proxy = start({ "--auth-file", users, "--ca-dir", ca_dir, "--upstream-ca", pki.ca,
                          "--intercept", "*", "--connect-ports", tostring(tls_origin.port) })
    -- Two tunnels: one that has had a request and is idle, one whose TLS
    -- handshake starts only once told (a file appears).
    local go = h.tmpfile("", "go")
    os.remove(go)
    local script = ([[
import os, socket, ssl, time
def tunnel():
    c = socket.create_connection(("127.0.0.1", %d))
    c.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += c.recv(1)
    return c
def get(t):
    t.sendall(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n")
    print(t.recv(65536).split(b"\r\n")[0].decode(), flush=True)
ctx = ssl.create_default_context(cafile="%s")
idle = ctx.wrap_socket(tunnel(), server_hostname="127.0.0.1")
get(idle)
later = tunnel()
print("ready", flush=True)
deadline = time.time() + 20
while not os.path.exists("%s") and time.time() < deadline:
    time.sleep(0.02)
idle.settimeout(10)
try:
    print("closed" if idle.recv(65536) == b"" else "bytes", flush=True)
except Exception as e:
    print(type(e).__name__, flush=True)
get(ctx.wrap_socket(later, server_hostname="127.0.0.1"))
]]):format(proxy.port, tls_origin.port, basic("bob", "builder"), tls_origin.port,
           ca_dir .. "/ca.pem", go)
    local client = procs.add(h.start_command("exec python3 "
      .. h.shell_quote(h.tmpfile(script, "tunnel.py"))))
    assert.truthy(h.wait_for(function() return client.stdout():find("ready\n", 1, true) end),
      client.stderr())
    assert.equal("HTTP/1.1 200 OK\nready\n", client.stdout())
    -- bob leaves the file; the proxy reads it again
    h.write_file(users, (h.read_file(users):gsub("\nbob:[^\n]*", "")))
    proxy.signal("HUP")
    assert.truthy(proxy.log_has("SIGHUP: "), proxy.log()) -- the reload is done
    h.write_file(go, "")
    assert.truthy(client.wait_exit(10), client.stderr())
    assert.equal("HTTP/1.1 200 OK\nready\nclosed\nHTTP/1.1 407 Proxy Authentication Required\n",
      client.stdout())
    assert.truthy(proxy.log_has("reload: closed 1 idle intercepted tunnel(s) whose credentials "
      .. "no longer hold"), proxy.log())
    assert.equal(1, #tls_origin.requests())
  end)

  -- A tunnel's bytes carry no credentials: the CONNECT's (or the
  -- upgrade's) check is all it had. A reload that removes the user or
  -- changes the password ends the tunnel, as it ends that user's requests.
  it("cuts a plain tunnel once a reload removed its user or changed the password", function()
    local users = users_file()
    local proxy = start({ "--auth-file", users, "--connect-ports", tostring(echo.port) })
    local target = "127.0.0.1:" .. echo.port
    local function tunnel(user, password)
      local s = assert(h.connect(proxy.port))
      h.send(s, "CONNECT " .. target .. " HTTP/1.1\r\nHost: " .. target .. "\r\n"
        .. basic(user, password) .. "\r\n\r\n")
      assert.equal(200, h.read_response(s, { method = "CONNECT" }).status)
      h.send(s, "from " .. user)
      assert.equal("from " .. user, h.recv_exact(s, #("from " .. user)))
      return s
    end
    local alice, bob, dave = tunnel("alice", "wonderland"), tunnel("bob", "builder"),
      tunnel("dave", "diver")
    -- an upgraded connection of bob's: a tunnel too, once the 101 is in
    local ws = assert(h.connect(proxy.port))
    h.send(ws, h.request("GET", origin.url("/ws"), { "Host: " .. origin.authority,
      "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Version: 13", basic("bob", "builder") }))
    assert.equal(101, h.read_response(ws).status)
    h.send(ws, "\129\5hello")
    assert.equal("\129\5hello", h.recv_exact(ws, 7))

    -- alice gets a new password, bob leaves; dave stays as he was
    assert(select(2, h.sh(("htpasswd -B -C 5 -b %s alice looking-glass 2>&1"):format(
      h.shell_quote(users)))) == 0)
    h.write_file(users, (h.read_file(users):gsub("\nbob:[^\n]*", "")))
    proxy.signal("HUP")
    for _, s in ipairs({ alice, bob, ws }) do
      local data, how = h.recv_until_close(s, 10)
      assert.equal("", data)
      assert.equal("closed", how)
      s:close()
    end
    assert.truthy(proxy.log_has("reload: closed 3 tunnel(s) whose credentials no longer hold"),
      proxy.log())
    -- The reload is done: dave's tunnel still carries bytes both ways.
    h.send(dave, "still there")
    assert.equal("still there", h.recv_exact(dave, 11))
    dave:close()
    -- alice's new password opens a tunnel again
    tunnel("alice", "looking-glass"):close()
  end)

  it("cuts every tunnel once a reload brings --auth-file in: none proved a user", function()
    local conf = h.tmpfile("connect-ports " .. echo.port .. "\n", "auth.conf")
    local proxy = start({ "-c", conf })
    local target = "127.0.0.1:" .. echo.port
    local s = assert(h.connect(proxy.port))
    h.send(s, "CONNECT " .. target .. " HTTP/1.1\r\nHost: " .. target .. "\r\n\r\n")
    assert.equal(200, h.read_response(s, { method = "CONNECT" }).status)
    h.send(s, "open")
    assert.equal("open", h.recv_exact(s, 4))
    h.write_file(conf, "connect-ports " .. echo.port .. "\nauth-file " .. users_file() .. "\n")
    proxy.signal("HUP")
    local data, how = h.recv_until_close(s, 10)
    s:close()
    assert.equal("", data)
    assert.equal("closed", how)
    assert.truthy(proxy.log_has("reload: closed 1 tunnel(s) whose credentials no longer hold"),
      proxy.log())
  end)

  -- A request on its way to a tunnel had its credentials checked as well:
  -- the answer still to come (the upstream's 101, a parent proxy's 200 to
  -- the proxy's own CONNECT, a script's call out that the request's hook
  -- waits for) would open the tunnel on them. The upstream (or parent, or
  -- the script's server) here holds its answer until the reload is done,
  -- then gives it: the client's connection is gone by then, and so is the
  -- proxy's to the upstream.
  local function cut_before_answer(args, request, answer)
    local users = users_file()
    local up = raw_origin.new()
    finally(function() up.close() end)
    local fullargs = { "--auth-file", users, "--log-format", "json" }
    for _, arg in ipairs(args(up)) do fullargs[#fullargs + 1] = arg end
    local proxy = start(fullargs)
    local s = assert(h.connect(proxy.port))
    h.send(s, request(up))
    local conn, req = up.next_request()
    assert.truthy(conn, "the request did not reach the upstream")

    h.write_file(users, (h.read_file(users):gsub("\nbob:[^\n]*", "")))
    proxy.signal("HUP")
    assert.truthy(proxy.log_has("SIGHUP: "), proxy.log()) -- the reload is done
    conn.send(answer) -- late: the proxy may have closed the connection already
    local data, how = h.recv_until_close(s, 10)
    s:close()
    assert.equal("", data)
    assert.equal("closed", how)
    assert.truthy(h.wait_for(function()
      up.next_request(0.05)
      return conn.closed
    end), "the proxy kept its connection to the upstream")
    assert.truthy(proxy.log_has("reload: closed 1 tunnel(s) whose credentials no longer hold"),
      proxy.log())
    local line = proxy.wait_access_log('"user":"bob"')
    assert.truthy(line and line:find('"error":"closed: its credentials no longer hold', 1, true),
      proxy.access_log())
    return req
  end

  it("cuts an upgrade still waiting for its 101 once a reload removed its user", function()
    local req = cut_before_answer(function() return {} end, function(up)
      return h.request("GET", "http://" .. up.authority .. "/ws", { "Host: " .. up.authority,
        "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
        basic("bob", "builder") })
    end, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    assert.equal("websocket", req.f["upgrade"])
  end)

  it("cuts a CONNECT still waiting for the parent's answer once a reload removed its user", function()
    local target = "127.0.0.1:443"
    local req = cut_before_answer(function(up)
      return { "--upstream", "http://" .. up.authority }
    end, function()
      return "CONNECT " .. target .. " HTTP/1.1\r\nHost: " .. target .. "\r\n"
        .. basic("bob", "builder") .. "\r\n\r\n"
    end, "HTTP/1.1 200 Connection Established\r\n\r\n")
    assert.equal("CONNECT " .. target .. " HTTP/1.1", req.request_line)
  end)

  it("cuts a CONNECT whose request hook still waits once a reload removed its user", function()
    local target = "127.0.0.1:" .. echo.port
    local req = cut_before_answer(function(up)
      local script = h.tmpfile(([[
function on_request(tx)
  if tx.req.method == "CONNECT" then proxy.http{ url = "http://%s/hold", timeout = 20 } end
end
]]):format(up.authority), "hold.lua")
      return { "--script", script, "--connect-ports", tostring(echo.port) }
    end, function()
      return "CONNECT " .. target .. " HTTP/1.1\r\nHost: " .. target .. "\r\n"
        .. basic("bob", "builder") .. "\r\n\r\n"
    end, "HTTP/1.1 204 No Content\r\n\r\n")
    assert.equal("GET /hold HTTP/1.1", req.request_line)
  end)

  it("checks a password again when the file changes while it is being checked", function()
    -- carol's first hash is slow enough (bcrypt cost 13) that the reload
    -- lands while her check runs; the new one is quick.
    local users = h.tmpfile("", "users")
    assert(select(2, h.sh(("htpasswd -B -C 13 -b -c %s carol oldpw 2>&1"):format(h.shell_quote(users)))) == 0)
    local proxy, adm = start({ "--auth-file", users }, true)
    local s = assert(h.connect(proxy.port))
    h.send(s, h.request("GET", origin.url("/hello"), { "Host: " .. origin.authority, basic("carol", "oldpw") }))
    assert.truthy(h.wait_for(function() return a.get_json(adm, "/status").auth_pending == 1 end))

    assert(select(2, h.sh(("htpasswd -B -C 5 -b %s carol newpw 2>&1"):format(h.shell_quote(users)))) == 0)
    proxy.signal("HUP")
    assert.truthy(h.wait_for(function() return proxy.log():find("SIGHUP", 1, true) end))
    -- The point of the test: the file changed before the first verdict.
    assert.equal(0, a.get_json(adm, "/status").auth_checks, "the check ended before the reload")

    -- The request sent before the reload is judged by the new file...
    assert.equal(407, h.read_response(s).status)
    s:close()
    -- ... and nothing of the old password was remembered.
    assert.equal(407, h.get(proxy.port, origin.url("/hello"), { basic("carol", "oldpw") }).status)
    assert.equal(200, h.get(proxy.port, origin.url("/hello"), { basic("carol", "newpw") }).status)
    assert.equal(1, #origin.wait_requests(1))
  end)

  it("checks an unknown user's password like a known one's, so that names stay secret", function()
    local proxy, adm = start({ "--auth-file", users_file() }, true)
    assert.equal(407, h.get(proxy.port, origin.url("/hello"), { basic("nobody", "x") }).status)
    local st = a.get_json(adm, "/status")
    assert.equal(1, st.auth_checks) -- hashed by the pool, not refused at once
    assert.equal(1, st.auth_failures)
    assert.equal(407, h.get(proxy.port, origin.url("/hello"), { basic("alice", "x") }).status)
    st = a.get_json(adm, "/status")
    assert.equal(2, st.auth_checks)
    assert.equal(2, st.auth_failures)
    -- a user's password does not open an unknown name
    assert.equal(407, h.get(proxy.port, origin.url("/hello"), { basic("alicia", "wonderland") }).status)
    assert.equal(3, a.get_json(adm, "/status").auth_checks)
  end)

  it("counts malformed credentials as failures, and a missing field not", function()
    local proxy, adm = start({ "--auth-file", users_file() }, true)
    local good = b64("alice:wonderland")
    assert.equal(407, h.get(proxy.port, origin.url("/hello")).status)
    assert.equal(0, a.get_json(adm, "/status").auth_failures)
    local malformed = {
      { basic("alice", "wonderland"), basic("alice", "wonderland") }, -- two fields
      { "Proxy-Authorization: Basic\t" .. good },                     -- a tab, not a space
      { 'Proxy-Authorization: Digest username="alice"' },              -- another scheme
      { "Proxy-Authorization: Basic" },                                -- no credentials
      { "Proxy-Authorization: Basic !!!" },                            -- not base64
    }
    for i, extra in ipairs(malformed) do
      assert.equal(407, h.get(proxy.port, origin.url("/hello"), extra).status, "case " .. i)
      assert.equal(i, a.get_json(adm, "/status").auth_failures, "case " .. i)
    end
    assert.equal(0, #origin.requests())
  end)

  it("refuses a file with a plain-text password or an unknown scheme, naming file and line", function()
    for _, line in ipairs({ "carol:plaintext", "dave:$1$abc$0123456789abcdef012345", "erin" }) do
      local path = h.tmpfile("# users\n" .. line .. "\n", "bad-users")
      local code, _, stderr = h.run_proxy({ "--auth-file", path })
      assert.equal(2, code)
      assert.truthy(stderr:find(path .. ":2:", 1, true), stderr)
    end
  end)

  it("reads a file that starts with a UTF-8 byte order mark, with CRLF line ends", function()
    -- before, the mark became part of the first user's name: alice could
    -- never sign in, and nothing said why
    local lines = {}
    for l in h.read_file(users_file()):gmatch("[^\n]+") do lines[#lines + 1] = l end
    local proxy = start({ "--auth-file", h.tmpfile("\239\187\191" .. table.concat(lines, "\r\n") .. "\r\n", "bom-users") })
    assert.equal(200, h.get(proxy.port, origin.url("/hello"), { basic("alice", "wonderland") }).status)
    assert.equal(200, h.get(proxy.port, origin.url("/hello"), { basic("dave", "diver") }).status)
  end)

  it("holds one address's checks beyond four behind its own, refuses beyond that, and drops a gone client's", function()
    -- alice's bcrypt hash is slow (cost 12), bob's SHA-512 one quick.
    local proxy, adm = start({ "--auth-file", users_file(12) }, true)
    local function count_503()
      local n = 0
      for line in proxy.access_log():gmatch("[^\n]+") do
        if line:find('" 503 ', 1, true) then n = n + 1 end
      end
      return n
    end
    local socks = {}
    for i = 1, 22 do
      local s = assert(h.connect(proxy.port))
      h.send(s, h.request("GET", origin.url("/hello"),
        { "Host: " .. origin.authority, basic("alice", "guess" .. i) }))
      socks[i] = s
    end
    -- 4 checks in the pool and 16 held: the last two are refused at once.
    assert.truthy(h.wait_for(function() return count_503() == 2 end))
    assert.truthy(h.wait_for(function() return a.get_json(adm, "/status").auth_pending >= 1 end))

    -- Another address signs in while those guesses are still pending.
    local out = h.curl({ "-o", "/dev/null", "-w", "%{http_code}", "--interface", "127.0.0.2",
      "-x", "http://bob:builder@127.0.0.1:" .. proxy.port, origin.url("/hello") })
    assert.equal("200", out)
    local st = a.get_json(adm, "/status")
    assert.truthy(st.auth_pending >= 8, "the guesses were all checked before bob: " .. st.auth_pending)

    -- The guesser goes away: its held and queued checks are not hashed.
    for _, s in ipairs(socks) do s:close() end
    assert.truthy(h.wait_for(function() return a.get_json(adm, "/status").auth_pending == 0 end))
    st = a.get_json(adm, "/status")
    assert.truthy(st.auth_checks < 20, "checks of closed connections were hashed: " .. st.auth_checks)
  end)

  it("keeps serving one client while another hammers wrong passwords", function()
    local proxy, adm = start({ "--auth-file", users_file(9) }, true)
    -- Four connections' worth of wrong guesses from 127.0.0.1, each a
    -- different password, so none is answered from the cache.
    local done = h.tmpfile("", "hammer-done")
    local hammer = ("for j in 1 2 3 4; do (for i in $(seq 40); do curl -s -o /dev/null --max-time 20"
      .. " -x http://alice:guess$j-$i@127.0.0.1:%d %s; done) & done; wait; echo done > %s")
      :format(proxy.port, origin.url("/hello"), h.shell_quote(done))
    local bg = assert(io.popen("sh -c " .. h.shell_quote(hammer) .. " >/dev/null 2>&1", "r"))
    assert.truthy(h.wait_for(function() return a.get_json(adm, "/status").auth_failures >= 4 end, 20))

    -- Meanwhile a client from another address signs in and works.
    local codes = {}
    for i = 1, 10 do
      local out = h.curl({ "-o", "/dev/null", "-w", "%{http_code}", "--interface", "127.0.0.2",
        "-x", "http://alice:wonderland@127.0.0.1:" .. proxy.port, origin.url("/hello?n=" .. i) })
      codes[#codes + 1] = out
    end
    local hammering_still = (h.read_file(done) or "") == ""
    bg:read("a")
    bg:close()
    for i, c in ipairs(codes) do assert.equal("200", c, "request " .. i) end
    assert.is_true(hammering_still, "the hammering ended before the other client was served")
    assert.truthy(a.get_json(adm, "/status").auth_failures >= 50)
  end)
end)
