-- End-to-end specs for the parent proxy (--upstream): absolute-form requests
-- and CONNECT tunnels through it with credentials from its URL, bypass
-- patterns, a script choosing the parent per request, failures that name
-- the parent, and a real tinyproxy from Debian as the parent.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local each_test = require("support.each_test")
local mime = require("mime")
local admin = require("support.admin")

local function basic(userinfo) return "Basic " .. mime.b64(userinfo) end

describe("parent proxy", function()
  local procs = each_test.processes()
  local origin
  before_each(function() origin = procs.origin() end)

  local function start_parent(mode) return procs.add(h.start_parent(mode)) end
  local start = procs.proxy

  it("sends plain requests in absolute form with the URL's credentials", function()
    local parent = start_parent()
    local proxy = start({ "--upstream", parent.url("user%40corp:p%3Ass") })
    local resp = h.get(proxy.port, origin.url("/hello?x=1"), { "Proxy-Authorization: Basic Y2xpZW50OnNlY3JldA==" })
    assert.equal(200, resp.status)
    assert.equal("GET " .. origin.url("/hello?x=1") .. " HTTP/1.1\n", resp.body)
    local head = parent.wait_requests(1)[1]
    local auths = {}
    for v in head:gmatch("\r\n[Pp]roxy%-[Aa]uthorization: ([^\r]*)") do auths[#auths + 1] = v end
    -- ours for the parent, never the client's own
    assert.same({ basic("user@corp:p:ss") }, auths)
    assert.truthy(head:find("\r\nHost: " .. origin.authority .. "\r\n", 1, true), head)
    assert.equal(0, #origin.requests())
  end)

  it("warns when the parent's password is on the command line, not when it is in the config file", function()
    local warning = "the parent proxy's password is on the command line"
    local proxy = start({ "--upstream", "http://u:secret@127.0.0.1:" .. h.closed_port() })
    assert.truthy(proxy.log_has(warning), proxy.log())
    local conf = h.tmpfile("upstream http://u:secret@127.0.0.1:" .. h.closed_port() .. "\n", "p.conf")
    local quiet = start({ "-c", conf, "--upstream-bypass", "localhost" })
    assert.truthy(quiet.log_has("listening on"), quiet.log())
    assert.is_nil(quiet.log():find(warning, 1, true))
    local bare = start({ "--upstream", "http://127.0.0.1:" .. h.closed_port() })
    assert.truthy(bare.log_has("listening on"), bare.log())
    assert.is_nil(bare.log():find(warning, 1, true))
  end)

  it("passes a whole server's OPTIONS to the parent without a path, for the last proxy to ask with *", function()
    local parent = start_parent()
    local proxy = start({ "--upstream", parent.url() })
    local s = assert(h.connect(proxy.port))
    h.send(s, "OPTIONS http://" .. origin.authority .. " HTTP/1.1\r\nHost: " .. origin.authority
      .. "\r\nConnection: close\r\n\r\n")
    local resp = h.read_response(s)
    s:close()
    assert.equal("OPTIONS http://" .. origin.authority .. " HTTP/1.1\n", resp.body)
  end)

  it("answers 508 when two proxies are each other's parent", function()
    local pa, pb = h.closed_port(), h.closed_port()
    local a = start({ "--listen", "127.0.0.1:" .. pa, "--upstream", "http://127.0.0.1:" .. pb })
    start({ "--listen", "127.0.0.1:" .. pb, "--upstream", "http://127.0.0.1:" .. pa })
    -- Each hop adds to Via; before, the request went round until both ran
    -- out of descriptors, and the client never had an answer.
    local resp = h.get(a.port, origin.url("/hello"))
    assert.equal(508, resp.status)
    assert.truthy(resp.body:find("forwarding loop", 1, true), resp.body)
    assert.equal(0, #origin.requests())
  end)

  it("ends a CONNECT going round between two proxies that are each other's parent", function()
    local pa, pb = h.closed_port(), h.closed_port()
    local a = start({ "--listen", "127.0.0.1:" .. pa, "--upstream", "http://127.0.0.1:" .. pb })
    local b = start({ "--listen", "127.0.0.1:" .. pb, "--upstream", "http://127.0.0.1:" .. pa })
    -- The CONNECT to the parent carried no Via, so nothing counted the
    -- hops: it went round until both ran out of descriptors.
    local s = assert(h.connect(a.port))
    h.send(s, "CONNECT secure.example.invalid:443 HTTP/1.1\r\nHost: secure.example.invalid:443\r\n\r\n")
    local resp = assert(h.read_response(s, { method = "CONNECT", timeout = 10 }))
    s:close()
    -- the innermost hop's 508, passed back as each parent's refusal
    assert.equal(502, resp.status)
    assert.truthy(h.wait_for(function()
      return (a.log() .. b.log()):find("passed through luaproxy too many times", 1, true)
    end), a.log() .. b.log())
  end)

  it("opens tunnels with CONNECT to the parent", function()
    local parent = start_parent()
    local proxy = start({ "--upstream", parent.url("u:p"), "--connect-ports", "443" })
    local s = assert(h.connect(proxy.port))
    h.send(s, "CONNECT secure.example.invalid:443 HTTP/1.1\r\nHost: secure.example.invalid:443\r\n\r\n")
    local resp = h.read_response(s, { method = "CONNECT" })
    assert.equal(200, resp.status)
    h.send(s, "hello parent")
    assert.equal("hello parent", h.recv_exact(s, 12))
    s:close()
    local head = parent.wait_requests(1)[1]
    assert.truthy(head:match("^CONNECT secure%.example%.invalid:443 HTTP/1%.1\r\n"), head)
    assert.truthy(head:find("\r\nProxy-Authorization: " .. basic("u:p") .. "\r\n", 1, true), head)
  end)

  it("skips an interim answer to the CONNECT and opens the tunnel on the 200 after it", function()
    local parent = start_parent("interim")
    local proxy = start({ "--upstream", parent.url() })
    local s = assert(h.connect(proxy.port))
    h.send(s, "CONNECT secure.example.invalid:443 HTTP/1.1\r\nHost: secure.example.invalid:443\r\n\r\n")
    local resp = h.read_response(s, { method = "CONNECT" })
    assert.equal(200, resp.status)
    h.send(s, "hello parent")
    assert.equal("hello parent", h.recv_exact(s, 12))
    s:close()
  end)

  it("goes direct for bypassed hosts: a name, *.domain and a CIDR", function()
    local parent = start_parent()
    local proxy = start({ "--upstream", parent.url(), "--upstream-bypass", "localhost",
                          "--upstream-bypass", "*.direct.invalid", "--upstream-bypass", "127.0.0.0/8" })
    -- CIDR: straight to the origin
    assert.equal("hello\n", h.get(proxy.port, origin.url("/hello")).body)
    -- exact name
    assert.equal("hello\n", h.get(proxy.port, "http://localhost:" .. origin.port .. "/hello").body)
    -- *.domain: direct, so the lookup of an .invalid name fails here (502),
    -- where the parent would have answered
    local resp = h.get(proxy.port, "http://a.direct.invalid/x")
    assert.equal(502, resp.status)
    assert.is_nil(resp.body:find("parent", 1, true))
    -- the same name fully qualified (a trailing dot) is the same host
    resp = h.get(proxy.port, "http://a.direct.invalid./x")
    assert.equal(502, resp.status)
    assert.is_nil(resp.body:find("parent", 1, true))
    -- not bypassed: the parent answers
    resp = h.get(proxy.port, "http://direct.invalid/x")
    assert.equal(200, resp.status)
    assert.equal("GET http://direct.invalid/x HTTP/1.1\n", resp.body)
    assert.equal(1, #parent.requests())
    assert.equal(2, #origin.requests())

    local code, _, stderr = h.run_proxy({ "--upstream-bypass", "bad pattern!" })
    assert.equal(2, code)
    assert.truthy(stderr:find("--upstream-bypass", 1, true), stderr)
    code, _, stderr = h.run_proxy({ "--upstream", "http://u:secret@127.0.0.1" })
    assert.equal(2, code)
    assert.truthy(stderr:find("host:port", 1, true), stderr)
    assert.is_nil(stderr:find("secret", 1, true))
  end)

  it("lets before_connect read tx.upstream.proxy, set it per request or clear it", function()
    local parent = start_parent()
    local script = h.tmpfile(([[
function before_connect(tx)
  if tx.req.path == "/show" then
    return tx:respond(200, tostring(tx.upstream.proxy))
  elseif tx.req.path == "/direct" then
    tx.upstream.proxy = nil
  elseif tx.req.path == "/via" then
    tx.upstream.proxy = "http://scripted:pw@127.0.0.1:%d"
  elseif tx.req.path == "/bad" then
    tx.upstream.proxy = "ftp://nowhere"
  elseif tx.req.path == "/nul" then -- no shorter URL (the part before the NUL)
    tx.upstream.proxy = "http://127.0.0.1:%d\0.elsewhere.invalid:3128"
  end
end
]]):format(parent.port, parent.port), "choose.lua")
    -- no --upstream: the script alone sends /via to the parent
    local proxy = start({ "--script", script })
    assert.equal("nil", h.get(proxy.port, origin.url("/show")).body)
    local resp = h.get(proxy.port, origin.url("/via"))
    assert.equal("GET " .. origin.url("/via") .. " HTTP/1.1\n", resp.body)
    assert.truthy(parent.wait_requests(1)[1]:find(basic("scripted:pw"), 1, true))
    assert.equal(500, h.get(proxy.port, origin.url("/bad")).status)
    assert.equal(500, h.get(proxy.port, origin.url("/nul")).status)
    assert.equal(1, #parent.requests())

    -- with --upstream: the script sees it, and may go direct
    local via = start({ "--script", script, "--upstream", parent.url() })
    assert.equal(parent.url(), h.get(via.port, origin.url("/show")).body)
    local before = #origin.requests()
    local direct = h.get(via.port, origin.url("/direct"))
    assert.equal(404, direct.status) -- the origin's own answer for /direct
    assert.equal(before + 1, #origin.requests())
  end)

  -- The Proxy-Authorization fields of a recorded head.
  local function proxy_auths(head)
    local auths = {}
    for v in head:gmatch("\r\n[Pp]roxy%-[Aa]uthorization: ([^\r]*)") do auths[#auths + 1] = v end
    return auths
  end

  local AUTH_SCRIPT = [[
function on_request(tx)
  local case = tx.req.headers["X-Case"]
  tx.req.headers["X-Case"] = nil
  if case == "one" then
    tx.req.headers["Proxy-Authorization"] = "Basic c2NyaXB0OnB3"
  elseif case == "two" then
    tx.req.headers:add("Proxy-Authorization", "Basic c2NyaXB0OnB3")
    tx.req.headers:add("Proxy-Authorization", "Basic b3RoZXI6cHc=")
  end
end
]]

  it("sends a script's Proxy-Authorization only to a parent that has no credentials", function()
    local script = h.tmpfile(AUTH_SCRIPT, "auth.lua")
    local parent = start_parent()
    -- The parent's URL has credentials: they are the one field it gets.
    local with = start({ "--script", script, "--upstream", parent.url("user:pw") })
    assert.equal(200, h.get(with.port, origin.url("/x"), { "X-Case: one" }).status)
    assert.same({ basic("user:pw") }, proxy_auths(parent.wait_requests(1)[1]))
    -- It has none: the script's goes, once, on requests and on tunnels.
    local without = start({ "--script", script, "--upstream", parent.url(),
                            "--connect-ports", "443" })
    assert.equal(200, h.get(without.port, origin.url("/x"), { "X-Case: one" }).status)
    assert.same({ "Basic c2NyaXB0OnB3" }, proxy_auths(parent.wait_requests(2)[2]))
    local s = assert(h.connect(without.port))
    h.send(s, "CONNECT secure.example.invalid:443 HTTP/1.1\r\nHost: secure.example.invalid:443\r\n"
      .. "X-Case: one\r\n\r\n")
    assert.equal(200, h.read_response(s, { method = "CONNECT" }).status)
    s:close()
    assert.same({ "Basic c2NyaXB0OnB3" }, proxy_auths(parent.wait_requests(3)[3]))
    -- Without a script, nothing but the URL's credentials, if any.
    assert.equal(200, h.get(without.port, origin.url("/x")).status)
    assert.same({}, proxy_auths(parent.wait_requests(4)[4]))
    -- Two from a script: which one would the parent check? A script error.
    assert.equal(500, h.get(without.port, origin.url("/x"), { "X-Case: two" }).status)
    assert.truthy(h.wait_for(function()
      return without.log():find("at most one Proxy-Authorization", 1, true)
    end), without.log())
    assert.equal(4, #parent.requests())
  end)

  it("never sends a script's Proxy-Authorization to an origin", function()
    local proxy = start({ "--script", h.tmpfile(AUTH_SCRIPT, "auth.lua") })
    local resp = h.get(proxy.port, origin.url("/echo"), { "X-Case: one" })
    assert.equal(200, resp.status)
    assert.is_nil(resp.body:lower():find("proxy-authorization", 1, true), resp.body)
    -- nor to the origin an upstream override points at, past its parent
    local parent = start_parent()
    local via = start({ "--script", h.tmpfile(AUTH_SCRIPT .. [[
function before_connect(tx) tx.upstream.proxy = nil end
]], "direct.lua"), "--upstream", parent.url() })
    resp = h.get(via.port, origin.url("/echo"), { "X-Case: one" })
    assert.equal(200, resp.status)
    assert.is_nil(resp.body:lower():find("proxy-authorization", 1, true), resp.body)
    assert.equal(0, #parent.requests())
  end)

  -- What the flow viewer keeps of a request forwarded to the parent: the
  -- head as sent, but not the parent's password, the configuration's or
  -- one a script made for a user.
  it("keeps the parent's credentials out of the flows", function()
    local parent = start_parent()
    local flows = {}
    for _, how in ipairs({ "url", "script" }) do
      local args = { "--upstream", how == "url" and parent.url("user:s3cret") or parent.url() }
      if how == "script" then
        args[#args + 1] = "--script"
        args[#args + 1] = h.tmpfile(AUTH_SCRIPT, "auth.lua")
      end
      local proxy, adm = procs.add(admin.start(args))
      assert.equal(200, h.get(proxy.port, origin.url("/x"), { "X-Case: one" }).status)
      local list = h.wait_for(function()
        local l = admin.get_json(adm, "/api/flows")
        return #l >= 1 and l
      end, 10)
      flows[how] = admin.call(adm, "/api/flows/" .. admin.id(list[1].id)).body
      local seen = {}
      for _, kv in ipairs(admin.json.decode(flows[how]).request.forwarded.headers) do
        if kv[1] == "Proxy-Authorization" then seen[#seen + 1] = kv[2] end
      end
      assert.same({ "Basic (hidden)" }, seen)
    end
    -- sent all the same
    assert.same({ basic("user:s3cret") }, proxy_auths(parent.wait_requests(1)[1]))
    assert.same({ "Basic c2NyaXB0OnB3" }, proxy_auths(parent.wait_requests(2)[2]))
    assert.falsy(flows.url:find(mime.b64("user:s3cret"), 1, true), flows.url)
    assert.falsy(flows.script:find("c2NyaXB0OnB3", 1, true), flows.script)
  end)

  it("records a tunnel through the parent as a tunnel, which replay refuses", function()
    local parent = start_parent()
    local proxy, adm = procs.add(admin.start({ "--upstream", parent.url() }))
    local s = assert(h.connect(proxy.port))
    h.send(s, "CONNECT secure.example.invalid:443 HTTP/1.1\r\nHost: secure.example.invalid:443\r\n\r\n")
    assert.equal(200, h.read_response(s, { method = "CONNECT" }).status)
    h.send(s, "hello parent")
    assert.equal("hello parent", h.recv_exact(s, 12))
    s:close()
    local list = h.wait_for(function()
      local l = admin.get_json(adm, "/api/flows")
      return #l >= 1 and not l[1].running and l
    end, 10)
    assert.is_true(list[1].tunnel)
    local f = admin.get_json(adm, "/api/flows/" .. admin.id(list[1].id))
    assert.equal("HTTP/1.1 200 Connection Established", f.response.sent.line)
    local resp = admin.call(adm, "/api/flows/" .. admin.id(list[1].id) .. "/replay",
                            { method = "POST" })
    assert.equal(409, resp.status, resp.body)
    assert.equal(1, #parent.requests())
  end)

  -- The final recipient of a TRACE sends back the request it received:
  -- the parent, when Max-Forwards runs out there. Credentials on it would
  -- go back to whichever client asked.
  it("sends a TRACE to the parent without credentials, which it would reflect", function()
    local parent = start_parent("reflect")
    for _, how in ipairs({ "url", "script" }) do
      local args = { "--upstream", how == "url" and parent.url("user:s3cret") or parent.url() }
      if how == "script" then
        args[#args + 1] = "--script"
        args[#args + 1] = h.tmpfile(AUTH_SCRIPT, "auth.lua")
      end
      local proxy = start(args)
      local s = assert(h.connect(proxy.port))
      h.send(s, h.request("TRACE", origin.url("/t"), { "Host: " .. origin.authority,
                                                       "Max-Forwards: 1", "X-Case: one" }))
      local resp = assert(h.read_response(s))
      s:close()
      assert.equal(200, resp.status)
      assert.truthy(resp.body:find("Max-Forwards: 0\r\n", 1, true), resp.body)
      assert.falsy(resp.body:lower():find("proxy-authorization", 1, true), resp.body)
      -- other methods carry them as before
      resp = h.get(proxy.port, origin.url("/x"), { "X-Case: one" })
      assert.equal(200, resp.status)
      assert.truthy(resp.body:find("\r\nProxy-Authorization: Basic ", 1, true), resp.body)
    end
    assert.equal(4, #parent.wait_requests(4))
  end)

  -- A parent's 407 is a 502 for the client, which has no credentials for
  -- it: one that says whether ours were refused or none were sent.
  it("says whether the parent refused our credentials or was given none", function()
    local parent = start_parent("deny")
    local with = start({ "--upstream", parent.url("user:pw") })
    local without = start({ "--upstream", parent.url() })
    local function connect(proxy)
      local s = assert(h.connect(proxy.port))
      h.send(s, "CONNECT secure.example.invalid:443 HTTP/1.1\r\nHost: secure.example.invalid:443\r\n\r\n")
      local resp = h.read_response(s, { method = "CONNECT" })
      s:close()
      return resp
    end
    local function trace(proxy)
      local s = assert(h.connect(proxy.port))
      h.send(s, h.request("TRACE", origin.url("/t"), { "Host: " .. origin.authority }))
      local resp = h.read_response(s)
      s:close()
      return resp
    end
    for _, case in ipairs({
      { h.get(with.port, origin.url("/x")), "refused our credentials with 407" },
      { h.get(without.port, origin.url("/x")), "wants credentials (407), and none are given for it" },
      { trace(with), "wants credentials (407), which a TRACE does not carry" },
      { connect(with), "answered the CONNECT with 407: it refused our credentials" },
      { connect(without), "answered the CONNECT with 407: it wants credentials, and none are given" },
    }) do
      local resp, words = case[1], case[2]
      assert.equal(502, resp.status)
      assert.truthy(resp.body:find(words, 1, true), resp.body)
    end
  end)

  -- A proxy given a parent is often one that cannot reach the network
  -- any other way: a script's calls out take the parent too.
  it("sends proxy.http through the parent: absolute form, a CONNECT for https, or directly when told", function()
    local parent = start_parent("tunnel")
    local other = start_parent()
    local tls_origin = procs.add(h.start_https_origin())
    local src = ([[
      local urls = { plain = "PLAIN", tls = "TLS", direct = "PLAIN", named = "PLAIN", header = "PLAIN" }
      function on_request(tx)
        local which = tx.req.headers["X-Which"]
        local opts = { url = urls[which], timeout = 10 }
        if which == "direct" then opts.proxy = false end
        if which == "named" then opts.proxy = "NAMED" end
        if which == "header" then opts.headers = { ["Proxy-Authorization"] = "Basic eDp5" } end
        local ok, res, err = pcall(proxy.http, opts)
        if not ok then return tx:respond(200, "raised: " .. res) end
        tx:respond(200, res and (res.status .. " " .. res.body) or ("error: " .. err))
      end
    ]]):gsub("PLAIN", origin.url("/hello")):gsub("TLS", tls_origin.url("/hello"))
      :gsub("NAMED", other.url("v:w"))
    local proxy = start({ "--upstream", parent.url("u:p"), "-s", h.tmpfile(src, "calls.lua"),
                          "--upstream-ca", h.test_pki().ca })
    local function call(which)
      return h.get(proxy.port, "http://hooks.invalid/", { "X-Which: " .. which }).body
    end

    -- plain HTTP: in absolute form to the parent, with its credentials
    assert.equal("200 GET " .. origin.url("/hello") .. " HTTP/1.1\n", call("plain"))
    local head = parent.wait_requests(1)[1]
    assert.truthy(head:find("^GET " .. origin.url("/hello"):gsub("%p", "%%%0") .. " HTTP/1.1\r\n"), head)
    assert.truthy(head:find("\r\nProxy-Authorization: " .. basic("u:p") .. "\r\n", 1, true), head)
    assert.truthy(head:find("\r\nHost: " .. origin.authority .. "\r\n", 1, true), head)
    -- https: a CONNECT with the credentials, then TLS with the origin inside
    assert.equal("200 hello\n", call("tls"))
    head = parent.wait_requests(2)[2]
    assert.truthy(head:find("^CONNECT 127.0.0.1:" .. tls_origin.port .. " HTTP/1.1\r\n"), head)
    assert.truthy(head:find("\r\nProxy-Authorization: " .. basic("u:p") .. "\r\n", 1, true), head)
    assert.equal(1, #tls_origin.wait_requests(1))
    -- proxy = false: directly
    assert.equal("200 hello\n", call("direct"))
    assert.equal(1, #origin.wait_requests(1))
    -- proxy = URL: through that parent, with its credentials only
    assert.equal("200 GET " .. origin.url("/hello") .. " HTTP/1.1\n", call("named"))
    head = other.wait_requests(1)[1]
    assert.truthy(head:find("\r\nProxy-Authorization: " .. basic("v:w") .. "\r\n", 1, true), head)
    assert.equal(2, #parent.requests())
    -- credentials for a parent go in its URL, never in a header
    assert.truthy(call("header"):find("^raised: .*credentials for a parent proxy go in its URL"))
    assert.equal(1, #origin.requests())
  end)

  it("proxy.http: a bypassed host goes directly, and a parent that refuses the CONNECT is named", function()
    local deny = start_parent("deny")
    local tls_origin = procs.add(h.start_https_origin())
    local src = ([[
      function on_request(tx)
        local res, err = proxy.http{ url = tx.req.headers["X-Url"], timeout = 10 }
        tx:respond(200, res and (res.status .. " " .. res.body) or ("error: " .. err))
      end
    ]])
    local proxy = start({ "--upstream", deny.url(), "--upstream-bypass", "localhost",
                          "-s", h.tmpfile(src, "calls.lua"), "--upstream-ca", h.test_pki().ca })
    local function call(url)
      return h.get(proxy.port, "http://hooks.invalid/", { "X-Url: " .. url }).body
    end
    assert.equal("200 hello\n", call("http://localhost:" .. origin.port .. "/hello"))
    assert.equal(1, #origin.wait_requests(1))
    assert.equal("error: the parent proxy 127.0.0.1:" .. deny.port .. " answered the CONNECT with 407",
      call(tls_origin.url("/hello")))
    assert.equal(0, #tls_origin.requests())
  end)

  -- A POST whose body is read and dropped after the 502, to keep the
  -- connection: its log line, written when the body is in, still names
  -- the parent (the cause outlives the call that made it).
  it("logs the parent's failure for a request whose body is dropped after the 502", function()
    local closed = h.closed_port()
    local proxy = start({ "--upstream", "http://127.0.0.1:" .. closed })
    local s = assert(h.connect(proxy.port))
    local target = origin.url("/upload")
    assert(h.send(s, "POST " .. target .. " HTTP/1.1\r\nHost: " .. origin.authority
      .. "\r\nContent-Length: 10\r\n\r\n12345"))
    local resp = assert(h.read_response(s))
    assert.equal(502, resp.status)
    assert.are_not.equal("close", resp.headers["connection"], resp.raw_head)
    assert(h.send(s, "67890"))
    local cause = "POST " .. target .. " -> 502 (the parent proxy 127.0.0.1:" .. closed
      .. " refused the connection"
    assert.truthy(proxy.log_has(cause), proxy.log())
    s:close()
  end)

  it("answers 502 and 504 naming the parent when it fails", function()
    local closed = h.closed_port()
    local proxy = start({ "--upstream", "http://127.0.0.1:" .. closed })
    local resp = h.get(proxy.port, origin.url("/hello"))
    assert.equal(502, resp.status)
    assert.truthy(resp.body:find("the parent proxy 127.0.0.1:" .. closed .. " refused the connection", 1, true),
      resp.body)

    local hang = start_parent("hang")
    local slow = start({ "--upstream", hang.url(), "--idle-timeout", "0.5" })
    resp = h.get(slow.port, origin.url("/hello"))
    assert.equal(504, resp.status)
    assert.truthy(resp.body:find("parent proxy 127.0.0.1:" .. hang.port, 1, true), resp.body)
  end)

  it("sends decrypted HTTPS to the parent with CONNECT, then TLS inside", function()
    local pki = h.test_pki()
    local tls_origin = procs.add(h.start_https_origin())
    local ca_dir = h.new_ca_dir()
    -- the parent: a plain luaproxy that only tunnels
    local parent = start({ "--connect-ports", tostring(tls_origin.port) })
    local proxy = start({ "--ca-dir", ca_dir, "--upstream-ca", pki.ca, "--intercept", "*",
                          "--connect-ports", "443," .. tls_origin.port,
                          "--upstream", "http://127.0.0.1:" .. parent.port })
    local out, code, err = h.curl({ "--cacert", ca_dir .. "/ca.pem", "-x", "http://127.0.0.1:" .. proxy.port,
                                    tls_origin.url("/hello") })
    assert.equal(0, code, err)
    assert.equal("hello\n", out)
    assert.equal("GET /hello HTTP/1.1", tls_origin.wait_requests(1)[1].request_line)
    -- the parent saw a tunnel, never the request itself
    assert.truthy(parent.wait_access_log('"CONNECT ' .. tls_origin.authority:gsub("%p", "%%%0") .. ' HTTP/1%.1" 200'),
      parent.access_log())
    assert.is_nil(parent.access_log():find("GET", 1, true))

    -- a reload keeps the CA and the TLS settings made at start
    proxy.signal("HUP")
    assert.truthy(h.wait_for(function() return proxy.log():find("SIGHUP", 1, true) end), proxy.log())
    out, code, err = h.curl({ "--cacert", ca_dir .. "/ca.pem", "-x", "http://127.0.0.1:" .. proxy.port,
                              tls_origin.url("/hello") })
    assert.equal(0, code, err)
    assert.equal("hello\n", out)
  end)

  it("refuses bytes a parent sends after its 200 to the CONNECT, before TLS with the origin", function()
    local pki = h.test_pki()
    local tls_origin = procs.add(h.start_https_origin())
    local ca_dir = h.new_ca_dir()
    -- Its 200 comes with a forged response in the same write; the tunnel
    -- behind it is real. Those bytes are not the origin's: the proxy has
    -- not even sent its ClientHello.
    local parent = start_parent("inject")
    local proxy = start({ "--ca-dir", ca_dir, "--upstream-ca", pki.ca, "--intercept", "*",
                          "--connect-ports", "443," .. tls_origin.port, "--upstream", parent.url() })
    local out, code, err = h.curl({ "-i", "--cacert", ca_dir .. "/ca.pem", "-x", "http://127.0.0.1:" .. proxy.port,
                                    tls_origin.url("/hello") })
    assert.equal(0, code, err)
    assert.is_nil(out:find("injected", 1, true), out)
    assert.truthy(out:find("\r\nHTTP/1.1 502 ", 1, true), out)
    assert.truthy(out:find("the parent proxy 127.0.0.1:" .. parent.port .. " sent 47 bytes after its 200", 1, true), out)
    assert.equal(0, #tls_origin.requests())
  end)

  -- Inside the TLS the proxy opened with the origin, a 407 is the origin's
  -- own answer (odd, but its to give): the parent is not in that
  -- conversation and cannot have refused anything there.
  it("through a parent, passes an origin's 407 inside TLS on as the origin's", function()
    local pki = h.test_pki()
    local tls_origin = procs.add(h.start_https_origin())
    local ca_dir = h.new_ca_dir()
    local parent = start_parent("tunnel")
    local proxy = start({ "--ca-dir", ca_dir, "--upstream-ca", pki.ca, "--intercept", "*",
                          "--connect-ports", "443," .. tls_origin.port, "--upstream", parent.url() })
    local out, code, err = h.curl({ "-i", "--cacert", ca_dir .. "/ca.pem", "-x", "http://127.0.0.1:" .. proxy.port,
                                    tls_origin.url("/status/407") })
    assert.equal(0, code, err)
    assert.truthy(out:find("\r\nHTTP/1.1 407 ", 1, true), out)
    assert.truthy(out:find("status 407\n", 1, true), out)
    assert.equal(1, #tls_origin.requests())
  end)

  it("through a parent, an origin's refused certificate is named as the origin's, not the parent's", function()
    local pki = h.test_pki()
    local wrong = procs.add(h.start_https_origin({ cert = "wrong" }))
    local ca_dir = h.new_ca_dir()
    local parent = start_parent("tunnel")
    local proxy = start({ "--ca-dir", ca_dir, "--upstream-ca", pki.ca, "--intercept", "*",
                          "--connect-ports", "443," .. wrong.port, "--upstream", parent.url() })
    local out, code, err = h.curl({ "-i", "--cacert", ca_dir .. "/ca.pem", "-x", "http://127.0.0.1:" .. proxy.port,
                                    wrong.url("/hello") })
    assert.equal(0, code, err)
    assert.truthy(out:find("\r\nHTTP/1.1 502 ", 1, true), out)
    assert.truthy(out:find("the upstream's certificate was refused: host name mismatch (via the parent proxy 127.0.0.1:"
      .. parent.port .. ")", 1, true), out)
  end)

  -- Connections to a parent opened with one user's credentials are that
  -- user's: the parent here is a luaproxy that requires them (--auth-file)
  -- and logs, for each request and CONNECT, who sent it and on which of
  -- our connections (its client port). The proxy under test takes its
  -- credentials per request from a script, or from the parent URL a
  -- script picks.
  local function start_checking_parent(connect_port)
    local users = h.tmpfile("", "users")
    local alice = h.sh("openssl passwd -6 wonderland"):gsub("%s+$", "")
    local bob = h.sh("openssl passwd -6 builder"):gsub("%s+$", "")
    h.write_file(users, "alice:" .. alice .. "\nbob:" .. bob .. "\n")
    local script = h.tmpfile([[
function on_request(tx) proxy.log("seen", tx.user, tx.req.method, tx.client.port) end
]], "seen.lua")
    return start({ "--auth-file", users, "--script", script,
                   "--connect-ports", tostring(connect_port or 443) })
  end
  -- The parent's sightings so far, {user, method, port}, in order; waits
  -- (bounded) until there are <n>.
  local function sightings(parent, n)
    local found
    h.wait_for(function()
      found = {}
      for user, method, port in parent.log():gmatch("seen (%S+) (%S+) (%d+)") do
        found[#found + 1] = { user = user, method = method, port = tonumber(port) }
      end
      return #found >= n
    end)
    return found
  end
  -- The script of the proxy under test: "?alice" or "?bob" at the end of
  -- the path says whose request it is. <how> "header" sets the
  -- Proxy-Authorization; "url" names the parent with that user in its URL.
  local function credentials_script(how, parent_port)
    return h.tmpfile(([[
local auth = { alice = %q, bob = %q }
local parents = { alice = "http://alice:wonderland@127.0.0.1:%d", bob = "http://bob:builder@127.0.0.1:%d" }
local function who(tx) return tx.req.path:match("%%?(%%a+)$") end
function on_request(tx)
  if %q == "header" and who(tx) then tx.req.headers["Proxy-Authorization"] = auth[who(tx)] end
end
function before_connect(tx)
  if %q == "url" and who(tx) then tx.upstream.proxy = parents[who(tx)] end
end
]]):format(basic("alice:wonderland"), basic("bob:builder"), parent_port, parent_port, how, how),
      "credentials.lua")
  end

  for _, how in ipairs({ "header", "url" }) do
    it("never lets one user's decrypted HTTPS ride another's tunnel (credentials by " .. how .. ")", function()
      local pki = h.test_pki()
      local tls_origin = procs.add(h.start_https_origin())
      local ca_dir = h.new_ca_dir()
      local parent = start_checking_parent(tls_origin.port)
      local proxy = start({ "--ca-dir", ca_dir, "--upstream-ca", pki.ca, "--intercept", "*",
                            "--connect-ports", "443," .. tls_origin.port,
                            "--script", credentials_script(how, parent.port),
                            "--upstream", "http://127.0.0.1:" .. parent.port })
      -- One client connection, one TLS session with the proxy: alice,
      -- alice again, then bob.
      local out, code, err = h.curl({ "--cacert", ca_dir .. "/ca.pem", "-x", "http://127.0.0.1:" .. proxy.port,
                                      tls_origin.url("/hello?alice"), tls_origin.url("/hello?alice"),
                                      tls_origin.url("/hello?bob") })
      assert.equal(0, code, err)
      assert.equal("hello\nhello\nhello\n", out)
      -- The origin saw the three requests and nothing meant for a parent.
      -- Before, each request after the first wrote a CONNECT with its
      -- Proxy-Authorization into the kept tunnel, to the origin itself
      -- (and got its 404 as a 502); bob's went into alice's tunnel.
      for _, r in ipairs(tls_origin.wait_requests(3)) do
        assert.truthy(r.head:match("^GET /hello%?%a+ HTTP/1%.1\r\n"), r.head)
        assert.is_nil(r.head:lower():find("proxy-authorization", 1, true), r.head)
      end
      -- alice's second request rode her tunnel; bob had one of his own.
      local seen = sightings(parent, 2)
      assert.equal(2, #seen, parent.log())
      assert.same({ "alice", "CONNECT" }, { seen[1].user, seen[1].method })
      assert.same({ "bob", "CONNECT" }, { seen[2].user, seen[2].method })
      assert.are_not.equal(seen[1].port, seen[2].port)
    end)


    it("keeps pooled connections to the parent apart by credentials (by " .. how .. ")", function()
      local parent = start_checking_parent()
      local proxy = start({ "--script", credentials_script(how, parent.port),
                            "--upstream", "http://127.0.0.1:" .. parent.port })
      -- One client connection: alice, bob, alice.
      local s = assert(h.connect(proxy.port))
      for _, user in ipairs({ "alice", "bob", "alice" }) do
        assert(h.send(s, h.request("GET", origin.url("/hello?" .. user), { "Host: " .. origin.authority })))
        local resp = assert(h.read_response(s))
        assert.equal(200, resp.status)
      end
      s:close()
      local seen = sightings(parent, 3)
      assert.same({ "alice", "bob", "alice" }, { seen[1].user, seen[2].user, seen[3].user })
      -- alice's two requests on one connection, bob's on another. Before,
      -- all three went down the connection alice's request opened.
      assert.equal(seen[1].port, seen[3].port)
      assert.are_not.equal(seen[1].port, seen[2].port)
      for _, r in ipairs(origin.wait_requests(3)) do
        assert.is_nil(r.head:lower():find("proxy-authorization", 1, true), r.head)
      end
    end)
  end

  -- A tunnel's reuse key names its origin and its parent; an origin name
  -- of 250 bytes made it longer than the session keeps, and cut short it
  -- named the tunnel to another port of that origin too.
  it("never takes a kept tunnel for another origin port, however long the origin's name", function()
    local one = procs.add(h.start_https_origin())
    local two = procs.add(h.start_https_origin())
    local ca_dir = h.new_ca_dir()
    local long = ("a"):rep(63) .. "." .. ("b"):rep(63) .. "." .. ("c"):rep(63) .. "." .. ("d"):rep(50) .. ".test"
    assert.equal(247, #long)
    -- The parent reaches the long name at 127.0.0.1.
    local parent = start({ "--connect-ports", one.port .. "," .. two.port, "--script", h.tmpfile([[
function before_connect(tx) if tx.req.method == "CONNECT" then tx.upstream.host = "127.0.0.1" end end
]], "local.lua") })
    -- The proxy under test sends ?two to the second origin's port.
    local proxy = start({ "--ca-dir", ca_dir, "--insecure-upstream", "--intercept", "*",
                          "--connect-ports", one.port .. "," .. two.port,
                          "--upstream", "http://127.0.0.1:" .. parent.port, "--script", h.tmpfile(([[
function before_connect(tx)
  if tx.req.method == "CONNECT" then return end
  tx.upstream.host = %q
  tx.upstream.port = tx.req.path:find("two", 1, true) and %d or %d
end
]]):format(long, two.port, one.port), "long.lua") })
    local out, code, err = h.curl({ "--cacert", ca_dir .. "/ca.pem", "-x", "http://127.0.0.1:" .. proxy.port,
                                    one.url("/hello?one"), one.url("/hello?two") })
    assert.equal(0, code, err)
    assert.equal("hello\nhello\n", out)
    -- (An origin records a request before it answers it.)
    local function lines(reqs)
      local t = {}
      for _, r in ipairs(reqs) do t[#t + 1] = r.request_line end
      return t
    end
    assert.same({ "GET /hello?one HTTP/1.1" }, lines(one.requests()))
    assert.same({ "GET /hello?two HTTP/1.1" }, lines(two.requests()))
  end)

  it("works through a real tinyproxy, credentials included", function()
    if not os.execute("command -v tinyproxy >/dev/null 2>&1") then
      pending("tinyproxy is not installed")
      return
    end
    local dir = h.tmpfile("", "keep"):match("^(.*)/[^/]*$")
    local port = h.closed_port()
    local conf = h.write_file(dir .. "/tinyproxy.conf", table.concat({
      "Port " .. port, "Listen 127.0.0.1", "Allow 127.0.0.1", "Timeout 30",
      "MaxClients 20", "BasicAuth alice wonderland", "ConnectPort " .. origin.port,
      "LogLevel Info", "PidFile \"" .. dir .. "/tinyproxy.pid\"",
    }, "\n") .. "\n")
    local tiny = procs.add(h.start_command("exec tinyproxy -d -c " .. h.shell_quote(conf)))
    assert.truthy(h.wait_for(function() return h.connect(port, nil, 0.2) end), tiny.stderr())

    local proxy = start({ "--upstream", "http://alice:wonderland@127.0.0.1:" .. port,
                          "--connect-ports", tostring(origin.port) })
    local out, code = h.curl({ "-x", "http://127.0.0.1:" .. proxy.port, origin.url("/hello") })
    assert.equal(0, code)
    assert.equal("hello\n", out)
    -- a tunnel through tinyproxy
    out, code = h.curl({ "-p", "-x", "http://127.0.0.1:" .. proxy.port, origin.url("/hello") })
    assert.equal(0, code)
    assert.equal("hello\n", out)
    local reqs = origin.wait_requests(2)
    for _, r in ipairs(reqs) do assert.is_nil(r.head:lower():find("proxy-authorization", 1, true)) end

    -- the credentials are what let us through: without them tinyproxy
    -- answers 407, which we turn into a 502 naming it (and saying that
    -- none were sent, rather than that ours were refused)
    local bare = start({ "--upstream", "http://127.0.0.1:" .. port })
    local resp = h.get(bare.port, origin.url("/hello"))
    assert.equal(502, resp.status)
    assert.truthy(resp.body:find("the parent proxy 127.0.0.1:" .. port .. " wants credentials (407), "
      .. "and none are given for it", 1, true), resp.body)
    assert.equal(2, #origin.requests())
  end)
end)
