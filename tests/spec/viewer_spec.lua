-- The flow viewer in a real browser: headless Chromium, driven through the
-- DevTools protocol by support/viewer_check.js. Flows made before and
-- while the page is open appear (the second ones live, through Server-Sent
-- Events), the filter narrows the list and shows a bad expression's
-- error, a slow request shows while it runs, a click shows the details, the arrow keys move the selection,
-- and a screenshot is saved next to the binary (build/flows-viewer.png).

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
local a = require("support.admin")

local CHROMIUM = "/usr/bin/chromium"

describe("flow viewer page", function()
  local procs

  before_each(function() procs = {} end)
  after_each(function()
    local problem = h.stop_procs(procs)
    assert(problem == nil, problem)
  end)

  it("shows live flows, filters, details and keys in Chromium", function()
    assert(io.open(CHROMIUM, "r"), "chromium is needed (make deps installs it)")
    local origin = h.start_origin()
    procs[#procs + 1] = origin
    local s = h.tmpfile([[
      function on_request(tx)
        if tx.req.path == "/json" then
          tx:respond(200, '{"user":{"name":"ada","langs":["lua","c"]},"ok":true,"n":42}',
                     { ["Content-Type"] = "application/json" })
        end
      end
      function on_response(tx)
        if tx.req.path == "/hello" then tx.res.headers["X-Viewer"] = "changed" end
      end
    ]], "viewer.lua")
    local proxy, adm = a.start({ "--script", s, "--workers", "2" })
    procs[#procs + 1] = proxy
    h.get(proxy.port, origin.url("/hello"))
    h.curl({ "-x", "127.0.0.1:" .. proxy.port, "-d", "name=ada&lang=lua", origin.url("/echo") })
    h.get(proxy.port, origin.url("/json"))
    h.get(proxy.port, origin.url("/status/404"))
    assert(h.wait_for(function() return #a.get_json(adm, "/api/flows") >= 4 end, 5))

    local shot = (h.bin():match("^(.*)/[^/]*$") or ".") .. "/flows-viewer.png"
    os.remove(shot)
    local url = string.format("http://127.0.0.1:%d/?token=%s", adm.port, adm.token)
    local out = h.sh(string.format("timeout 120 node --experimental-websocket --no-warnings %s %s %d %s %s",
      h.shell_quote("tests/spec/support/viewer_check.js"), h.shell_quote(url), proxy.port,
      h.shell_quote(origin.url("")), h.shell_quote(shot)))
    local ok, r = pcall(a.json.decode, out:match("[^\n]*$") ~= "" and out:match("[^\n]*$") or out)
    if not (ok and type(r) == "table" and r.error == nil) then
      -- prove shows only a test's standard error: say there what went wrong
      io.stderr:write("viewer_spec: the browser driver said: ", out, "\n")
    end
    assert(ok and type(r) == "table", "no result from the browser driver: " .. out)
    assert(r.error == nil, "browser check failed after " .. table.concat(r.steps, ", ") .. ": " .. tostring(r.error))
    assert.equals("luaproxy flows", r.title)
    assert.is_true(r.cookie_hidden) -- HttpOnly: scripts cannot read the token
    assert.equals(4, r.initial_rows)
    assert.equals(7, r.rows_after_live)
    assert.equals(1, r.list_fetches_on_open) -- when the stream opened, and not before it too
    assert.matches("/slow%?ms=3000$", r.saw_running) -- shown while in progress
    assert.equals(7, r.running_finished)
    -- (r.live_ms says how long the live rows took; no bound on it: they
    -- came without a reload, which is what is checked, and a busy machine
    -- may take its time.)
    assert.equals(2, r.filtered_rows)
    assert.matches("unknown operator ~x", r.bad_filter_message, 1, true)
    assert.matches("^POST http://127%.0%.0%.1:%d+/echo$", r.detail_title)
    assert.matches("name=ada&lang=lua", r.detail_body, 1, true)
    assert.is_true(r.detail_has_timing_tab)
    assert.matches("X%-Viewer", r.changes)
    assert.is_true(r.timing_segments >= 1)
    assert.is_true(r.keys.down ~= r.keys.before and r.keys.up == r.keys.before)
    assert.matches('\n  "user": {\n    "name": "ada"', r.json_body, 1, true) -- pretty-printed
    local png = h.read_file(shot)
    assert.is_not_nil(png, "no screenshot at " .. shot)
    assert.equals("\137PNG", png:sub(1, 4))
  end)

  -- The command the viewer's "Copy as curl" copies for flow <id>: the
  -- served app.js, run in Node by support/curl_check.js.
  local function copied_as_curl(adm, id)
    local out = h.sh(string.format("timeout 60 node --no-warnings %s %s %s %s",
      h.shell_quote("tests/spec/support/curl_check.js"), h.shell_quote("http://127.0.0.1:" .. adm.port),
      h.shell_quote(adm.token), a.id(id)))
    local ok, r = pcall(a.json.decode, out:match("[^\n]*$") ~= "" and out:match("[^\n]*$") or out)
    assert(ok and type(r) == "table", "no result from the curl check: " .. out)
    assert(r.error == nil, tostring(r.error))
    return r.command
  end

  -- A captured request is someone else's: "Copy as curl" must give a
  -- command that sends its bytes and runs nothing of theirs when pasted
  -- into a shell, whatever its headers and body hold.
  it("copies a hostile request as curl that runs nothing when pasted", function()
    local origin = h.start_origin()
    procs[#procs + 1] = origin
    local proxy, adm = a.start({ "--workers", "1" })
    procs[#procs + 1] = proxy
    local marker = h.tmpfile("", "pasted")
    os.remove(marker)
    local body = "$(touch " .. marker .. ")$'$`$&'"
    h.curl({ "-x", "127.0.0.1:" .. proxy.port, "-H", "X-A: @body", "-H", "X-B: $(touch " .. marker .. ")",
             "--data-binary", body, origin.url("/echo?q=@body") })
    local flows = assert(h.wait_for(function()
      local list = a.get_json(adm, "/api/flows")
      return #list >= 1 and list
    end, 5))
    local r = { command = copied_as_curl(adm, flows[1].id) }
    -- A stand-in curl prints its arguments, one a line.
    local script = h.tmpfile("curl() { printf '%s\\n' \"$@\"; }\n" .. r.command .. "\n", "paste.sh")
    local args = h.sh("sh " .. h.shell_quote(script) .. " 2>&1")
    assert.is_nil(io.open(marker, "r"), "pasting the command ran the captured request's text")
    local lines = {}
    for line in args:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
    local has = {}
    for _, line in ipairs(lines) do has[line] = true end
    assert(has["X-A: @body"], args)
    assert(has["X-B: $(touch " .. marker .. ")"], args)
    -- the body, whole, as the one value of --data-raw; the URL last
    assert.equals(origin.url("/echo?q=@body"), lines[#lines])
    assert.equals(body, lines[#lines - 1])
    assert.equals("--data-raw", lines[#lines - 2])
  end)

  -- To curl's --data and --data-binary, a value that starts with "@" names
  -- a file to send: a captured body "@/home/you/.ssh/id_rsa" would have
  -- the copied command upload that file to the captured URL.
  it("copies a body that starts with @ as curl that sends it, not a file", function()
    local origin = h.start_origin()
    procs[#procs + 1] = origin
    local proxy, adm = a.start({ "--workers", "1" })
    procs[#procs + 1] = proxy
    local secret = h.tmpfile("the secret key\n", "id_rsa")
    h.curl({ "-x", "127.0.0.1:" .. proxy.port, "--data-raw", "@" .. secret, origin.url("/echo") })
    local flows = assert(h.wait_for(function()
      local list = a.get_json(adm, "/api/flows")
      return #list >= 1 and list
    end, 5))
    local r = { command = copied_as_curl(adm, flows[1].id) }
    -- The real curl this time, straight to the origin, which echoes what
    -- it got.
    local script = h.tmpfile("unset http_proxy HTTP_PROXY all_proxy ALL_PROXY\n" .. r.command
      .. " -s --max-time 10\n", "paste.sh")
    local echoed = h.sh("sh " .. h.shell_quote(script))
    assert.is_nil(echoed:find("the secret key", 1, true), "the command sent the file: " .. echoed)
    assert.equals("@" .. secret, echoed:match("\r\n\r\n(.*)$"))
  end)

  -- To curl, [1-3] and {a,b} in a URL are globs: a captured URL holding
  -- "[1-100000]" would have the copied command send that many requests.
  it("copies a URL with brackets and braces as curl that asks for it once", function()
    local origin = h.start_origin()
    procs[#procs + 1] = origin
    local proxy, adm = a.start({ "--workers", "1" })
    procs[#procs + 1] = proxy
    local url = origin.url("/echo?q=[1-3]&r={a,b}")
    local raw = h.get(proxy.port, url)
    assert.equals(200, raw.status)
    local flows = assert(h.wait_for(function()
      local list = a.get_json(adm, "/api/flows")
      return #list >= 1 and list
    end, 5))
    local command = copied_as_curl(adm, flows[1].id)
    local script = h.tmpfile("unset http_proxy HTTP_PROXY all_proxy ALL_PROXY\n" .. command
      .. " -s --max-time 10\n", "paste.sh")
    h.sh("sh " .. h.shell_quote(script))
    local got = origin.wait_requests(2)
    assert.equals(2, #got) -- the proxy's, and the pasted command's: one
    assert.equals("/echo?q=[1-3]&r={a,b}", got[2].target)
  end)
end)
