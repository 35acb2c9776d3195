-- A real browser through an intercepting proxy: Chromium, headless, with
-- the proxy's CA in an NSS database (as a user would install it), loads an
-- HTTPS page with no certificate warning, and a script's change to the page
-- is there in the DOM.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")

local q = h.shell_quote

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

    -- A fresh HOME whose NSS database trusts the proxy's CA, and a fresh
    -- profile; loopback is proxied only when the bypass list says so.
    local home = h.tmpfile("", "home") .. ".d"
    local nssdb = home .. "/.pki/nssdb"
    assert(os.execute("mkdir -p " .. q(nssdb)))
    local out, code = h.sh("certutil -N -d sql:" .. q(nssdb) .. " --empty-password 2>&1 && "
      .. "certutil -A -d sql:" .. q(nssdb) .. " -t C,, -n luaproxy -i " .. q(ca_dir .. "/ca.pem") .. " 2>&1")
    assert.are.equal(0, code, out)
    -- (TMPDIR too: Chromium leaves its singleton socket directory there.)
    local dom = h.sh(table.concat({ "HOME=" .. q(home), "TMPDIR=" .. q(home),
      "timeout 90 chromium --headless --no-sandbox",
      "--disable-gpu --disable-quic --no-first-run --disable-background-networking",
      "--disable-component-update --disable-sync",
      "--user-data-dir=" .. q(home .. "/profile"),
      "--proxy-server=http://127.0.0.1:" .. proxy.port, q("--proxy-bypass-list=<-loopback>"),
      "--dump-dom", q("https://localhost:" .. origin.port .. "/hello"), "2>/dev/null" }, " "))
    assert.truthy(dom:find('<p id="mark">changed by luaproxy over https</p>', 1, true), dom)
    assert.falsy(dom:find("not private", 1, true))
    assert(proxy.wait_access_log('"GET https://localhost:' .. origin.port .. '/hello HTTP/1.1" 200'))

    local problem = h.stop_procs({ proxy })
    origin.stop()
    assert(not problem, problem)
  end)
end)
