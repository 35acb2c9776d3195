-- Framing and liveness: what a script or an upstream does must never let
-- one response run into the next, on either connection.
--
-- A forward proxy multiplexes: the client connection carries responses from
-- many origins, and an upstream connection from the pool carries the
-- requests of many clients. If the proxy misjudges where one response ends,
-- the rest is read as the next response: by the same client, or by another
-- client whose request goes out on the reused upstream connection. So each
-- case here reads the exact bytes the client gets, then sends the next
-- request on the same client connection, then another from a second client
-- once the first has left (its upstream connection is then in the pool),
-- and checks both answers are intact and nothing is left over anywhere.
--
-- The origin (support/raw_origin.lua) runs in this process, so a case can
-- send a response head first and its body only after the client has read
-- the head and sent its next request: the moment a proxy that framed the
-- response wrongly would already have reused the connection.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local raw_origin = require("support.raw_origin")

local PROXY_ARGS = { "--header-timeout", "4", "--idle-timeout", "6" }

local function q(s) return string.format("%q", tostring(s)) end

-- Scripts for the cases, chosen per request by an X-Case field (absent from
-- the follow-up requests, which the scripts leave alone).
local REQUEST_SCRIPT = [[
function on_request(tx)
  local c = tx.req.headers["X-Case"]
  if c == nil then return end
  local method = c:match("^method%-(%u+)$")
  if method then tx.req.method = method end
  local override = tx.req.headers["X-HTTP-Method-Override"]
  if c == "override" and tx.req.method == "POST" and override then
    tx.req.method = override:upper()
    tx.req.headers["X-HTTP-Method-Override"] = nil
  end
end
]]

local RESPONSE_SCRIPT = [[
function on_response(tx)
  local c = tx.req.headers["X-Case"]
  if c == nil then return end
  local status = c:match("status%-(%d+)")
  if status then tx.res.status = tonumber(status) end
  local reason = c:match("reason%-(%a+)")
  if reason then tx.res.reason = reason end
  if c:find("set%-length") then tx.res.headers["Content-Length"] = "99" end
end
]]

local CHUNK_SCRIPT = RESPONSE_SCRIPT .. [[
function on_response_chunk(tx, chunk, eof)
  if tx.req.headers["X-Case"] then return "FILTERED" .. chunk end
end
]]

local function start_proxy(script)
  local args = {}
  for _, a in ipairs(PROXY_ARGS) do args[#args + 1] = a end
  if script then
    args[#args + 1] = "-s"
    args[#args + 1] = h.tmpfile(script, "case.lua")
  end
  return h.start_proxy(args)
end

local NEXT = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnext\n"
local POOLED = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\npooled\n"

-- Sends a GET for <path> on <sock>, lets the origin answer it with <answer>
-- and checks the client gets exactly that. Returns the upstream connection
-- the request came on.
local function follow_up(sock, origin, path, answer, body)
  assert(h.send(sock, "GET http://" .. origin.authority .. path .. " HTTP/1.1\r\nHost: "
    .. origin.authority .. "\r\n\r\n"))
  local conn, req = origin.next_request()
  assert(conn, "the follow-up request " .. path .. " never reached the origin")
  assert.equal("GET " .. path .. " HTTP/1.1", req.request_line,
    "a stray request reached the origin: " .. q(req.raw))
  assert.equal("", conn.extra(), "bytes after the request upstream: " .. q(conn.extra()))
  conn.send(answer)
  local r, err, partial = h.read_response(sock)
  assert(r, "no answer to " .. path .. ": " .. tostring(err) .. " " .. q(partial))
  assert.equal(200, r.status, "the answer to " .. path .. " is not its own: " .. q(r.raw_head))
  assert.equal(body, r.body, "the answer to " .. path .. " carries other bytes")
  assert.is_nil(r.incomplete)
  assert.equal("", h.take_pending(sock), "bytes after the answer to " .. path)
  return conn
end

-- Runs one case. <c>:
--   script      the script the proxy runs (nil: none)
--   request     the request (with {O} for the origin's authority)
--   method      the client's method (how the client reads the answer)
--   sent        the method the origin must receive
--   head        the upstream's response head (and any body sent with it)
--   later       bytes the upstream sends only after the client has its
--               whole answer and has sent its next request
--   check(r)    checks the client's answer (as read by h.read_response)
--   reuse       true: the upstream connection must carry the follow-ups;
--               false: it must be closed; nil: either
local function run_case(c)
  local origin = raw_origin.new()
  local proxy = start_proxy(c.script)
  local ok, failure = pcall(function()
    local sock = assert(h.connect(proxy.port))
    assert(h.send(sock, (c.request:gsub("{O}", origin.authority))))
    local conn, req = origin.next_request()
    assert(conn, "the request never reached the origin")
    assert.equal(c.sent, req.method, "method sent upstream")
    conn.send(c.head)
    local r, err, partial = h.read_response(sock, { method = c.method })
    assert(r, "no complete answer: " .. tostring(err) .. " " .. q(partial))
    assert.is_nil(r.incomplete, "the answer is cut short: " .. q(r.raw_head) .. q(r.body))
    c.check(r)
    -- The next request goes out now; a proxy that took the response as
    -- finished too early would already send it on the same upstream
    -- connection, where the rest of the old body is still to come.
    assert(h.send(sock, "GET http://" .. origin.authority .. "/next HTTP/1.1\r\nHost: "
      .. origin.authority .. "\r\n\r\n"))
    if c.later then conn.send(c.later) end
    local conn2, req2 = origin.next_request()
    assert(conn2, "the next request never reached the origin")
    assert.equal("GET /next HTTP/1.1", req2.request_line, "stray bytes upstream: " .. q(req2.raw))
    conn2.send(NEXT)
    local r2, err2, partial2 = h.read_response(sock)
    assert(r2, "no answer to the next request: " .. tostring(err2) .. " " .. q(partial2))
    assert.equal(200, r2.status, "the next answer is not its own: " .. q(r2.raw_head))
    assert.equal("next\n", r2.body, "the next answer carries other bytes")
    assert.equal("", h.take_pending(sock), "bytes after the next answer")
    if c.reuse == true then
      assert.equal(conn.id, conn2.id, "the upstream connection was not reused")
    elseif c.reuse == false then
      assert.are_not.equal(conn.id, conn2.id, "a connection with a body in flight was reused")
    end
    -- The client leaves: its upstream connection goes to the pool, and a
    -- second client's request takes it.
    sock:close()
    local other = assert(h.connect(proxy.port))
    local conn3 = follow_up(other, origin, "/pooled", POOLED, "pooled\n")
    if c.reuse ~= false then
      assert.equal(conn2.id, conn3.id, "the pooled upstream connection was not reused")
    end
    other:close()
    assert.is_true(proxy.alive())
  end)
  local problem = h.stop_procs({ proxy })
  origin.close()
  if not ok then error(failure, 0) end
  assert.is_nil(problem, problem)
end

local function req(method, case, extra, body)
  local lines = { method .. " http://{O}/case HTTP/1.1", "Host: {O}", "X-Case: " .. case }
  for _, x in ipairs(extra or {}) do lines[#lines + 1] = x end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

local HELLO_HEAD = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\n"

describe("framing after a script changes the method", function()
  it("HEAD sent as GET: the client gets the head only, the body is read and dropped", function()
    run_case {
      script = REQUEST_SCRIPT, request = req("HEAD", "method-GET"), method = "HEAD", sent = "GET",
      head = HELLO_HEAD, later = "hello world", reuse = true,
      check = function(r)
        assert.equal(200, r.status)
        assert.equal("11", r.headers["content-length"], "a HEAD answer keeps the length")
        assert.equal("", r.body)
      end,
    }
  end)

  it("HEAD sent as GET, chunked body: dropped by its chunked framing", function()
    run_case {
      script = REQUEST_SCRIPT, request = req("HEAD", "method-GET"), method = "HEAD", sent = "GET",
      head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
      later = "6\r\n world\r\n0\r\n\r\n", reuse = true,
      check = function(r)
        assert.equal(200, r.status)
        assert.is_nil(r.headers["content-length"])
        assert.is_nil(r.headers["transfer-encoding"])
      end,
    }
  end)

  it("HEAD sent as GET, close-delimited body: the upstream connection is closed", function()
    run_case {
      script = REQUEST_SCRIPT, request = req("HEAD", "method-GET"), method = "HEAD", sent = "GET",
      head = "HTTP/1.1 200 OK\r\n\r\nhello", reuse = false,
      check = function(r) assert.equal(200, r.status) end,
    }
  end)

  it("HEAD sent as GET, a body too long to drop: the upstream connection is closed", function()
    run_case {
      script = REQUEST_SCRIPT, request = req("HEAD", "method-GET"), method = "HEAD", sent = "GET",
      head = "HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\nhello", reuse = false,
      check = function(r)
        assert.equal(200, r.status)
        assert.equal("5000000", r.headers["content-length"])
      end,
    }
  end)

  it("GET sent as HEAD: the client gets an empty body with Content-Length: 0", function()
    run_case {
      script = REQUEST_SCRIPT, request = req("GET", "method-HEAD"), method = "GET", sent = "HEAD",
      head = HELLO_HEAD, reuse = true,
      check = function(r)
        assert.equal(200, r.status)
        assert.equal("0", r.headers["content-length"])
        assert.equal(1, h.header_count(r.headers, "Content-Length"))
        assert.equal("", r.body)
      end,
    }
  end)

  it("POST with X-HTTP-Method-Override: HEAD (the README example) is answered, not left hanging", function()
    run_case {
      script = REQUEST_SCRIPT,
      request = req("POST", "override", { "X-HTTP-Method-Override: head", "Content-Length: 3" }, "a=1"),
      method = "POST", sent = "HEAD", head = HELLO_HEAD, reuse = true,
      check = function(r)
        assert.equal(200, r.status)
        assert.equal("0", r.headers["content-length"])
        assert.equal("", r.body)
      end,
    }
  end)

  it("GET sent as HEAD through on_response too: still Content-Length: 0", function()
    run_case {
      script = REQUEST_SCRIPT .. RESPONSE_SCRIPT, request = req("GET", "method-HEAD"),
      method = "GET", sent = "HEAD", head = HELLO_HEAD, reuse = true,
      check = function(r)
        assert.equal("0", r.headers["content-length"])
        assert.equal(1, h.header_count(r.headers, "Content-Length"))
      end,
    }
  end)
end)

describe("framing after on_response changes the status", function()
  it("200 -> 304: no body and no length reach the client; the body is dropped upstream", function()
    run_case {
      script = RESPONSE_SCRIPT, request = req("GET", "status-304"), method = "GET", sent = "GET",
      head = HELLO_HEAD, later = "hello world", reuse = true,
      check = function(r)
        assert.equal("HTTP/1.1 304 Not Modified", r.status_line)
        assert.is_nil(r.headers["transfer-encoding"])
      end,
    }
  end)

  it("200 -> 204: no body, no Content-Length (RFC 9110 8.6)", function()
    run_case {
      script = RESPONSE_SCRIPT, request = req("GET", "status-204"), method = "GET", sent = "GET",
      head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      later = "b\r\nhello world\r\n0\r\n\r\n", reuse = true,
      check = function(r)
        assert.equal("HTTP/1.1 204 No Content", r.status_line)
        assert.is_nil(r.headers["content-length"])
        assert.is_nil(r.headers["transfer-encoding"])
      end,
    }
  end)

  it("200 -> 204 with a script-set Content-Length: still none", function()
    run_case {
      script = RESPONSE_SCRIPT, request = req("HEAD", "status-204-set-length"), method = "HEAD",
      sent = "HEAD", head = HELLO_HEAD, reuse = true,
      check = function(r)
        assert.equal(204, r.status)
        assert.is_nil(r.headers["content-length"])
      end,
    }
  end)

  it("304 -> 200 (the 304 had a Content-Length): the client gets Content-Length: 0", function()
    run_case {
      script = RESPONSE_SCRIPT, request = req("GET", "status-200"), method = "GET", sent = "GET",
      head = "HTTP/1.1 304 Not Modified\r\nContent-Length: 11\r\nETag: \"x\"\r\n\r\n", reuse = true,
      check = function(r)
        assert.equal("HTTP/1.1 200 OK", r.status_line)
        assert.equal("0", r.headers["content-length"])
        assert.equal(1, h.header_count(r.headers, "Content-Length"))
        assert.equal("", r.body)
      end,
    }
  end)

  it("204 -> 200: the client gets Content-Length: 0, not a body running into the next answer", function()
    run_case {
      script = RESPONSE_SCRIPT, request = req("GET", "status-200"), method = "GET", sent = "GET",
      head = "HTTP/1.1 204 No Content\r\n\r\n", reuse = true,
      check = function(r)
        assert.equal("HTTP/1.1 200 OK", r.status_line)
        assert.equal("0", r.headers["content-length"])
      end,
    }
  end)

  it("a script-set Content-Length never replaces the proxy's framing", function()
    run_case {
      script = RESPONSE_SCRIPT, request = req("GET", "status-200-set-length"), method = "GET",
      sent = "GET", head = "HTTP/1.1 304 Not Modified\r\nContent-Length: 11\r\n\r\n", reuse = true,
      check = function(r)
        assert.equal("0", r.headers["content-length"])
        assert.equal(1, h.header_count(r.headers, "Content-Length"))
      end,
    }
  end)

  it("the reason phrase follows a changed status unless the script set one", function()
    run_case {
      script = RESPONSE_SCRIPT, request = req("GET", "status-404"), method = "GET", sent = "GET",
      head = HELLO_HEAD .. "hello world", reuse = true,
      check = function(r)
        assert.equal("HTTP/1.1 404 Not Found", r.status_line)
        assert.equal("hello world", r.body)
      end,
    }
    run_case {
      script = RESPONSE_SCRIPT, request = req("GET", "status-404-reason-Gone"), method = "GET",
      sent = "GET", head = HELLO_HEAD .. "hello world", reuse = true,
      check = function(r) assert.equal("HTTP/1.1 404 Gone", r.status_line) end,
    }
  end)

  it("200 -> 304 with on_response_chunk loaded: the filter adds nothing to a bodiless answer", function()
    run_case {
      script = CHUNK_SCRIPT, request = req("GET", "status-304"), method = "GET", sent = "GET",
      head = HELLO_HEAD, later = "hello world", reuse = true,
      check = function(r)
        assert.equal(304, r.status)
        assert.is_nil(r.headers["transfer-encoding"])
      end,
    }
  end)

  it("204 -> 200 with on_response_chunk loaded: Content-Length: 0, no filtered body", function()
    run_case {
      script = CHUNK_SCRIPT, request = req("GET", "status-200"), method = "GET", sent = "GET",
      head = "HTTP/1.1 204 No Content\r\n\r\n", reuse = true,
      check = function(r)
        assert.equal(200, r.status)
        assert.equal("0", r.headers["content-length"])
      end,
    }
  end)
end)
