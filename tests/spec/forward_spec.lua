-- Plain HTTP forwarding: what the origin receives for a proxied request and
-- what the client receives back (contract: "Requests", "Access log").
-- The origin records every request it gets, so the upstream side is checked
-- byte for byte, not inferred from the response.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")

describe("forwarding", function()
  local origin, proxy
  local extra = {}   -- more processes a test started; stopped after it

  before_each(function()
    origin = h.start_origin()
    proxy = h.start_proxy({})
  end)

  after_each(function()
    for _, p in ipairs(extra) do p.stop() end
    extra = {}
    local problem = h.stop_procs({ origin, proxy }, 2)
    proxy, origin = nil, nil
    assert(not problem, problem)
  end)

  -- One request on a fresh connection; returns the response.
  local function exchange(bytes, opts)
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, bytes))
    local resp, err = h.read_response(s, opts)
    s:close()
    assert(resp, "no response: " .. tostring(err))
    return resp
  end

  local function host_hdr() return "Host: " .. origin.authority end

  -- The end-to-end header names of a parsed header table, in order,
  -- leaving out the ones the proxy regenerates.
  local function e2e_names(headers)
    local skip = { host = true, via = true, connection = true, ["content-length"] = true,
                   ["transfer-encoding"] = true, date = true }
    local names = {}
    for _, f in ipairs(headers) do
      if not skip[f.name:lower()] then names[#names + 1] = f.name end
    end
    return names
  end

  it("answers a GET through curl -x", function()
    local out, code, err = h.curl({ "-x", "http://127.0.0.1:" .. proxy.port, origin.url("/hello") })
    assert.are.equal(0, code, err)
    assert.are.equal("hello\n", out)
  end)

  it("answers a GET over a raw socket with the origin's status, headers and body", function()
    local resp = exchange(h.request("GET", origin.url("/hello"), { host_hdr() }))
    assert.are.equal("HTTP/1.1 200 OK", resp.status_line)
    assert.are.equal("hello\n", resp.body)
    assert.are.equal("length", resp.framing)
    assert.are.equal("6", resp.headers["content-length"])
    assert.are.equal("text/plain", resp.headers["content-type"])
    assert.are.equal("1.1 luaproxy", resp.headers["via"])
    -- The origin said "Connection: close" to the proxy; that is hop-by-hop
    -- and must not reach a client whose own connection stays open.
    assert.is_falsy((resp.headers["connection"] or ""):lower():find("close", 1, true))
  end)

  -- RFC 9110 7.6.2: TRACE and OPTIONS stop at the hop their Max-Forwards
  -- runs out, and go on with one hop fewer otherwise.
  it("answers TRACE and OPTIONS itself at Max-Forwards: 0, and lowers it otherwise", function()
    local trace = exchange(h.request("TRACE", origin.url("/t"), { host_hdr(), "Max-Forwards: 0",
      "X-Test: 1", "Cookie: secret=1", "Proxy-Authorization: Basic c2VjcmV0" }))
    assert.are.equal(200, trace.status)
    assert.are.equal("message/http", trace.headers["content-type"])
    assert.truthy(trace.body:find("^TRACE " .. origin.url("/t"):gsub("%p", "%%%0") .. " HTTP/1.1\r\n"),
      trace.body)
    assert.truthy(trace.body:find("X-Test: 1\r\n", 1, true), trace.body)
    assert.falsy(trace.body:find("secret", 1, true), trace.body)
    local options = exchange(h.request("OPTIONS", origin.url("/o"), { host_hdr(), "Max-Forwards: 0" }))
    assert.are.equal(200, options.status)
    assert.truthy(options.headers["allow"]:find("TRACE", 1, true))
    assert.are.equal(0, #origin.requests())

    assert.are.equal(200, exchange(h.request("OPTIONS", origin.url("/echo"),
      { host_hdr(), "Max-Forwards: 5" })).status)
    assert.are.equal("4", origin.requests()[1].headers["max-forwards"])
    -- other methods carry it on as it came
    assert.are.equal(200, exchange(h.request("GET", origin.url("/echo"),
      { host_hdr(), "Max-Forwards: 0" })).status)
    assert.are.equal("0", origin.requests()[2].headers["max-forwards"])
    assert.are.equal(400, exchange(h.request("TRACE", origin.url("/t"),
      { host_hdr(), "Max-Forwards: x" })).status)
  end)

  -- A count too long for any integer is a very large count, not a
  -- malformed request (RFC 9110 7.6.2; 8.6 asks recipients to expect long
  -- numerals): it goes on as the largest count the proxy sends, less one.
  it("treats a very long Max-Forwards as very large, not as an error", function()
    assert.are.equal(200, exchange(h.request("OPTIONS", origin.url("/echo"),
      { host_hdr(), "Max-Forwards: " .. string.rep("9", 23) })).status)
    assert.are.equal("2147483646", origin.requests()[1].headers["max-forwards"])
    local trace = exchange(h.request("TRACE", origin.url("/t"),
      { host_hdr(), "Max-Forwards: " .. string.rep("0", 23) }))
    assert.are.equal(200, trace.status)
    assert.are.equal("message/http", trace.headers["content-type"])
    assert.are.equal(1, #origin.requests())
  end)

  it("forwards in origin-form and regenerates Host from the target", function()
    local resp = exchange(h.request("GET", origin.url("/echo?a=1&b=two"),
      { "Host: wrong.example:1", "Accept: */*" }))
    assert.are.equal(200, resp.status)
    local reqs = origin.requests()
    assert.are.equal(1, #reqs)
    local r = reqs[1]
    assert.are.equal("GET /echo?a=1&b=two HTTP/1.1", r.request_line)
    assert.are.equal(1, h.header_count(r.headers, "Host"))
    assert.are.equal("127.0.0.1:" .. origin.port, r.headers["host"])
    -- What the origin echoed is what it recorded.
    assert.are.equal(r.head, resp.body)
  end)

  it("sends / for an empty path, keeping the query", function()
    local resp = exchange(h.request("GET", "http://" .. origin.authority, { host_hdr() }))
    assert.are.equal(200, resp.status)
    assert.are.equal("root\n", resp.body)
    resp = exchange(h.request("GET", "http://" .. origin.authority .. "?x=1", { host_hdr() }))
    assert.are.equal(200, resp.status)
    local reqs = origin.requests()
    assert.are.equal(2, #reqs)
    assert.are.equal("GET / HTTP/1.1", reqs[1].request_line)
    assert.are.equal("GET /?x=1 HTTP/1.1", reqs[2].request_line)
  end)

  it("asks for a whole server's options with OPTIONS * when the URL has no path (RFC 9112 3.2.4)", function()
    exchange(h.request("OPTIONS", "http://" .. origin.authority, { host_hdr() }))
    exchange(h.request("OPTIONS", "http://" .. origin.authority .. "/", { host_hdr() }))
    exchange(h.request("OPTIONS", "http://" .. origin.authority .. "?x=1", { host_hdr() }))
    local reqs = origin.wait_requests(3)
    assert.are.equal("OPTIONS * HTTP/1.1", reqs[1].request_line)
    assert.are.equal(origin.authority, reqs[1].headers["host"])
    assert.are.equal("OPTIONS / HTTP/1.1", reqs[2].request_line)
    assert.are.equal("OPTIONS /?x=1 HTTP/1.1", reqs[3].request_line)
  end)

  -- "OPTIONS *" on a connection to the proxy asks about the proxy itself
  -- (RFC 9110 9.3.7, RFC 9112 3.2.4): it answers with what it relays and
  -- keeps the connection. A server elsewhere is asked with its URL, as above.
  it("answers OPTIONS * itself and keeps the connection", function()
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("OPTIONS", "*", { "Host: 127.0.0.1:" .. proxy.port })))
    local resp = assert(h.read_response(s))
    assert.are.equal("HTTP/1.1 200 OK", resp.status_line)
    assert.are.equal("0", resp.headers["content-length"])
    assert.are.equal("", resp.body)
    assert.truthy(resp.headers["allow"]:find("GET", 1, true), resp.headers["allow"])
    assert.truthy(resp.headers["allow"]:find("CONNECT", 1, true), resp.headers["allow"])
    assert.are.equal("1.1 luaproxy", resp.headers["via"])
    assert.is_nil(resp.headers["connection"])
    -- the same connection goes on, and a Max-Forwards changes nothing here
    assert(h.send(s, h.request("OPTIONS", "*", { "Host: 127.0.0.1:" .. proxy.port,
      "Max-Forwards: 3" })))
    assert.are.equal(200, assert(h.read_response(s)).status)
    assert(h.send(s, h.request("GET", origin.url("/hello"), { host_hdr() })))
    resp = assert(h.read_response(s))
    s:close()
    assert.are.equal(200, resp.status)
    assert.are.equal("hello\n", resp.body)
    assert.are.equal(1, #origin.requests())
    assert.truthy(proxy.wait_access_log('"OPTIONS %* HTTP/1%.1" 200 0'), proxy.access_log())
    -- an HTTP/1.0 client gets its answer and the close it asked for
    resp = exchange(h.request("OPTIONS", "*", {}, nil, "HTTP/1.0"))
    assert.are.equal(200, resp.status)
    assert.are.equal("close", (resp.headers["connection"] or ""):lower())
  end)

  -- Only OPTIONS has an asterisk-form (RFC 9112 3.2.4).
  it("refuses * as the target of any other method", function()
    for _, method in ipairs({ "GET", "TRACE", "POST" }) do
      local resp = exchange(h.request(method, "*", { "Host: 127.0.0.1:" .. proxy.port }))
      assert.are.equal(400, resp.status)
    end
    assert.are.equal(0, #origin.requests())
  end)

  for _, method in ipairs({ "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS" }) do
    it("passes the " .. method .. " method through", function()
      local with_body = method == "POST" or method == "PUT" or method == "PATCH"
      local body = with_body and ("body of " .. method) or nil
      local headers = { host_hdr() }
      if body then headers[#headers + 1] = "Content-Length: " .. #body end
      local resp = exchange(h.request(method, origin.url("/echo"), headers, body),
        { method = method })
      assert.are.equal(200, resp.status)
      local r = origin.requests()[1]
      assert.are.equal(method .. " /echo HTTP/1.1", r.request_line)
      assert.are.equal(body or "", r.body)
      if method == "HEAD" then
        assert.are.equal("", resp.body)
        -- The Content-Length a GET would have had, passed through untouched.
        assert.are.equal(tostring(#r.head), resp.headers["content-length"])
      else
        assert.are.equal(r.head .. r.body, resp.body)
      end
    end)
  end

  it("adds Via on the request, appending to an existing one", function()
    exchange(h.request("GET", origin.url("/hello"), { host_hdr() }))
    exchange(h.request("GET", origin.url("/hello"), { host_hdr(), "Via: 1.0 somewhere" }))
    local reqs = origin.requests()
    assert.are.equal(2, #reqs)
    assert.are.equal(1, h.header_count(reqs[1].headers, "Via"))
    assert.are.equal("1.1 luaproxy", reqs[1].headers["via"])
    assert.are.equal(1, h.header_count(reqs[2].headers, "Via"))
    assert.are.equal("1.0 somewhere, 1.1 luaproxy", reqs[2].headers["via"])
  end)

  it("adds Via on the response, appending to an existing one", function()
    local resp = exchange(h.request("GET", origin.url("/headers?Via=1.0%20origin-side"),
      { host_hdr() }))
    assert.are.equal(200, resp.status)
    assert.are.equal(1, h.header_count(resp.headers, "Via"))
    assert.are.equal("1.0 origin-side, 1.1 luaproxy", resp.headers["via"])
  end)

  it("removes hop-by-hop request headers and keeps end-to-end ones in order", function()
    local resp = exchange(h.request("GET", origin.url("/echo"), {
      host_hdr(),
      "X-First: 1",
      "Connection: keep-alive, X-Foo",
      "X-Foo: secret",
      "Keep-Alive: timeout=5",
      "X-Middle: 2",
      "Proxy-Connection: keep-alive",
      "TE: trailers",
      "Trailer: X-Whatever",
      "Proxy-Authorization: Basic dXNlcjpwYXNz",
      "Upgrade: h2c",
      "connection: x-bar",
      "X-BAR: also secret",
      "Accept: */*",
      "X-Last: 3",
    }))
    assert.are.equal(200, resp.status)
    local r = origin.requests()[1]
    for _, name in ipairs({ "X-Foo", "X-Bar", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
                            "Proxy-Authorization", "Upgrade" }) do
      assert.are.equal(0, h.header_count(r.headers, name), name .. " reached the origin")
    end
    assert.are.same({ "X-First", "X-Middle", "Accept", "X-Last" }, e2e_names(r.headers))
    -- The client's Connection field is hop-by-hop; the proxy sends none of
    -- its own, so the upstream connection stays open for reuse.
    assert.are.equal(0, h.header_count(r.headers, "Connection"))
  end)

  it("removes hop-by-hop response headers and keeps end-to-end ones in order", function()
    local resp = exchange(h.request("GET", origin.url(
      "/headers?X-First=1&Connection=X-Foo&X-Foo=1&Keep-Alive=timeout%3D5"
      .. "&Proxy-Connection=keep-alive&X-Middle=2&Trailer=X-T&Upgrade=foo&TE=trailers"
      .. "&Proxy-Authenticate=Basic&Proxy-Authentication-Info=nextnonce%3D1&X-Last=3"),
      { host_hdr() }))
    assert.are.equal(200, resp.status)
    assert.are.equal("headers\n", resp.body)
    for _, name in ipairs({ "X-Foo", "Keep-Alive", "Proxy-Connection", "Trailer", "Upgrade", "TE",
                            "Proxy-Authenticate", "Proxy-Authentication-Info" }) do
      assert.are.equal(0, h.header_count(resp.headers, name), name .. " reached the client")
    end
    assert.is_falsy((resp.headers["connection"] or ""):lower():find("x-foo", 1, true))
    assert.are.same({ "X-First", "X-Middle", "X-Last" }, e2e_names(resp.headers))
  end)

  it("delivers a Content-Length request body intact", function()
    local body = h.pattern(300000)
    local resp = exchange(h.request("POST", origin.url("/echo"),
      { host_hdr(), "Content-Length: " .. #body }, body))
    assert.are.equal(200, resp.status)
    local r = origin.requests()[1]
    assert.are.equal(tostring(#body), r.headers["content-length"])
    assert.are.equal(0, h.header_count(r.headers, "Transfer-Encoding"))
    assert.is_true(r.body == body, "request body differs at the origin")
  end)

  it("delivers a chunked request body with trailers, dropping chunk extensions", function()
    local part1, part2 = ("a"):rep(10), h.pattern(4096)
    local raw = "a;name=val\r\n" .. part1 .. "\r\n"
      .. "1000\r\n" .. part2 .. "\r\n"
      .. "0\r\nX-Trailer: yes\r\nX-Other: 2\r\n\r\n"
    local resp = exchange(h.request("POST", origin.url("/echo"),
      { host_hdr(), "Transfer-Encoding: chunked" }, raw))
    assert.are.equal(200, resp.status)
    local r = origin.requests()[1]
    assert.are.equal("chunked", r.headers["transfer-encoding"]:lower())
    assert.are.equal(0, h.header_count(r.headers, "Content-Length"))
    assert.is_truthy(r.decoded, "origin got malformed chunked framing")
    assert.is_true(r.decoded == part1 .. part2, "decoded body differs at the origin")
    assert.are.equal("yes", r.trailers["x-trailer"])
    assert.are.equal("2", r.trailers["x-other"])
    assert.is_falsy(r.body:find("name=val", 1, true))
  end)

  -- RFC 9110 6.5.1: fields that framing, routing, credentials, caching or
  -- content processing depend on have no place in a trailer, and a next
  -- hop that merges trailers into the head would act on them. The rest
  -- go on.
  local DROPPED_TRAILERS = { "content-length", "transfer-encoding", "host", "set-cookie",
                             "content-type", "location", "trailer", "authorization" }

  it("drops the trailer fields no trailer may carry from a request, keeping the rest", function()
    local raw = "5\r\nhello\r\n0\r\nX-Trailer: yes\r\nContent-Length: 99\r\n"
      .. "Transfer-Encoding: chunked\r\nHost: evil.example\r\nAuthorization: Basic eA==\r\n"
      .. "Content-Type: text/evil\r\nX-Other: 2\r\n\r\n"
    local resp = exchange(h.request("POST", origin.url("/echo"),
      { host_hdr(), "Transfer-Encoding: chunked" }, raw))
    assert.are.equal(200, resp.status)
    local r = origin.requests()[1]
    assert.are.equal("hello", r.decoded)
    assert.are.equal("yes", r.trailers["x-trailer"])
    assert.are.equal("2", r.trailers["x-other"])
    for _, name in ipairs(DROPPED_TRAILERS) do
      assert.is_nil(r.trailers[name], name .. " went on in the trailers: " .. r.body)
    end
    -- The request's own head is the proxy's, as always.
    assert.are.equal(origin.authority, r.headers["host"])
  end)

  it("drops the trailer fields no trailer may carry from a response, keeping the rest", function()
    local resp = exchange(h.request("GET", origin.url("/raw/framing-trailers"), { host_hdr() }))
    assert.are.equal(200, resp.status)
    assert.are.equal("chunked", resp.framing)
    assert.is_nil(resp.error)
    assert.are.equal("hello", resp.body)
    assert.are.equal("ok", resp.trailers["x-checksum"])
    assert.are.equal("db;dur=5", resp.trailers["server-timing"])
    for _, name in ipairs(DROPPED_TRAILERS) do
      assert.is_nil(resp.trailers[name], name .. " reached the client: " .. resp.raw_trailers)
    end
  end)

  it("relays a Content-Length response body intact", function()
    local resp = exchange(h.request("GET", origin.url("/bytes?n=100000"), { host_hdr() }))
    assert.are.equal(200, resp.status)
    assert.are.equal("length", resp.framing)
    assert.are.equal("100000", resp.headers["content-length"])
    assert.is_true(resp.body == h.pattern(100000), "response body differs")
  end)

  -- Bodies of 256 KiB and more that pass through unchanged take the
  -- zero-copy (splice) path: the bytes must still arrive exactly, and the
  -- connection must stay usable after.
  it("relays a large Content-Length body byte for byte and keeps the connection", function()
    local n = 3 * 1024 * 1024 + 17
    local sock = assert(h.connect(proxy.port))
    assert(h.send(sock, h.request("GET", origin.url("/bytes?n=" .. n), { host_hdr() })))
    local resp = assert(h.read_response(sock, { timeout = 20 }))
    assert.are.equal(200, resp.status)
    assert.are.equal(tostring(n), resp.headers["content-length"])
    assert.are.equal(n, #resp.body)
    assert.is_true(resp.body == h.pattern(n), "large body differs")
    assert(h.send(sock, h.request("GET", origin.url("/hello"), { host_hdr() })))
    assert.are.equal("hello\n", assert(h.read_response(sock)).body)
    sock:close()
  end)

  it("relays a large close-delimited body to an HTTP/1.0 client byte for byte", function()
    local n = 2 * 1024 * 1024 + 5
    local raw = h.send_raw(proxy.port, h.request("GET", origin.url("/close?size=" .. n),
      { host_hdr() }, nil, "HTTP/1.0"), { timeout = 20 })
    local head, body = raw:match("^(.-\r\n\r\n)(.*)$")
    assert(head, "no response head")
    assert.truthy(head:find("^HTTP/1.1 200"))
    assert.is_falsy(head:lower():find("content-length", 1, true))
    assert.is_falsy(head:lower():find("transfer-encoding", 1, true))
    assert.are.equal(n, #body)
    assert.is_true(body == h.pattern(n), "close-delimited body differs")
  end)

  it("relays a chunked response body with its trailers", function()
    local resp = exchange(h.request("GET", origin.url("/chunked?n=5&size=1000"), { host_hdr() }))
    assert.are.equal(200, resp.status)
    assert.are.equal("chunked", resp.framing)
    assert.is_nil(resp.error)
    assert.are.equal(0, h.header_count(resp.headers, "Content-Length"))
    assert.are.equal(("x"):rep(5000), resp.body)
    assert.are.equal("done", resp.trailers["x-checksum"])
    assert.are.equal(0, h.header_count(resp.headers, "Trailer"))
  end)

  it("re-chunks a close-delimited response for an HTTP/1.1 client", function()
    local resp = exchange(h.request("GET", origin.url("/close?size=5000"), { host_hdr() }))
    assert.are.equal(200, resp.status)
    assert.are.equal("chunked", resp.framing)
    assert.is_nil(resp.error)
    assert.is_true(resp.body == h.pattern(5000), "response body differs")
  end)

  it("relays each response framing intact to curl", function()
    local px = "http://127.0.0.1:" .. proxy.port
    local out, code = h.curl({ "-x", px, origin.url("/chunked?n=3&size=7") })
    assert.are.equal(0, code)
    assert.are.equal(("x"):rep(21), out)
    out, code = h.curl({ "-x", px, origin.url("/close?size=777") })
    assert.are.equal(0, code)
    assert.are.equal(h.pattern(777), out)
    out, code = h.curl({ "-x", px, origin.url("/bytes?n=70000") })
    assert.are.equal(0, code)
    assert.is_true(out == h.pattern(70000))
  end)

  it("sends no body for HEAD, 204 and 304 and keeps the connection in step", function()
    local s = assert(h.connect(proxy.port))
    local function ask(method, path)
      assert(h.send(s, h.request(method, origin.url(path), { host_hdr() })))
      local resp = h.read_response(s, { method = method })
      assert(resp, "no response to " .. method .. " " .. path)
      return resp
    end
    local resp = ask("HEAD", "/hello")
    assert.are.equal("HTTP/1.1 200 OK", resp.status_line)
    assert.are.equal("6", resp.headers["content-length"])
    resp = ask("HEAD", "/chunked?n=2&size=3")
    assert.are.equal(200, resp.status)
    resp = ask("GET", "/status/204")
    assert.are.equal("HTTP/1.1 204 No Content", resp.status_line)
    assert.are.equal(0, h.header_count(resp.headers, "Transfer-Encoding"))
    resp = ask("GET", "/status/304")
    assert.are.equal("HTTP/1.1 304 Not Modified", resp.status_line)
    assert.are.equal(0, h.header_count(resp.headers, "Transfer-Encoding"))
    -- Any stray body byte above would corrupt this response.
    resp = ask("GET", "/hello")
    assert.are.equal("HTTP/1.1 200 OK", resp.status_line)
    assert.are.equal("hello\n", resp.body)
    s:close()
  end)

  it("forwards 100 Continue before the body is sent (raw socket)", function()
    local body = h.pattern(2000)
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("POST", origin.url("/continue"),
      { host_hdr(), "Content-Length: " .. #body, "Expect: 100-continue" })))
    local interim = h.read_response(s, { timeout = 3 })
    assert(interim, "no 100 Continue before the body was sent")
    assert.are.equal("HTTP/1.1 100 Continue", interim.status_line)
    assert(h.send(s, body))
    local resp = h.read_response(s)
    s:close()
    assert.are.equal(200, resp.status)
    assert.is_true(resp.body == body, "echoed body differs")
  end)

  it("forwards 100 Continue to curl", function()
    local body = h.pattern(5000)
    local file = h.tmpfile(body)
    -- curl waits up to 5 s for the 100 but gives up after 4: without a
    -- forwarded 100 Continue this fails instead of silently sending anyway.
    local out, code, err = h.curl({ "--max-time", "4", "--expect100-timeout", "5",
      "-H", "Expect: 100-continue", "-x", "http://127.0.0.1:" .. proxy.port,
      "--data-binary", "@" .. file, origin.url("/continue") })
    assert.are.equal(0, code, err)
    assert.is_true(out == body, "echoed body differs")
  end)

  it("reaches an IPv6 origin via http://[::1]:PORT/", function()
    local o6 = h.start_origin({ host = "::1" })
    extra[#extra + 1] = o6
    local resp = exchange(h.request("GET", o6.url("/echo"), { "Host: " .. o6.authority }))
    assert.are.equal(200, resp.status)
    local r = o6.requests()[1]
    assert.are.equal("GET /echo HTTP/1.1", r.request_line)
    assert.are.equal("[::1]:" .. o6.port, r.headers["host"])
  end)

  it("resolves a name from /etc/hosts (localhost)", function()
    local url = "http://localhost:" .. origin.port .. "/hello"
    local resp = exchange(h.request("GET", url, { "Host: localhost:" .. origin.port }))
    assert.are.equal(200, resp.status)
    assert.are.equal("hello\n", resp.body)
    assert.are.equal("localhost:" .. origin.port, origin.requests()[1].headers["host"])
  end)

  it("writes one access log line per exchange in the contract's format", function()
    local url = origin.url("/hello")
    exchange(h.request("GET", url, { host_hdr() }))
    local line = proxy.wait_access_log('"GET ' .. url:gsub("%p", "%%%0") .. ' HTTP/1%.1"')
    assert(line, "no access log line; log so far:\n" .. proxy.access_log())
    local day, mon, year, time_, rest = line:match(
      "^127%.0%.0%.1 %- %- %[(%d%d)/(%a%a%a)/(%d%d%d%d):(%d%d:%d%d:%d%d) %+0000%] (.*)$")
    assert(day, "bad line: " .. line)
    assert.are.equal(os.date("!%Y"), year)
    assert.is_truthy(("JanFebMarAprMayJunJulAugSepOctNovDec"):find(mon, 1, true))
    assert.is_truthy(time_)
    local status, bytes, ms = rest:match('^"GET [^"]+ HTTP/1%.1" (%d+) (%d+) (%d+)$')
    assert(status, "bad line tail: " .. rest)
    assert.are.equal("200", status)
    assert.are.equal("6", bytes)

    -- HEAD sends no body bytes; a longer body is counted exactly.
    exchange(h.request("HEAD", url, { host_hdr() }), { method = "HEAD" })
    assert.is_truthy(proxy.wait_access_log('"HEAD [^"]+ HTTP/1%.1" 200 0 %d+$'))
    exchange(h.request("GET", origin.url("/bytes?n=1234"), { host_hdr() }))
    assert.is_truthy(proxy.wait_access_log('/bytes%?n=1234 HTTP/1%.1" 200 1234 %d+$'))
    assert.are.equal(3, select(2, proxy.access_log():gsub("\n", "")))
  end)
end)
