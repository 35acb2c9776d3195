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

local sides = require("support.two_sides")
local q, run_case, with_proxy, ask = sides.q, sides.run_case, sides.with_proxy, sides.ask
local assert_carries_on, follow_up = sides.assert_carries_on, sides.follow_up
local SCRIPT_FAILED = sides.SCRIPT_FAILED

local NEXT = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnext\n"
local POOLED = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\npooled\n"

-- Scripts for the cases, chosen per request by an X-Case field (absent from
-- the follow-up requests, which the scripts leave alone).
local REQUEST_SCRIPT = [[
function on_request(tx)
  local c = tx.req.headers["X-Case"]
  if c == nil then return end
  local method = c:match("^method%-(%u+)$")
  if method then tx.req.method = method end
  local override = tx.req.headers["X-HTTP-Method-Override"]
  if c == "drop-upgrade" then tx.req.headers["Upgrade"] = nil end
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
  if c:find("add%-length") then tx.res.headers:add("Content-Length", "7") end
end
]]

local CHUNK_SCRIPT = RESPONSE_SCRIPT .. [[
function on_response_chunk(tx, chunk, eof)
  if tx.req.headers["X-Case"] then return "FILTERED" .. chunk end
end
]]

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

  it("HEAD sent as GET, the body stalls: the upstream is dropped, the client carries on", function()
    run_case {
      script = REQUEST_SCRIPT, request = req("HEAD", "method-GET"), method = "HEAD", sent = "GET",
      head = HELLO_HEAD .. "hello", reuse = false, args = { "--idle-timeout", "1" },
      check = function(r)
        assert.equal(200, r.status)
        assert.equal("11", r.headers["content-length"])
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

  -- The HEAD's answer names the coding of a body the GET does not get: an
  -- empty body has no gzip form (a gzip stream has a header and a
  -- trailer), so with the field the client's decoder fails on it.
  for _, scripts in ipairs({ { "on_request", REQUEST_SCRIPT },
                             { "on_request and on_response", REQUEST_SCRIPT .. RESPONSE_SCRIPT } }) do
    it("GET sent as HEAD (" .. scripts[1] .. "): the empty body carries no Content-Encoding", function()
      run_case {
        script = scripts[2], request = req("GET", "method-HEAD"), method = "GET", sent = "HEAD",
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\n"
          .. "Content-Length: 31\r\n\r\n",
        reuse = true,
        check = function(r)
          assert.equal("0", r.headers["content-length"])
          assert.is_nil(r.headers["content-encoding"])
          assert.equal("text/plain", r.headers["content-type"])
          assert.equal("", r.body)
        end,
      }
    end)
  end

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

describe("framing after a script takes Upgrade away", function()
  it("the request goes out as an ordinary one, and its connection is pooled", function()
    run_case {
      script = REQUEST_SCRIPT,
      request = req("GET", "drop-upgrade", { "Upgrade: websocket", "Connection: Upgrade" }),
      method = "GET", sent = "GET", head = HELLO_HEAD .. "hello world", reuse = true,
      upstream = function(r)
        assert.is_nil(r.f["upgrade"], "Upgrade upstream: " .. q(r.head))
        assert.is_nil(r.f["connection"], "Connection upstream: " .. q(r.head))
      end,
      check = function(r)
        assert.equal(200, r.status)
        assert.equal("hello world", r.body)
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

  -- The empty body the proxy makes for it holds no coding: none has an
  -- empty form (a gzip stream has a header and a trailer), so a
  -- Content-Encoding the 304 repeated would have the client's decoder
  -- fail on it (RFC 9110 8.4).
  it("gzip 304 -> 200, with and without on_response_chunk: no Content-Encoding on the empty body", function()
    for _, script in ipairs({ RESPONSE_SCRIPT, CHUNK_SCRIPT }) do
      run_case {
        script = script, request = req("GET", "status-200", { "Accept-Encoding: gzip" }),
        method = "GET", sent = "GET", reuse = true,
        head = "HTTP/1.1 304 Not Modified\r\nContent-Encoding: gzip\r\nETag: \"x\"\r\n"
          .. "Vary: Accept-Encoding\r\n\r\n",
        check = function(r)
          assert.equal("HTTP/1.1 200 OK", r.status_line)
          assert.equal("0", r.headers["content-length"])
          assert.equal("", r.body)
          assert.is_nil(r.headers["content-encoding"])
          assert.equal("Accept-Encoding", r.headers["vary"])
        end,
      }
    end
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

-- A 205 has no content (RFC 9110 15.3.6), yet is framed like any
-- response (RFC 9112 6.3): the client gets "Content-Length: 0" (without
-- it, it would read to the connection's end), and a body the upstream
-- sends all the same is read by its framing and dropped.
describe("205 Reset Content", function()
  it("the upstream's body is dropped; the client gets Content-Length: 0", function()
    run_case {
      request = req("GET", "none"), method = "GET", sent = "GET",
      head = "HTTP/1.1 205 Reset Content\r\nContent-Length: 11\r\n\r\n", later = "hello world",
      reuse = true,
      check = function(r)
        assert.equal("HTTP/1.1 205 Reset Content", r.status_line)
        assert.equal("0", r.headers["content-length"])
        assert.equal(1, h.header_count(r.headers, "Content-Length"))
        assert.equal("", r.body)
      end,
    }
  end)

  it("a chunked body is dropped by its chunked framing", function()
    run_case {
      request = req("GET", "none"), method = "GET", sent = "GET",
      head = "HTTP/1.1 205 Reset Content\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
      later = "0\r\n\r\n", reuse = true,
      check = function(r)
        assert.equal(205, r.status)
        assert.equal("0", r.headers["content-length"])
        assert.is_nil(r.headers["transfer-encoding"])
      end,
    }
  end)

  it("200 -> 205 by on_response, chunk hooks loaded: no body, nothing filtered", function()
    run_case {
      script = CHUNK_SCRIPT, request = req("GET", "status-205"), method = "GET", sent = "GET",
      head = HELLO_HEAD, later = "hello world", reuse = true,
      check = function(r)
        assert.equal("HTTP/1.1 205 Reset Content", r.status_line)
        assert.equal("0", r.headers["content-length"])
        assert.equal("", r.body)
      end,
    }
  end)

  it("tx:respond(205, body): Content-Length: 0 and no body", function()
    run_case {
      script = 'function on_request(tx) if tx.req.headers["X-Case"] then tx:respond(205, "body!") end end',
      request = req("GET", "respond"), method = "GET",
      check = function(r)
        assert.equal("HTTP/1.1 205 Reset Content", r.status_line)
        assert.equal("0", r.headers["content-length"])
        assert.equal("", r.body)
        assert.is_nil(r.headers["content-type"], "a type for no content")
      end,
    }
  end)

  it("tx:respond with no content sends no default Content-Type, only the script's", function()
    run_case {
      script = 'function on_request(tx) if tx.req.headers["X-Case"] then tx:respond(204) end end',
      request = req("GET", "respond"), method = "GET",
      check = function(r)
        assert.equal("HTTP/1.1 204 No Content", r.status_line)
        assert.is_nil(r.headers["content-type"])
      end,
    }
    run_case {
      script = 'function on_request(tx) if tx.req.headers["X-Case"] then '
        .. 'tx:respond(304, "", { ["Content-Type"] = "text/html" }) end end',
      request = req("GET", "respond"), method = "GET",
      check = function(r)
        assert.equal("HTTP/1.1 304 Not Modified", r.status_line)
        assert.equal("text/html", r.headers["content-type"])
      end,
    }
  end)
end)

describe("the reason phrase of a status a script chooses", function()
  for status, reason in pairs({ [203] = "Non-Authoritative Information", [418] = "I'm a teapot",
                                 [421] = "Misdirected Request", [451] = "Unavailable For Legal Reasons",
                                 [511] = "Network Authentication Required" }) do
    it(status .. " is " .. reason .. " in tx:respond and in on_response", function()
      run_case {
        script = 'function on_request(tx) if tx.req.headers["X-Case"] == "respond" then '
          .. 'tx:respond(' .. status .. ', "x") end end\n' .. RESPONSE_SCRIPT,
        request = req("GET", "respond"), method = "GET",
        check = function(r) assert.equal("HTTP/1.1 " .. status .. " " .. reason, r.status_line) end,
      }
      run_case {
        script = RESPONSE_SCRIPT, request = req("GET", "status-" .. status), method = "GET",
        sent = "GET", head = HELLO_HEAD .. "hello world", reuse = true,
        check = function(r) assert.equal("HTTP/1.1 " .. status .. " " .. reason, r.status_line) end,
      }
    end)
  end
end)

-- To a HEAD and in a 304, Content-Length describes a body the client does
-- not get. The upstream's passes on, but only one valid value: no framing
-- rule reads it, so nothing else would catch a bad one. A script's edits of
-- it are dropped as for any framing field.
describe("Content-Length of an answer without a body", function()
  it("to a HEAD: a script-set value gives way to the upstream's", function()
    run_case {
      script = RESPONSE_SCRIPT, request = req("HEAD", "set-length"), method = "HEAD",
      sent = "HEAD", head = HELLO_HEAD, reuse = true,
      check = function(r)
        assert.equal(200, r.status)
        assert.equal("11", r.headers["content-length"])
      end,
    }
  end)

  it("in a 304: a second one a script adds is dropped", function()
    run_case {
      script = RESPONSE_SCRIPT, request = req("GET", "add-length"), method = "GET", sent = "GET",
      head = "HTTP/1.1 304 Not Modified\r\nContent-Length: 11\r\nETag: \"x\"\r\n\r\n",
      reuse = true,
      check = function(r)
        assert.equal(304, r.status)
        assert.equal("11", r.headers["content-length"])
        assert.equal(1, h.header_count(r.headers, "Content-Length"))
      end,
    }
  end)

  for _, bad in ipairs({ "Content-Length: abc", "Content-Length: -1",
                         "Content-Length: 11\r\nContent-Length: 11" }) do
    it("to a HEAD, no script: the upstream's " .. q(bad) .. " is not passed on", function()
      run_case {
        request = req("HEAD", "plain"), method = "HEAD", sent = "HEAD",
        head = "HTTP/1.1 200 OK\r\n" .. bad .. "\r\nETag: \"x\"\r\n\r\n", reuse = true,
        check = function(r)
          assert.equal(200, r.status)
          assert.is_nil(r.headers["content-length"], "passed on: " .. q(r.raw_head))
          assert.equal('"x"', r.headers["etag"])
        end,
      }
    end)
  end
end)

describe("bytes an upstream sends past a body", function()
  -- A spliced body is moved from the socket exactly its length, so bytes
  -- the upstream sent after it stay in the socket, where the check for
  -- leftovers (the input buffer) did not look: the connection was reused,
  -- and those bytes answered the client's next pipelined request.
  it("past a spliced body, are not taken for the answer to the next request", function()
    with_proxy(nil, function(proxy, origin)
      -- Over the splice threshold (256 KiB), and not a multiple of the
      -- 8 KiB that LuaSocket writes at a time: the body's last bytes and
      -- the extra ones go in one write, so they are in the proxy's socket
      -- together when the body ends (extra bytes that come later are
      -- another matter: the kept connection's watcher drops them).
      local size = 320 * 1024 + 100
      local function get(path)
        return "GET http://" .. origin.authority .. path .. " HTTP/1.1\r\nHost: "
          .. origin.authority .. "\r\n\r\n"
      end
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, get("/big") .. get("/next")))
      local conn = assert(origin.next_request())
      conn.send("HTTP/1.1 200 OK\r\nContent-Length: " .. size .. "\r\n\r\n")
      -- The head is at the client before any body byte leaves the origin,
      -- so the body takes the splice pipe.
      assert.equal(200, assert(h.read_response(s, { method = "HEAD" })).status)
      conn.send(("A"):rep(size) .. "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nINJECTED!")
      assert.equal(size, #assert(h.recv_exact(s, size)))
      local conn2, req2 = origin.next_request()
      assert(conn2, "the next request never reached the origin")
      assert.are_not.equal(conn.id, conn2.id, "the connection with bytes left in it was reused")
      assert.equal("GET /next HTTP/1.1", req2.request_line)
      conn2.send(NEXT)
      assert.equal("next\n", assert(h.read_response(s)).body)
      s:close()
    end)
  end)
end)

describe("an HTTP/1.0 request", function()
  -- RFC 9110 7.8 and 10.1.1: a recipient ignores Upgrade and Expect in
  -- an HTTP/1.0 request; passed on, they became HTTP/1.1's, and a 101
  -- made a tunnel for a client that cannot have asked for one.
  it("has its Upgrade and Expect ignored, not passed on as HTTP/1.1's", function()
    run_case {
      request = "GET http://{O}/case HTTP/1.0\r\nHost: {O}\r\nConnection: Upgrade\r\n"
        .. "Upgrade: websocket\r\nExpect: 100-continue\r\n\r\n",
      method = "GET", sent = "GET", closes = true, head = HELLO_HEAD .. "hello world",
      upstream = function(r)
        assert.is_nil(r.f["upgrade"], q(r.head))
        assert.is_nil(r.f["expect"], q(r.head))
        assert.is_nil(r.f["connection"], q(r.head))
      end,
      check = function(r)
        assert.equal(200, r.status)
        assert.equal("hello world", r.body)
      end,
    }
  end)
end)

describe("the response head cap", function()
  -- --max-header-bytes held only while a head was still arriving: one
  -- that came whole in a single read went through, however large.
  it("holds for a head that arrives in one read", function()
    with_proxy(nil, function(proxy, origin)
      local s = assert(h.connect(proxy.port))
      assert(h.send(s, "GET http://" .. origin.authority .. "/big-head HTTP/1.1\r\nHost: "
        .. origin.authority .. "\r\n\r\n"))
      local conn = assert(origin.next_request())
      conn.send("HTTP/1.1 200 OK\r\nX-Big: " .. ("a"):rep(2000) .. "\r\nContent-Length: 2\r\n\r\nok")
      local resp = assert(h.read_response(s))
      s:close()
      assert.equal(502, resp.status)
      assert.truthy(resp.body:find("head is too large", 1, true), resp.body)
    end, nil, { "--max-header-bytes", "1024" })
  end)
end)

describe("interim responses", function()
  it("100 interim responses in one burst (the cap) are all relayed, then the final one", function()
    run_case {
      request = req("GET", "none"), method = "GET", sent = "GET", skip_1xx = true,
      head = ("HTTP/1.1 100 Continue\r\n\r\n"):rep(99) .. "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        .. "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n",
      reuse = true,
      check = function(r)
        assert.equal(100, #r.interim)
        assert.equal(103, r.interim[100].status)
        assert.equal("</a>", r.interim[100].headers.link)
        assert.equal(200, r.status)
        assert.equal("ok\n", r.body)
      end,
    }
  end)

  it("2,000 interim responses in one burst: 502 after the cap, no stall, the client carries on", function()
    run_case {
      request = req("GET", "none"), method = "GET", sent = "GET", skip_1xx = true,
      head = ("HTTP/1.1 100 Continue\r\n\r\n"):rep(2000) .. "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n",
      reuse = false,
      check = function(r)
        assert.equal(100, #r.interim)
        assert(h.check_error_response(r, 502, "Bad Gateway"))
        assert.truthy(r.body:find("too many interim", 1, true), r.body)
      end,
    }
  end)
end)

-- RFC 9110 15: a status is three digits from 100 to 599. One above has no
-- class to say what it means or whether a body follows, so it is refused,
-- whether the upstream sends it or a script sets it.
local STATUS_SCRIPT = [[
function on_request(tx)
  local s = tx.req.headers["X-Respond"]
  if s then tx:respond(load("return " .. s)(), "mine\n") end
end
function on_response(tx)
  local s = tx.req.headers["X-Status"]
  if s then tx.res.status = load("return " .. s)() end
end
]]

describe("status codes", function()
  for _, status in ipairs({ "600", "999" }) do
    it("an upstream's status " .. status .. " is a 502 naming it, never forwarded", function()
      run_case {
        request = req("GET", "none"), method = "GET", sent = "GET",
        head = "HTTP/1.1 " .. status .. " Beyond\r\nContent-Length: 3\r\n\r\nok\n",
        reuse = false,
        check = function(r)
          assert(h.check_error_response(r, 502, "Bad Gateway"))
          assert.truthy(r.body:find("status code outside 100-599", 1, true), r.body)
          assert.falsy(r.raw_head:find(status, 1, true), r.raw_head)
        end,
      }
    end)
  end

  it("an upstream's 599 goes through as it is", function()
    run_case {
      request = req("GET", "none"), method = "GET", sent = "GET",
      head = "HTTP/1.1 599 Last\r\nContent-Length: 3\r\n\r\nok\n", reuse = true,
      check = function(r)
        assert.equal("HTTP/1.1 599 Last", r.status_line)
        assert.equal("ok\n", r.body)
      end,
    }
  end)

  it("interim statuses other than 100 and 103 (102, 199) are relayed as interim", function()
    run_case {
      request = req("GET", "none"), method = "GET", sent = "GET", skip_1xx = true,
      head = "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 199 Odd\r\nX-I: 1\r\n\r\n"
        .. "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n",
      reuse = true,
      check = function(r)
        assert.equal(2, #r.interim)
        assert.equal(102, r.interim[1].status)
        assert.equal(199, r.interim[2].status)
        assert.equal("1", r.interim[2].headers["x-i"])
        assert.equal(200, r.status)
        assert.equal("ok\n", r.body)
      end,
    }
  end)

  it("an HTTP/1.0 client gets no interim response, only the final one", function()
    run_case {
      request = "GET http://{O}/case HTTP/1.0\r\nHost: {O}\r\nConnection: keep-alive\r\n\r\n",
      method = "GET", sent = "GET",
      head = "HTTP/1.1 199 Odd\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n",
      reuse = true,
      check = function(r)
        assert.equal(200, r.status)
        assert.equal("ok\n", r.body)
      end,
    }
  end)

  it("a 101 to a request that asked for no upgrade is a 502", function()
    run_case {
      request = req("GET", "none"), method = "GET", sent = "GET",
      head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
      reuse = false,
      check = function(r)
        assert(h.check_error_response(r, 502, "Bad Gateway"))
        assert.truthy(r.body:find("switched protocols without being asked", 1, true), r.body)
      end,
    }
  end)

  for _, status in ipairs({ "600", "999", "1000", "99", "200.5", "0/0", "1/0" }) do
    it("a script's status " .. status .. " in on_response fails the hook", function()
      run_case {
        script = STATUS_SCRIPT, request = req("GET", "none", { "X-Status: " .. status }),
        method = "GET", sent = "GET", head = HELLO_HEAD .. "hello world",
        check = function(r)
          assert(h.check_error_response(r, 500, "Internal Server Error"))
          assert.equal("500 Internal Server Error: a script failed while handling this "
            .. "response\n", r.body)
        end,
      }
    end)

    it("a script's tx:respond(" .. status .. ") fails the hook; nothing goes upstream", function()
      run_case {
        script = STATUS_SCRIPT, request = req("GET", "none", { "X-Respond: " .. status }),
        method = "GET",
        check = function(r)
          assert(h.check_error_response(r, 500, "Internal Server Error"))
          assert.equal(SCRIPT_FAILED, r.body)
        end,
      }
    end)
  end
end)

-- Reads <n> responses from <sock> while sending <data> (without blocking
-- on either: the proxy stops reading a client that does not read its
-- answers). Returns the list of {status, body}; fails on bad framing.
local function pipeline(sock, data, n, timeout)
  local deadline = h.now() + (timeout or 30)
  local sent, buf, out = 1, "", {}
  sock:settimeout(0)
  while #out < n do
    assert(h.now() < deadline, "only " .. #out .. " of " .. n .. " answers arrived")
    local want_write = sent <= #data and { sock } or nil
    local r, w = require("socket").select({ sock }, want_write, 1)
    if w and #w > 0 then
      local last, err, lastp = sock:send(data, sent)
      sent = (last or lastp or sent - 1) + 1
      assert(last or err == "timeout", "send: " .. tostring(err))
    end
    if r and #r > 0 then
      local chunk, err, partial = sock:receive(65536)
      chunk = chunk or partial
      assert(chunk and (#chunk > 0 or err == "timeout"), "the proxy closed: " .. tostring(err))
      buf = buf .. chunk
      -- Whole responses off the front: every one must be length-framed.
      local pos = 1
      while true do
        local e = buf:find("\r\n\r\n", pos, true)
        if not e then break end
        local head = buf:sub(pos, e + 1)
        local status = tonumber(head:match("^HTTP/1%.1 (%d%d%d) "))
        local len = tonumber(head:match("\r\n[Cc]ontent%-[Ll]ength: (%d+)\r\n"))
        assert(status and len, "not a length-framed response: " .. q(head))
        if #buf < e + 3 + len then break end
        out[#out + 1] = { status = status, body = buf:sub(e + 4, e + 3 + len) }
        pos = e + 4 + len
      end
      buf = buf:sub(pos)
    end
  end
  sock:settimeout(5)
  assert.equal("", buf, "bytes after the last answer")
  return out
end

describe("pipelined requests the proxy answers itself", function()
  local LOCAL_SCRIPT = [[
function on_request(tx)
  if tx.req.path == "/local" then tx:respond(200, "local\n") end
end
]]
  for _, variant in ipairs({
    { "with an empty on_request hook", "function on_request(tx) end\n", false },
    { "answered by tx:respond and by the loop check, alternately", LOCAL_SCRIPT, true },
    { "without any script", nil, false },
  }) do
    it("5,000 in one burst, " .. variant[1] .. ": every one answered, in order", function()
      with_proxy(variant[2], function(proxy, origin)
        -- Short requests, so that one read brings many of them.
        local loop = "GET http://127.0.0.1:" .. proxy.port .. "/ HTTP/1.1\r\nHost: 127.0.0.1:"
          .. proxy.port .. "\r\n\r\n"
        local mocked = "GET http://" .. origin.authority .. "/local HTTP/1.1\r\nHost: "
          .. origin.authority .. "\r\n\r\n"
        local parts = {}
        for i = 1, 5000 do
          parts[i] = (variant[3] and i % 2 == 0) and mocked or loop
        end
        local sock = assert(h.connect(proxy.port))
        local answers = pipeline(sock, table.concat(parts), 5000)
        for i, a in ipairs(answers) do
          if variant[3] and i % 2 == 0 then
            assert.equal(200, a.status, "answer " .. i)
            assert.equal("local\n", a.body)
          else
            assert.equal(508, a.status, "answer " .. i)
          end
        end
        assert_carries_on(proxy, origin, sock)
      end)
    end)
  end

  -- A head is read up to the head size cap (32 KiB by default) at a time;
  -- one read of short requests holds hundreds, more than one pass of the
  -- state machine may handle, and no socket event comes for bytes already
  -- read.
  it("one read full of pipelined requests, with a script loaded: none is left behind", function()
    with_proxy("function on_request(tx) end\n", function(proxy, origin)
      local loop = "GET http://127.0.0.1:" .. proxy.port .. "/ HTTP/1.1\r\nHost: 127.0.0.1:"
        .. proxy.port .. "\r\n\r\n"
      local n = 32768 // #loop
      local sock = assert(h.connect(proxy.port))
      assert(h.send(sock, loop:rep(n)))
      local answers = pipeline(sock, "", n)
      for i, a in ipairs(answers) do assert.equal(508, a.status, "answer " .. i) end
      assert_carries_on(proxy, origin, sock)
    end)
  end)

  it("a client that sends without reading is not buffered without bound", function()
    -- ASan keeps freed memory in a 256 MB quarantine by default, which
    -- would measure ASan, not the proxy (see lifecycle_spec.lua).
    local asan = os.getenv("ASAN_OPTIONS")
    local env = { ASAN_OPTIONS = (asan and asan ~= "" and asan .. ":" or "")
      .. "quarantine_size_mb=4:allocator_release_to_os_interval_ms=0" }
    with_proxy(nil, function(proxy, origin)
      local idle = proxy.rss_kb()
      local loop = "GET http://127.0.0.1:" .. proxy.port .. "/loop HTTP/1.1\r\nHost: 127.0.0.1:"
        .. proxy.port .. "\r\n\r\n"
      local sock = assert(h.connect(proxy.port))
      sock:settimeout(0)
      -- 32 MB of requests whose answers would take about 100 MB.
      local data, sent = loop:rep(32 * 1024 * 1024 // #loop), 0
      -- Send until the proxy stops taking bytes (its answers are not read).
      while sent < #data do
        local _, w = require("socket").select(nil, { sock }, 1)
        if #w == 0 then break end
        local last, _, lastp = sock:send(data, sent + 1)
        sent = last or lastp or sent
      end
      assert.is_true(sent < #data, "the proxy read every request without its answers being read")
      local rss = proxy.rss_kb()
      assert.is_true(rss < idle + 24 * 1024, "RSS " .. rss .. " KiB, idle " .. idle .. " KiB")
      sock:close()
      assert_carries_on(proxy, origin, assert(h.connect(proxy.port)))
    end, env)
  end)

end)

describe("loop detection", function()
  local LOOP_SCRIPT = [[
function on_request(tx)
  local c = tx.req.headers["X-Case"]
  if c == "host" then tx.req.host = "::ffff:127.0.0.1"; tx.req.port = tonumber(tx.req.headers["X-Port"]) end
  if c == "url" then tx.req.url = "http://[::ffff:127.0.0.1]:" .. tx.req.headers["X-Port"] .. "/" end
end
function before_connect(tx)
  if tx.req.headers["X-Case"] == "upstream" then
    tx.upstream = { host = "::ffff:127.0.0.1", port = tonumber(tx.req.headers["X-Port"]) }
  end
end
]]
  local cases = {
    { "an IPv4 address", "GET http://127.0.0.1:{P}/ HTTP/1.1\r\nHost: 127.0.0.1:{P}\r\n\r\n" },
    { "an IPv4-mapped IPv6 address", "GET http://[::ffff:127.0.0.1]:{P}/ HTTP/1.1\r\nHost: [::ffff:127.0.0.1]:{P}\r\n\r\n" },
    { "an IPv4-mapped address in hex", "GET http://[::ffff:7f00:1]:{P}/ HTTP/1.1\r\nHost: [::ffff:7f00:1]:{P}\r\n\r\n" },
    { "a mapped address a script set as the host", "GET http://{O}/ HTTP/1.1\r\nHost: {O}\r\nX-Case: host\r\nX-Port: {P}\r\n\r\n" },
    { "a mapped address a script set in the url", "GET http://{O}/ HTTP/1.1\r\nHost: {O}\r\nX-Case: url\r\nX-Port: {P}\r\n\r\n" },
    { "a mapped address a script set as the upstream", "GET http://{O}/ HTTP/1.1\r\nHost: {O}\r\nX-Case: upstream\r\nX-Port: {P}\r\n\r\n" },
  }
  for _, c in ipairs(cases) do
    it("a request to the proxy itself through " .. c[1] .. " gets 508", function()
      with_proxy(LOOP_SCRIPT, function(proxy, origin)
        local r, sock = ask(proxy, origin, c[2])
        assert(h.check_error_response(r, 508, "Loop Detected"))
        assert.equal("", h.take_pending(sock))
        assert_carries_on(proxy, origin, sock)
      end)
    end)
  end
end)

describe("script limits on the request line and Host", function()
  local SCRIPT = [[
function on_request(tx)
  local c = tx.req.headers["X-Case"]
  if c == nil then return end
  tx.req.headers["X-Case"] = nil
  if c == "add-host" then tx.req.headers:add("Host", "other.example")
  elseif c == "raw-host" then
    local hd = tx.req.headers
    rawset(hd, rawlen(hd) + 1, "host"); rawset(hd, rawlen(hd) + 1, "other.example")
  elseif c == "raw-crlf" then   -- around the methods, into a field the relay had
    local hd = tx.req.headers
    for i = 1, rawlen(hd), 2 do
      if rawget(hd, i) == "Host" then rawset(hd, i + 1, rawget(hd, i + 1) .. "\r\nX-Injected: 1") end
    end
  elseif c == "raw-name" then
    local hd = tx.req.headers
    rawset(hd, rawlen(hd) + 1, "X Split"); rawset(hd, rawlen(hd) + 1, "1")
  elseif c == "control-byte" then tx.req.headers["X-Control"] = "a\1b"
  elseif c == "raw-control" then -- around the setter's check: the read-back's
    local hd = tx.req.headers
    local _ = hd["Host"] -- a read turns the list into a plain table
    rawset(hd, rawlen(hd) + 1, "X-Control"); rawset(hd, rawlen(hd) + 1, "a\1b")
  elseif c == "set-host" then tx.req.headers["Host"] = "other.example"
  elseif c == "remove-host" then tx.req.headers:remove("Host")
  elseif c == "to-connect" then tx.req.method = "CONNECT"
  elseif c == "to-connect-lower" then tx.req.method = "connect"
  elseif c == "raw-connect" then
    pairs(tx.req); local d = rawget(tx.req, 2)   -- around the setter, to the data itself
    d.method = "CONNECT"
  elseif c == "from-connect" then tx.req.method = "GET"
  elseif c == "lower-head" then tx.req.method = "head"
  end
end
]]
  local function refused(name, request, log_pattern)
    it(name .. ": a script error (500), nothing sent upstream", function()
      with_proxy(SCRIPT, function(proxy, origin)
        local r, sock = ask(proxy, origin, request)
        assert(h.check_error_response(r, 500, "Internal Server Error"))
        assert.equal(SCRIPT_FAILED, r.body)
        assert.truthy(h.wait_for(function() return proxy.log():find(log_pattern) end),
          "the log does not say why: " .. proxy.log())
        if r.headers.connection == "close" then
          sock:close()
          sock = assert(h.connect(proxy.port))
        end
        assert_carries_on(proxy, origin, sock)
      end)
    end)
  end
  local GET = "GET http://{O}/case HTTP/1.1\r\nHost: {O}\r\nX-Case: "
  refused("a second Host added with headers:add", GET .. "add-host\r\n\r\n", "exactly one Host")
  refused("a second Host added with rawset", GET .. "raw-host\r\n\r\n", "exactly one Host")
  -- A list read back keeps the relay's own fields unchecked only when
  -- they are byte for byte what the relay had: anything else is checked.
  refused("CR LF put into a field's value with rawset", GET .. "raw-crlf\r\n\r\n",
    "invalid header Host")
  refused("a field name with a space put in with rawset", GET .. "raw-name\r\n\r\n",
    "invalid header X Split")
  refused("a value with a control byte", GET .. "control-byte\r\n\r\n",
    "must not contain control characters")
  refused("a value with a control byte put in with rawset", GET .. "raw-control\r\n\r\n",
    "invalid header X%-Control")
  refused("a request turned into CONNECT", GET .. "to-connect\r\n\r\n", "cannot be turned into CONNECT")
  refused("a request turned into connect (lower case)", GET .. "to-connect-lower\r\n\r\n",
    "case%-sensitive")
  refused("a request turned into CONNECT around the setter", GET .. "raw-connect\r\n\r\n",
    "cannot become CONNECT")
  refused("a method that is a known one in lower case", GET .. "lower-head\r\n\r\n", "case%-sensitive")
  refused("a CONNECT turned into GET", "CONNECT {O} HTTP/1.1\r\nHost: {O}\r\nX-Case: from-connect\r\n\r\n",
    "CONNECT request cannot be changed")

  local function forwarded(name, case, want_host)
    it(name, function()
      with_proxy(SCRIPT, function(proxy, origin)
        local sock = assert(h.connect(proxy.port))
        assert(h.send(sock, (GET .. case .. "\r\n\r\n"):gsub("{O}", origin.authority)))
        local conn, req = origin.next_request()
        assert(conn, "nothing reached the origin")
        assert.equal(1, raw_origin.count(req.fields, "host"), q(req.head))
        assert.equal(want_host == "{O}" and origin.authority or want_host, req.f.host)
        conn.send(NEXT)
        local r = assert(h.read_response(sock))
        assert.equal("next\n", r.body)
        -- The follow-ups answer with their own bodies.
        follow_up(sock, origin, "/again", POOLED, "pooled\n")
        sock:close()
      end)
    end)
  end
  forwarded("a script sets Host: exactly one Host upstream, the script's", "set-host", "other.example")
  forwarded("a script removes Host: the proxy sends the target's", "remove-host", "{O}")
end)

-- An HTTP/1.0 client gets a body that ends where the connection does (it
-- has no chunked coding). When the upstream's body is cut short, a FIN
-- after the bytes that came would read as the body's end: the proxy resets
-- the connection instead, the one sign such a client can see. An HTTP/1.1
-- client is told by the missing last chunk, and gets a FIN as before.
-- (curl, since luasocket reports a reset as "closed".)
describe("a body cut short on its way to the client", function()
  local origin, proxy

  after_each(function()
    local problem = h.stop_procs({ origin, proxy })
    origin, proxy = nil, nil
    assert(not problem, problem)
  end)

  local function cut_for(version)
    local out, code, err = h.curl({ version == "1.0" and "--http1.0" or "--http1.1",
      "-x", "http://127.0.0.1:" .. proxy.port, origin.url("/chunked?n=2&size=10&cut=1") })
    assert.are.equal(("x"):rep(20), out, err)
    return code, err
  end

  it("resets an HTTP/1.0 client's connection after the bytes that came", function()
    origin = h.start_origin()
    proxy = h.start_proxy()
    local code, err = cut_for("1.0")
    assert.are.equal(56, code, err) -- "Recv failure: Connection reset by peer"
    assert(proxy.log_has("the upstream closed the connection in the middle of the body"),
      proxy.log())
  end)

  it("ends an HTTP/1.1 client's connection without the last chunk", function()
    origin = h.start_origin()
    proxy = h.start_proxy()
    local code, err = cut_for("1.1")
    assert.are.equal(18, code, err) -- "transfer closed with outstanding read data remaining"
  end)
end)
