-- CONNECT tunnels and Upgrade (contract: CONNECT, Upgrade, idle timeout).
-- The far end is origin.lua --echo, which echoes bytes and half-closes its
-- side once it has seen EOF and echoed everything, so a half-close that the
-- proxy relays correctly comes back as "all bytes, then EOF".

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local socket = require("socket")

describe("tunnels", function()
  local echo, origin, proxy
  local procs, socks = {}, {}

  local function track(p) procs[#procs + 1] = p; return p end
  local function connect(port)
    local s = assert(h.connect(port))
    socks[#socks + 1] = s
    return s
  end

  before_each(function()
    echo = track(h.start_origin("echo"))
    origin = track(h.start_origin())
    proxy = track(h.start_proxy({ "--connect-ports", tostring(echo.port) }))
  end)

  after_each(function()
    for _, s in ipairs(socks) do s:close() end
    local problem = h.stop_procs(procs)
    procs, socks = {}, {}
    assert(not problem, problem)
  end)

  -- Opens a tunnel to the echo server through proxy p; returns the socket.
  local function open_tunnel(p)
    local s = connect(p.port)
    local target = "127.0.0.1:" .. echo.port
    assert(h.send(s, h.request("CONNECT", target, { "Host: " .. target })))
    local resp = h.read_response(s, { method = "CONNECT" })
    assert(resp, "no answer to CONNECT")
    assert.are.equal("HTTP/1.1 200 Connection Established", resp.status_line)
    assert.are.equal(0, h.header_count(resp.headers, "Content-Length"))
    assert.are.equal(0, h.header_count(resp.headers, "Transfer-Encoding"))
    assert.are.equal("", h.take_pending(s), "bytes after the 200 before we sent any")
    return s
  end

  it("answers CONNECT with 200 and relays bytes both ways", function()
    local s = open_tunnel(proxy)
    assert(h.send(s, "hello tunnel\n"))
    assert.are.equal("hello tunnel\n", h.recv_exact(s, 13))
    -- 1 MiB round trip, 64 KiB at a time so neither side's buffers fill up.
    for i = 0, 15 do
      local piece = h.pattern(65536, i * 65536)
      assert(h.send(s, piece))
      local back, err = h.recv_exact(s, #piece)
      assert.is_nil(err)
      assert.is_true(back == piece, "echoed piece " .. i .. " differs")
    end
  end)

  it("relays a client half-close and still delivers the rest", function()
    local s = open_tunnel(proxy)
    assert(h.send(s, "abc"))
    s:shutdown("send")
    local data, how = h.recv_until_close(s, 5)
    assert.are.equal("abc", data)
    assert.are.equal("closed", how)
    local target = "127.0.0.1:" .. echo.port
    local line = proxy.wait_access_log('"CONNECT ' .. target:gsub("%p", "%%%0")
      .. ' HTTP/1%.1" 200 3 %d+$')
    assert(line, "no CONNECT access log line:\n" .. proxy.access_log())
    assert.is_truthy(line:find("^127%.0%.0%.1 %- %- %["))
  end)

  -- The state of the TCP connection from 127.0.0.1:<lport> to <rport> as
  -- /proc/net/tcp lists it: "08" (CLOSE_WAIT) once the peer sent a FIN,
  -- or nil once it is gone, as a reset leaves it. (luasocket says
  -- "closed" for both.)
  local function tcp_state(lport, rport)
    for line in io.lines("/proc/net/tcp") do
      local l, r, st = line:match("^%s*%d+:%s+%x+:(%x+)%s+%x+:(%x+)%s+(%x+)")
      if l and tonumber(l, 16) == lport and tonumber(r, 16) == rport then return st end
    end
  end
  local function ports(s)
    local _, l = s:getsockname()
    local _, r = s:getpeername()
    return tonumber(l), tonumber(r)
  end

  -- A tunnel to a raw listener through a proxy allowed to reach it:
  -- the client's socket and the far end's.
  local function raw_tunnel()
    local server, port, target = h.raw_listener()
    local p = track(h.start_proxy({ "--connect-ports", tostring(port) }))
    local s = connect(p.port)
    assert(h.send(s, h.request("CONNECT", target, { "Host: " .. target })))
    local resp = h.read_response(s, { method = "CONNECT" })
    assert.are.equal(200, resp and resp.status)
    local up = assert(server:accept())
    server:close()
    socks[#socks + 1] = up
    return s, up, p
  end

  local function reset(sock)
    sock:setoption("linger", { on = true, timeout = 0 })
    sock:close()
  end

  -- A FIN ends a tunnel's direction as whole; a reset must not become
  -- one on the other side, or a stream cut short looks complete (a body
  -- read to the connection's end, say).
  it("passes a far end's FIN on as a FIN, and its reset as a reset after the bytes that came", function()
    local s, up = raw_tunnel()
    local l, r = ports(s)
    assert(h.send(up, "whole"))
    up:close()
    assert.are.same({ "whole", "closed" }, { h.recv_until_close(s, 5) })
    assert.are.equal("08", tcp_state(l, r), "a FIN should leave the client in CLOSE_WAIT")

    local p
    s, up, p = raw_tunnel()
    l, r = ports(s)
    assert(h.send(up, "partial"))
    reset(up)
    assert.are.same({ "partial", "closed" }, { h.recv_until_close(s, 5) })
    assert.is_nil(tcp_state(l, r), "the client should have been reset, not sent a FIN")
    assert(p.log_has("the tunnel was reset by the upstream"), p.log())
  end)

  it("resets the far end when the client resets, after the bytes that came", function()
    local s, up, p = raw_tunnel()
    local l, r = ports(up)
    assert(h.send(s, "partial"))
    reset(s)
    assert.are.same({ "partial", "closed" }, { h.recv_until_close(up, 5) })
    assert.is_nil(tcp_state(l, r), "the far end should have been reset, not sent a FIN")
    assert(p.log_has("the tunnel was reset by the client"), p.log())
  end)

  -- Over TLS only a close_notify says a stream ended whole: an upstream's
  -- bare TCP EOF (tls_front.py sends one unless told otherwise) may be
  -- someone cutting it, and must reach the client as a reset, not as our
  -- close_notify. A WebSocket over an intercepted tunnel: the client
  -- sends its close_notify, which goes up to the origin; the origin's
  -- end comes back as the front sends it.
  it("resets the client when an upgrade's TLS upstream ends without close_notify", function()
    local client = h.tmpfile([[
import socket, ssl, sys
proxy_port, host, port, cafile = sys.argv[1:5]
sock = socket.create_connection(("127.0.0.1", int(proxy_port)), timeout=10)
sock.sendall(("CONNECT %s:%s HTTP/1.1\r\nHost: %s:%s\r\n\r\n" % (host, port, host, port)).encode())
head = b""
while not head.endswith(b"\r\n\r\n"):
    head += sock.recv(1)
assert head.startswith(b"HTTP/1.1 200"), head
tls = ssl.create_default_context(cafile=cafile).wrap_socket(
    sock, server_hostname=host, suppress_ragged_eofs=False)
tls.sendall(("GET /ws HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
             % (host, port)).encode())
head = b""
while b"\r\n\r\n" not in head:
    head += tls.recv(1)
assert head.startswith(b"HTTP/1.1 101"), head
tls.sendall(b"hello")
echo = b""
while len(echo) < 5:
    echo += tls.recv(5 - len(echo))
assert echo == b"hello", echo
try:
    tls.unwrap()  # our close_notify, then the proxy's
    how = "close_notify"
except ssl.SSLEOFError:
    how = "bare eof"
except ConnectionResetError:
    how = "reset"
print("end: " + how)
]], "ws_client.py")
    local pki = h.test_pki()
    local ca_dir = h.new_ca_dir()
    local bare = h.start_https_origin()
    local notify = h.start_https_origin({ close_notify = true })
    local function stop() bare.stop(); notify.stop() end
    local ok, err = pcall(function()
      local p = track(h.start_proxy({ "--ca-dir", ca_dir, "--upstream-ca", pki.ca, "--intercept", "*",
        "--connect-ports", bare.port .. "," .. notify.port }))
      local function run(origin)
        return h.sh(table.concat({ "timeout 20 python3", h.shell_quote(client), tostring(p.port),
          "127.0.0.1", tostring(origin.port), h.shell_quote(ca_dir .. "/ca.pem"), "2>&1" }, " "))
      end
      assert.are.equal("end: close_notify\n", run(notify))
      assert.are.equal("end: reset\n", run(bare))
      assert(p.log_has("the tunnel was cut by the upstream: its TLS stream ended without "
        .. "close_notify"), p.log())
    end)
    stop()
    assert(ok, err)
  end)

  it("refuses CONNECT to a port not in --connect-ports with 403", function()
    local s = connect(proxy.port)
    local target = "127.0.0.1:" .. origin.port
    assert(h.send(s, h.request("CONNECT", target, { "Host: " .. target })))
    local resp = h.read_response(s, { method = "CONNECT" })
    local ok, why = h.check_error_response(resp, 403, "Forbidden")
    assert(ok, why)
    -- Nothing reached the origin: it records every request it reads, and
    -- the proxy must not have sent it anything.
    assert.are.equal(0, #origin.requests())
  end)

  it("closes a silent tunnel after --idle-timeout, but not a busy one", function()
    local p = track(h.start_proxy({ "--connect-ports", tostring(echo.port), "--idle-timeout", "1" }))
    local s = open_tunnel(p)
    -- 1.5 s of traffic every 0.3 s: longer than the timeout, so the timer
    -- must be an idle timer, not a lifetime limit. (The pauses are the
    -- subject of the test, not synchronisation.)
    for i = 1, 5 do
      assert(h.send(s, "ping" .. i))
      assert.are.equal("ping" .. i, h.recv_exact(s, 5))
      h.sleep(0.3)
    end
    local t0 = h.now()
    local data, how = h.recv_until_close(s, 5)
    local waited = h.now() - t0
    assert.are.equal("", data)
    assert.are.equal("closed", how)
    assert.is_true(waited >= 0.5 and waited <= 3.5, "closed after " .. waited .. " s")
  end)

  it("turns an Upgrade: websocket exchange into a tunnel after 101", function()
    local s = connect(proxy.port)
    assert(h.send(s, h.request("GET", origin.url("/ws"), {
      "Host: " .. origin.authority,
      "Upgrade: websocket",
      "Connection: Upgrade",
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Version: 13",
    })))
    local resp = h.read_response(s)
    assert(resp, "no answer to the upgrade")
    assert.are.equal("HTTP/1.1 101 Switching Protocols", resp.status_line)
    assert.are.equal("websocket", resp.headers["upgrade"]:lower())
    assert.is_truthy((resp.headers["connection"] or ""):lower():find("upgrade", 1, true))

    local r = origin.requests()[1]
    assert.are.equal("GET /ws HTTP/1.1", r.request_line)
    assert.are.equal("websocket", r.headers["upgrade"])
    assert.is_truthy(r.headers["connection"]:lower():find("upgrade", 1, true))
    assert.are.equal("dGhlIHNhbXBsZSBub25jZQ==", r.headers["sec-websocket-key"])

    local frame = "\129\5hello"   -- a text frame; the proxy must not care
    assert(h.send(s, frame))
    assert.are.equal(frame, h.recv_exact(s, #frame))
    s:shutdown("send")
    local data, how = h.recv_until_close(s, 5)
    assert.are.equal("", data)
    assert.are.equal("closed", how)
  end)

  -- A server reads an upgrade request's body before it switches (RFC
  -- 9110 7.8). Switched with part of it still to come, the proxy sent the
  -- rest raw into the tunnel, after the part it had framed anew: here a
  -- chunk hook made "5\r\nhello\r\n" of the first half and the second
  -- went as "world", a stream that was neither.
  it("answers 502 to a 101 that comes before the request body was sent", function()
    local hooked = track(h.start_proxy({ "-s", h.tmpfile(
      "function on_request_chunk(tx, chunk, eof) return chunk end", "chunk.lua") }))
    local server, port, target = h.raw_listener()
    local s = connect(hooked.port)
    assert(h.send(s, "POST http://" .. target .. "/ HTTP/1.1\r\nHost: " .. target
      .. "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 10\r\n\r\nhello"))
    local up = assert(server:accept())
    server:close()
    h.skip_head(up)
    assert(up:send("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"))
    local resp = assert(h.read_response(s))
    up:close()
    assert(h.check_error_response(resp, 502, "Bad Gateway"))
    assert.truthy(resp.body:find("before the request body was sent", 1, true), resp.body)
    assert.are.equal("close", resp.headers["connection"], resp.raw_head)
  end)

  -- An upgrade to h2c (deprecated, RFC 9113 3.1) would open a tunnel of
  -- HTTP/2 requests that the scripts and the viewer never see: the request
  -- goes on as an ordinary one, and a 101 to it is refused.
  it("does not pass an Upgrade to h2c on, and refuses a 101 to it", function()
    local server, port, target = h.raw_listener()
    local s = connect(proxy.port)
    assert(h.send(s, "GET http://" .. target .. "/ HTTP/1.1\r\nHost: " .. target
      .. "\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"))
    local up = assert(server:accept())
    server:close()
    up:settimeout(5)
    local head = {}
    repeat
      local line = assert(up:receive("*l"))
      head[#head + 1] = line:lower()
    until line == ""
    local text = table.concat(head, "\n")
    assert(h.send(up, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"))
    local resp = assert(h.read_response(s))
    up:close()
    assert.falsy(text:find("\nupgrade:", 1, true), text)
    assert.falsy(text:find("connection: upgrade", 1, true), text)
    assert(h.check_error_response(resp, 502, "Bad Gateway"))
    assert.truthy(resp.body:find("switched protocols without being asked", 1, true), resp.body)
  end)
end)
