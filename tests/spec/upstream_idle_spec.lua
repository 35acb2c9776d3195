-- An idle upstream connection lives min(--idle-timeout, 15 s) from the end
-- of its last response, whether the session keeps it for the client's next
-- request or the pool holds it: handing it to the pool does not start its
-- clock again.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")

describe("idle upstream connections", function()
  local origin, proxy

  after_each(function()
    local problem = h.stop_procs({ origin, proxy }, 2)
    origin, proxy = nil, nil
    assert(not problem, problem)
  end)

  it("are closed by the time the idle client is, not a timeout later", function()
    origin = h.start_origin()
    proxy = h.start_proxy({ "--idle-timeout", "2" })
    local baseline = proxy.fd_count()
    local s = assert(h.connect(proxy.port))
    assert(h.send(s, h.request("GET", origin.url("/hello"), { "Host: " .. origin.authority })))
    local resp = assert(h.read_response(s))
    assert.are.equal(200, resp.status)
    -- The session keeps the upstream connection for the next request.
    assert.are.equal(baseline + 2, proxy.fd_count())
    -- The client stays idle: the proxy closes it after --idle-timeout.
    assert.is_true(h.is_closed(s, 6), "the idle client was not closed")
    s:close()
    -- Its upstream connection went at the same moment: before, it was
    -- pooled with a fresh clock and stayed open another --idle-timeout.
    local closed = h.wait_for(function() return proxy.fd_count() == baseline end, 1)
    assert(closed, "the upstream connection outlived its idle time: " ..
      tostring(proxy.fd_count()) .. " descriptors, " .. baseline .. " at start")
  end)
end)
