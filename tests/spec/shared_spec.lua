-- proxy.shared: one store for every worker of a proxy (shared memory), or
-- for several proxies (Redis, a real redis-server on a loopback port).
-- Counters lose no update, values keep their type, keys expire, and a Redis
-- that goes away makes the calls fail at once (nil, "unavailable") while
-- the proxy keeps serving, then reconnects by itself.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")

local COUNTER = [[
function on_request(tx)
  if tx.req.path == "/types" then
    proxy.shared.set("s", "text")
    proxy.shared.set("i", 42)
    proxy.shared.set("f", 2.5)
    proxy.shared.set("b", false)
    local out = {}
    for _, k in ipairs({ "s", "i", "f", "b", "missing" }) do
      local v = proxy.shared.get(k)
      out[#out + 1] = k .. "=" .. tostring(v) .. ":" .. (math.type(v) or type(v))
    end
    return tx:respond(200, table.concat(out, " "))
  elseif tx.req.path == "/ttl" then
    proxy.shared.set("short", "x", 0.3)
    return tx:respond(200, "set")
  elseif tx.req.path == "/short" then
    return tx:respond(200, tostring(proxy.shared.get("short")))
  elseif tx.req.path == "/far" then
    -- ttls past what Redis can hold: kept for good, as in shared memory
    proxy.shared.set("forever", "v", math.huge)
    proxy.shared.set("long", "v", 1e300)
    return tx:respond(200, tostring(proxy.shared.get("forever")) .. " "
      .. tostring(proxy.shared.get("long")))
  elseif tx.req.path == "/json" then
    local doc = proxy.json.decode('{"list":[1,2,3],"name":"luaproxy"}')
    return tx:respond(200, proxy.json.encode({ n = #doc.list, name = doc.name }))
  elseif tx.req.path == "/count" then
    local n, err = proxy.shared.incr("hits", 1)
    return tx:respond(200, tostring(n) .. " " .. tostring(err))
  end
end
]]

-- What the store cannot take is a failure, nil and a reason, worded the
-- same by both backends; a value of the wrong type is the script's error.
local LIMITS = [[
function on_request(tx)
  local out = {}
  local function add(...)
    local t = table.pack(...)
    for i = 1, t.n do out[#out + 1] = tostring(t[i]) end
  end
  local long = string.rep("k", 257)
  add(proxy.shared.get(long))
  add(proxy.shared.set(long, 1))
  add(proxy.shared.incr(long))
  add(proxy.shared.delete(long))
  add(proxy.shared.get(""))
  add(proxy.shared.set("big", string.rep("v", 65537)))
  add(proxy.shared.set("text", "t"))
  add(proxy.shared.incr("text"))
  add(proxy.shared.set("max", math.maxinteger))
  add(proxy.shared.incr("max"))
  local ok, err = pcall(proxy.shared.get, 42)
  add(ok, (tostring(err):gsub("^.-:%d+: ", "")))
  return tx:respond(200, table.concat(out, "|"))
end
]]
local LIMITS_ANSWER = table.concat({
  "nil|keys are 1 to 256 bytes", "nil|keys are 1 to 256 bytes", "nil|keys are 1 to 256 bytes",
  "nil|keys are 1 to 256 bytes", "nil|keys are 1 to 256 bytes",
  "nil|values are at most 65536 bytes",
  "true", "nil|incr: the value is not a number",
  "true", "nil|incr: integer overflow",
  "false|proxy.shared: a key is a string, got number" }, "|")

describe("proxy.shared", function()
  local origin, procs = nil, {}

  before_each(function() origin = h.start_origin() end)
  after_each(function()
    local problem = h.stop_procs(procs)
    procs = {}
    origin.stop()
    assert.is_nil(problem)
  end)

  local function start(args)
    local p = h.start_proxy(args)
    procs[#procs + 1] = p
    return p
  end

  local function get(p, path)
    local resp = assert(h.get(p.port, origin.url(path)))
    assert.are.equal(200, resp.status)
    return resp.body
  end

  -- Sends <n> requests spread over <proxies> (each on a new connection, so
  -- the kernel spreads them over workers too) and returns the counts seen.
  local function count(proxies, n)
    local seen = {}
    for i = 1, n do
      local body = get(proxies[(i % #proxies) + 1], "/count")
      seen[#seen + 1] = assert(tonumber(body:match("^(%d+) nil$")), body)
    end
    table.sort(seen)
    return seen
  end

  -- One command to the Redis on <port> (RESP, no reply parsing): the raw reply.
  local function redis_command(port, ...)
    local args = { ... }
    local out = { "*" .. #args .. "\r\n" }
    for _, a in ipairs(args) do out[#out + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n" end
    local c = assert(h.connect(port))
    assert(h.send(c, table.concat(out)))
    local reply = h.recv_some(c, 2)
    c:close()
    return reply
  end

  local function one_to(n)
    local t = {}
    for i = 1, n do t[i] = i end
    return t
  end

  it("counts across workers in shared memory without losing an update", function()
    local script = h.tmpfile(COUNTER, "counter.lua")
    local p = start({ "-s", script, "--workers", "2" })
    assert.are.same(one_to(40), count({ p }, 40))
    assert.are.equal("s=text:string i=42:integer f=2.5:float b=false:boolean missing=nil:nil",
      get(p, "/types"))
  end)

  it("answers nil and a reason for what shared memory cannot take", function()
    local p = start({ "-s", h.tmpfile(LIMITS, "limits.lua") })
    assert.are.equal(LIMITS_ANSWER, get(p, "/"))
  end)

  it("lets keys expire", function()
    local p = start({ "-s", h.tmpfile(COUNTER, "counter.lua") })
    assert.are.equal("v v", get(p, "/far"))
    get(p, "/ttl")
    -- bounded polling on the store's own clock, not a timed assertion
    assert.is_truthy(h.wait_for(function() return get(p, "/short") == "nil" end, 5))
  end)

  it("gives scripts JSON", function()
    local p = start({ "-s", h.tmpfile(COUNTER, "counter.lua") })
    local body = get(p, "/json")
    assert.is_truthy(body == '{"n":3,"name":"luaproxy"}' or body == '{"name":"luaproxy","n":3}', body)
  end)

  it("refuses bad options for the store and the new limits", function()
    for _, case in ipairs({
      { { "--shared", "redis://example.com:6379" }, "must be an IP address or localhost" },
      { { "--shared", "http://127.0.0.1:6379" }, "is not redis://HOST:PORT[/DB]" },
      { { "--shared", "redis://127.0.0.1:0" }, "is not redis://HOST:PORT[/DB]" },
      { { "--shared-memory", "0" }, "invalid --shared-memory" },
      { { "--max-body-buffer", "0" }, "invalid --max-body-buffer" },
      { { "--hook-wait-timeout", "0" }, "invalid --hook-wait-timeout" },
    }) do
      local code, _, err = h.run_proxy(case[1])
      assert.are.equal(2, code, table.concat(case[1], " "))
      assert.is_truthy(err:find(case[2], 1, true), err)
    end
  end)

  it("gives top-level code a store too", function()
    local p = start({ "-s", h.tmpfile([[
      local n = proxy.shared.incr("loaded", 1)
      function on_request(tx) tx:respond(200, "loaded " .. tostring(n)) end
    ]], "top.lua") })
    assert.are.equal("loaded 1", get(p, "/"))
  end)

  describe("in Redis", function()
    local redis

    before_each(function()
      redis = h.start_redis()
      procs[#procs + 1] = redis
    end)

    it("is shared by two proxies and keeps types", function()
      local script = h.tmpfile(COUNTER, "counter.lua")
      local a = start({ "-s", script, "--shared", redis.url })
      local b = start({ "-s", script, "--shared", redis.url, "--workers", "2" })
      assert.is_truthy(h.wait_for(function()
        return a.log():find("redis .* connected") and b.log():find("redis .* connected")
      end))
      assert.are.same(one_to(30), count({ a, b }, 30))
      assert.are.equal("s=text:string i=42:integer f=2.5:float b=false:boolean missing=nil:nil",
        get(b, "/types"))
      -- the keys carry the prefix
      assert.are.equal("$2\r\n30\r\n", redis_command(redis.port, "GET", "luaproxy:hits"))
    end)

    it("answers nil and the same reasons as shared memory for what it cannot take", function()
      local p = start({ "-s", h.tmpfile(LIMITS, "limits.lua"), "--shared", redis.url })
      assert.is_truthy(h.wait_for(function() return p.log():find("redis .* connected") end))
      assert.are.equal(LIMITS_ANSWER, get(p, "/"))
    end)

    it("keeps keys with a ttl past what Redis holds, as shared memory does", function()
      local p = start({ "-s", h.tmpfile(COUNTER, "counter.lua"), "--shared", redis.url })
      assert.is_truthy(h.wait_for(function() return p.log():find("redis .* connected") end))
      get(p, "/far")
      -- before, the ttl overflowed into "PX 1": both keys were gone at once
      for _, key in ipairs({ "luaproxy:forever", "luaproxy:long" }) do
        assert.are.equal(":-1\r\n", redis_command(redis.port, "PTTL", key), key .. " has an expiry")
      end
    end)

    it("fails the calls, and says so, when its database cannot be selected", function()
      local p = start({ "-s", h.tmpfile(COUNTER, "counter.lua"), "--shared", redis.url .. "/99" })
      assert.is_truthy(h.wait_for(function() return p.log():find("SELECT 99 failed", 1, true) end),
        p.log())
      -- before, the SELECT's error was dropped and the keys went to database 0
      local body = get(p, "/count")
      assert.is_nil(body:match("^%d+ nil$"), body)
      assert.are.equal(":0\r\n", redis_command(redis.port, "EXISTS", "luaproxy:hits"))
    end)

    it("waits for a slow Redis without holding others, and lets a leaving client go", function()
      local script = h.tmpfile(COUNTER, "counter.lua")
      local p = start({ "-s", script, "--shared", redis.url })
      assert.is_truthy(h.wait_for(function() return p.log():find("redis .* connected") end))
      -- Redis holds every command for a while
      local c = assert(h.connect(redis.port))
      assert(h.send(c, "*3\r\n$6\r\nCLIENT\r\n$5\r\nPAUSE\r\n$4\r\n1500\r\n"))
      assert.are.equal("+OK\r\n", h.recv_some(c, 2))
      c:close()
      local gone = assert(h.connect(p.port))
      assert(h.send(gone, h.request("GET", origin.url("/count"), { "Host: " .. origin.authority })))
      local waiting = assert(h.connect(p.port))
      assert(h.send(waiting, h.request("GET", origin.url("/count"), { "Host: " .. origin.authority })))
      gone:close()
      -- a request that needs no Redis is answered meanwhile
      assert.are.equal("hello\n", (h.get(p.port, origin.url("/hello"))).body)
      assert.are.equal("timeout", select(2, h.recv_some(waiting, 0)))
      local resp = assert(h.read_response(waiting, { timeout = 10 }))
      waiting:close()
      assert.is_truthy(resp.body:match("^%d+ nil$"), resp.body)
    end)

    it("takes a Redis that stops answering for down: the calls fail, and it reconnects", function()
      local script = h.tmpfile(COUNTER, "counter.lua")
      -- the hook could wait far longer than Redis is given
      local p = start({ "-s", script, "--shared", redis.url, "--hook-wait-timeout", "600" })
      assert.is_truthy(h.wait_for(function() return p.log():find("redis .* connected") end))
      assert.are.equal("1 nil", get(p, "/count"))
      -- stopped, not gone: the connection stays open, nothing answers
      redis.signal("STOP")
      finally(function() redis.signal("CONT") end)
      local c = assert(h.connect(p.port))
      assert(h.send(c, h.request("GET", origin.url("/count"), { "Host: " .. origin.authority })))
      -- before, the hook waited for as long as --hook-wait-timeout
      local resp, err = h.read_response(c, { timeout = 60 })
      c:close()
      assert.is_truthy(resp, err)
      assert.are.equal("nil unavailable", resp.body)
      assert.is_truthy(p.log_has("no answer for 5 s; dropping the connection"), p.log())
      -- a request that needs no Redis is served meanwhile
      assert.are.equal("hello\n", (h.get(p.port, origin.url("/hello"))).body)
      redis.signal("CONT")
      assert.is_truthy(h.wait_for(function() return get(p, "/count"):match("^%d+ nil$") end, 20),
        p.log())
    end)

    it("refuses a value over the limit that something else wrote, without reading it", function()
      local p = start({ "-s", h.tmpfile([[
        function on_request(tx)
          local v, err = proxy.shared.get(tx.req.path:sub(2))
          return tx:respond(200, tostring(v and #v) .. " " .. tostring(err))
        end
      ]], "big.lua"), "--shared", redis.url })
      assert.is_truthy(h.wait_for(function() return p.log():find("redis .* connected") end))
      -- A value of exactly the limit (as proxy.shared stores it: "s:" first)
      -- is read whole; one byte more is refused.
      assert.are.equal("+OK\r\n", redis_command(redis.port, "SET", "luaproxy:fits",
        "s:" .. string.rep("v", 65536)))
      assert.are.equal("+OK\r\n", redis_command(redis.port, "SET", "luaproxy:big",
        "s:" .. string.rep("v", 65537)))
      assert.are.equal("65536 nil", get(p, "/fits"))
      assert.are.equal("nil values are at most 65536 bytes (a larger one is there)", get(p, "/big"))
      assert.are.equal("nil nil", get(p, "/missing"))
    end)

    it("answers nil, 'unavailable' at once while Redis is down, and reconnects", function()
      local script = h.tmpfile(COUNTER, "counter.lua")
      local p = start({ "-s", script, "--shared", redis.url })
      assert.is_truthy(h.wait_for(function() return p.log():find("redis .* connected") end))
      assert.are.equal("1 nil", get(p, "/count"))
      local port = redis.port
      redis.stop()
      assert.is_truthy(h.wait_for(function() return p.log():find("connection lost", 1, true) end))
      assert.are.equal("nil unavailable", get(p, "/count"))
      assert.are.equal("hello\n", (h.get(p.port, origin.url("/hello"))).body)
      -- a new Redis on the same port: the proxy finds it by itself
      local again = h.start_redis(port)
      procs[#procs + 1] = again
      assert.is_truthy(h.wait_for(function() return get(p, "/count") == "1 nil" end, 10))
    end)
  end)

  it("drops a Redis whose answer grows past 1 MiB, and keeps serving", function()
    -- Not a Redis: it answers the first command with the head of a 64 MiB
    -- string and sends its bytes for as long as the proxy takes them.
    local server, port = h.raw_listener()
    local p = start({ "-s", h.tmpfile(COUNTER, "counter.lua"), "--shared",
      "redis://127.0.0.1:" .. port })
    local c = assert(server:accept())
    local client = assert(h.connect(p.port))
    assert(h.send(client, h.request("GET", origin.url("/count"), { "Host: " .. origin.authority })))
    assert(h.recv_some(c, 5)) -- the EVAL
    c:settimeout(10)
    assert(c:send("$67108864\r\n"))
    local chunk, sent = string.rep("x", 65536), 0
    while sent < 64 * 1048576 do
      if not c:send(chunk) then break end
      sent = sent + #chunk
    end
    c:close()
    server:close()
    -- (What the kernel's socket buffers held counts as taken.)
    assert.is_true(sent < 32 * 1048576, "the proxy took " .. sent .. " bytes of one answer")
    local resp = assert(h.read_response(client, { timeout = 10 }))
    client:close()
    assert.are.equal("nil unavailable", resp.body)
    assert.is_truthy(p.log_has("an answer of over 1024 KiB; dropping the connection"), p.log())
    assert.are.equal("hello\n", (h.get(p.port, origin.url("/hello"))).body)
  end)
end)
