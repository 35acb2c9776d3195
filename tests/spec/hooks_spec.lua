-- Lua hooks: that every hook runs, in the documented order, with the
-- documented tx fields; the headers API; rewriting the target; local
-- responses; chaining several scripts; reshaping the response body; and the
-- `proxy` table (log, now, version, sleep). See /tmp/brief/hooks.md.
--
-- The scripts live in tests/spec/fixtures/hooks/. They report what they saw
-- through headers (request headers reach the origin, whose /echo route and
-- record show them; response headers reach the client) or through
-- proxy.log, so a failure here names the field that was wrong.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local each_test = require("support.each_test")

local FIXTURES = h.HOOK_FIXTURES

describe("hooks", function()
  local procs = each_test.processes()
  local origin, proxy
  before_each(function() origin = procs.origin() end)

  -- Starts the proxy with the given fixture scripts (names without .lua)
  -- plus any extra arguments.
  local function start(scripts, args)
    proxy = procs.proxy(h.hook_args(scripts, args))
    return proxy
  end

  local function host_hdr(o) return "Host: " .. (o or origin).authority end

  -- One request on a fresh connection; returns the response.
  local function exchange(bytes, opts)
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, bytes))
    local resp, err = h.read_response(s, opts)
    s:close()
    assert(resp, "no response: " .. tostring(err))
    return resp
  end

  -- GET <path> on the origin with extra header lines.
  local function get(path, headers, o)
    local list = { host_hdr(o) }
    for _, x in ipairs(headers or {}) do list[#list + 1] = x end
    return exchange(h.request("GET", (o or origin).url(path), list))
  end

  -- Waits (bounded) for a log line matching a Lua pattern; returns it.
  local function wait_log(pat, timeout)
    return h.wait_for(function()
      for line in proxy.log():gmatch("[^\n]+") do
        if line:find(pat) then return line end
      end
    end, timeout)
  end

  -- Names of a parsed header table, in order.
  local function names_of(headers, skip)
    local out = {}
    for _, f in ipairs(headers) do
      if not (skip and skip[f.name:lower()]) then out[#out + 1] = f.name end
    end
    return out
  end

  local SCRIPT_FAILED = "500 Internal Server Error: a script failed while handling this request\n"

  ----------------------------------------------------------------------------
  describe("order and fields", function()
    it("runs every hook, in the documented order", function()
      start({ "order" })
      local resp = get("/hello")
      assert.are.equal(200, resp.status)
      assert.are.equal("on_request,before_connect,on_response", resp.headers["x-calls"])
      assert.are.equal("hello\n", resp.body)
      local line = wait_log("calls #%d+: ")
      assert.truthy(line, "no on_done log line:\n" .. proxy.log())
      assert.truthy(line:find("calls #%d+: on_request,before_connect,on_response,on_response_chunk,on_done$"),
        line)
    end)

    it("gives tx the request, client and upstream fields", function()
      start({ "fields" })
      local s = assert(h.connect(proxy.port))
      local _, my_port = s:getsockname()
      assert(h.send(s, h.request("GET", origin.url("/hello?x=1&y=2"),
        { "Host: ignored.example", "X-Client: from the client" })))
      local resp = assert(h.read_response(s))
      s:close()
      local t = resp.headers
      assert.are.equal(200, resp.status)
      assert.are.equal("integer", t["x-tx-id-type"])
      assert.are.equal("GET", t["x-tx-method"])
      assert.are.equal(origin.url("/hello?x=1&y=2"), t["x-tx-url"])
      assert.are.equal("http", t["x-tx-scheme"])
      assert.are.equal("127.0.0.1", t["x-tx-host"])
      assert.are.equal(tostring(origin.port), t["x-tx-port"])
      assert.are.equal("integer", t["x-tx-port-type"])
      assert.are.equal("/hello?x=1&y=2", t["x-tx-path"])
      assert.are.equal("1.1", t["x-tx-version"])
      -- The Host header is already the regenerated one.
      assert.are.equal(origin.authority, t["x-tx-req-host-header"])
      assert.are.equal("from the client", t["x-tx-req-client-header"])
      assert.are.equal("127.0.0.1", t["x-tx-client-ip"])
      assert.are.equal(tostring(my_port), t["x-tx-client-port"])
      assert.are.equal("127.0.0.1", t["x-tx-upstream-host"])
      assert.are.equal(tostring(origin.port), t["x-tx-upstream-port"])
    end)

    it("reports HTTP/1.0 as version 1.0", function()
      start({ "fields" })
      local resp = exchange(h.request("GET", origin.url("/hello"), { host_hdr() }, nil, "HTTP/1.0"))
      assert.are.equal("1.0", resp.headers["x-tx-version"])
    end)

    it("numbers transactions with increasing ids", function()
      start({ "fields" })
      -- Two on one connection and one on another.
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, h.request("GET", origin.url("/hello"), { host_hdr() })))
      local r1 = assert(h.read_response(s))
      assert(h.send(s, h.request("GET", origin.url("/hello"), { host_hdr() })))
      local r2 = assert(h.read_response(s))
      s:close()
      local r3 = get("/hello")
      local id1, id2, id3 = tonumber(r1.headers["x-tx-id"]), tonumber(r2.headers["x-tx-id"]),
        tonumber(r3.headers["x-tx-id"])
      assert.truthy(id1 and id2 and id3, r1.raw_head)
      assert.are.equal(id1 + 1, id2)
      assert.are.equal(id2 + 1, id3)
    end)

    it("shares tx.ctx across one transaction's hooks but not across transactions", function()
      start({ "fields" })
      local s = assert(h.connect(proxy.port))
      for _ = 1, 2 do
        assert(h.send(s, h.request("GET", origin.url("/hello"), { host_hdr() })))
        local resp = assert(h.read_response(s))
        assert.are.equal("set in on_request", resp.headers["x-tx-ctx-in-before-connect"])
        assert.are.equal("set in on_request", resp.headers["x-tx-ctx-in-on-response"])
        assert.are.equal("false", resp.headers["x-tx-ctx-leaked"])
      end
      s:close()
      assert.are.equal("false", get("/hello").headers["x-tx-ctx-leaked"])
    end)

    it("gives on_response the upstream's status, reason and headers, and lets it set them", function()
      start({ "fields" })
      local resp = get("/status/404")
      assert.are.equal("404", resp.headers["x-tx-res-status"])
      assert.are.equal("Not Found", resp.headers["x-tx-res-reason"])
      assert.are.equal("text/plain", resp.headers["x-tx-res-content-type"])
      assert.are.equal("HTTP/1.1 404 Not Found", resp.status_line)

      resp = get("/hello", { "X-Set-Status: 299", "X-Set-Reason: Quite Fine" })
      assert.are.equal("HTTP/1.1 299 Quite Fine", resp.status_line)
      assert.are.equal("hello\n", resp.body)
    end)

    it("gives on_request tx.req whether or not the last exchange used it", function()
      start({ "req_on_look" })
      local steps = { "plain", "plain", "set", "set", "plain", "line", "plain", "set", "line", "line",
                      "plain" }
      for i, step in ipairs(steps) do
        local what = ("step %d (%s)"):format(i, step)
        assert.are.equal(200, get("/echo?" .. step).status, what)
        local seen = origin.requests()[i]
        assert.are.equal("/echo?" .. step, seen.target:match("^https?://[^/]+(.*)$") or seen.target, what)
        assert.are.equal(step == "set" and ("set " .. i) or nil, seen.headers["x-step"], what)
      end
    end)

    it("gives on_response tx.res whether or not the last exchange used it", function()
      start({ "res_on_look" })
      -- Each use after a different one: tx.res made before on_response
      -- (the last exchange used it) and on first look (it did not).
      local steps = { "plain", "plain", "add", "add", "plain", "status", "plain", "add",
                      "status", "status", "plain" }
      for i, query in ipairs(steps) do
        local path = query == "status" and "/status/404?status" or "/hello?" .. query
        local resp = get(path)
        local what = ("step %d (%s)"):format(i, query)
        if query == "status" then
          assert.are.equal("HTTP/1.1 410 Gone", resp.status_line, what)
        else
          assert.are.equal(200, resp.status, what)
          assert.are.equal("hello\n", resp.body, what)
          assert.are.equal("6", resp.headers["content-length"], what)
        end
        assert.are.equal(query == "add" and "add" or nil, resp.headers["x-looked"], what)
      end
      -- A tx whose response a script read keeps it past its exchange.
      assert.are.equal(404, get("/status/404?keep").status)
      assert.are.equal("404 Not Found text/plain", get("/hello?show").headers["x-kept-res"])
    end)

    it("gives on_done the status, error, byte counts and duration", function()
      start({ "fields" })
      -- A request with a 11-byte body answered by /echo.
      local body = "hello world"
      local resp = exchange(h.request("POST", origin.url("/echo"),
        { host_hdr(), "Content-Length: " .. #body }, body))
      assert.are.equal(200, resp.status)
      local id = resp.headers["x-tx-id"]
      local line = wait_log("done #" .. id .. " ")
      assert.truthy(line, "no on_done line:\n" .. proxy.log())
      assert.truthy(line:find(" status=200 ", 1, true), line)
      assert.truthy(line:find(" error=nil ", 1, true), line)
      assert.truthy(line:find(" bytes_sent=" .. #resp.body .. " ", 1, true), line)
      assert.truthy(line:find(" bytes_received=" .. #body .. " ", 1, true), line)
      assert.truthy(line:find(" res_status=200 ", 1, true), line)
      assert.truthy(line:find(" ctx=set in on_request$"), line)
      local d = tonumber(line:match(" duration=(%S+)"))
      assert.truthy(d and d >= 0 and d < 5, line)
      assert.truthy(line:find(" duration_type=float ", 1, true), line)

      -- A failed exchange: the upstream refuses the connection.
      local closed = h.closed_port()
      resp = exchange(h.request("GET", "http://127.0.0.1:" .. closed .. "/x",
        { "Host: 127.0.0.1:" .. closed }))
      assert.are.equal(502, resp.status)
      line = wait_log("done #%d+ status=502 ")
      assert.truthy(line, "no on_done line for the 502:\n" .. proxy.log())
      assert.falsy(line:find(" error=nil ", 1, true), line)
      assert.truthy(line:find(" bytes_received=0 ", 1, true), line)
    end)
  end)

  ----------------------------------------------------------------------------
  describe("headers API", function()
    it("gets case-insensitively, joins, sets, removes, adds and iterates in wire order", function()
      start({ "headers_api" })
      local resp = get("/echo", { "X-Headers-Test: 1", "X-Dup: one", "X-Other: z", "x-dup: two",
        "X-Remove: bye", "X-Replace: a", "X-Replace: b", "Accept: */*" })
      assert.are.equal(200, resp.status)
      local r = origin.requests()[1]
      local got = r.headers
      assert.are.equal("one, two", got["x-got-index"])
      assert.are.equal("one, two", got["x-got-get"])
      assert.are.equal("one|two", got["x-got-values"])
      assert.are.equal("nil", got["x-got-missing"])
      -- The two X-Dup fields stay two fields.
      assert.are.equal(2, h.header_count(got, "X-Dup"))
      -- set replaces all fields of the name with one, where the first was.
      assert.are.equal(1, h.header_count(got, "X-Replace"))
      assert.are.equal("c", got["x-replace"])
      assert.is_nil(got["x-remove"])
      assert.is_nil(got["x-other"])
      assert.are.equal(2, h.header_count(got, "X-Added"))
      assert.are.equal("1, 2", got["x-added"])
      assert.are.equal("42", got["x-number"])
      assert.are.equal("1.5", got["x-float"])
      assert.are.equal("padded", got["x-trimmed"])
      assert.are.equal("false invalid header name bad name", got["x-bad-name"])
      assert.are.equal("false a header value must be a string, got table", got["x-bad-value"])
      assert.are.equal("false invalid header name 7", got["x-bad-type"])
      -- pairs() walked the fields in wire order: exactly what went out,
      -- minus what was added after the walk and the proxy's Connection.
      local wire = names_of(got, { ["x-order"] = true, ["x-count"] = true, connection = true })
      assert.are.equal(table.concat(wire, ","), got["x-order"])
      assert.are.equal(tostring(#wire), got["x-count"])
      -- X-Replace kept its place before Accept.
      local order = table.concat(wire, ",")
      assert.truthy(order:find("X-Replace,Accept", 1, true), order)
      -- The response side works the same way.
      assert.are.equal("text/plain", resp.headers["x-res-type"])
      assert.are.equal("text/x-replaced", resp.headers["content-type"])
      assert.are.equal(1, h.header_count(resp.headers, "Content-Type"))
      assert.are.equal(2, h.header_count(resp.headers, "X-Res-Added"))
    end)

    for _, case in ipairs({ { "cr", "set" }, { "lf", "set" }, { "nul", "set" },
                            { "cr", "add" }, { "lf", "add" }, { "nul", "add" } }) do
      it("refuses a value with " .. case[1]:upper() .. " (" .. case[2] .. ") with 500", function()
        start({ "bad_values" })
        local resp = get("/echo", { "X-Bad: " .. case[1], "X-How: " .. case[2] })
        assert.are.equal("HTTP/1.1 500 Internal Server Error", resp.status_line)
        assert.are.equal(SCRIPT_FAILED, resp.body)
        assert.are.equal(0, #origin.requests())
        assert.truthy(wait_log("CR, LF or NUL"), proxy.log())
        -- and the next request is fine
        assert.are.equal(200, get("/hello").status)
      end)
    end

    for _, case in ipairs({ { "ctl", "set" }, { "del", "add" }, { "esc", "set" } }) do
      it("refuses a value with another control byte (" .. case[1] .. ", " .. case[2] .. ") with 500",
        function()
          start({ "bad_values" })
          local resp = get("/echo", { "X-Bad: " .. case[1], "X-How: " .. case[2] })
          assert.are.equal("HTTP/1.1 500 Internal Server Error", resp.status_line)
          assert.are.equal(SCRIPT_FAILED, resp.body)
          assert.are.equal(0, #origin.requests())
          assert.truthy(wait_log("must not contain control characters"), proxy.log())
          assert.are.equal(200, get("/hello").status)
        end)
    end

    it("lets a script catch a refused value and carry on", function()
      start({ "bad_values" })
      for i, which in ipairs({ "lf", "ctl" }) do
        local resp = get("/echo", { "X-Bad: " .. which, "X-How: pcall" })
        assert.are.equal(200, resp.status)
        local seen = origin.requests()[i]
        assert.are.equal(which == "lf" and "must not contain CR, LF or NUL"
          or "must not contain control characters", seen.headers["x-caught"])
        assert.is_nil(seen.headers["x-evil"])
      end
    end)

    -- What number_values.lua sets, as the wire must carry it: integers
    -- and whole floats in digits, other floats in the fewest digits that
    -- read back as the same number.
    local FINITE = {
      ["x-int"] = "42", ["x-whole"] = "3", ["x-half"] = "1.5", ["x-tenth"] = "0.1",
      ["x-third"] = "0.3333333333333333", ["x-big"] = "1e+300",
      ["x-two53"] = "9007199254740992", ["x-two63"] = "9.223372036854776e+18",
      ["x-min"] = "-9223372036854775808", ["x-neg-zero"] = "0", ["x-tiny"] = "5e-324",
      ["x-neg"] = "-2.5e-07", ["x-added"] = "7",
    }

    it("sends a number set as a value as the number it is", function()
      start({ "number_values" })
      local resp = get("/echo")
      assert.are.equal(200, resp.status)
      local sent = origin.requests()[1].headers
      for name, text in pairs(FINITE) do
        assert.are.equal(text, sent[name], name)
        assert.are.equal(text, resp.headers[name], name)
      end
      -- The same through rawset into a read list, and through tx:respond.
      assert.are.equal(200, get("/echo", { "X-Where: req-rawset-finite" }).status)
      assert.are.equal("4", origin.requests()[2].headers["x-raw"])
      resp = get("/echo", { "X-Where: respond-finite" })
      assert.are.equal(200, resp.status)
      assert.are.equal("3", resp.headers["x-whole"])
      assert.are.equal("9007199254740992", resp.headers["x-two53"])
      assert.are.equal(2, #origin.requests())
    end)

    -- NaN and the infinities have no text to send: wherever a script puts
    -- one, its hook fails (500), and neither "nan" nor "inf" goes out.
    for _, case in ipairs({ { "req-set", "must be a finite number" },
                            { "req-add", "must be a finite number" },
                            { "req-method-set", "must be a finite number" },
                            { "req-rawset", "invalid header X%-A" },
                            { "respond", "must be a finite number" },
                            { "http", "must be a finite number" } }) do
      it("fails the request hook that sets a value to NaN or an infinity (" .. case[1] .. ")",
        function()
          start({ "number_values" })
          for _, what in ipairs({ "nan", "inf", "-inf" }) do
            local resp = get("/echo", { "X-Where: " .. case[1], "X-What: " .. what })
            assert.are.equal("HTTP/1.1 500 Internal Server Error", resp.status_line)
            assert.are.equal(SCRIPT_FAILED, resp.body)
            assert.is_nil(resp.headers["x-a"])
          end
          assert.are.equal(0, #origin.requests())
          assert.truthy(wait_log(case[2]), proxy.log())
          assert.are.equal(200, get("/hello").status)
        end)
    end

    for _, where in ipairs({ "res-set", "res-add" }) do
      it("fails the response hook that sets a value to NaN or an infinity (" .. where .. ")",
        function()
          start({ "number_values" })
          for _, what in ipairs({ "nan", "inf", "-inf" }) do
            local resp = get("/echo", { "X-Where: " .. where, "X-What: " .. what })
            assert.are.equal("HTTP/1.1 500 Internal Server Error", resp.status_line)
            assert.are.equal("500 Internal Server Error: a script failed while handling this "
              .. "response\n", resp.body)
            assert.is_nil(resp.headers["x-a"])
          end
          assert.truthy(wait_log("must be a finite number"), proxy.log())
        end)
    end

    it("lets a script catch a value that is not a finite number", function()
      start({ "number_values" })
      local resp = get("/echo", { "X-Where: catch", "X-What: inf" })
      assert.are.equal(200, resp.status)
      local sent = origin.requests()[1].headers
      assert.is_nil(sent["x-a"])
      assert.truthy((sent["x-caught"] or ""):find("must be a finite number, got inf", 1, true),
        sent["x-caught"])
    end)

    it("keeps a list edited but never read past its exchange, with its edits", function()
      start({ "kept_lists" })
      local first = get("/echo?keep", { "X-Gone: 1", "X-Stay: s" })
      assert.are.equal(200, first.status)
      assert.are.equal("r", first.headers["x-res-edit"])
      local sent = origin.requests()[1].headers
      assert.are.equal("1, 2", sent["x-edit"])
      assert.is_nil(sent["x-gone"])
      assert.are.equal(200, get("/echo?show").status)
      local got = origin.requests()[2].headers
      -- The first request's fields as the script left them, in order
      -- (the proxy's Via is in the list a script sees).
      assert.are.equal("Host=" .. origin.authority .. ";X-Stay=s;Via=1.1 luaproxy;X-Edit=1;X-Edit=2 #5",
                       got["x-kept-req"])
      assert.are.equal("1, 2", got["x-kept-get"])
      local res = got["x-kept-res"]
      assert.truthy(res:find(";X-Res-Edit=r #", 1, true), res)
      assert.falsy(res:find("Server=", 1, true), res)
    end)

    it("keeps the order of many edits to a list, read or not", function()
      start({ "many_edits" })
      local many = {}
      for i = 1, 20 do many[i] = string.rep(string.char(96 + i), 20) end
      for n, path in ipairs({ "/echo", "/echo?read" }) do
        assert.are.equal(200, get(path, { "X-First: a", "X-Gone: 1", "X-Stay: s" }).status)
        local r = origin.requests()[n]
        assert.are.equal(table.concat(many, ", "), r.headers["x-many"])
        assert.are.equal("set late", r.headers["x-first"])
        assert.is_nil(r.headers["x-gone"])
        -- In place for the set, in order for the adds, the last add last.
        local first, stay = r.head:find("X-First: set late", 1, true), r.head:find("X-Stay: s", 1, true)
        local last_many = select(2, r.head:find(".*X%-Many: " .. many[20]))
        local last = r.head:find("X-Last: end", 1, true)
        assert.truthy(first and stay and last_many and last, r.head)
        assert.truthy(first < stay and stay < last_many and last_many < last, r.head)
        if n == 2 then
          -- Host, X-First, X-Stay, Via, 20 X-Many, X-Last
          assert.are.equal("25 end 20", r.headers["x-read"])
        end
      end
    end)

    it("keeps the edits of a list holding a view's block apart from the view's", function()
      start({ "shared_block" })
      assert.are.equal(200, get("/echo").status)
      local sent = origin.requests()[1].headers
      assert.is_nil(sent["x-own"])
      assert.are.equal("1", sent["x-after"])
      assert.are.equal("nil", sent["x-copy-sees"])
      assert.are.equal("1", sent["x-own-sees"])
      -- A read list emptied and given its block back holds no edit.
      assert.are.equal(200, get("/echo?refill").status)
      assert.is_nil(origin.requests()[2].headers["x-read-edit"])
    end)

    it("refuses a field put into a list with rawset, whether the list was read or not", function()
      start({ "kept_lists" })
      -- Never read: the list's array holds the script's edits, which this
      -- is not.
      local resp = get("/echo?raw-view")
      assert.are.equal("HTTP/1.1 500 Internal Server Error", resp.status_line)
      assert.truthy(wait_log("invalid header list %(changed with rawset%)"), proxy.log())
      -- The same, shaped like an edit: a second Host must not get out.
      resp = get("/echo?raw-host")
      assert.are.equal("HTTP/1.1 500 Internal Server Error", resp.status_line)
      -- Read: a plain list, whose fields are all checked when read back.
      resp = get("/echo?raw-list")
      assert.are.equal("HTTP/1.1 500 Internal Server Error", resp.status_line)
      assert.truthy(wait_log("invalid header X%-Raw"), proxy.log())
      assert.are.equal(0, #origin.requests())
      assert.are.equal(200, get("/hello").status)
    end)

    it("drops the fields the proxy owns, on the request and on the response", function()
      start({ "owned" })
      local resp = get("/echo")
      assert.are.equal(200, resp.status)
      local r = origin.requests()[1]
      assert.are.equal("yes", r.headers["x-kept"])
      for _, name in ipairs({ "Content-Length", "Transfer-Encoding", "Keep-Alive",
                              "Proxy-Connection", "TE", "Trailer", "Upgrade" }) do
        assert.are.equal(0, h.header_count(r.headers, name), name .. " reached the origin:\n" .. r.head)
      end
      -- The script's Connection field is dropped; the proxy sends none.
      assert.are.equal(0, h.header_count(r.headers, "Connection"))
      -- The response keeps its real framing.
      assert.are.equal("yes", resp.headers["x-kept"])
      assert.are.equal("length", resp.framing)
      assert.are.equal(tostring(#r.head), resp.headers["content-length"])
      assert.are.equal(r.head, resp.body)
      for _, name in ipairs({ "Transfer-Encoding", "Keep-Alive", "Proxy-Connection", "TE",
                              "Trailer", "Upgrade" }) do
        assert.are.equal(0, h.header_count(resp.headers, name), name .. " reached the client:\n" .. resp.raw_head)
      end
      assert.are.equal(1, h.header_count(resp.headers, "Content-Length"))
      assert.falsy((resp.headers["connection"] or ""):find("X-Kept", 1, true))
    end)
  end)

  ----------------------------------------------------------------------------
  describe("rewriting the request", function()
    it("setting path keeps url consistent and reaches the origin", function()
      start({ "rewrite" })
      local resp = get("/hello", { "X-Mode: path" })
      assert.are.equal(200, resp.status)
      local r = origin.requests()[1]
      assert.are.equal("GET /echo?via=path HTTP/1.1", r.request_line)
      assert.are.equal(origin.url("/echo?via=path"), r.headers["x-seen-url"])
      assert.are.equal("/echo?via=path", r.headers["x-seen-path"])
      assert.are.equal(origin.authority, r.headers["host"])
      assert.are.equal(r.head, resp.body)
    end)

    it("setting url changes host, port, path and Host", function()
      local other = procs.origin()
      start({ "rewrite" })
      local resp = get("/hello", { "X-Mode: url", "X-Target: " .. other.port })
      assert.are.equal(200, resp.status)
      assert.are.equal(0, #origin.requests())
      local r = other.requests()[1]
      assert.truthy(r, "the new target got nothing")
      assert.are.equal("GET /echo?via=url HTTP/1.1", r.request_line)
      assert.are.equal(other.authority, r.headers["host"])
      assert.are.equal(1, h.header_count(r.headers, "Host"))
      assert.are.equal("127.0.0.1", r.headers["x-seen-host"])
      assert.are.equal(tostring(other.port), r.headers["x-seen-port"])
      assert.are.equal("/echo?via=url", r.headers["x-seen-path"])
      assert.are.equal(other.url("/echo?via=url"), r.headers["x-seen-url"])
    end)

    it("setting port changes url, Host and where the request goes", function()
      local other = procs.origin()
      start({ "rewrite" })
      local resp = get("/echo", { "X-Mode: port", "X-Target: " .. other.port })
      assert.are.equal(200, resp.status)
      assert.are.equal(0, #origin.requests())
      local r = other.requests()[1]
      assert.truthy(r, "the new port got nothing")
      assert.are.equal("GET /echo HTTP/1.1", r.request_line)
      assert.are.equal(other.authority, r.headers["host"])
      assert.are.equal(other.url("/echo"), r.headers["x-seen-url"])
    end)

    it("setting host changes url and Host", function()
      start({ "rewrite" })
      -- The client names localhost; the script makes it 127.0.0.1.
      local url = "http://localhost:" .. origin.port .. "/echo"
      local resp = exchange(h.request("GET", url,
        { "Host: localhost:" .. origin.port, "X-Mode: host", "X-Target: 127.0.0.1" }))
      assert.are.equal(200, resp.status)
      local r = origin.requests()[1]
      assert.are.equal(origin.authority, r.headers["host"])
      assert.are.equal("127.0.0.1", r.headers["x-seen-host"])
      assert.are.equal(origin.url("/echo"), r.headers["x-seen-url"])
    end)

    it("leaves port 80 out of Host and url", function()
      start({ "rewrite" })
      local resp = get("/echo", { "X-Mode: port80", "X-Target: " .. origin.port })
      assert.are.equal(200, resp.status)
      local r = origin.requests()[1]
      assert.are.equal("127.0.0.1", r.headers["host"])
      assert.are.equal("80", r.headers["x-seen-port"])
      assert.are.equal("http://127.0.0.1/echo", r.headers["x-seen-url"])
    end)

    it("shows and sends a URL without a path as the path /", function()
      start({ "rewrite" })
      -- "http://h" and "http://h?q" name "/" and "/?q" (RFC 9110 4.2.3).
      for _, case in ipairs({ { "", "/" }, { "?q=1", "/?q=1" } }) do
        local url = "http://" .. origin.authority .. case[1]
        local resp = exchange(h.request("GET", url, { host_hdr() }))
        assert.are.equal(200, resp.status)
        local r = origin.requests()[#origin.requests()]
        assert.are.equal("GET " .. case[2] .. " HTTP/1.1", r.request_line)
        assert.are.equal(case[2], r.headers["x-seen-path"])
        assert.are.equal(origin.url(case[2]), r.headers["x-seen-url"])
      end
    end)

    it("sends a changed method to the origin", function()
      start({ "rewrite" })
      local resp = get("/echo", { "X-Mode: method", "X-Target: DELETE" })
      assert.are.equal(200, resp.status)
      local r = origin.requests()[1]
      assert.are.equal("DELETE /echo HTTP/1.1", r.request_line)
      assert.are.equal("DELETE", r.headers["x-seen-method"])
    end)

    it("before_connect connects elsewhere while Host stays", function()
      local other = procs.origin()
      start({ "rewrite" })
      local resp = get("/echo", { "X-Mode: upstream", "X-Target: " .. other.port })
      assert.are.equal(200, resp.status)
      assert.are.equal("127.0.0.1:" .. origin.port, resp.headers["x-upstream-was"])
      assert.are.equal(0, #origin.requests())
      local r = other.requests()[1]
      assert.truthy(r, "the redirected upstream got nothing")
      assert.are.equal("GET /echo HTTP/1.1", r.request_line)
      assert.are.equal(origin.authority, r.headers["host"])
    end)

    -- The proxy keeps the tx.req and tx.res it made apart from the names
    -- a script reads them by (and from tx's array, which a script may use
    -- as its own): assigning to tx.req changes what the script sees, not
    -- what is sent. Their parts sit at indexes 1 to 3, where a store is not
    -- a setter's, and is refused when read back.
    local ASSIGN_SIDES = [==[
local on_req = {
  ["nil"] = function(tx)
    tx.req.headers["X-A"] = "1"
    tx.req = nil
    tx.ctx.again = tx.req ~= nil and tx.req.headers["X-A"]
  end,
  ["table"] = function(tx) tx.req.headers["X-A"] = "1"; tx.req = { headers = {} } end,
  ["append"] = function(tx)
    tx.req.headers["X-A"] = "1"
    tx[#tx + 1] = {}
    table.insert(tx, "note")
    table.insert(tx, "more")
  end,
  ["fail"] = function(tx) tx.req.headers["X-A"] = "1"; tx.req = {}; error("on purpose") end,
  ["index"] = function(tx) tx.req[1] = "x" end,
  ["list"] = function(tx) tx.req.headers["X-A"] = "1"; tx.req[1] = {} end,
  ["data"] = function(tx) tx.req.headers["X-A"] = "1"; rawset(tx.req, 2, {}) end,
  ["swap"] = function(tx) tx.req.headers["X-A"] = "1"; tx.ctx.swap = true end,
  ["walk"] = function(tx)
    local _, kinds = tx.req.method, {}
    for k in pairs(tx) do kinds[#kinds + 1] = type(k) == "string" and k or type(k) end
    tx.ctx.walk = table.concat(kinds, " ")
  end,
}
function on_request(tx) on_req[tx.req.headers["X-Case"]](tx) end
function before_connect(tx) tx.ctx.port = tx.upstream.port end
function on_response(tx)
  if tx.ctx.swap then -- the proxy's own key, found with next: tx.req in tx.res's place
    local req, res = tx.req, tx.res -- made before the walk, which adds no key
    for k, v in next, tx do
      if type(k) == "userdata" and v == res then rawset(tx, k, req) end
    end
  end
  tx.res = nil
  tx.res.headers["X-Again"] = tx.ctx.again or "no"
  tx.res.headers["X-Walk"] = tx.ctx.walk
end
]==]

    it("reads back the tx.req and tx.res it made, whatever a script assigns to them", function()
      proxy = procs.proxy({ "-s", h.tmpfile(ASSIGN_SIDES, "assign_sides.lua") })
      for _, case in ipairs({ "append", "nil", "table" }) do
        local resp = get("/echo", { "X-Case: " .. case })
        assert.are.equal(200, resp.status, case .. ": " .. proxy.log())
        assert.truthy(resp.body:find("\r\nX-A: 1\r\n", 1, true), case .. ": " .. resp.body)
        assert.are.equal(case == "nil" and "1" or "no", resp.headers["x-again"], case)
      end
      local walk = get("/echo", { "X-Case: walk" }).headers["x-walk"]
      assert.truthy(walk and walk:find("req", 1, true), walk)
      assert.is_nil(walk:find("userdata", 1, true), walk)
      for i, case in ipairs({ "index", "list", "data", "swap" }) do
        local resp = get("/echo", { "X-Case: " .. case })
        assert.are.equal(500, resp.status, case .. ": " .. proxy.log())
        assert.truthy(h.wait_for(function()
          local _, n = proxy.log():gsub("its parts were changed by index", "")
          return n >= i
        end), case .. ": " .. proxy.log())
      end
    end)

    it("undoes a failed hook that replaced tx.req under --hook-errors open", function()
      proxy = procs.proxy({ "-s", h.tmpfile(ASSIGN_SIDES, "assign_sides.lua"),
                            "--hook-errors", "open" })
      local resp = get("/echo", { "X-Case: fail" })
      assert.are.equal(200, resp.status, proxy.log())
      assert.is_nil(resp.body:find("X-A:", 1, true), resp.body)
      assert.are.equal("no", resp.headers["x-again"])
    end)
  end)

  ----------------------------------------------------------------------------
  describe("tx:respond", function()
    it("in on_request answers without contacting the upstream", function()
      start({ "respond" })
      local resp = get("/hello", { "X-Respond-In: on_request" })
      assert.are.equal("HTTP/1.1 403 Forbidden", resp.status_line)
      assert.are.equal("refused by on_request\n", resp.body)
      assert.are.equal("on_request", resp.headers["x-from"])
      assert.are.equal("text/plain; charset=utf-8", resp.headers["content-type"])
      assert.are.equal(tostring(#resp.body), resp.headers["content-length"])
      assert.are.equal(0, #origin.requests())
    end)

    it("in before_connect answers without contacting the upstream", function()
      start({ "respond" })
      local resp = get("/hello", { "X-Respond-In: before_connect" })
      assert.are.equal("HTTP/1.1 200 OK", resp.status_line)
      assert.are.equal("answered by before_connect\n", resp.body)
      assert.are.equal("before_connect", resp.headers["x-from"])
      assert.are.equal("application/x-test", resp.headers["content-type"])
      assert.are.equal(0, #origin.requests())
    end)

    it("in on_response replaces the upstream's response", function()
      start({ "respond" })
      local resp = get("/hello", { "X-Respond-In: on_response" })
      assert.are.equal(202, resp.status)
      assert.are.equal("replaced by on_response (upstream said 200)\n", resp.body)
      assert.are.equal("on_response", resp.headers["x-from"])
      assert.are.equal(1, #origin.requests())
    end)

    it("gives on_done the local response's status and body size", function()
      start({ "respond" })
      local resp = get("/hello", { "X-Respond-In: on_request" })
      assert.are.equal(403, resp.status)
      assert.truthy(wait_log("respond done #%d+ status=403 error=nil bytes_sent="
        .. #"refused by on_request\n" .. "$"), proxy.log())
    end)

    it("keeps the client connection usable after a local response", function()
      start({ "respond" })
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, h.request("GET", origin.url("/hello"), { host_hdr(), "X-Respond-In: on_request" })))
      local r1 = assert(h.read_response(s))
      assert(h.send(s, h.request("GET", origin.url("/hello"), { host_hdr() })))
      local r2 = assert(h.read_response(s))
      s:close()
      assert.are.equal(403, r1.status)
      assert.are.equal("hello\n", r2.body)
    end)

    it("skips the remaining hooks of the phase", function()
      start({ "chain_a", "chain_b" })
      local resp = get("/hello", { "X-Respond: 1" })
      assert.are.equal(200, resp.status)
      assert.are.equal("a answered\n", resp.body)
      assert.are.equal(0, #origin.requests())
      -- chain_a ran and logged; chain_b's on_request did not.
      local a = wait_log("chain_a on_request #%d+")
      assert.truthy(a, proxy.log())
      local id = a:match("#(%d+)")
      assert.falsy(proxy.log():find("chain_b on_request #" .. id, 1, true), proxy.log())
    end)
  end)

  ----------------------------------------------------------------------------
  describe("several scripts and script state", function()
    it("runs -s scripts in order, the second seeing the first's change", function()
      start({ "chain_a", "chain_b" })
      local resp = get("/echo")
      assert.are.equal(200, resp.status)
      assert.are.equal("a,b", origin.requests()[1].headers["x-chain"])
      -- Body filters chain too: chain_b wraps what chain_a upper-cased.
      resp = get("/hello")
      assert.are.equal("<HELLO\n>", resp.body)
    end)

    it("keeps top-level state across requests", function()
      start({ "counter" })
      for _ = 1, 3 do assert.are.equal(200, get("/echo").status) end
      local reqs = origin.requests()
      assert.are.equal(3, #reqs)
      for i = 1, 3 do assert.are.equal(tostring(i), reqs[i].headers["x-count"]) end
    end)
  end)

  ----------------------------------------------------------------------------
  describe("on_response_chunk", function()
    it("reshapes the body and re-frames it chunked", function()
      start({ "reshape" })
      local resp = get("/hello")
      assert.are.equal(200, resp.status)
      assert.are.equal("HELLO\n[end]", resp.body)
      assert.is_nil(resp.headers["content-length"])
      assert.are.equal("chunked", (resp.headers["transfer-encoding"] or ""):lower())
      assert.falsy(resp.incomplete)
    end)

    it("frames two reshaped responses on one kept-alive connection", function()
      start({ "reshape" })
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, h.request("GET", origin.url("/hello"), { host_hdr() })))
      local r1 = assert(h.read_response(s))
      assert(h.send(s, h.request("GET", origin.url("/chunked?n=3&size=4"), { host_hdr() })))
      local r2 = assert(h.read_response(s))
      -- And a third, pipelined behind nothing, still parses.
      assert(h.send(s, h.request("GET", origin.url("/hello"), { host_hdr() })))
      local r3 = assert(h.read_response(s))
      s:close()
      for _, r in ipairs({ r1, r2, r3 }) do
        assert.are.equal(200, r.status)
        assert.are.equal("chunked", r.framing)
        assert.falsy(r.incomplete, r.error)
        assert.is_nil(r.headers["content-length"])
      end
      assert.are.equal("HELLO\n[end]", r1.body)
      assert.are.equal(("X"):rep(12) .. "[end]", r2.body)
      assert.are.equal("HELLO\n[end]", r3.body)
    end)

    it("holds back pieces answered with \"\" and sends what eof returns", function()
      start({ "reshape" })
      local resp = get("/chunked?n=5&size=10", { "X-Hold: 1" })
      assert.are.equal(200, resp.status)
      assert.falsy(resp.incomplete, resp.error)
      local body = resp.body:match("^(.*)|calls=%d+$")
      assert.are.equal(("x"):rep(50), body)
      -- A body too big for one read comes in several pieces; all are held
      -- back and come out, in order, at eof.
      local n = 300000
      resp = get("/bytes?n=" .. n, { "X-Hold: 1" })
      assert.falsy(resp.incomplete, resp.error)
      local calls
      body, calls = resp.body:match("^(.*)|calls=(%d+)$")
      assert.truthy(body, "no calls= suffix")
      assert.truthy(tonumber(calls) >= 2, "only one call for " .. n .. " bytes")
      assert.are.equal(n, #body)
      assert.truthy(body == h.pattern(n):reverse(), "the held-back body came out wrong")
    end)

    -- Known proxy bug (reported): tx.bytes_sent in on_done counts the
    -- upstream's body bytes, not the reshaped bytes the client got (the
    -- access log has the right number).
    it("gives on_done the reshaped body's size as bytes_sent", function()
      start({ "reshape" })
      local resp = get("/hello")
      assert.are.equal("HELLO\n[end]", resp.body)
      local line = wait_log("reshape done #%d+ bytes_sent=")
      assert.truthy(line, proxy.log())
      local sent = tonumber(line:match("bytes_sent=(%d+)"))
      assert.truthy(proxy.wait_access_log('"GET [^"]*/hello HTTP/1.1" 200 ' .. #resp.body .. " "),
        "access log: " .. proxy.access_log())
      assert.are.equal(#resp.body, sent,
        "PROXY BUG: on_done bytes_sent is " .. tostring(sent) .. ", the client got "
          .. #resp.body .. " body bytes (upstream sent 6)")
    end)

    it("holds back a whole Content-Length body too", function()
      start({ "reshape" })
      local resp = get("/hello", { "X-Hold: 1" })
      assert.are.equal("chunked", resp.framing)
      assert.truthy(resp.body:find("^\nolleh|calls=%d+$"), resp.body)
    end)

    it("sends an HTTP/1.0 client a close-delimited reshaped body", function()
      start({ "reshape" })
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, h.request("GET", origin.url("/hello"), { host_hdr() }, nil, "HTTP/1.0")))
      local resp = assert(h.read_response(s))
      s:close()
      assert.are.equal(200, resp.status)
      assert.are.equal("close", resp.framing)
      assert.falsy(resp.incomplete, resp.error)
      assert.is_nil(resp.headers["content-length"])
      assert.is_nil(resp.headers["transfer-encoding"])
      assert.are.equal("HELLO\n[end]", resp.body)
    end)

    -- Known proxy bug (reported): when no script defines on_request,
    -- before_connect or on_response, the tx table is never built and
    -- on_response_chunk is called with tx == nil, so `tx.anything` fails
    -- and the body is cut off.
    it("passes the tx to on_response_chunk when it is the script's only hook", function()
      start({ "chunk_only" })
      local resp = get("/hello")
      assert.are.equal(200, resp.status)
      assert.falsy(resp.incomplete,
        "PROXY BUG: on_response_chunk got tx == nil (script defines no other hook); log:\n"
          .. proxy.log())
      assert.truthy(resp.body:find("^hello\n%[tx.id=%d+%]$"),
        "PROXY BUG: on_response_chunk got no tx; body " .. string.format("%q", resp.body))
    end)

    it("gives on_response_chunk tx.res when no script defines on_response", function()
      start({ "res_in_chunk" })
      -- Two exchanges on one connection: each chunk hook sees its own.
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, h.request("GET", origin.url("/hello"), { host_hdr() })))
      local r1 = assert(h.read_response(s))
      assert(h.send(s, h.request("GET", origin.url("/status/404"), { host_hdr() })))
      local r2 = assert(h.read_response(s))
      s:close()
      assert.are.equal("HELLO\n[200 OK]", r1.body, proxy.log())
      assert.are.equal(404, r2.status)
      assert.are.equal("STATUS 404\n[404 Not Found]", r2.body)
      assert.truthy(wait_log("on_done #%d+: 200 text/plain"), proxy.log())
      assert.truthy(wait_log("on_done #%d+: 404 text/plain"), proxy.log())
    end)

    it("does not touch a response without a body", function()
      start({ "reshape" })
      local resp = get("/status/204")
      assert.are.equal(204, resp.status)
      assert.are.equal("", resp.body)
      resp = exchange(h.request("HEAD", origin.url("/hello"), { host_hdr() }), { method = "HEAD" })
      assert.are.equal(200, resp.status)
    end)
  end)

  ----------------------------------------------------------------------------
  describe("a client that goes away while a request hook waits", function()
    local GONE = '"error":"the client went away while a script waited"'

    -- Sends a GET for /hello with <headers> that makes a hook of
    -- client_gone.lua wait, waits until it does (its log line), then has
    -- the client leave through <leave>(sock). Returns the exchange's id
    -- and the socket.
    local function leave_while_waiting(headers, leave)
      local s = assert(h.connect(proxy.port))
      local list = { host_hdr() }
      for _, x in ipairs(headers) do list[#list + 1] = x end
      assert(h.send(s, h.request("GET", origin.url("/hello"), list)))
      local line = assert(wait_log("waiting #%d+"), proxy.log())
      leave(s)
      return line:match("waiting #(%d+)"), s
    end

    -- The exchange ended because the client left, not when its hook would
    -- have woken (after 5 s, or 20): the access log says <why> (by
    -- default, that the client went away while a script waited), on_done
    -- ran, the hook never woke, and the request never reached the origin. A request sent after that line
    -- reaches the origin alone.
    local function assert_ended(id, why)
      why = why or "the client went away"
      local entry = proxy.wait_access_log('"error":"' .. why, 3)
      assert.truthy(entry, "no access log line for the client that left:\n"
        .. proxy.access_log() .. proxy.log())
      assert.truthy(entry:find('"status":0,', 1, true), entry)
      assert.truthy(wait_log("done #" .. id .. " status 0: " .. why, 3), proxy.log())
      assert.is_nil(proxy.log():find("woke #" .. id, 1, true), proxy.log())
      assert.are.equal(200, get("/hello").status)
      local hellos = 0
      for _, r in ipairs(origin.requests()) do
        if r.target:find("/hello", 1, true) then hellos = hellos + 1 end
      end
      assert.are.equal(1, hellos, "the request of the client that left reached the origin")
    end

    for _, case in ipairs({ { "proxy.sleep in on_request", "sleep" },
                            { "proxy.sleep in before_connect", "before" } }) do
      it("ends the exchange at once when the client closes during " .. case[1], function()
        start({ "client_gone" }, { "--log-format", "json" })
        local id = leave_while_waiting({ "X-Wait: " .. case[2] }, function(s) s:close() end)
        assert_ended(id)
      end)
    end

    it("cancels a call out the hook waits for when the client closes", function()
      start({ "client_gone" }, { "--log-format", "json" })
      local id = leave_while_waiting({ "X-Wait: http", "X-Hang-Url: " .. origin.url("/hang") },
        function(s) s:close() end)
      assert_ended(id)
    end)

    it("ends the exchange at once when the client resets during the wait", function()
      start({ "client_gone" }, { "--log-format", "json" })
      local id = leave_while_waiting({ "X-Wait: sleep" }, function(s)
        s:setoption("linger", { on = true, timeout = 0 })
        s:close()
      end)
      assert_ended(id, "the client reset the connection")
    end)

    it("runs on_done when the client resets while on_response_chunk sleeps", function()
      start({ "client_gone" }, { "--log-format", "json" })
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, h.request("GET", origin.url("/hello"), { host_hdr(), "X-Wait: chunk" })))
      local head = assert(h.read_response(s, { head_only = true }))
      assert.are.equal(200, head.status)
      local line = assert(wait_log("waiting #%d+"), proxy.log())
      local id = line:match("waiting #(%d+)")
      s:setoption("linger", { on = true, timeout = 0 })
      s:close()
      assert.truthy(wait_log("done #" .. id .. " status 200: the client reset the connection", 3),
        proxy.log())
      assert.is_nil(proxy.log():find("woke #" .. id, 1, true), proxy.log())
      assert.are.equal(200, get("/hello").status)
    end)

    -- A FIN cannot say whether the client closed or only shut down its
    -- sending half: before its request has gone upstream, it is taken as
    -- the client leaving (as nginx takes it), and it gets no answer.
    it("takes a half-close during the wait as the client leaving", function()
      start({ "client_gone" }, { "--log-format", "json" })
      local id, s = leave_while_waiting({ "X-Wait: sleep" }, function(c) c:shutdown("send") end)
      assert_ended(id)
      local rest, how = h.recv_until_close(s, 3)
      s:close()
      assert.are.equal("", rest)
      assert.are.equal("closed", how)
    end)

    it("still answers requests pipelined before a half-close during the wait", function()
      start({ "client_gone" }, { "--log-format", "json" })
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, h.request("GET", origin.url("/hello"), { host_hdr(), "X-Wait: sleep",
        "X-Secs: 0.3" }) .. h.request("GET", origin.url("/echo"), { host_hdr() })))
      assert(wait_log("waiting #%d+"), proxy.log())
      s:shutdown("send")
      local first = assert(h.read_response(s))
      local second = assert(h.read_response(s))
      s:close()
      assert.are.equal("hello\n", first.body)
      assert.are.equal(200, second.status)
      assert.are.equal(2, #origin.requests())
      assert.is_nil(proxy.access_log():find(GONE, 1, true), proxy.access_log())
    end)

    it("answers a client that half-closes after its request when no hook waits", function()
      start({ "client_gone" }, { "--log-format", "json" })
      local raw, how = h.send_raw(proxy.port, h.request("GET", origin.url("/hello"),
        { host_hdr() }), { shutdown = true })
      assert.truthy(raw:find("^HTTP/1.1 200 OK\r\n"), raw)
      -- chunked: the script has a chunk hook
      assert.truthy(raw:find("\r\n\r\n6\r\nhello\n\r\n0\r\n\r\n$"), raw)
      assert.are.equal("closed", how)
    end)
  end)

  describe("the proxy table", function()
    it("proxy.log writes to the log with the script's name", function()
      start({ "proxy_api" })
      assert.are.equal(200, get("/hello").status)
      local line = wait_log("hello from the script")
      assert.truthy(line, proxy.log())
      local want = "[" .. FIXTURES .. "proxy_api.lua] hello from the script #"
      assert.truthy(line:find(want, 1, true), line)
      assert.truthy(line:find(" #%d+ 42$"), line)
      assert.truthy(line:find(" info ", 1, true), line)
    end)

    it("proxy.now returns the time in seconds and proxy.version the version", function()
      start({ "proxy_api" })
      local before = h.now()
      local resp = get("/hello")
      local after = h.now()
      assert.are.equal("number", resp.headers["x-now-type"])
      local now = tonumber(resp.headers["x-now"])
      assert.truthy(now and now >= before - 1 and now <= after + 1,
        ("proxy.now() = %s, expected between %f and %f"):format(resp.headers["x-now"], before, after))
      assert.are.equal("string", resp.headers["x-version-type"])
      local out = h.sh(h.shell_quote(h.bin()) .. " --version")
      assert.truthy(resp.headers["x-version"]:find("^%d+%.%d+%.%d+$"), resp.headers["x-version"])
      assert.truthy(out:find(resp.headers["x-version"], 1, true), out)
    end)

    it("proxy.sleep pauses only its own transaction", function()
      start({ "proxy_api" })
      local sleeper = assert(h.connect(proxy.port))
      local t0 = h.now()
      assert(h.send(sleeper, h.request("GET", origin.url("/hello"), { host_hdr(), "X-Sleep: 0.5" })))
      -- Make sure the sleeper is asleep (its on_request logged) first.
      assert.truthy(wait_log("hello from the script #%d+ "), proxy.log())
      local t1 = h.now()
      local quick = get("/hello")
      local t2 = h.now()
      assert.are.equal(200, quick.status)
      assert.is_nil(quick.headers["x-slept"])
      assert.truthy(t2 - t1 < 0.35, ("the other request took %.3f s"):format(t2 - t1))
      -- The sleeper has not answered yet, and then does, after its sleep.
      local slow = assert(h.read_response(sleeper))
      local t3 = h.now()
      sleeper:close()
      assert.are.equal(200, slow.status)
      assert.are.equal("hello\n", slow.body)
      assert.truthy(t3 - t0 >= 0.45, ("the sleeper answered after %.3f s"):format(t3 - t0))
      assert.truthy(t2 < t3, "the quick request did not finish first")
      assert.truthy(tonumber(slow.headers["x-slept"]) >= 0.45, slow.headers["x-slept"])
    end)
  end)

  ----------------------------------------------------------------------------
  describe("proxy.json", function()
    -- What a script decodes and encodes again keeps its values: lua-cjson
    -- cut numbers to 14 digits, read integers as floats and wrote [] as {}.
    it("gives back numbers, arrays and null as they came", function()
      local script = h.tmpfile([=[
        local J = proxy.json
        function on_request(tx)
          local out = {}
          for _, text in ipairs({
            '1234567890123456', '100000000000001', '9223372036854775807', '-9223372036854775808',
            '1732990000.123456', '0.1', '3.0', '-0.0', '1e300', '[]', '[1,2,3]', '{}',
            '[[],{},null]', '"\\u00e9\\ud83d\\ude00\\n\\"/"', 'true',
          }) do
            out[#out + 1] = J.encode(J.decode(text))
          end
          out[#out + 1] = math.type(J.decode("3")) .. " " .. math.type(J.decode("3.0"))
            .. " " .. math.type(J.decode("12345678901234567890"))
          out[#out + 1] = tostring(J.decode("null") == J.null) .. " "
            .. tostring(getmetatable(J.decode("[1]")) == J.array_mt)
          out[#out + 1] = J.encode({}) .. J.encode(setmetatable({}, J.array_mt))
            .. J.encode({ 1, 2, nil, 4 }) .. J.encode({ [1] = 1, [100] = 2 })
          for _, bad in ipairs({ 1 / 0, 0 / 0, print, { [true] = 1 } }) do
            out[#out + 1] = select(2, pcall(J.encode, bad))
          end
          for _, bad in ipairs({ '[1,]', '01', '"\\ud800"', '{"a":1} x', '' }) do
            out[#out + 1] = select(2, pcall(J.decode, bad))
          end
          local t = {}
          t.self = t
          out[#out + 1] = select(2, pcall(J.encode, t))
          tx:respond(200, table.concat(out, "\n"))
        end
      ]=], "json.lua")
      proxy = procs.proxy({ "-s", script })
      local lines = {}
      for line in (get("/").body .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
      assert.are.same({
        "1234567890123456", "100000000000001", "9223372036854775807", "-9223372036854775808",
        "1732990000.123456", "0.1", "3.0", "-0.0", "1e+300", "[]", "[1,2,3]", "{}",
        "[[],{},null]", '"\195\169\240\159\152\128\\n\\"/"', "true",
        "integer float float",
        "true true",
        '{}[][1,2,null,4]{"1":1,"100":2}',
        "proxy.json.encode: inf has no JSON form",
        "proxy.json.encode: NaN has no JSON form",
        "proxy.json.encode: cannot encode a function",
        "proxy.json.encode: a table key must be a string or a number, not boolean",
        "proxy.json.decode: invalid value at character 4",
        "proxy.json.decode: text after the value at character 2",
        "proxy.json.decode: lone surrogate in a \\u escape at character 2",
        "proxy.json.decode: text after the value at character 9",
        "proxy.json.decode: expected a value at the end of the text",
        "proxy.json.encode: nested deeper than 1000 (a table that contains itself?)",
      }, lines)
    end)
  end)
  ----------------------------------------------------------------------------
  -- The answer of a script whose on_request answers the values of
  -- <exprs> (Lua expressions), one line each, every value of each joined
  -- by spaces (tostring); an error gives its message, without the
  -- script's name and line.
  local function script_lines(exprs)
    local code = { "function on_request(tx)", "  local out = {}" }
    for _, e in ipairs(exprs) do
      code[#code + 1] = "  do local v = table.pack(pcall(function() return " .. e .. " end))"
      code[#code + 1] = "    local parts = {}"
      code[#code + 1] = "    for i = 2, v.n do parts[#parts + 1] = (tostring(v[i]):gsub('^%S-lines%.lua:%d+: ', '')) end"
      code[#code + 1] = "    out[#out + 1] = table.concat(parts, ' ') end"
    end
    code[#code + 1] = "  tx:respond(200, table.concat(out, '\\n'))"
    code[#code + 1] = "end"
    -- (a budget for ASan builds: one line encodes and decodes 300 KB)
    proxy = procs.proxy({ "-s", h.tmpfile(table.concat(code, "\n"), "lines.lua"),
                          "--hook-timeout", "5000" })
    local lines = {}
    for line in (get("/").body .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
    return lines
  end

  describe("proxy.base64", function()
    it("encodes and decodes both alphabets, and refuses what is not base64", function()
      assert.are.same({
        "Zm9vYmFy", "Zm8=", "Zm8", "+/+/", "-_-_", "",
        "foobar", "fo", "fo", "\251\255\191",
        "nil not base64 (RFC 4648, padded)",
        "nil not base64 (RFC 4648, padded)",
        "nil not base64 (RFC 4648, padded)",
        "nil not base64 of the URL alphabet (no padding)",
        "nil not base64 of the URL alphabet (no padding)",
        "true",
        "proxy.base64.encode needs a string, not number",
        'proxy.base64.decode: the alphabet is "standard" or "url", not URL',
      }, script_lines({
        'proxy.base64.encode("foobar")', 'proxy.base64.encode("fo")',
        'proxy.base64.encode("fo", "url")', 'proxy.base64.encode("\\251\\255\\191")',
        'proxy.base64.encode("\\251\\255\\191", "url")', 'proxy.base64.encode("")',
        'proxy.base64.decode("Zm9vYmFy")', 'proxy.base64.decode("Zm8=")',
        'proxy.base64.decode("Zm8", "url")', 'proxy.base64.decode("+/+/")',
        'proxy.base64.decode("Zm8")', 'proxy.base64.decode("Zh==")',
        'proxy.base64.decode("Zg==Zg==")',
        'proxy.base64.decode("Zm8=", "url")', 'proxy.base64.decode("+/+/", "url")',
        'proxy.base64.decode(proxy.base64.encode(string.rep("\\0\\1\\255", 100000))) == '
          .. 'string.rep("\\0\\1\\255", 100000)',
        'proxy.base64.encode(3)', 'proxy.base64.decode("", "URL")',
      }))
    end)
  end)

  describe("proxy.sha256 and proxy.hmac_sha256", function()
    it("give the standard digests, as hex, base64 or raw bytes", function()
      assert.are.same({
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
        "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
        "32 true",
        -- RFC 4231, test case 2
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad",
        'proxy.sha256: the form is "hex", "base64" or "raw", not HEX',
        "proxy.hmac_sha256 needs the data as a string, not no value",
      }, script_lines({
        'proxy.sha256("abc")', 'proxy.sha256("")', 'proxy.sha256(string.rep("a", 1000000))',
        'proxy.sha256("abc", "base64")',
        '#proxy.sha256("abc", "raw"), proxy.base64.encode(proxy.sha256("abc", "raw")) == '
          .. 'proxy.sha256("abc", "base64")',
        'proxy.hmac_sha256("Jefe", "what do ya want for nothing?")', 'proxy.hmac_sha256("", "")',
        'proxy.sha256("abc", "HEX")', 'proxy.hmac_sha256("key")',
      }))
    end)
  end)

  describe("proxy.canonical_host and proxy.ip_prefix", function()
    it("give one spelling of each host and the network of an address", function()
      assert.are.same({
        "127.0.0.1 ipv4", "10.0.0.255 ipv4", "127.1 name", "0x7f.0.0.1 name",
        "2130706433 name", "256.0.0.1 name", "1.2.3.4 name",
        "2001:db8::1 ipv6", "2001:db8::1 ipv6", "1.2.3.4 ipv4", "::1 ipv6",
        "example.com name", "nil an empty host", "nil not an IPv6 address in brackets",
        "192.168.7.0/24", "10.1.2.3/32", "0.0.0.0/0", "2001:db8:1:2::/64", "2001:db8::/48",
        "1.2.3.0/24", "nil not an IP address",
        "proxy.ip_prefix: an IPv4 prefix is 0 to 32 bits, not 33",
        "proxy.ip_prefix: a prefix is 0 to 128 bits, not 129",
      }, script_lines({
        'proxy.canonical_host("127.000.0.01")', 'proxy.canonical_host("010.0.0.255")',
        'proxy.canonical_host("127.1")', 'proxy.canonical_host("0x7f.0.0.1")',
        'proxy.canonical_host("2130706433")', 'proxy.canonical_host("256.0.0.1")',
        'proxy.canonical_host("1.2.3.4.")',
        'proxy.canonical_host("2001:DB8:0:0:0:0:0:1")', 'proxy.canonical_host("[2001:db8::0:1]")',
        'proxy.canonical_host("[::ffff:1.2.3.4]")', 'proxy.canonical_host("0::1")',
        'proxy.canonical_host("Example.COM..")', 'proxy.canonical_host("..")',
        'proxy.canonical_host("[example.com]")',
        'proxy.ip_prefix("192.168.7.9", 24)', 'proxy.ip_prefix("10.1.2.3", 32, 64)',
        'proxy.ip_prefix("10.1.2.3", 0)', 'proxy.ip_prefix("2001:db8:1:2:3:4:5:6", 32, 64)',
        'proxy.ip_prefix("[2001:db8::1]", 48)', 'proxy.ip_prefix("::ffff:1.2.3.4", 24, 64)',
        'proxy.ip_prefix("example.com", 24)',
        'proxy.ip_prefix("1.2.3.4", 33)', 'proxy.ip_prefix("::1", 129)',
      }))
    end)
  end)
end)
