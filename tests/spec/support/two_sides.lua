-- One exchange through the proxy, judged on both of its connections.
--
-- A forward proxy multiplexes: the client connection carries responses from
-- many origins, and a pooled upstream connection carries the requests of
-- many clients. If the proxy misjudges where a message ends, the rest is
-- read as the next message, by the same client or by another client whose
-- request goes out on the reused upstream connection. So run_case sends a
-- request, lets the in-process origin (support/raw_origin.lua) answer it
-- with exact bytes (a head now, more after the client has its answer and
-- has sent its next request), checks the bytes the client gets, then the
-- next exchange on the same client connection, then one from a second
-- client once the first has left (its upstream connection is then in the
-- pool). Used by framing_spec.lua and smuggling_spec.lua.
--
-- What it owns: the sequence and the framing rules every message must
-- follow. What it doesn't: what a particular case expects (its check).

local h = require("support.harness")
local assert = require("luassert")
local raw_origin = require("support.raw_origin")

local M = {}

M.PROXY_ARGS = { "--header-timeout", "4", "--idle-timeout", "6" }
M.SCRIPT_FAILED = "500 Internal Server Error: a script failed while handling this request\n"

local NEXT = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnext\n"
local POOLED = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\npooled\n"

local function q(s) return string.format("%q", tostring(s)) end
M.q = q

-- Starts the proxy with <script> (Lua source, or nil) and <extra> args;
-- <env>: more environment for it.
function M.start_proxy(script, extra, env)
  local args = {}
  for _, a in ipairs(M.PROXY_ARGS) do args[#args + 1] = a end
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  if script then
    args[#args + 1] = "-s"
    args[#args + 1] = h.tmpfile(script, "case.lua")
  end
  return h.start_proxy(args, { env = env })
end

-- The rules for a request the proxy sends: one Host, one framing at most,
-- never CONNECT in origin-form, nothing after it on the connection.
function M.assert_request_framed(req, conn)
  assert.is_nil(req.bad, "unreadable framing upstream: " .. q(req.head))
  assert.are_not.equal("CONNECT", (req.method or ""):upper(), "CONNECT sent upstream: " .. q(req.head))
  assert.equal(1, raw_origin.count(req.fields, "host"), "Host fields upstream: " .. q(req.head))
  local n_cl = raw_origin.count(req.fields, "content-length")
  local n_te = raw_origin.count(req.fields, "transfer-encoding")
  assert.is_true(n_cl + n_te <= 1, "framing fields upstream: " .. q(req.head))
  if n_te == 1 then assert.equal("chunked", req.f["transfer-encoding"]) end
  assert.equal("", conn.extra(), "bytes after the request upstream: " .. q(conn.extra()))
end

-- The rules for a response the client gets (RFC 9112 6, RFC 9110 8.6):
-- at most one framing field, none on a 204, and a body only where the
-- client's method and the status allow one.
function M.assert_response_framed(r, method)
  local n_cl = h.header_count(r.headers, "Content-Length")
  local n_te = h.header_count(r.headers, "Transfer-Encoding")
  assert.is_true(n_cl + n_te <= 1, "framing fields to the client: " .. q(r.raw_head))
  if r.status == 204 then
    assert.equal(0, n_cl + n_te, "a 204 with framing fields: " .. q(r.raw_head))
  end
  if method == "HEAD" or r.status == 204 or r.status == 304 then
    assert.equal("", r.body)
  elseif n_cl == 1 then
    assert.equal(tonumber(r.headers["content-length"]), #r.body)
  end
  assert.is_nil(r.incomplete, "the answer is cut short: " .. q(r.raw_head) .. q(r.body))
end

-- Sends a GET for <path> on <sock>, lets the origin answer it with <answer>
-- and checks the client gets exactly that. Returns the upstream connection
-- the request came on.
function M.follow_up(sock, origin, path, answer, body)
  assert(h.send(sock, "GET http://" .. origin.authority .. path .. " HTTP/1.1\r\nHost: "
    .. origin.authority .. "\r\n\r\n"))
  local conn, req = origin.next_request()
  assert(conn, "the follow-up request " .. path .. " never reached the origin")
  assert.equal("GET " .. path .. " HTTP/1.1", req.request_line,
    "a stray request reached the origin: " .. q(req.raw))
  M.assert_request_framed(req, conn)
  conn.send(answer)
  local r, err, partial = h.read_response(sock)
  assert(r, "no answer to " .. path .. ": " .. tostring(err) .. " " .. q(partial))
  assert.equal(200, r.status, "the answer to " .. path .. " is not its own: " .. q(r.raw_head))
  assert.equal(body, r.body, "the answer to " .. path .. " carries other bytes")
  assert.is_nil(r.incomplete)
  assert.equal("", h.take_pending(sock), "bytes after the answer to " .. path)
  return conn
end

-- The next request on the same client connection, then one from a second
-- client after the first has left, both answered intact by the origin.
-- Returns the upstream connections they came on.
function M.assert_carries_on(proxy, origin, sock)
  local conn2 = M.follow_up(sock, origin, "/next", NEXT, "next\n")
  sock:close()
  local other = assert(h.connect(proxy.port))
  local conn3 = M.follow_up(other, origin, "/pooled", POOLED, "pooled\n")
  other:close()
  assert.is_true(proxy.alive())
  return conn2, conn3
end

-- Starts an origin and a proxy running <script> (CONNECT allowed to the
-- origin's port), runs fn(proxy, origin), stops both. <env>: more
-- environment for the proxy; <args>: more arguments.
function M.with_proxy(script, fn, env, args)
  local origin = raw_origin.new()
  local extra = { "--connect-ports", tostring(origin.port) }
  for _, a in ipairs(args or {}) do extra[#extra + 1] = a end
  local proxy = M.start_proxy(script, extra, env)
  local ok, failure = pcall(fn, proxy, origin)
  local problem = h.stop_procs({ proxy })
  origin.close()
  if not ok then error(failure, 0) end
  assert.is_nil(problem, problem)
end

-- Runs one case. <c>:
--   script      the script the proxy runs (nil: none)
--   request     the request (with {O} for the origin's authority)
--   method      the client's method (how the client reads the answer)
--   sent        the method the origin must receive; nil: the proxy answers
--               itself and nothing may reach the origin
--   upstream(req)  more checks on the request the origin got
--   head        the upstream's response head (and any body sent with it)
--   later       bytes the upstream sends only after the client has its
--               whole answer and has sent its next request
--   check(r)    checks the client's answer (as read by h.read_response)
--   closes      the proxy must close the client connection after it
--   reuse       true: the upstream connection must carry the follow-ups;
--               false: it must be closed; nil: either
--   skip_1xx    collect interim responses in r.interim
--   args        more arguments for the proxy
function M.run_case(c)
  M.with_proxy(c.script, function(proxy, origin)
    local sock = assert(h.connect(proxy.port))
    assert(h.send(sock, (c.request:gsub("{O}", origin.authority))))
    local conn
    if c.sent then
      local req
      conn, req = origin.next_request()
      assert(conn, "the request never reached the origin")
      assert.equal(c.sent, req.method, "method sent upstream")
      M.assert_request_framed(req, conn)
      if c.upstream then c.upstream(req) end
      conn.send(c.head)
    end
    local r, err, partial = h.read_response(sock, { method = c.method, skip_1xx = c.skip_1xx })
    assert(r, "no complete answer: " .. tostring(err) .. " " .. q(partial))
    if not c.closes then M.assert_response_framed(r, c.method) end
    c.check(r)
    if c.closes then
      -- Nothing more may come, and the connection must end.
      local rest, how = h.recv_until_close(sock)
      assert.equal("", rest, "bytes after the answer: " .. q(rest))
      assert.equal("closed", how)
      sock:close()
      if conn and c.later then conn.send(c.later) end
      sock = assert(h.connect(proxy.port))
    end
    -- The next request goes out now; a proxy that took the response as
    -- finished too early would already send it on the same upstream
    -- connection, where the rest of the old body is still to come.
    assert(h.send(sock, "GET http://" .. origin.authority .. "/next HTTP/1.1\r\nHost: "
      .. origin.authority .. "\r\n\r\n"))
    if conn and c.later and not c.closes then conn.send(c.later) end
    local conn2, req2 = origin.next_request()
    assert(conn2, "the next request never reached the origin")
    assert.equal("GET /next HTTP/1.1", req2.request_line, "stray bytes upstream: " .. q(req2.raw))
    M.assert_request_framed(req2, conn2)
    conn2.send(NEXT)
    local r2, err2, partial2 = h.read_response(sock)
    assert(r2, "no answer to the next request: " .. tostring(err2) .. " " .. q(partial2))
    assert.equal(200, r2.status, "the next answer is not its own: " .. q(r2.raw_head))
    assert.equal("next\n", r2.body, "the next answer carries other bytes")
    assert.equal("", h.take_pending(sock), "bytes after the next answer")
    if conn and c.reuse == true then
      assert.equal(conn.id, conn2.id, "the upstream connection was not reused")
    elseif conn and c.reuse == false then
      assert.are_not.equal(conn.id, conn2.id, "a connection with a body in flight was reused")
    end
    -- The client leaves: its upstream connection goes to the pool, and a
    -- second client's request takes it.
    sock:close()
    local other = assert(h.connect(proxy.port))
    local conn3 = M.follow_up(other, origin, "/pooled", POOLED, "pooled\n")
    assert.equal(conn2.id, conn3.id, "the pooled upstream connection was not reused")
    other:close()
    assert.is_true(proxy.alive())
  end, nil, c.args)
end

-- Sends <request> (with {O} and {P}: the origin's authority, the proxy's
-- port) on a fresh connection; returns the answer and the socket.
function M.ask(proxy, origin, request)
  local sock = assert(h.connect(proxy.port))
  assert(h.send(sock, (request:gsub("{O}", origin.authority):gsub("{P}", tostring(proxy.port)))))
  local r, err, partial = h.read_response(sock)
  assert(r, "no answer: " .. tostring(err) .. " " .. q(partial))
  return r, sock
end

return M
