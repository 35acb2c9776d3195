-- End-to-end specs for the admin listener (--admin): who may reach it,
-- the token (bearer, cookie from ?token=), the Host check against DNS
-- rebinding, strict limits, and the proxy refusing to loop into it.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local each_test = require("support.each_test")
local a = require("support.admin")

describe("admin listener", function()
  local procs = each_test.processes()

  -- The proxy with its admin listener: returns proxy, admin.
  local function start(args, opts) return procs.add(a.start(args, opts)) end

  it("is off unless --admin is given", function()
    local proxy = procs.proxy({})
    assert.is_nil(proxy.stderr():find("admin interface", 1, true))
  end)

  it("makes a random token and logs a ready-to-open URL", function()
    local _, adm = start({})
    assert.matches("^%x+$", adm.token)
    assert.is_true(#adm.token >= 32)
    local v = a.get_json(adm, "/api/version")
    assert.equals("luaproxy", v.name)
  end)

  it("refuses requests without the token, or with a wrong one", function()
    local proxy, adm = start({ "--admin-token", "s3cret-token" })
    -- A token the operator gave is theirs: the log does not repeat it.
    assert.is_nil(proxy.stderr():find("s3cret-token", 1, true), proxy.stderr())
    local resp = a.call(adm, "/api/version", { no_token = true })
    assert.equals(401, resp.status)
    assert.matches("token", resp.body)
    resp = a.call(adm, "/api/version", { no_token = true,
      headers = { "Authorization: Bearer s3cret-tokeX" } })
    assert.equals(401, resp.status)
    resp = a.call(adm, "/api/version", { no_token = true,
      headers = { "Authorization: Bearer s3cret-token" } })
    assert.equals(200, resp.status)
  end)

  it("sets a cookie from ?token= and accepts it afterwards", function()
    local _, adm = start({ "--admin-token", "cookie-token-1" })
    local resp = a.call(adm, "/api/version?token=cookie-token-1", { no_token = true })
    assert.equals(200, resp.status)
    local cookie = resp.headers["set-cookie"]
    assert.matches("^luaproxy_admin=cookie%-token%-1;", cookie)
    assert.matches("HttpOnly", cookie)
    assert.matches("SameSite=Strict", cookie)
    resp = a.call(adm, "/api/version", { no_token = true,
      headers = { "Cookie: other=1; " .. cookie:match("^[^;]+") } })
    assert.equals(200, resp.status)
    -- A wrong token in the query sets nothing; nor does the right one with
    -- more after a %00.
    for _, wrong in ipairs({ "nope-nope-nope", "cookie-token-1%00zzz" }) do
      resp = a.call(adm, "/api/version?token=" .. wrong, { no_token = true })
      assert.equals(401, resp.status, wrong)
      assert.is_nil(resp.headers["set-cookie"])
    end
  end)

  it("serves the viewer page behind the token, its assets without", function()
    local _, adm = start({ "--admin-token", "page-token-1" })
    local resp = a.call(adm, "/", { no_token = true })
    assert.equals(401, resp.status)
    assert.matches("^text/html", resp.headers["content-type"])
    resp = a.call(adm, "/?token=page-token-1", { no_token = true })
    assert.equals(303, resp.status)
    assert.equals("/", resp.headers["location"])
    local cookie = resp.headers["set-cookie"]:match("^[^;]+")
    resp = a.call(adm, "/", { no_token = true, headers = { "Cookie: " .. cookie } })
    assert.equals(200, resp.status)
    assert.matches("<title>luaproxy flows</title>", resp.body, 1, true)
    assert.matches("default%-src 'self'", resp.headers["content-security-policy"])
    for path, ctype in pairs({ ["/app.js"] = "text/javascript", ["/app.css"] = "text/css" }) do
      resp = a.call(adm, path, { no_token = true })
      assert.equals(200, resp.status, path)
      assert.matches("^" .. ctype, resp.headers["content-type"])
    end
  end)

  it("refuses a Host that is not its own address or localhost (DNS rebinding)", function()
    local _, adm = start({})
    for _, host in ipairs({ "evil.example", "evil.example:" .. adm.port, "127.0.0.2:" .. adm.port,
                            "127.0.0.1:1" }) do
      local resp = a.call(adm, "/api/version", { headers = { "Host: " .. host } })
      assert.equals(403, resp.status, host)
    end
    for _, host in ipairs({ "localhost:" .. adm.port, "LOCALHOST", "127.0.0.1:" .. adm.port,
                            "127.0.0.1" }) do
      local resp = a.call(adm, "/api/version", { headers = { "Host: " .. host } })
      assert.equals(200, resp.status, host)
    end
  end)

  it("answers unknown pages with 404 and wrong methods with 405", function()
    local _, adm = start({})
    assert.equals(404, a.call(adm, "/nothing-here").status)
    local resp = a.call(adm, "/api/version", { method = "DELETE" })
    assert.equals(405, resp.status)
    -- RFC 9110 15.5.6: a 405 must say which methods the page takes
    assert.equals("GET, HEAD", resp.headers["allow"])
    resp = a.call(adm, "/api/flows", { method = "PUT", headers = { "Content-Length: 0" } })
    assert.equals(405, resp.status)
    assert.equals("GET, HEAD, DELETE", resp.headers["allow"])
  end)

  it("keeps strict limits on heads and bodies", function()
    local _, adm = start({})
    local resp = a.call(adm, "/api/version",
      { headers = { "X-Big: " .. string.rep("a", 20000) } })
    assert.equals(431, resp.status)
    resp = a.call(adm, "/api/version", { method = "POST", body = string.rep("b", 70000) })
    assert.equals(413, resp.status)
    local s = assert(h.connect(adm.port))
    h.send(s, "GARBAGE\r\n\r\n")
    resp = h.read_response(s)
    s:close()
    assert.equals(400, resp.status)
    -- every refused head had 400: the status says which limit it met
    local fields = {}
    for i = 1, 150 do fields[#fields + 1] = "X-F" .. i .. ": a" end
    resp = a.call(adm, "/api/version", { headers = fields })
    assert.equals(431, resp.status)
    s = assert(h.connect(adm.port))
    h.send(s, "GET /api/version HTTP/2.0\r\nHost: localhost\r\n\r\n")
    resp = h.read_response(s)
    s:close()
    assert.equals(505, resp.status)
  end)

  it("refuses a head over 16 KiB that arrives whole in two parts", function()
    local _, adm = start({})
    local head = h.request("GET", "/api/version", { "Host: localhost",
      "Authorization: Bearer " .. adm.token, "X-Big: " .. string.rep("a", 20000) })
    local s = assert(h.connect(adm.port))
    -- The pause is not waiting for anything: it makes the listener read the
    -- first part alone (under the cap, no end of head yet), so the second
    -- read completes a head larger than the cap.
    h.send(s, head:sub(1, 10000))
    h.sleep(0.2)
    h.send(s, head:sub(10001))
    local resp = h.read_response(s)
    s:close()
    assert.equals(431, resp and resp.status)
  end)

  it("serves keep-alive requests on one connection", function()
    local _, adm = start({})
    local s = assert(h.connect(adm.port))
    for _ = 1, 3 do
      h.send(s, h.request("GET", "/api/version", { "Host: localhost",
        "Authorization: Bearer " .. adm.token }))
      local resp = h.read_response(s)
      assert.equals(200, resp.status)
    end
    s:close()
  end)

  it("lets the admin in when others hold every connection, and keeps the admin's own", function()
    local _, adm = start({})
    local function version(s)
      h.send(s, h.request("GET", "/api/version", { "Host: localhost",
        "Authorization: Bearer " .. adm.token }))
      local resp = h.read_response(s)
      return resp and resp.status
    end
    local mine = assert(h.connect(adm.port))
    assert.equals(200, version(mine)) -- a keep-alive connection with the token
    -- Connections that send nothing: 63 fill the listener's 64, and each
    -- one past that takes the place of the oldest of them.
    local held = {}
    for i = 1, 70 do held[i] = assert(h.connect(adm.port)) end
    local fresh = assert(h.connect(adm.port))
    assert.equals(200, version(fresh))
    assert.equals(200, version(mine)) -- never closed for another
    assert.is_true(h.is_closed(held[1], 5), "the oldest connection without the token is open")
    assert.is_false(h.is_closed(held[70], 0.1), "the newest was closed")
    for _, s in ipairs(held) do s:close() end
    mine:close()
    fresh:close()
  end)

  it("answers a HEAD with the head only, and the next request after it", function()
    local _, adm = start({})
    local s = assert(h.connect(adm.port))
    local auth = { "Host: localhost", "Authorization: Bearer " .. adm.token }
    h.send(s, h.request("HEAD", "/api/version", auth) .. h.request("GET", "/api/version", auth)
      .. h.request("HEAD", "/no-such-page", auth))
    local head = assert(h.read_response(s, { method = "HEAD" }))
    assert.equals(200, head.status)
    assert.is_true(tonumber(head.headers["content-length"]) > 0)
    local get = assert(h.read_response(s))
    -- a body after the HEAD's head would be read here as this answer
    assert.equals(200, get.status, get.raw_head)
    assert.equals("luaproxy", a.json.decode(get.body).name)
    local missing = assert(h.read_response(s, { method = "HEAD" }))
    assert.equals(404, missing.status)
    assert.equals("", h.recv_some(s, 0.3) or "", "an error body after a HEAD")
    s:close()
  end)

  -- A replay is answered once its flow is in, after its handler returned:
  -- a request pipelined behind it must be answered then too.
  it("answers a request pipelined behind a replay", function()
    local origin = h.start_origin()
    procs.add(origin)
    local proxy, adm = start({ "--workers", "1" })
    h.get(proxy.port, origin.url("/hello"))
    local f = assert(h.wait_for(function() return a.get_json(adm, "/api/flows")[1] end, 5))
    local s = assert(h.connect(adm.port))
    local auth = { "Host: localhost", "Authorization: Bearer " .. adm.token }
    h.send(s, h.request("POST", "/api/flows/" .. a.id(f.id) .. "/replay",
      { auth[1], auth[2], "Content-Length: 0" }) .. h.request("GET", "/api/version", auth))
    local replay = assert(h.read_response(s))
    assert.equals(200, replay.status, replay.body)
    assert.is_number(a.json.decode(replay.body).id)
    local version, err = h.read_response(s)
    assert(version, "no answer to the pipelined request: " .. tostring(err))
    assert.equals(200, version.status)
    assert.equals("luaproxy", a.json.decode(version.body).name)
    s:close()
  end)

  -- The cookie is SameSite=Strict, but every port of 127.0.0.1 (or of
  -- localhost) is the same site: a page served on another one makes the
  -- browser send it with a form POST, which needs no preflight (CSRF).
  it("refuses a request that changes something from another origin", function()
    local origin = h.start_origin()
    procs.add(origin)
    local proxy, adm = start({ "--workers", "1" })
    h.get(proxy.port, origin.url("/hello"))
    local f = assert(h.wait_for(function() return a.get_json(adm, "/api/flows")[1] end, 5))
    local replay = "/api/flows/" .. a.id(f.id) .. "/replay"
    local own = "Origin: http://127.0.0.1:" .. adm.port
    local cookie = { "Cookie: luaproxy_admin=" .. adm.token }
    for _, case in ipairs({
      { "POST", replay, { "Origin: http://127.0.0.1:" .. origin.port } },
      { "POST", replay, { "Origin: null" } },
      { "POST", replay, { "Origin: http://localhost:" .. adm.port } }, -- Host says 127.0.0.1
      { "POST", replay, { own, "Origin: http://127.0.0.1:1" } },
      { "POST", replay, { "Sec-Fetch-Site: same-site" } },
      { "DELETE", "/api/flows", { "Sec-Fetch-Site: cross-site" } },
      { "DELETE", "/api/flows", { "Origin: http://evil.invalid" } },
    }) do
      for _, x in ipairs(cookie) do case[3][#case[3] + 1] = x end
      local resp = a.call(adm, case[2], { method = case[1], headers = case[3], no_token = true, body = "" })
      assert.equals(403, resp.status, case[1] .. " " .. table.concat(case[3], ", "))
    end
    assert.equals(1, #a.get_json(adm, "/api/flows")) -- nothing replayed, nothing cleared
    -- From the viewer's own page, or from no browser at all: done.
    local resp = a.call(adm, replay, { method = "POST", body = "",
      headers = { own, "Sec-Fetch-Site: same-origin", cookie[1] }, no_token = true })
    assert.equals(200, resp.status, resp.body)
    assert.equals(200, a.call(adm, replay, { method = "POST", body = "" }).status)
    -- a GET reads nothing another origin's page could see, and changes nothing
    assert.equals(200, a.call(adm, "/api/store", { headers = { "Origin: http://evil.invalid",
      "Sec-Fetch-Site: cross-site" } }).status)
    resp = a.call(adm, "/api/flows", { method = "DELETE", headers = { own, "Sec-Fetch-Site: same-origin" } })
    assert.equals(200, resp.status, resp.body)
  end)

  it("closes a request that trickles in for longer than --header-timeout", function()
    local _, adm = start({ "--header-timeout", "1" })
    local s = assert(h.connect(adm.port))
    local line = "GET /api/version HTTP/1.1\r\nHost: localhost\r\nX-Slow: " .. string.rep("a", 100)
    local started, closed_after = h.now(), nil
    -- A byte every 0.3 s: each one came in time, the request did not.
    for i = 1, #line do
      local ok = s:send(line:sub(i, i))
      if not ok or h.is_closed(s, 0.3) then
        closed_after = h.now() - started
        break
      end
    end
    s:close()
    assert(closed_after, "a request sent a byte every 0.3 s was never cut off")
  end)

  it("closes on clients outside --admin-allow", function()
    local _, adm = start({ "--admin-allow", "10.0.0.0/8" })
    local s = assert(h.connect(adm.port))
    h.send(s, h.request("GET", "/api/version", { "Host: localhost" }))
    local resp = h.read_response(s)
    s:close()
    assert.is_nil(resp)
  end)

  it("refuses a non-loopback --admin address without --admin-allow", function()
    local code, _, err = h.run_proxy({ "--admin", "0.0.0.0:0" })
    assert.equals(2, code)
    assert.matches("admin%-allow", err)
    code, _, err = h.run_proxy({ "--admin-token", "short" })
    assert.equals(2, code)
    assert.matches("admin%-token", err)
    code, _, err = h.run_proxy({ "--har", "/tmp/x.har" })
    assert.equals(2, code)
    assert.matches("needs %-%-admin", err)
    code, _, err = h.run_proxy({ "--admin", "127.0.0.1:0", "--flows", "0", "--har", "/tmp/x.har" })
    assert.equals(2, code)
    assert.matches("%-%-flows 0", err)
    code, _, err = h.run_proxy({ "--flow-body-max", "9999999999" })
    assert.equals(2, code)
    assert.matches("flow%-body%-max", err)
  end)

  it("refuses requests through the proxy to the admin address as a loop", function()
    for _, workers in ipairs({ "1", "2" }) do
      local proxy, adm = start({ "--workers", workers })
      local resp = h.get(proxy.port, "http://127.0.0.1:" .. adm.port .. "/api/version")
      assert.equals(508, resp.status)
    end
  end)

  -- A client sends the admin's own URL through the proxy only by mistake
  -- (curl with http_proxy set), with the token in its query or headers:
  -- the refusal must not write it into the logs, the flows or HAR.
  it("keeps the admin token of a request refused as a loop out of logs, flows and HAR", function()
    local log = h.tmpfile("", "access.log")
    local proxy, adm = start({ "--access-log", log, "--log-format", "json" })
    local secret = "s3cret" .. adm.token:sub(1, 8)
    local s = assert(h.connect(proxy.port))
    h.send(s, h.request("GET", "http://127.0.0.1:" .. adm.port .. "/api/flows?token=" .. secret,
      { "Host: 127.0.0.1:" .. adm.port, "Authorization: Bearer " .. secret,
        "Cookie: luaproxy_admin=" .. secret }))
    assert.equals(508, h.read_response(s).status)
    s:close()
    local flow = h.wait_for(function()
      local list = a.get_json(adm, "/api/flows")
      return list[1] and not list[1].running and list[1]
    end, 10)
    assert(flow, "no flow of the refused request")
    assert.equals("http://127.0.0.1:" .. adm.port .. "/api/flows", flow.url)
    local seen = {
      log = h.wait_for(function()
        local text = h.read_file(log) or ""
        return text:find("/api/flows", 1, true) and text
      end, 10) or "",
      stderr = proxy.stderr(),
      flow = a.call(adm, "/api/flows/" .. a.id(flow.id)).body,
      har = a.call(adm, "/flows.har").body,
    }
    assert.truthy(seen.stderr:find("/api/flows -> 508", 1, true), seen.stderr)
    for where, text in pairs(seen) do
      assert.is_nil(text:find(secret, 1, true), "the token is in the " .. where .. ":\n" .. text)
    end
  end)
end)
