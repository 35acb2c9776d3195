-- End-to-end specs for flow capture and the viewer's API (--admin): the
-- list and its filter, one flow in full, bodies (raw, decoded, truncated),
-- what hooks changed, the event stream, replay, clearing, HAR (checked
-- against a HAR 1.2 JSON schema by python3-jsonschema), the store's caps,
-- tunnels and WebSocket messages, and --flows 0.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local each_test = require("support.each_test")
local a = require("support.admin")
local raw_origin = require("support.raw_origin")
local json = a.json

local SCHEMA = "tests/spec/fixtures/har-1.2.schema.json"

-- Validates a HAR document (a string) against the schema; returns ok,
-- output. Every object the schema describes is closed first: HAR 1.2
-- allows custom fields only with a leading underscore, so a key the spec
-- does not name ("encoding" in postData, say) fails.
local VALIDATE_HAR = [[
import json, sys, jsonschema
def close(o):
    if isinstance(o, dict):
        if o.get("type") == "object" and "properties" in o:
            o.setdefault("patternProperties", {"^_": {}})
            o.setdefault("additionalProperties", False)
        for v in o.values():
            close(v)
    elif isinstance(o, list):
        for v in o:
            close(v)
schema = json.load(open(sys.argv[2]))
close(schema)
jsonschema.validate(json.load(open(sys.argv[1])), schema)
]]
local function validate_har(text)
  local file = h.tmpfile(text, "flows.har")
  local out, code = h.sh("python3 -c " .. h.shell_quote(VALIDATE_HAR) .. " "
    .. h.shell_quote(file) .. " " .. h.shell_quote(SCHEMA) .. " 2>&1")
  return code == 0, out
end

-- Waits until the store holds at least <n> flows matching <filter>.
local function wait_flows(adm, n, filter)
  local path = "/api/flows" .. (filter and ("?filter=" .. a.escape(filter)) or "")
  return h.wait_for(function()
    local list = a.get_json(adm, path)
    return #list >= n and list
  end, 10)
end

describe("flows", function()
  local procs = each_test.processes()
  local origin
  before_each(function() origin = procs.origin() end)

  -- The proxy with its admin listener: returns proxy, admin.
  local function start(args, opts) return procs.add(a.start(args, opts)) end

  local function script(text)
    return h.tmpfile(text, "flows_script.lua")
  end

  it("lists the flows of every worker with the documented fields", function()
    local proxy, adm = start({ "--workers", "2" })
    -- New connections are spread by the kernel: 30 all landing on one
    -- worker would be a 1-in-2^29 chance.
    for i = 1, 30 do
      assert.equals(200, h.get(proxy.port, origin.url("/hello?n=" .. i)).status)
    end
    local list = wait_flows(adm, 30)
    assert.is_not_nil(list, "not all 30 flows arrived")
    assert.equals(30, #list)
    local seen = {}
    for _, f in ipairs(list) do
      for _, k in ipairs({ "id", "started", "method", "url", "status", "req_bytes", "res_bytes",
                           "duration_ms", "client", "modified" }) do
        assert.is_not_nil(f[k], k)
      end
      assert.equals(json.null, f.error)
      assert.equals(false, f.modified)
      assert.equals("GET", f.method)
      assert.equals(200, f.status)
      assert.equals(6, f.res_bytes)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", f.started)
      assert.matches("^127%.0%.0%.1:%d+$", f.client)
      seen[f.url] = true
    end
    for i = 1, 30 do assert.is_true(seen[origin.url("/hello?n=" .. i)]) end
    -- ids are unique across workers; odd and even ids mean both served
    local odd, even = false, false
    for _, f in ipairs(list) do
      if f.id % 2 == 1 then odd = true else even = true end
    end
    assert.is_true(odd and even, "flows from both workers")
    -- limit: the newest N, oldest first
    local last = a.get_json(adm, "/api/flows?limit=3")
    assert.equals(3, #last)
    assert.equals("number", type(last[1].id))
  end)

  it("shows one flow in full: heads as received and forwarded, bodies, timings", function()
    local proxy, adm = start({})
    local body = "name=ada&lang=lua"
    local out = h.curl({ "-x", "127.0.0.1:" .. proxy.port, "-d", body, "-H", "X-Trace: 1",
                         origin.url("/echo") })
    assert.matches("name=ada", out)
    local f = wait_flows(adm, 1)[1]
    local d = a.get_json(adm, "/api/flows/" .. a.id(f.id))
    assert.equals("POST", d.method)
    assert.matches("^POST http://", d.request.received.line)
    assert.matches("^POST /echo HTTP/1.1$", d.request.forwarded.line)
    local function has(headers, name, value)
      for _, kv in ipairs(headers) do
        if kv[1]:lower() == name:lower() and (value == nil or kv[2] == value) then return true end
      end
      return false
    end
    assert.is_true(has(d.request.received.headers, "Proxy-Connection"))
    assert.is_false(has(d.request.forwarded.headers, "Proxy-Connection"))
    assert.is_true(has(d.request.forwarded.headers, "Via", "1.1 luaproxy"))
    assert.is_true(has(d.request.forwarded.headers, "X-Trace", "1"))
    assert.equals(200, d.response.received.status)
    assert.is_true(has(d.response.sent.headers, "Via"))
    assert.equals(#body, d.request.body.size)
    assert.is_false(d.request.body.truncated)
    for _, k in ipairs({ "blocked", "dns", "connect", "tls", "send", "wait", "receive" }) do
      assert.equals("number", type(d.timings[k]), k)
    end
    assert.equals(-1, d.timings.tls)
    assert.is_true(d.timings.wait >= 0)
    local req = a.call(adm, "/api/flows/" .. a.id(f.id) .. "/request/body")
    assert.equals(200, req.status)
    assert.equals(body, req.body)
    assert.equals("application/octet-stream", req.headers["content-type"])
    local res = a.call(adm, "/api/flows/" .. a.id(f.id) .. "/response/body")
    assert.equals(out, res.body)
    assert.equals(404, a.call(adm, "/api/flows/999999").status)
    assert.equals(404, a.call(adm, "/api/flows/abc").status)
    assert.equals(404, a.call(adm, "/api/flows/" .. a.id(f.id) .. "/nothing").status)
  end)

  it("shows a request sent on a kept upstream connection with no DNS or connect of its own", function()
    local proxy, adm = start({})
    -- one client connection, two requests: the second reuses the upstream
    local _, code = h.curl({ "-s", "-x", "127.0.0.1:" .. proxy.port, "-o", "/dev/null",
                             origin.url("/hello?n=1"), "-o", "/dev/null", origin.url("/hello?n=2") })
    assert.equals(0, code)
    local list = wait_flows(adm, 2)
    local first = a.get_json(adm, "/api/flows/" .. a.id(list[1].id))
    local second = a.get_json(adm, "/api/flows/" .. a.id(list[2].id))
    assert.is_true(first.timings.dns >= 0 and first.timings.connect >= 0)
    -- -1: the phase did not happen (the viewer shows a dash), not 0 ms
    assert.equals(-1, second.timings.dns)
    assert.equals(-1, second.timings.connect)
    assert.equals(-1, second.timings.tls)
    local har = a.call(adm, "/flows.har").body
    assert.is_true((validate_har(har)))
    local entries = json.decode(har).log.entries
    assert.equals(2, #entries)
    local t = entries[2].timings
    assert.equals(-1, t.dns)
    assert.equals(-1, t.connect)
    assert.is_true(t.blocked >= 0)
    local sum = 0
    for _, k in ipairs({ "blocked", "dns", "connect", "send", "wait", "receive" }) do
      if t[k] >= 0 then sum = sum + t[k] end
    end
    assert.near(sum, entries[2].time, 0.01)
    assert.is_true(entries[1].timings.connect >= 0)
  end)

  -- A kept connection the upstream closed before answering: the request
  -- goes again on a fresh one, and its flow shows that attempt (its own
  -- lookup and connect), not the kept connection's missing phases.
  it("shows a request retried on a fresh connection with the retry's connect", function()
    local proxy, adm = start({})
    local server, _, target = h.raw_listener()
    local s = assert(h.connect(proxy.port))
    local function ask(path)
      assert(h.send(s, "GET http://" .. target .. path .. " HTTP/1.1\r\nHost: " .. target .. "\r\n\r\n"))
    end
    ask("/one")
    local kept = assert(server:accept())
    h.skip_head(kept)
    assert(kept:send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    assert.equals(200, assert(h.read_response(s)).status)
    ask("/two")
    h.skip_head(kept) -- it came on the kept connection, which closes unanswered
    kept:close()
    local fresh = assert(server:accept())
    h.skip_head(fresh)
    assert(fresh:send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    assert.equals(200, assert(h.read_response(s)).status)
    s:close()
    fresh:close()
    server:close()
    local list = wait_flows(adm, 2)
    local second = a.get_json(adm, "/api/flows/" .. a.id(list[2].id))
    assert.matches("/two$", second.url)
    assert.is_true(second.timings.dns >= 0, second.timings.dns)
    assert.is_true(second.timings.connect >= 0, second.timings.connect)
    assert.is_true(second.timings.blocked >= 0, second.timings.blocked)
  end)

  it("counts the time a hook holds a request as blocked, not as the DNS lookup", function()
    local s = script([[
      function on_request(tx) proxy.sleep(0.3) end
    ]])
    local proxy, adm = start({ "--script", s })
    assert.equals(200, h.get(proxy.port, origin.url("/hello")).status)
    local f = wait_flows(adm, 1)[1]
    local d = a.get_json(adm, "/api/flows/" .. a.id(f.id))
    assert.is_true(d.timings.blocked >= 290, "blocked " .. d.timings.blocked)
    assert.is_true(d.timings.dns >= 0 and d.timings.dns < 200, "dns " .. d.timings.dns)
    local e = json.decode(a.call(adm, "/flows.har").body).log.entries[1]
    assert.near(d.timings.blocked, e.timings.blocked, 0.002)
    assert.near(d.timings.dns, e.timings.dns, 0.002)
    local sum = 0
    for _, k in ipairs({ "blocked", "dns", "connect", "send", "wait", "receive" }) do
      if e.timings[k] >= 0 then sum = sum + e.timings[k] end
    end
    assert.near(sum, e.time, 0.01)
    assert.near(d.duration_ms, e.time, 0.01)
  end)

  it("records errors, and local answers as sent", function()
    local proxy, adm = start({})
    local resp = h.get(proxy.port, "http://127.0.0.1:" .. h.closed_port() .. "/")
    assert.equals(502, resp.status)
    local f = wait_flows(adm, 1, "~e")[1]
    assert.equals(502, f.status)
    assert.matches("refused", f.error)
    local body = a.call(adm, "/api/flows/" .. a.id(f.id) .. "/response/body").body
    assert.equals(resp.body, body)
  end)

  -- The cause of a failed TLS handshake is the TLS state's own text,
  -- freed with the upstream connection before the flow was recorded: the
  -- record read it after it was freed (under the sanitizer, the worker
  -- aborted).
  it("records why the TLS handshake with the upstream failed", function()
    local proxy, adm = start({ "-s", script("function before_connect(tx) tx.upstream.tls = true end") })
    local server, _, target = h.raw_listener()
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("GET", "http://" .. target .. "/", { "Host: " .. target })))
    local up = assert(server:accept())
    up:close() -- in the middle of the handshake
    server:close()
    local resp = assert(h.read_response(s))
    s:close()
    assert.equals(502, resp.status)
    local f = wait_flows(adm, 1, "~e")[1]
    assert.equals(502, f.status)
    assert.matches("TLS", f.error, 1, true)
    assert.is_true(proxy.alive())
  end)

  it("records a head the proxy refused, with the bytes that came", function()
    local proxy, adm = start({})
    local resp = h.send_raw(proxy.port, "GET http://127.0.0.1/ HTTP/1.1\r\nBad Header\r\n\r\n")
    local f = wait_flows(adm, 1)[1]
    assert.equals(400, f.status)
    assert.equals("", f.method)
    assert.equals("GET http://127.0.0.1/ HTTP/1.1", f.url)
    assert.is_string(f.error)
    local d = a.get_json(adm, "/api/flows/" .. a.id(f.id))
    assert.equals(json.null, d.request.received)
    assert.equals(400, d.response.sent.status)
    assert.is_true(#a.get_json(adm, "/api/flows?filter=~e") == 1)
    assert.is_not_nil(resp)
    -- not an HTTP request HAR could describe: left out, the rest stays valid
    h.get(proxy.port, origin.url("/hello"))
    wait_flows(adm, 2)
    local har = a.call(adm, "/flows.har").body
    assert.is_true((validate_har(har)))
    assert.equals(1, #json.decode(har).log.entries)
  end)

  it("keeps bodies up to --flow-body-max and marks the rest truncated", function()
    local proxy, adm = start({ "--flow-body-max", "1000" })
    local resp = h.get(proxy.port, origin.url("/bytes?n=300000"))
    assert.equals(300000, #resp.body) -- capture does not change what is relayed
    assert.equals(h.pattern(300000), resp.body)
    local f = wait_flows(adm, 1)[1]
    local d = a.get_json(adm, "/api/flows/" .. a.id(f.id))
    assert.is_true(d.response.body.truncated)
    assert.equals(1000, d.response.body.kept)
    assert.equals(300000, d.res_bytes)
    local kept = a.call(adm, "/api/flows/" .. a.id(f.id) .. "/response/body").body
    assert.equals(h.pattern(1000), kept)
    -- a chunked body too
    resp = h.get(proxy.port, origin.url("/chunked?n=5&size=700"))
    assert.equals(3500, #resp.body)
    f = wait_flows(adm, 1, "chunked")[1]
    d = a.get_json(adm, "/api/flows/" .. a.id(f.id))
    assert.is_true(d.response.body.truncated)
    assert.equals(1000, d.response.body.kept)
    -- an upload: its size is all of it, not what the capture saw before
    -- it stepped aside (the body then goes on by the fast path)
    local upload = ("u"):rep(2 * 1024 * 1024)
    h.curl({ "-s", "-o", "/dev/null", "-x", "127.0.0.1:" .. proxy.port, "--data-binary", "@"
      .. h.tmpfile(upload, "upload.bin"), origin.url("/echo") })
    f = wait_flows(adm, 1, "~m POST")[1]
    d = a.get_json(adm, "/api/flows/" .. a.id(f.id))
    assert.is_true(d.request.body.truncated)
    assert.equals(1000, d.request.body.kept)
    assert.equals(#upload, d.request.body.size)
    assert.equals(#upload, d.req_bytes)
    -- HAR: "size" is the whole body's and the text only what was kept,
    -- so a comment says the text is cut (a 20 MB download kept at its
    -- first MiB must not read as a 1 MiB file)
    local har = a.call(adm, "/flows.har").body
    assert.is_true((validate_har(har)))
    local seen = 0
    for _, e in ipairs(json.decode(har).log.entries) do
      if e.request.url == origin.url("/bytes?n=300000") then
        assert.equals(300000, e.response.content.size)
        assert.equals(h.pattern(1000), e.response.content.text)
        assert.equals("truncated: the text is the first 1000 bytes of 300000, as much as the "
          .. "capture kept", e.response.content.comment)
        seen = seen + 1
      elseif e.request.method == "POST" then
        assert.equals(("u"):rep(1000), e.request.postData.text)
        assert.matches("^truncated: the text is the first 1000 bytes of " .. #upload,
          e.request.postData.comment)
        seen = seen + 1
      end
    end
    assert.equals(2, seen)
  end)

  it("keeps the store within --flows and --flows-memory, dropping the oldest", function()
    local proxy, adm = start({ "--flows", "5" })
    for i = 1, 9 do h.get(proxy.port, origin.url("/hello?i=" .. i)) end
    wait_flows(adm, 1, "i=9")
    local list = a.get_json(adm, "/api/flows")
    assert.equals(5, #list)
    assert.equals(origin.url("/hello?i=5"), list[1].url)
    assert.equals(origin.url("/hello?i=9"), list[5].url)
    proxy.stop()

    -- 1 MiB for all: 40 flows of 200 kB each cannot all stay
    proxy, adm = start({ "--flows-memory", "1" })
    for i = 1, 40 do
      local r = h.get(proxy.port, origin.url("/bytes?n=200000&i=" .. i))
      assert.equals(200000, #r.body)
    end
    wait_flows(adm, 1, "i=40$")
    list = a.get_json(adm, "/api/flows")
    assert.is_true(#list >= 3 and #list <= 5, "kept " .. #list)
    assert.matches("i=40$", list[#list].url)
    local store = a.get_json(adm, "/api/store")
    assert.equals(#list, store.flows)
    assert.equals(1048576, store.max_bytes)
    assert.is_true(store.bytes <= 1048576 and store.bytes > 3 * 200000, "bytes " .. store.bytes)
  end)

  -- Captures still in flight keep bodies too, outside the store: all of
  -- them together may keep --flows-memory, and a body past that is cut
  -- short as one past --flow-body-max is, while the relay goes on as
  -- before. Four responses stall with 300000 of their 400000 bytes sent,
  -- in a 1 MiB budget: the first three keep all they got, the fourth the
  -- 148576 bytes left. Two workers: the budget is the proxy's, not each
  -- worker's, so where the kernel puts each connection does not matter.
  it("caps what captures in flight hold at --flows-memory, and says which bodies were cut short", function()
    local raw = raw_origin.new()
    finally(function() raw.close() end)
    local proxy, adm = start({ "--flows-memory", "1", "--workers", "2" })
    local size, first = 400000, 300000
    local budget = 1024 * 1024
    local x = {}
    -- The origin sends <bytes> a piece at a time, each read by the client
    -- before the next goes, so no socket buffer has to hold them.
    local function relay(e, bytes)
      for i = 1, #bytes, 65536 do
        local piece = bytes:sub(i, i + 65535)
        assert(e.conn.send(piece))
        local got, err = h.recv_exact(e.client, #piece)
        assert.equals(#piece, #got, err)
        e.got[#e.got + 1] = got
      end
    end
    local function detail(i)
      local f = wait_flows(adm, 1, "~u /cap" .. i .. "$")
      assert.is_not_nil(f, "flow " .. i .. " arrived")
      return a.get_json(adm, "/api/flows/" .. a.id(f[1].id)), f[1].id
    end
    for i = 1, 4 do
      local e = { body = h.pattern(size, i), got = {} }
      e.client = assert(h.connect(proxy.port))
      h.send(e.client, h.request("GET", "http://" .. raw.authority .. "/cap" .. i,
        { "Host: " .. raw.authority }))
      e.conn = raw.next_request()
      assert.is_not_nil(e.conn, "request " .. i .. " reached the origin")
      assert(e.conn.send("HTTP/1.1 200 OK\r\nContent-Length: " .. size .. "\r\n\r\n"))
      local head = ""
      repeat
        local data, err = h.recv_some(e.client)
        assert.is_true(#data > 0, "no head: " .. tostring(err))
        head = head .. data
      until head:find("\r\n\r\n", 1, true)
      assert.matches("^HTTP/1.1 200", head)
      relay(e, e.body:sub(1, first))
      x[i] = e
    end
    -- All four stall in the middle of their bodies.
    local store = a.get_json(adm, "/api/store")
    assert.equals(budget, store.in_flight_max_bytes)
    assert.equals(budget, store.in_flight_bytes)
    assert.equals(budget, (a.call(adm, "/metrics").body:match(
      "\nluaproxy_flow_capture_bytes (%d+)") or 0) + 0)

    -- The first ends: its last 100000 bytes found no room.
    relay(x[1], x[1].body:sub(first + 1))
    local d, id = detail(1)
    assert.is_true(d.response.body.truncated)
    assert.equals(size, d.response.body.size)
    assert.equals(first, d.response.body.kept)
    assert.equals(x[1].body:sub(1, first),
      a.call(adm, "/api/flows/" .. a.id(id) .. "/response/body").body)
    assert.equals(budget - first, a.get_json(adm, "/api/store").in_flight_bytes)
    -- The fourth was cut short before: the room the first left does not
    -- make it keep bytes after a gap.
    relay(x[4], x[4].body:sub(first + 1))
    d, id = detail(4)
    assert.is_true(d.response.body.truncated)
    assert.equals(size, d.response.body.size)
    assert.equals(budget - 3 * first, d.response.body.kept)
    assert.equals(x[4].body:sub(1, budget - 3 * first),
      a.call(adm, "/api/flows/" .. a.id(id) .. "/response/body").body)
    -- The other two find room again, and keep all.
    for i = 2, 3 do
      relay(x[i], x[i].body:sub(first + 1))
      d, id = detail(i)
      assert.is_false(d.response.body.truncated)
      assert.equals(size, d.response.body.kept)
      assert.equals(x[i].body, a.call(adm, "/api/flows/" .. a.id(id) .. "/response/body").body)
    end
    -- Relaying never noticed.
    for i = 1, 4 do
      assert.equals(x[i].body, table.concat(x[i].got), "response " .. i .. " as sent")
      x[i].client:close()
    end
    assert.equals(0, a.get_json(adm, "/api/store").in_flight_bytes)
  end)

  it("costs nothing and serves no flows with --flows 0", function()
    local proxy, adm = start({ "--flows", "0" })
    assert.equals(200, h.get(proxy.port, origin.url("/hello")).status)
    assert.equals(404, a.call(adm, "/api/flows").status)
    assert.equals(200, a.call(adm, "/api/version").status)
  end)

  it("shows what the hooks changed, which hooks ran and what scripts logged", function()
    local s = script([[
      function on_request(tx)
        tx.req.headers["X-Added"] = "yes"
        tx.req.headers["User-Agent"] = nil
        proxy.log("request seen: " .. tx.req.path)
      end
      function on_response(tx)
        tx.res.headers["X-Resp"] = "1"
      end
    ]])
    local proxy, adm = start({ "--script", s })
    assert.equals(200, h.get(proxy.port, origin.url("/hello"), { "User-Agent: spec" }).status)
    local f = wait_flows(adm, 1)[1]
    assert.is_true(f.modified)
    local d = a.get_json(adm, "/api/flows/" .. a.id(f.id))
    local changes = table.concat(d.changes, "\n")
    assert.matches("request header X%-Added added", changes)
    assert.matches("request header User%-Agent removed", changes)
    assert.matches("response header X%-Resp added", changes)
    assert.is_not_nil(d.request.before_hooks)
    assert.is_not_nil(d.response.before_hooks)
    assert.equals(2, #d.hooks)
    assert.matches("flows_script.lua$", d.hooks[1].script)
    assert.equals("on_request", d.hooks[1].hook)
    assert.equals("on_response", d.hooks[2].hook)
    assert.equals(1, #d.logs)
    assert.equals("request seen: /hello", d.logs[1].line)
    assert.equals(1, #a.get_json(adm, "/api/flows?filter=~modified"))
  end)

  it("attributes each change to the script and hook that made it", function()
    -- a.lua reads the request for the first time inside its hook; b.lua
    -- finds it already read: both ways of comparing are covered.
    local sa = h.tmpfile([[
      function on_request(tx) tx.req.headers["X-From-A"] = "a" end
      function on_response(tx) end
    ]], "a.lua")
    local sb = h.tmpfile([[
      function on_request(tx)
        tx.req.headers["User-Agent"] = "b"
        tx.req.path = "/hello"
      end
      function on_response(tx)
        tx.res.headers["X-From-B"] = "b"
        tx.res.status = 203
      end
    ]], "b.lua")
    local proxy, adm = start({ "--script", sa, "--script", sb })
    assert.equals(203, h.get(proxy.port, origin.url("/other"), { "User-Agent: spec" }).status)
    local f = wait_flows(adm, 1)[1]
    local d = a.get_json(adm, "/api/flows/" .. a.id(f.id))
    assert.equals(4, #d.hooks)
    local by = {}
    for _, hk in ipairs(d.hooks) do
      by[hk.script:match("[^/]+$") .. " " .. hk.hook] = table.concat(hk.changed, "\n")
    end
    assert.equals("request header X-From-A added", by["a.lua on_request"])
    assert.equals("", by["a.lua on_response"])
    assert.equals("request url " .. origin.url("/other") .. " -> " .. origin.url("/hello")
      .. "\nrequest header User-Agent changed", by["b.lua on_request"])
    assert.equals("response status 200 -> 203\nresponse header X-From-B added",
      by["b.lua on_response"])
  end)

  it("keeps a request body collected whole (tx.req.buffer_body), as received and as sent", function()
    local s = script([[
      function on_request(tx) tx.req.buffer_body = true end
      function on_request_chunk(tx, chunk, eof) return chunk:upper() .. "!" end
    ]])
    local proxy, adm = start({ "--script", s })
    local out = h.curl({ "-x", "127.0.0.1:" .. proxy.port, "-H", "Transfer-Encoding: chunked",
                         "--data-binary", "whole body", origin.url("/echo") })
    assert.matches("WHOLE BODY!", out)
    local f = wait_flows(adm, 1)[1]
    assert.is_true(f.modified)
    local base = "/api/flows/" .. a.id(f.id) .. "/request/body"
    assert.equals("WHOLE BODY!", a.call(adm, base).body)
    assert.equals("whole body", a.call(adm, base .. "?as=received").body)
    local d = a.get_json(adm, "/api/flows/" .. a.id(f.id))
    assert.same({ "request body" }, d.hooks[2].changed)
  end)

  it("marks a script's answer and a changed body", function()
    local s = script([[
      function on_request(tx)
        if tx.req.path == "/mock" then tx:respond(200, "mocked\n") end
      end
      function on_response_chunk(tx, chunk, eof) return chunk:upper() end
    ]])
    local proxy, adm = start({ "--script", s })
    assert.equals("mocked\n", h.get(proxy.port, origin.url("/mock")).body)
    assert.equals("HELLO\n", h.get(proxy.port, origin.url("/hello")).body)
    local list = wait_flows(adm, 2)
    local mock, upper = list[1], list[2]
    assert.is_true(mock.modified)
    assert.is_true(upper.modified)
    local d = a.get_json(adm, "/api/flows/" .. a.id(mock.id))
    assert.is_true(d["local"])
    assert.same({ "answered 200 (tx:respond)" }, d.hooks[1].changed)
    d = a.get_json(adm, "/api/flows/" .. a.id(upper.id))
    assert.is_true(d.response.body.changed)
    assert.equals(2, #d.hooks) -- on_request, then on_response_chunk once
    assert.same({}, d.hooks[1].changed)
    assert.equals("on_response_chunk", d.hooks[2].hook)
    assert.same({ "response body" }, d.hooks[2].changed)
    assert.equals("HELLO\n", a.call(adm, "/api/flows/" .. a.id(upper.id) .. "/response/body").body)
    assert.equals("hello\n",
      a.call(adm, "/api/flows/" .. a.id(upper.id) .. "/response/body?as=received").body)
  end)

  it("undoes gzip and zstd with ?decoded=1", function()
    local text = string.rep("compressed flows are still readable\n", 50)
    local gz = h.sh("printf '%s' " .. h.shell_quote(text) .. " | gzip -c")
    local zst = h.sh("printf '%s' " .. h.shell_quote(text) .. " | zstd -q -c")
    local s = script(string.format([[
      local gz, zst = %q, %q
      function on_request(tx)
        if tx.req.path == "/gz" then
          tx:respond(200, gz, { ["Content-Encoding"] = "gzip" })
        elseif tx.req.path == "/zst" then
          tx:respond(200, zst, { ["Content-Encoding"] = "zstd" })
        end
      end
    ]], gz, zst))
    local proxy, adm = start({ "--script", s })
    assert.equals(gz, h.get(proxy.port, origin.url("/gz")).body)
    assert.equals(zst, h.get(proxy.port, origin.url("/zst")).body)
    local list = wait_flows(adm, 2)
    for i, raw in ipairs({ gz, zst }) do
      local path = "/api/flows/" .. a.id(list[i].id) .. "/response/body"
      assert.equals(raw, a.call(adm, path).body)
      assert.equals(text, a.call(adm, path .. "?decoded=1").body)
    end
  end)

  it("filters with mitmproxy's expressions and names the problem in a bad one", function()
    local proxy, adm = start({})
    h.get(proxy.port, origin.url("/hello"))
    h.curl({ "-x", "127.0.0.1:" .. proxy.port, "-d", "secret=42", origin.url("/echo") })
    h.get(proxy.port, origin.url("/status/404"))
    wait_flows(adm, 3)
    local function count(expr)
      return #a.get_json(adm, "/api/flows?filter=" .. a.escape(expr))
    end
    assert.equals(1, count("~m POST"))
    assert.equals(1, count("~c 404"))
    assert.equals(2, count("!~c 404"))
    assert.equals(1, count("~bq secret"))
    assert.equals(1, count("~b secret=42"))
    assert.equals(3, count("~d 127.0.0.1"))
    assert.equals(1, count("hello"))
    assert.equals(2, count("hello | ~m POST"))
    assert.equals(0, count("hello & ~m POST"))
    assert.equals(3, count("~hq Host"))
    assert.equals(1, count("~t text/plain & ~c 404"))
    assert.equals(0, count("~e"))
    for expr, want in pairs({ ["~x"] = "unknown operator ~x", ["(~m GET"] = "missing ')'",
                              ["~c abc"] = "status code", ["~u"] = "needs an argument" }) do
      local resp = a.call(adm, "/api/flows?filter=" .. a.escape(expr))
      assert.equals(400, resp.status, expr)
      assert.matches(want, json.decode(resp.body).error, 1, true)
    end
    assert.equals(400, a.call(adm, "/flows.har?filter=" .. a.escape("~nope")).status)
  end)

  -- The filter runs on the admin's event loop: a pattern that backtracks
  -- without end is stopped (PCRE2's match limit) and the answer says so.
  it("gives up on a filter that backtracks without end, and names the problem", function()
    local proxy, adm = start({})
    local body = string.rep("a", 100000) .. "!"
    h.curl({ "-x", "127.0.0.1:" .. proxy.port, "--data-binary", body, origin.url("/echo") })
    wait_flows(adm, 1)
    for _, path in ipairs({ "/api/flows", "/flows.har" }) do
      local resp = a.call(adm, path .. "?filter=" .. a.escape("~bq '^(a|aa)+$'"))
      assert.equals(400, resp.status, path)
      assert.matches("too costly", json.decode(resp.body).error, 1, true)
    end
    -- an ordinary pattern over the same body still matches
    assert.equals(1, #a.get_json(adm, "/api/flows?filter=" .. a.escape("~bq 'a+!$'")))
    assert.equals("hello\n", h.get(proxy.port, origin.url("/hello")).body)
  end)

  it("streams new flows as Server-Sent Events", function()
    local proxy, adm = start({ "--workers", "2" })
    local s = assert(h.connect(adm.port))
    h.send(s, h.request("GET", "/api/events", { "Host: localhost",
      "Authorization: Bearer " .. adm.token }))
    local head = h.read_response(s, { head_only = true })
    assert.equals(200, head.status)
    assert.equals("text/event-stream", head.headers["content-type"])
    h.get(proxy.port, origin.url("/hello?sse=1"))
    local got = ""
    local event = h.wait_for(function()
      local chunk = h.recv_some(s, 0.2)
      if chunk then got = got .. chunk end
      return got:match("event: flow\ndata: ([^\n]+)\n\n")
    end, 5)
    s:close()
    assert.is_not_nil(event, "no flow event; got: " .. got)
    local done = json.decode(event)
    assert.matches("sse=1", done.url, 1, true)
    assert.is_false(done.running)
    assert.equals(200, done.status)
    -- announced as it started, before it finished
    local start = got:match("event: start\ndata: ([^\n]+)\n\n")
    assert.is_not_nil(start, "no start event; got: " .. got)
    start = json.decode(start)
    assert.equals(done.id, start.id)
    assert.is_true(start.running)
    assert.is_true(got:find("event: start", 1, true) < got:find("event: flow", 1, true))
  end)

  it("replays a request through the proxy, hooks included", function()
    local s = script([[
      function on_request(tx) tx.req.headers["X-Hooked"] = "again" end
    ]])
    for _, workers in ipairs({ "1", "2" }) do
      local proxy, adm = start({ "--script", s, "--workers", workers })
      h.curl({ "-x", "127.0.0.1:" .. proxy.port, "-d", "payload=" .. workers,
               origin.url("/echo?replay") })
      local f = wait_flows(adm, 1)[1]
      local resp = a.call(adm, "/api/flows/" .. a.id(f.id) .. "/replay", { method = "POST" })
      assert.equals(200, resp.status, resp.body)
      local new_id = json.decode(resp.body).id
      assert.is_true(new_id ~= f.id)
      local d = a.get_json(adm, "/api/flows/" .. a.id(new_id))
      assert.equals(f.url, d.url)
      assert.equals("POST", d.method)
      assert.is_true(d.modified)
      local echoed = a.call(adm, "/api/flows/" .. a.id(new_id) .. "/response/body").body
      assert.matches("X%-Hooked: again", echoed)
      assert.matches("payload=" .. workers, echoed)
      local wrong = a.call(adm, "/api/flows/" .. a.id(f.id) .. "/replay")
      assert.equals(405, wrong.status)
      assert.equals("POST", wrong.headers["allow"])
      assert.equals(404, a.call(adm, "/api/flows/424242/replay", { method = "POST" }).status)
    end
  end)

  -- A body dropped after a script answered before reading it (a mocked
  -- upload) is kept like any other: the flow shows it, and its replay
  -- sends it, rather than a head whose body never comes.
  it("keeps a request body dropped after tx:respond, and replays it", function()
    local s = script([[
      function on_request(tx) if tx.req.method == "POST" then tx:respond(201, "mocked\n") end end
    ]])
    local proxy, adm = start({ "--script", s, "--idle-timeout", "10" })
    local sock = assert(h.connect(proxy.port))
    assert(h.send(sock, h.request("POST", origin.url("/mock"),
      { "Host: " .. origin.authority, "Content-Length: 12" }, "payload=mock")))
    assert.equals(201, assert(h.read_response(sock)).status)
    sock:close()
    local f = wait_flows(adm, 1)[1]
    assert.equals(12, f.req_bytes)
    assert.equals(12, a.get_json(adm, "/api/flows/" .. a.id(f.id)).request.body.size)
    assert.equals("payload=mock", a.call(adm, "/api/flows/" .. a.id(f.id) .. "/request/body").body)
    local t0 = h.now()
    local resp = a.call(adm, "/api/flows/" .. a.id(f.id) .. "/replay", { method = "POST" })
    assert.equals(200, resp and resp.status, resp and resp.body)
    assert.is_true(h.now() - t0 < 5, "the replay waited for a body it did not send")
  end)

  -- The rest of a body dropped after the answer is read after the answer
  -- is complete: the exchange lasts until then, but its phases end with
  -- the answer. "receive" counted the wait for the rest of the body.
  it("ends a dropped-body exchange's phases with its answer", function()
    local s = script([[
      function on_request(tx) if tx.req.method == "POST" then tx:respond(201, "mocked\n") end end
    ]])
    local proxy, adm = start({ "--script", s, "--idle-timeout", "10" })
    local sock = assert(h.connect(proxy.port))
    assert(h.send(sock, h.request("POST", origin.url("/mock"),
      { "Host: " .. origin.authority, "Content-Length: 12" }, "payl")))
    assert.equals(201, assert(h.read_response(sock)).status)
    -- The rest comes a second after the answer (a slow upload).
    h.sleep(1)
    assert(h.send(sock, "oad=mock"))
    local f = wait_flows(adm, 1)[1]
    sock:close()
    local d = a.get_json(adm, "/api/flows/" .. a.id(f.id))
    assert.is_true(f.duration_ms >= 900, f.duration_ms) -- it lasted until the body was in
    assert.is_true(d.timings.receive < 500, d.timings.receive) -- its answer did not
  end)

  -- An upstream that answers while the body is still coming: the rest of
  -- the body, dropped after the answer, is kept with what went up, and
  -- so is the body of a request answered 502 before any of it went up.
  it("keeps the whole request body of an early-answered exchange, and of a 502", function()
    local proxy, adm = start({ "--idle-timeout", "10" })
    local server, _, target = h.raw_listener()
    local sock = assert(h.connect(proxy.port))
    assert(h.send(sock, h.request("POST", "http://" .. target .. "/early",
      { "Host: " .. target, "Content-Length: 13" }, "payl")))
    local up = assert(server:accept())
    h.skip_head(up)
    assert(up:send("HTTP/1.1 413 Content Too Large\r\nContent-Length: 4\r\n\r\nbig!"))
    assert.equals(413, assert(h.read_response(sock)).status)
    local closed = "127.0.0.1:" .. h.closed_port()
    assert(h.send(sock, "oad=early" .. h.request("POST", "http://" .. closed .. "/refused",
      { "Host: " .. closed, "Content-Length: 12" }, "payl")))
    assert.equals(502, assert(h.read_response(sock)).status)
    assert(h.send(sock, "oad=502!"))
    assert.is_false(h.is_closed(sock, 0.3))
    sock:close()
    up:close()
    server:close()
    local early = wait_flows(adm, 1, "~u /early")[1]
    assert.equals(13, early.req_bytes)
    assert.equals(413, early.status)
    assert.equals("payload=early",
      a.call(adm, "/api/flows/" .. a.id(early.id) .. "/request/body").body)
    local refused = wait_flows(adm, 1, "~u /refused")[1]
    assert.equals(12, refused.req_bytes)
    assert.equals(502, refused.status)
    assert.equals("payload=502!",
      a.call(adm, "/api/flows/" .. a.id(refused.id) .. "/request/body").body)
  end)

  -- The replay is sent from the admin's side of the machine. Sent from
  -- loopback, a request that a client on another machine was refused (a
  -- destination only this machine may reach) went through on replay: one
  -- click on a failed flow, and that client's request reached a service
  -- bound to loopback. A client on the machine's LAN address stands for
  -- one on another machine, as in upstream_errors_spec.
  it("replays a request of a client on another machine with that client's limits", function()
    local ip = (h.sh("ip -o -4 addr show scope global 2>/dev/null") or "")
      :match("inet (%d+%.%d+%.%d+%.%d+)/")
    if not ip then return pending("this machine has no non-loopback IPv4 address") end
    local proxy, adm = start({ "--listen", "0.0.0.0:0", "--allow", "127.0.0.0/8",
                               "--allow", ip .. "/32" })
    local s = assert(h.connect(proxy.port, ip))
    assert(h.send(s, h.request("GET", origin.url("/local-only"),
      { "Host: " .. origin.authority, "Connection: close" })))
    local resp = assert(h.read_response(s))
    s:close()
    assert.equals(403, resp.status)
    local f = wait_flows(adm, 1)[1]
    local replay = a.call(adm, "/api/flows/" .. a.id(f.id) .. "/replay", { method = "POST" })
    assert.equals(200, replay.status, replay.body)
    local d = a.get_json(adm, "/api/flows/" .. a.id(json.decode(replay.body).id))
    assert.equals(403, d.status)
    assert.truthy(tostring(d.error):find("only this machine may reach", 1, true), d.error)
    assert.equals(ip, d.client:match("^(.*):%d+$"))
    assert.equals(0, #origin.requests())
    -- a loopback client's flow is replayed from loopback, as before
    assert.equals(200, h.get(proxy.port, origin.url("/hello")).status)
    local mine = wait_flows(adm, 1, "~u /hello")[1]
    replay = a.call(adm, "/api/flows/" .. a.id(mine.id) .. "/replay", { method = "POST" })
    d = a.get_json(adm, "/api/flows/" .. a.id(json.decode(replay.body).id))
    assert.equals(200, d.status)
    assert.equals("127.0.0.1", d.client:match("^(.*):%d+$"))
  end)

  -- A client may shut its sending half once its request is out and still
  -- read the answer (RFC 9112 9.6). The admin took the end of its input
  -- for the client leaving and closed the connection with the answer
  -- half sent: a body longer than the socket takes at once came back cut
  -- short of its Content-Length.
  it("answers in full a client that shuts its sending half after its request", function()
    local proxy, adm = start({ "--flow-body-max", "8388608" })
    local body = h.pattern(6 * 1024 * 1024)
    local file = h.tmpfile(body, "half_close.bin")
    h.curl({ "-x", "127.0.0.1:" .. proxy.port, "-H", "Expect:", "--data-binary", "@" .. file,
             "-o", "/dev/null", origin.url("/echo") })
    local f = wait_flows(adm, 1)[1]
    assert.equals(#body, f.req_bytes)
    local s = assert(h.connect(adm.port))
    h.send(s, h.request("GET", "/api/flows/" .. a.id(f.id) .. "/request/body",
      { "Host: localhost", "Authorization: Bearer " .. adm.token }))
    s:shutdown("send")
    local resp = assert(h.read_response(s))
    s:close()
    assert.equals(200, resp.status)
    assert.is_nil(resp.incomplete, resp.error)
    assert.equals(#body, #resp.body)
    assert.is_true(resp.body == body)
  end)

  it("clears the store with DELETE /api/flows", function()
    local proxy, adm = start({})
    h.get(proxy.port, origin.url("/hello"))
    wait_flows(adm, 1)
    assert.equals(200, a.call(adm, "/api/flows", { method = "DELETE" }).status)
    assert.equals(0, #a.get_json(adm, "/api/flows"))
  end)

  it("exports HAR 1.2 that validates, and writes --har at stop", function()
    local har = h.tmpfile("", "stop.har")
    local proxy, adm = start({ "--har", har, "--workers", "2" })
    h.get(proxy.port, origin.url("/hello?a=1&b=two"))
    h.curl({ "-x", "127.0.0.1:" .. proxy.port, "-d", "x=1", origin.url("/echo") })
    h.get(proxy.port, "http://127.0.0.1:" .. h.closed_port() .. "/")
    wait_flows(adm, 3)
    local resp = a.call(adm, "/flows.har")
    assert.equals(200, resp.status)
    local valid, out = validate_har(resp.body)
    assert.is_true(valid, out)
    local doc = json.decode(resp.body)
    assert.equals("1.2", doc.log.version)
    assert.equals(3, #doc.log.entries)
    local e = doc.log.entries[1]
    assert.equals("GET", e.request.method)
    assert.equals(2, #e.request.queryString)
    assert.equals("hello\n", e.response.content.text)
    -- the filter narrows it
    doc = json.decode(a.call(adm, "/flows.har?filter=" .. a.escape("~m POST")).body)
    assert.equals(1, #doc.log.entries)
    assert.equals("x=1", doc.log.entries[1].request.postData.text)
    -- a schema check that cannot fail proves nothing: break one entry
    local broken = resp.body:gsub('"startedDateTime":"[^"]*"', '"startedDateTime":"yesterday"', 1)
    assert.is_false((validate_har(broken)))

    assert.equals(0, proxy.stop())
    local written = h.read_file(har)
    valid, out = validate_har(written)
    assert.is_true(valid, out)
    assert.equals(3, #json.decode(written).log.entries)
  end)

  -- A HAR file is made to be shared: a client's password for this proxy
  -- went along with every request in it.
  it("leaves a request's Proxy-Authorization out of the HAR export, and keeps it for the viewer",
     function()
    local proxy, adm = start()
    local creds = "Basic YWxpY2U6d29uZGVybGFuZA==" -- alice:wonderland
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("GET", origin.url("/hello"), { "Host: " .. origin.authority,
      "Proxy-Authorization: " .. creds, "X-Kept: yes" })))
    assert.equals(200, assert(h.read_response(s)).status)
    s:close()
    local f = wait_flows(adm, 1)[1]
    local body = a.call(adm, "/flows.har").body
    assert.falsy(body:lower():find("proxy-authorization", 1, true), body)
    assert.falsy(body:find("YWxpY2U6d29uZGVybGFuZA", 1, true), body)
    local e = json.decode(body).log.entries[1]
    local names = {}
    for _, f in ipairs(e.request.headers) do names[#names + 1] = f.name end
    assert.same({ "Host", "X-Kept" }, names)
    local valid, out = validate_har(body)
    assert.is_true(valid, out)
    -- the viewer, behind the admin token, shows the request as it came
    local d = a.get_json(adm, "/api/flows/" .. a.id(f.id))
    local seen
    for _, kv in ipairs(d.request.received.headers) do
      if kv[1] == "Proxy-Authorization" then seen = kv[2] end
    end
    assert.equals(creds, seen)
  end)

  -- HAR 1.2 defines "encoding" for a response's content only: a binary
  -- request body goes in postData as base64 with "_encoding", the form
  -- HAR allows for fields of one's own, so a reader that knows none still
  -- does not take the base64 for the body's text as "encoding" there
  -- would claim.
  it("exports a binary request body in HAR as base64 with _encoding", function()
    local proxy, adm = start({})
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("POST", origin.url("/echo"), { "Host: " .. origin.authority,
      "Content-Type: application/octet-stream", "Content-Length: 4" }) .. "\0\1\255\254"))
    assert.equals(200, assert(h.read_response(s)).status)
    s:close()
    wait_flows(adm, 1)
    local text = a.call(adm, "/flows.har").body
    local valid, out = validate_har(text)
    assert.is_true(valid, out)
    local post = json.decode(text).log.entries[1].request.postData
    assert.equals("base64", post._encoding)
    assert.is_nil(post.encoding)
    assert.equals("AAH//g==", post.text)
    -- the schema check refuses the key HAR does not define there
    local wrong = text:gsub('"_encoding"', '"encoding"', 1)
    assert.is_false((validate_har(wrong)))
  end)

  -- HAR readers show a response's text as they are given it: like the
  -- browsers' exports, an encoded body is decoded, with the bytes the
  -- coding saved as "compression"; one that cannot be is given as it came.
  it("exports a compressed response decoded in HAR, and one it cannot decode as sent", function()
    local page = "tests/spec/fixtures/bodies/page.html"
    local gz = h.tmpfile("", "page.gz")
    assert(h.sh("gzip -9 -c " .. page .. " > " .. gz))
    local proxy, adm = start({})
    for _, coding in ipairs({ "gzip", "compress" }) do
      local resp = h.get(proxy.port, origin.url("/file?path=" .. gz .. "&encoding=" .. coding))
      assert.equals(200, resp.status)
    end
    wait_flows(adm, 2)
    local text = a.call(adm, "/flows.har").body
    local valid, out = validate_har(text)
    assert.is_true(valid, out)
    local entries = json.decode(text).log.entries
    local decoded, raw = entries[1].response.content, entries[2].response.content
    local html = h.read_file(page)
    assert.equals(html, decoded.text)
    assert.equals(#html, decoded.size)
    assert.equals(#html - #h.read_file(gz), decoded.compression)
    assert.equals("base64", raw.encoding)
    assert.matches("not decoded", raw.comment)
    assert.is_nil(raw.compression)
  end)

  -- The HAR holds every captured head and body, credentials included: it
  -- is its owner's alone, whatever the umask, like the TLS key log.
  it("writes --har readable by its owner only", function()
    local har = h.tmpfile("", "x"):gsub("x$", "owner.har")
    local proxy, adm = start({ "--har", har }, { umask = "022" })
    h.get(proxy.port, origin.url("/hello"), { "Authorization: Basic c2VjcmV0OnNlY3JldA==" })
    wait_flows(adm, 1)
    assert.equals(0, proxy.stop())
    assert.matches("c2VjcmV0OnNlY3JldA==", h.read_file(har), 1, true)
    assert.equals("600", (h.sh("stat -c %a " .. h.shell_quote(har)):gsub("%s+$", "")))
  end)

  -- Fills the store through <proxy> with <n> flows of /bytes?n=<size>
  -- (pattern text, so each HAR entry holds about <size> bytes), tagged
  -- i=<first>...; waits until the last one is stored.
  local function fill(proxy, adm, first, n, size)
    for i = first, first + n - 1 do
      local r = h.get(proxy.port, origin.url("/bytes?n=" .. size .. "&i=" .. i))
      assert.equals(size, #r.body)
    end
    assert.is_not_nil(wait_flows(adm, 1, "~u 'i=" .. (first + n - 1) .. "$'"))
  end

  -- Sends GET <path> to the admin listener and reads the head and <n>
  -- bytes of the body, then stops reading. Returns the socket and head.
  local function start_reading(adm, path, n)
    local s = assert(h.connect(adm.port))
    h.send(s, h.request("GET", path, { "Host: localhost", "Authorization: Bearer " .. adm.token,
      "Connection: close" }))
    local head = assert(h.read_response(s, { head_only = true }))
    assert.equals(200, head.status)
    local got = h.recv_exact(s, n)
    assert.equals(n, #got)
    return s, head, got
  end

  -- The rest of a body started by start_reading, up to the close; the
  -- body decoded from its framing.
  local function finish_reading(s, head, got)
    local rest, how = h.recv_until_close(s, 60)
    s:close()
    assert.equals("closed", how)
    if head.headers["transfer-encoding"] then
      return (assert(h.decode_chunked(got .. rest)))
    end
    return got .. rest
  end

  -- The admin interface shares the proxy's loop (one process): an export
  -- of the whole store must not stop the relay, nor sit whole in memory.
  -- Checked by what the proxy does while the exporting client reads
  -- nothing, not by how long anything takes.
  it("streams a large HAR export as the client reads, relaying meanwhile", function()
    local n, size = 40, 1024 * 1024
    local proxy, adm = start({})
    fill(proxy, adm, 1, n, size)
    local before = proxy.rss_kb()
    -- The export (about 40 MiB) has begun; its client now reads nothing.
    local s, head, got = start_reading(adm, "/flows.har", 65536)
    assert.equals("application/json", head.headers["content-type"])
    -- Meanwhile another client is served...
    local resp = h.get(proxy.port, origin.url("/hello?during=export"))
    assert.equals(200, resp.status)
    assert.equals("hello\n", resp.body)
    -- ...and the export waits as a part, not as the whole document (which
    -- the socket buffers could not hold either).
    local grown = proxy.rss_kb() - before
    assert.is_true(grown < n * size / 1024 / 4,
      "the proxy grew by " .. grown .. " KiB while the export waited")
    local body = finish_reading(s, head, got)
    assert.equals("chunked", head.headers["transfer-encoding"])
    local doc = json.decode(body)
    assert.equals(n, #doc.log.entries)
    for i, e in ipairs(doc.log.entries) do
      assert.equals(origin.url("/bytes?n=" .. size .. "&i=" .. i), e.request.url)
      assert.equals(size, #e.response.content.text)
    end
    assert.equals(200, h.get(proxy.port, origin.url("/hello")).status)
  end)

  -- A gzip body of <lines> lines (500000: about 1.3 MB that decodes to
  -- about 31 MB), served by the origin and kept whole (with --flow-body-max
  -- 2 MiB). Returns the plain text, the flow's decoded-body path, and the
  -- origin URL it came from.
  local function gzip_flow(proxy, adm, n, lines)
    local text_file = h.tmpfile("", "decoded.txt")
    h.sh("seq -f 'line %g of a body the viewer decodes a part at a time' 1 " .. lines .. " > "
      .. h.shell_quote(text_file) .. " && gzip -k " .. h.shell_quote(text_file))
    local text = h.read_file(text_file)
    local url = origin.url("/file?encoding=gzip&type=text/plain&n=" .. n .. "&path="
      .. a.escape(text_file .. ".gz"))
    local resp = h.get(proxy.port, url)
    assert.equals(200, resp.status)
    assert.equals(h.read_file(text_file .. ".gz"), resp.body)
    local f = wait_flows(adm, 1, "~u 'n=" .. n .. "&'")
    assert.is_not_nil(f, "the flow arrived")
    return text, "/api/flows/" .. a.id(f[1].id) .. "/response/body?decoded=1", url
  end

  -- ?decoded=1 of a large body, with the admin on the proxy's loop: the
  -- answer is made as the client reads, not decoded whole and held.
  it("streams a large decoded body as the client reads, relaying meanwhile", function()
    local proxy, adm = start({ "--flow-body-max", "2097152" })
    local text, path = gzip_flow(proxy, adm, 1, 500000)
    local before = proxy.rss_kb()
    local s, head, got = start_reading(adm, path, 65536)
    assert.equals("application/octet-stream", head.headers["content-type"])
    assert.equals("chunked", head.headers["transfer-encoding"])
    -- Another client is served while the decoded answer waits...
    local resp = h.get(proxy.port, origin.url("/hello?during=decoding"))
    assert.equals(200, resp.status)
    assert.equals("hello\n", resp.body)
    -- ...as a part, not as the whole decoded body.
    local grown = proxy.rss_kb() - before
    assert.is_true(grown < #text / 1024 / 4,
      "the proxy grew by " .. grown .. " KiB while the decoded answer waited")
    local body = finish_reading(s, head, got)
    assert.equals(#text, #body)
    assert.is_true(text == body, "the decoded body is the text")
  end)

  -- The sizes of the chunks of a chunked body, in order; nil when its
  -- framing is broken or it has no end.
  local function chunk_sizes(raw)
    local sizes, pos = {}, 1
    while true do
      local eol = raw:find("\r\n", pos, true)
      local size = eol and tonumber(raw:sub(pos, eol - 1):match("^%x+"), 16)
      if not size then return nil end
      if size == 0 then return sizes end
      sizes[#sizes + 1] = size
      pos = eol + 2 + size + 2
    end
  end

  -- One flow's HAR entry may be megabytes (its bodies, a compressed
  -- response exported decoded): it is written a step at a time as well,
  -- not whole in one turn of the loop. Each part the export makes goes out
  -- as one chunk, so the chunks show how much one turn made.
  it("writes one large HAR entry a part at a time as the client reads, relaying meanwhile", function()
    local proxy, adm = start({ "--flow-body-max", "4194304" })
    -- about 8.0 MB of text (under the 8 MiB cap), sent gzipped, decoded in HAR
    local text = gzip_flow(proxy, adm, 1, 140000)
    assert.is_true(#text > 7 * 1024 * 1024 and #text < 8 * 1024 * 1024)
    -- and 3 MiB kept as they came
    local size = 3 * 1024 * 1024
    assert.equals(size, #h.get(proxy.port, origin.url("/bytes?n=" .. size .. "&i=2")).body)
    assert.is_not_nil(wait_flows(adm, 2))
    local at_once = a.call(adm, "/flows.har", { timeout = 60 }).body
    local s, head, got = start_reading(adm, "/flows.har", 65536)
    assert.equals("chunked", head.headers["transfer-encoding"])
    -- The client reads nothing now, in the middle of the first entry:
    -- another client is served meanwhile...
    local resp = h.get(proxy.port, origin.url("/hello?during=entry"))
    assert.equals(200, resp.status)
    assert.equals("hello\n", resp.body)
    -- ...and when the client reads on, the entries come in parts of about
    -- 256 KiB (a part ends after the step that reaches it: at most 6 bytes
    -- for each of 48 KiB escaped), never an entry whole.
    local rest, how = h.recv_until_close(s, 60)
    s:close()
    assert.equals("closed", how)
    local sizes = assert(chunk_sizes(got .. rest), "a chunked body, with its end")
    local biggest = 0
    for _, n in ipairs(sizes) do biggest = math.max(biggest, n) end
    assert.is_true(biggest <= 256 * 1024 + 6 * 48 * 1024 + 1024,
      "a part of " .. biggest .. " bytes")
    assert.is_true(#sizes > 30, #sizes .. " parts")
    local body = assert(h.decode_chunked(got .. rest))
    -- the same document a client that reads at once gets, and the right one
    assert.is_true(body == at_once, "the same HAR read slowly or at once")
    local doc = json.decode(body)
    assert.equals(2, #doc.log.entries)
    local decoded = doc.log.entries[1].response.content
    assert.equals(#text, decoded.size)
    assert.is_true(text == decoded.text, "the decoded text")
    assert.is_nil(decoded.encoding)
    assert.equals(size, #doc.log.entries[2].response.content.text)
  end)

  -- A HAR export in progress may hold a decoder's window too, and the
  -- flow it is writing: only so many stream at once. The flow stays
  -- readable for the entry even when the store drops it.
  it("streams at most 8 HAR exports at once, and finishes an entry whose flow was dropped", function()
    local proxy, adm = start({ "--flow-body-max", "4194304" })
    local text = gzip_flow(proxy, adm, 1, 140000)
    local small_text, small_path = gzip_flow(proxy, adm, 2, 1000)
    local readers = {}
    for i = 1, 8 do
      local s, head, got = start_reading(adm, "/flows.har", 65536)
      readers[i] = { s = s, head = head, got = got }
    end
    local busy = a.call(adm, "/flows.har")
    assert.equals(503, busy.status)
    assert.equals("1", busy.headers["retry-after"])
    assert.matches("too many HAR exports", busy.body)
    -- An export that fits in one part is no stream, and is served.
    local small = a.call(adm, "/flows.har?filter=" .. a.escape("~u 'n=2&'"))
    assert.equals(200, small.status)
    assert.is_not_nil(small.headers["content-length"])
    assert.equals(small_text, json.decode(small.body).log.entries[1].response.content.text)
    -- Cleared while the exports are inside the first entry: that entry is
    -- finished all the same; the flow after it is gone.
    assert.equals(200, a.call(adm, "/api/flows", { method = "DELETE" }).status)
    local body = finish_reading(readers[1].s, readers[1].head, readers[1].got)
    local doc = json.decode(body)
    assert.equals(1, #doc.log.entries)
    assert.is_true(text == doc.log.entries[1].response.content.text, "the decoded text, whole")
    for i = 2, 8 do readers[i].s:close() end
    -- Their places free again as they close.
    gzip_flow(proxy, adm, 3, 140000)
    local again = h.wait_for(function()
      local resp = a.call(adm, "/flows.har", { timeout = 60 })
      return resp and resp.status == 200 and resp
    end, 10)
    assert.is_truthy(again, "a HAR export was streamed again")
    assert.is_true(text == json.decode(again.body).log.entries[1].response.content.text)
  end)

  -- Each decoded answer in progress may hold a decoder's window: only so
  -- many are made at once, and one whose flow is dropped ends unfinished.
  it("streams at most 8 decoded bodies at once, and ends one whose flow was dropped", function()
    local proxy, adm = start({ "--flow-body-max", "2097152" })
    local text, path = gzip_flow(proxy, adm, 1, 500000)
    local small_text, small_path = gzip_flow(proxy, adm, 2, 1000)
    local readers = {}
    for i = 1, 8 do
      local s, head, got = start_reading(adm, path, 65536)
      readers[i] = { s = s, head = head, got = got }
    end
    local busy = a.call(adm, path)
    assert.equals(503, busy.status)
    assert.equals("1", busy.headers["retry-after"])
    assert.matches("too many decoded bodies", busy.body)
    -- A body that decodes within one part is no stream, and is served.
    local small = a.call(adm, small_path)
    assert.equals(200, small.status)
    assert.equals(tostring(#small_text), small.headers["content-length"])
    assert.equals(small_text, small.body)
    -- Dropped from the store: the answers in progress cannot be finished,
    -- and end without their last chunk, so no reader takes them for whole.
    assert.equals(200, a.call(adm, "/api/flows", { method = "DELETE" }).status)
    local rest, how = h.recv_until_close(readers[1].s, 60)
    assert.equals("closed", how)
    assert.is_nil(h.decode_chunked(readers[1].got .. rest))
    for _, r in ipairs(readers) do r.s:close() end
    -- Their places free again as they close.
    local _, path2 = gzip_flow(proxy, adm, 3, 500000)
    local whole = h.wait_for(function()
      local resp = a.call(adm, path2, { timeout = 60 })
      return resp and resp.status == 200 and resp
    end, 10)
    assert.is_truthy(whole, "a decoded answer was served again")
    assert.is_true(text == whole.body, "the decoded body is the text")
  end)

  it("exports the flows stored when the export began, less those dropped before it got there", function()
    local size = 2 * 1024 * 1024
    local proxy, adm = start({ "--flows", "20", "--flow-body-max", tostring(size) })
    fill(proxy, adm, 1, 20, size)
    -- 40 MiB to export; the client takes 64 KiB, then 15 new flows push
    -- out flows 1-15, most of them before the export reached them.
    local s, head, got = start_reading(adm, "/flows.har", 65536)
    fill(proxy, adm, 21, 15, 1000)
    local doc = json.decode(finish_reading(s, head, got))
    local last, seen = 0, {}
    for _, e in ipairs(doc.log.entries) do
      local i = tonumber(e.request.url:match("i=(%d+)$"))
      assert.is_true(i > last, "in order, each once: " .. i .. " after " .. last)
      assert.is_true(i <= 20, "flow " .. i .. " came after the export began")
      last = i
      seen[i] = true
    end
    for i = 16, 20 do assert.is_true(seen[i], "flow " .. i .. " is still stored") end
    assert.is_true(#doc.log.entries < 20, "the dropped flows were skipped")
  end)

  it("streams a long flow list, with its limit, to HEAD, HTTP/1.0 and pipelined requests", function()
    local har_file = h.tmpfile("", "stop.har")
    local proxy, adm = start({ "--har", har_file })
    -- Long URLs: 100 summaries take over one part (256 KiB).
    local pad = ("p"):rep(4000)
    for i = 1, 100 do
      assert.equals(200, h.get(proxy.port, origin.url("/hello?pad=" .. pad .. "&i=" .. i)).status)
    end
    wait_flows(adm, 1, "~u 'i=100$'")
    local function ids(list)
      local out = {}
      for k, f in ipairs(list) do out[k] = tonumber(f.url:match("i=(%d+)$")) end
      return out
    end
    local resp = a.call(adm, "/api/flows")
    assert.equals(200, resp.status)
    assert.equals("chunked", resp.headers["transfer-encoding"])
    local list = json.decode(resp.body)
    assert.equals(100, #list)
    for i = 1, 100 do assert.equals(i, ids(list)[i]) end
    -- the newest N, oldest first; with a filter, the newest N matches
    assert.same({ 98, 99, 100 }, ids(a.get_json(adm, "/api/flows?limit=3")))
    assert.same({ 80, 90, 100 },
      ids(a.get_json(adm, "/api/flows?limit=3&filter=" .. a.escape("~u 'i=[0-9]*0$'"))))
    assert.same({}, a.get_json(adm, "/api/flows?limit=0"))
    assert.equals(100, #a.get_json(adm, "/api/flows?limit=1000"))
    -- HTTP/1.0 knows no chunks: the body ends with the connection
    local raw = h.send_raw(adm.port, h.request("GET", "/api/flows", { "Host: localhost",
      "Authorization: Bearer " .. adm.token }, nil, "HTTP/1.0"))
    local head_end = raw:find("\r\n\r\n", 1, true)
    assert.is_nil(raw:sub(1, head_end):lower():find("transfer-encoding", 1, true))
    assert.equals(100, #json.decode(raw:sub(head_end + 4)))
    -- HEAD: the head a GET gets, no body; then the requests behind it,
    -- pipelined, each in turn on the same connection
    local s = assert(h.connect(adm.port))
    local auth = { "Host: localhost", "Authorization: Bearer " .. adm.token }
    h.send(s, h.request("HEAD", "/api/flows", auth) .. h.request("GET", "/flows.har", auth)
      .. h.request("GET", "/api/version", auth))
    local head = assert(h.read_response(s, { method = "HEAD" }))
    assert.equals(200, head.status)
    assert.equals("chunked", head.headers["transfer-encoding"])
    local har = assert(h.read_response(s))
    assert.equals(200, har.status)
    assert.equals(100, #json.decode(har.body).log.entries)
    local version = assert(h.read_response(s))
    assert.equals("luaproxy", json.decode(version.body).name)
    s:close()
    -- --har at stop: written a part at a time, the same document
    assert.equals(0, proxy.stop())
    assert.equals(100, #json.decode(h.read_file(har_file)).log.entries)
  end)

  it("shows decrypted https requests with their https URL and TLS time, and replays them", function()
    local pki = h.test_pki()
    local https = h.start_https_origin()
    local ca_dir = h.new_ca_dir()
    local proxy, adm = start({ "--intercept", "*", "--ca-dir", ca_dir, "--upstream-ca", pki.ca,
                               "--connect-ports", tostring(https.port) })
    local out, code = h.curl({ "--cacert", ca_dir .. "/ca.pem", "-x", "http://127.0.0.1:" .. proxy.port,
                               https.url("/hello") })
    assert.equals(0, code)
    assert.equals("hello\n", out)
    local list = wait_flows(adm, 1, "~u ^https://")
    local f = list[1]
    assert.equals(https.url("/hello"), f.url)
    assert.equals("GET", f.method)
    assert.equals(200, f.status)
    local d = a.get_json(adm, "/api/flows/" .. a.id(f.id))
    assert.is_true(d.timings.tls >= 0)
    assert.equals("hello\n", a.call(adm, "/api/flows/" .. a.id(f.id) .. "/response/body").body)
    -- The replay opens a tunnel of its own (CONNECT, then TLS inside) and
    -- answers with the flow of the request inside it.
    local resp = a.call(adm, "/api/flows/" .. a.id(f.id) .. "/replay", { method = "POST" })
    assert.equals(200, resp.status, resp.body)
    local new_id = json.decode(resp.body).id
    assert.is_true(new_id ~= f.id)
    local r = a.get_json(adm, "/api/flows/" .. a.id(new_id))
    assert.equals(https.url("/hello"), r.url)
    assert.equals(200, r.status)
    assert.equals("hello\n", a.call(adm, "/api/flows/" .. a.id(new_id) .. "/response/body").body)
    assert.equals(2, #https.wait_requests(2))
    https.stop()
    local har = a.call(adm, "/flows.har").body
    local valid, msg = validate_har(har)
    assert.is_true(valid, msg)
    -- HAR 1.2 counts the handshake ("ssl") inside "connect", and "time"
    -- is the sum of the phases but "ssl": a HAR reader adds them up so.
    local entry
    for _, e in ipairs(json.decode(har).log.entries) do
      if e._id == f.id then entry = e end
    end
    assert.is_not_nil(entry)
    local t = entry.timings
    assert.is_true(t.ssl >= 0)
    assert.is_true(t.connect >= t.ssl, "connect " .. t.connect .. " < ssl " .. t.ssl)
    assert.near(t.connect, d.timings.connect + d.timings.tls, 0.002)
    local sum = 0
    for _, k in ipairs({ "blocked", "dns", "connect", "send", "wait", "receive" }) do
      if t[k] >= 0 then sum = sum + t[k] end
    end
    assert.near(sum, entry.time, 0.01)
  end)

  it("replays a decrypted https request with several workers, hooks included", function()
    local pki = h.test_pki()
    local https = h.start_https_origin()
    local ca_dir = h.new_ca_dir()
    local s = script([[
      function on_request(tx) tx.req.headers["X-Hooked"] = "again" end
    ]])
    local proxy, adm = start({ "--intercept", "*", "--ca-dir", ca_dir, "--upstream-ca", pki.ca,
                               "--connect-ports", tostring(https.port), "--workers", "2",
                               "--script", s })
    local _, code = h.curl({ "--cacert", ca_dir .. "/ca.pem", "-x", "http://127.0.0.1:" .. proxy.port,
                             "-d", "payload=tls", https.url("/echo?replay") })
    assert.equals(0, code)
    local f = wait_flows(adm, 1, "~u ^https://")[1]
    local resp = a.call(adm, "/api/flows/" .. a.id(f.id) .. "/replay", { method = "POST" })
    https.stop()
    assert.equals(200, resp.status, resp.body)
    local d = a.get_json(adm, "/api/flows/" .. a.id(json.decode(resp.body).id))
    assert.equals(https.url("/echo?replay"), d.url)
    assert.equals("POST", d.method)
    assert.equals(200, d.status)
    local echoed = a.call(adm, "/api/flows/" .. a.id(d.id) .. "/response/body").body
    assert.matches("X%-Hooked: again", echoed)
    assert.matches("payload=tls", echoed)
  end)

  it("captures a CONNECT tunnel as one flow with its byte counts", function()
    local echo = procs.origin("echo")
    local proxy, adm = start({ "--connect-ports", tostring(echo.port) })
    local s = assert(h.connect(proxy.port))
    h.send(s, "CONNECT 127.0.0.1:" .. echo.port .. " HTTP/1.1\r\nHost: 127.0.0.1:"
      .. echo.port .. "\r\n\r\n")
    local resp = h.read_response(s, { head_only = true, method = "CONNECT" })
    assert.equals(200, resp.status)
    h.send(s, "ping-pong-12345")
    assert.equals("ping-pong-12345", h.recv_exact(s, 15))
    s:close()
    local f = wait_flows(adm, 1)[1]
    assert.equals("CONNECT", f.method)
    assert.is_true(f.tunnel)
    assert.equals(15, f.req_bytes)
    assert.equals(15, f.res_bytes)
    -- Its head again would open a tunnel nothing uses: refused at once.
    local replay = a.call(adm, "/api/flows/" .. a.id(f.id) .. "/replay", { method = "POST" })
    assert(replay, "no answer to the replay")
    assert.equals(409, replay.status, replay.body)
  end)

  -- Opens a WebSocket through <proxy> to the echoing origin.
  local function open_ws(proxy)
    local s = assert(h.connect(proxy.port))
    h.send(s, h.request("GET", origin.url("/ws"), { "Host: " .. origin.authority,
      "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" }))
    local resp = h.read_response(s, { head_only = true })
    assert.equals(101, resp.status)
    return s
  end

  -- A masked text frame (the echo origin sends it back as is); <first>,
  -- its first byte, makes it another kind (default 0x81: FIN, text).
  local function ws_frame(payload, first)
    local mask = { 1, 2, 3, 4 }
    local masked = {}
    for i = 1, #payload do
      masked[i] = string.char(payload:byte(i) ~ mask[(i - 1) % 4 + 1])
    end
    return string.char(first or 0x81, 0x80 | #payload, 1, 2, 3, 4) .. table.concat(masked)
  end

  it("keeps WebSocket messages within the body budget", function()
    local proxy, adm = start({ "--flow-body-max", "12" })
    local s = open_ws(proxy)
    local frame = ws_frame("a message longer than twelve bytes")
    h.send(s, frame)
    assert.equals(frame, h.recv_exact(s, #frame)) -- relayed whole all the same
    s:close()
    local f = wait_flows(adm, 1)[1]
    local d = a.get_json(adm, "/api/flows/" .. a.id(f.id))
    assert.equals("a message lo", d.messages[1].data)
    assert.is_true(d.messages[1].truncated)
    assert.equals(34, d.messages[1].length)
  end)

  it("says when WebSocket messages went by unlisted after the budget was spent", function()
    local proxy, adm = start({ "--flow-body-max", "12" })
    local s = open_ws(proxy)
    for _, text in ipairs({ "a message longer than twelve bytes", "then another one" }) do
      local frame = ws_frame(text)
      h.send(s, frame)
      assert.equals(frame, h.recv_exact(s, #frame))
    end
    s:close()
    local f = wait_flows(adm, 1)[1]
    local d = a.get_json(adm, "/api/flows/" .. a.id(f.id))
    -- The first message is listed (cut at the budget); what came after it
    -- took the splice path, unread.
    assert.equals("a message lo", d.messages[1].data)
    for _, m in ipairs(d.messages) do assert.is_not_equal("then another one", m.data) end
    assert.is_true(d.messages_dropped)
  end)

  -- The HAR export, checked against the schema: its first entry's
  -- WebSocket messages.
  local function har_ws_messages(adm)
    local har = a.call(adm, "/flows.har").body
    local valid, out = validate_har(har)
    assert.is_true(valid, out)
    return json.decode(har).log.entries[1]._webSocketMessages
  end

  it("captures WebSocket messages one by one", function()
    local proxy, adm = start({})
    local s = open_ws(proxy)
    local frame = ws_frame("hello ws")
    h.send(s, frame)
    assert.equals(frame, h.recv_exact(s, #frame))
    s:close()
    local f = wait_flows(adm, 1)[1]
    assert.is_true(f.websocket)
    local d = a.get_json(adm, "/api/flows/" .. a.id(f.id))
    assert.equals(2, #d.messages)
    assert.is_false(d.messages_dropped)
    assert.equals("send", d.messages[1].type)
    assert.equals("hello ws", d.messages[1].data)
    assert.equals("receive", d.messages[2].type)
    assert.equals(1, d.messages[2].opcode)
    local msgs = har_ws_messages(adm)
    assert.equals(2, #msgs)
    assert.equals("hello ws", msgs[1].data)
  end)

  -- Sends <bytes> on an upgraded connection to an upstream played here,
  -- which reads them all and hangs up: the flow of what the parser made of
  -- them, in full.
  local function ws_capture_raw(bytes)
    local proxy, adm = start({})
    local server, _, target = h.raw_listener()
    local s = assert(h.connect(proxy.port))
    h.send(s, h.request("GET", "http://" .. target .. "/ws", { "Host: " .. target,
      "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" }))
    local up = assert(server:accept())
    h.skip_head(up)
    h.send(up, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
      .. "Upgrade: websocket\r\n\r\n")
    assert.equals(101, h.read_response(s, { head_only = true }).status)
    h.send(s, bytes)
    assert.equals(bytes, h.recv_exact(up, #bytes)) -- relayed whole all the same
    up:close()
    s:close()
    server:close()
    local f = wait_flows(adm, 1)[1]
    return a.get_json(adm, "/api/flows/" .. a.id(f.id))
  end

  -- A browser's ws:// through a proxy: a CONNECT, then plain HTTP in the
  -- tunnel. Intercepted, its requests are flows like any, WebSocket
  -- messages and replay included.
  it("captures a ws:// WebSocket sent through an intercepted CONNECT, and replays its requests", function()
    local proxy, adm = start({ "--intercept", "*", "--ca-dir", h.new_ca_dir(),
      "--connect-ports", tostring(origin.port) })
    local function tunnel()
      local s = assert(h.connect(proxy.port))
      h.send(s, "CONNECT " .. origin.authority .. " HTTP/1.1\r\nHost: " .. origin.authority .. "\r\n\r\n")
      assert.equals(200, h.read_response(s, { head_only = true }).status)
      return s
    end
    local s = tunnel()
    h.send(s, h.request("GET", "/hello", { "Host: " .. origin.authority }))
    assert.equals("hello\n", h.read_response(s).body)
    h.send(s, h.request("GET", "/ws", { "Host: " .. origin.authority,
      "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" }))
    assert.equals(101, h.read_response(s, { head_only = true }).status)
    local frame = ws_frame("through the tunnel")
    h.send(s, frame)
    assert.equals(frame, h.recv_exact(s, #frame))
    s:close()
    local ws = wait_flows(adm, 1, "~u /ws")[1]
    local d = a.get_json(adm, "/api/flows/" .. a.id(ws.id))
    assert.equals("http://" .. origin.authority .. "/ws", d.url)
    assert.equals("through the tunnel", d.messages[1].data)
    -- The replay takes the way the client took: a CONNECT, then the
    -- request in the clear.
    local hello = wait_flows(adm, 1, "~u /hello")[1]
    local resp = a.call(adm, "/api/flows/" .. a.id(hello.id) .. "/replay", { method = "POST" })
    assert.equals(200, resp.status, resp.body)
    local again = a.get_json(adm, "/api/flows/" .. a.id(json.decode(resp.body).id))
    assert.equals("http://" .. origin.authority .. "/hello", again.url)
    assert.equals(200, again.status)
  end)

  it("says messages went unlisted when the stream stops being WebSocket", function()
    -- A continuation with no message before it, then a good text frame:
    -- parsing stops at the first, so the second is not listed.
    local d = ws_capture_raw("\128\3abc" .. "\129\2hi")
    assert.equals(0, #d.messages)
    assert.is_true(d.messages_dropped)
  end)

  it("names control frames and splits a close frame's code from its reason", function()
    -- Unmasked frames (the parser does not insist on a client's mask):
    -- a ping, a pong, a close 1001 "going away", a binary message.
    local d = ws_capture_raw("\137\4ping" .. "\138\4pong" .. "\136\12\3\233going away"
      .. "\130\3\0\1\2")
    local kinds = {}
    for i, m in ipairs(d.messages) do kinds[i] = m.kind end
    assert.same({ "ping", "pong", "close", "binary" }, kinds)
    assert.equals("ping", d.messages[1].data)
    assert.equals(9, d.messages[1].opcode)
    assert.equals(1001, d.messages[3].close_code)
    assert.equals("going away", d.messages[3].data)
    assert.is_nil(d.messages[3].encoding)
    assert.is_nil(d.messages[1].close_code)
    assert.equals("base64", d.messages[4].encoding)
  end)

  -- RFC 7692's examples (7.2.3): "Hello" compressed, then again with the
  -- first one's context taken over, then in a block that ends the deflate
  -- stream (BFINAL), then "Hello" once more in a new stream; RSV1 set.
  local function hex(s) return (s:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)) end
  local function compressed(payload) return "\193" .. string.char(#payload) .. payload end

  it("shows permessage-deflate messages as their text, decoded in order", function()
    local d = ws_capture_raw(compressed(hex("f248cdc9c90700")) .. compressed(hex("f200110000"))
      .. compressed(hex("f348cdc9c90700")) .. compressed(hex("f248cdc9c90700")))
    assert.equals(4, #d.messages)
    for i = 1, 4 do
      local m = d.messages[i]
      assert.equals("Hello", m.data, "message " .. i)
      assert.is_true(m.compressed)
      assert.is_nil(m.decode_error)
      assert.is_nil(m.encoding)
    end
    assert.equals(5, d.messages[2].length) -- what went on the wire
  end)

  it("gives a compressed message that does not decode as its bytes, and says why", function()
    local d = ws_capture_raw(compressed("\255\255\255") .. compressed(hex("f248cdc9c90700")))
    assert.equals(2, #d.messages)
    assert.equals("corrupt compressed message", d.messages[1].decode_error)
    assert.equals("base64", d.messages[1].encoding)
    assert.equals("////", d.messages[1].data)
    -- The next one goes on from a state nobody has: not decoded either.
    assert.equals("base64", d.messages[2].encoding)
    assert.is_string(d.messages[2].decode_error)
  end)

  it("exports permessage-deflate messages decoded in HAR", function()
    local proxy, adm = start({})
    local s = open_ws(proxy)
    -- Masked, as a client's frames are; RSV1 set (0xC1).
    local frame = ws_frame(hex("f248cdc9c90700"), 0xC1)
    h.send(s, frame)
    assert.equals(frame, h.recv_exact(s, #frame))
    s:close()
    wait_flows(adm, 1)
    local msgs = har_ws_messages(adm)
    assert.equals(2, #msgs)
    assert.equals("Hello", msgs[1].data)
    assert.equals("Hello", msgs[2].data) -- the echo, unmasked, same bytes
  end)

  it("keeps a text message cut inside a character as text, up to that character", function()
    local proxy, adm = start({ "--flow-body-max", "4" })
    local s = open_ws(proxy)
    local frame = ws_frame("abc\u{e9}def") -- é is two bytes: the budget ends inside it
    h.send(s, frame)
    assert.equals(frame, h.recv_exact(s, #frame))
    s:close()
    local f = wait_flows(adm, 1)[1]
    local d = a.get_json(adm, "/api/flows/" .. a.id(f.id))
    assert.equals("abc", d.messages[1].data)
    assert.is_nil(d.messages[1].encoding)
    assert.is_true(d.messages[1].truncated)
    assert.equals("text", d.messages[1].kind)
    local msgs = har_ws_messages(adm)
    assert.equals("abc", msgs[1].data)
  end)

  it("takes a 64-bit frame length with its top bit set for no WebSocket", function()
    local d = ws_capture_raw("\130\127" .. ("\255"):rep(8) .. "xyz")
    assert.equals(0, #d.messages)
    assert.is_true(d.messages_dropped)
  end)
end)
