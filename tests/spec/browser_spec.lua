-- A real browser through an intercepting proxy: Chromium, headless, with
-- the proxy's CA in an NSS database (as a user would install it), loads an
-- HTTPS page with no certificate warning, and a script's change to the page
-- is there in the DOM; a page's WebSocket (wss, permessage-deflate) works
-- through the proxy, and the flow viewer lists its messages as text.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local a = require("support.admin")

local q = h.shell_quote

-- A fresh HOME whose NSS database trusts the CA in <ca_dir>: returns it.
local function home_trusting(ca_dir)
  local home = h.tmpfile("", "home") .. ".d"
  local nssdb = home .. "/.pki/nssdb"
  assert(os.execute("mkdir -p " .. q(nssdb)))
  local out, code = h.sh("certutil -N -d sql:" .. q(nssdb) .. " --empty-password 2>&1 && "
    .. "certutil -A -d sql:" .. q(nssdb) .. " -t C,, -n luaproxy -i " .. q(ca_dir .. "/ca.pem") .. " 2>&1")
  assert.are.equal(0, code, out)
  return home
end

-- Chromium's command line, headless through the proxy on <port>, with a
-- fresh profile in <home>, for at most 90 seconds; loopback is proxied
-- only when the bypass list says so. (TMPDIR too: Chromium leaves its
-- singleton socket directory there.)
local function chromium(home, port, rest)
  return table.concat({ "env HOME=" .. q(home), "TMPDIR=" .. q(home),
    "timeout 90 chromium --headless --no-sandbox",
    "--disable-gpu --disable-quic --no-first-run --disable-background-networking",
    "--disable-component-update --disable-sync",
    "--user-data-dir=" .. q(home .. "/profile"),
    "--proxy-server=http://127.0.0.1:" .. port, q("--proxy-bypass-list=<-loopback>"), rest }, " ")
end

describe("Chromium through an intercepting proxy", function()
  it("loads an HTTPS page with no certificate warning and shows the script's change", function()
    local origin = h.start_https_origin()
    local ca_dir = h.new_ca_dir()
    local script = h.tmpfile([[
      function on_response(tx)
        if tx.req.scheme == "https" then tx.res.headers["Content-Type"] = "text/html" end
      end
      function on_response_chunk(tx, chunk, eof)
        return (chunk:gsub("hello", '<p id="mark">changed by luaproxy over https</p>'))
      end
    ]], "page.lua")
    local proxy = h.start_proxy({ "--intercept", "localhost", "--ca-dir", ca_dir,
      "--upstream-ca", h.test_pki().ca, "--connect-ports", tostring(origin.port), "-s", script })

    local home = home_trusting(ca_dir)
    local dom = h.sh(chromium(home, proxy.port,
      "--dump-dom " .. q("https://localhost:" .. origin.port .. "/hello") .. " 2>/dev/null"))
    assert.truthy(dom:find('<p id="mark">changed by luaproxy over https</p>', 1, true), dom)
    assert.falsy(dom:find("not private", 1, true))
    assert(proxy.wait_access_log('"GET https://localhost:' .. origin.port .. '/hello HTTP/1.1" 200'))

    local problem = h.stop_procs({ proxy })
    origin.stop()
    assert(not problem, problem)
  end)

  -- A page's WebSocket, wss:// from an https page, or ws:// from a plain
  -- one (which a browser sends through a proxy as a CONNECT, speaking plain
  -- HTTP inside): either way the browser reads the echoes through the
  -- proxy, and the viewer lists the messages as text.
  for _, scheme in ipairs({ "https", "http" }) do
    it("carries a page's WebSocket (" .. scheme .. " page), and the viewer lists its messages decompressed", function()
      local pki = h.test_pki()
      local tls_args = scheme == "https" and { "--cert", q(pki.good.cert), "--key", q(pki.good.key) } or {}
      local ws = h.start_command(table.concat({ "exec python3", q("tests/spec/support/ws_origin.py"),
        table.concat(tls_args, " ") }, " "))
      local port = h.wait_for(function()
        local out = h.read_file(ws.dir .. "/stdout")
        return out and tonumber(out:match("^(%d+)\n"))
      end, 10)
      assert(port, "ws_origin did not start: " .. (h.read_file(ws.dir .. "/stderr") or ""))
      local ca_dir = h.new_ca_dir()
      local proxy, adm = a.start({ "--intercept", "localhost", "--ca-dir", ca_dir,
        "--upstream-ca", pki.ca, "--connect-ports", tostring(port) })
      local home = home_trusting(ca_dir)
      -- The page closes its WebSocket once both echoes came back (the
      -- origin's "close 1000 done"), and its load event waits for that.
      local dom = h.sh(chromium(home, proxy.port,
        "--dump-dom " .. q(scheme .. "://localhost:" .. port .. "/page") .. " 2>/dev/null"))
      local origin_said = h.read_file(ws.dir .. "/stdout") or ""
      assert.truthy(origin_said:find("close 1000 done", 1, true), "no close from the page; the origin said:\n"
        .. origin_said .. "\nthe proxy:\n" .. proxy.stderr())
      -- The browser read the compressed echoes.
      assert.truthy(dom:find("[echo: hello through luaproxy][echo: hello through luaproxy]", 1, true), dom)
      assert.truthy(origin_said:find("deflate\n", 1, true), "the browser offered no permessage-deflate")

      local flow = h.wait_for(function()
        for _, f in ipairs(a.get_json(adm, "/api/flows")) do
          if f.websocket and not f.running then return f end
        end
      end, 10)
      assert(flow, "no ended WebSocket flow")
      local d = a.get_json(adm, "/api/flows/" .. a.id(flow.id))
      assert.equals(scheme .. "://localhost:" .. port .. "/echo", d.url)
      -- Each direction in its order (how the two interleave is timing).
      local seen = { send = {}, receive = {} }
      for _, m in ipairs(d.messages) do
        local list = seen[m.type]
        list[#list + 1] = m.kind .. " " .. (m.close_code and string.format("%d ", m.close_code) or "")
          .. m.data .. (m.compressed and " (compressed)" or "")
      end
      assert.same({
        "text hello through luaproxy (compressed)",
        "text hello through luaproxy (compressed)",
        "close 1000 done",
      }, seen.send)
      assert.same({
        "text echo: hello through luaproxy (compressed)",
        "text echo: hello through luaproxy (compressed)",
        "close 1000 done",
      }, seen.receive)

      local problem = h.stop_procs({ proxy })
      ws.stop(1)
      assert(not problem, problem)
    end)
  end
end)
