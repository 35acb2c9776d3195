-- Fault-soak script: allocates without bound when the query asks for it
-- (soak=alloc in on_request, soak=alloc-connect in before_connect); the
-- proxy's --lua-memory cap must stop it and answer 500. On every other
-- request it does a little ordinary work (a header and some garbage), so
-- the Lua state is busy and the collector runs under load.
-- soak=gc answers with the Lua heap size (KiB) before and after a full
-- collection, so the soak can tell Lua garbage from the proxy's own memory
-- and find references the proxy forgot to drop; soak=heap answers with the
-- heap size as it is, to see whether a bomb's garbage was freed.

local function fault(tx)
  return tx.req.path:match("[?&]soak=([%w%-]+)")
end

-- 1 MiB strings: a bomb made of big blocks, so what it held goes back to
-- the system once collected and the soak's RSS check measures the proxy.
local function bomb()
  local hoard = {}
  while true do
    hoard[#hoard + 1] = ("x"):rep(1024 * 1024) .. #hoard
  end
end

local seen = 0

function on_request(tx)
  if fault(tx) == "alloc" then bomb() end
  if fault(tx) == "heap" then
    tx:respond(200, string.format("%.0f\n", collectgarbage("count")))
    return
  end
  if fault(tx) == "gc" then
    local before = collectgarbage("count")
    -- A cycle halves Lua's string table at most once; after a burst of
    -- thousands of requests (each making strings below) it may need a few
    -- cycles to come back to its size for what is live.
    local after
    repeat
      after = collectgarbage("count")
      collectgarbage("collect")
    until collectgarbage("count") >= after - 1
    tx:respond(200, string.format("%.0f %.0f\n", before, collectgarbage("count")))
    return
  end
  seen = seen + 1
  local scratch = {}
  for i = 1, 20 do scratch[i] = tostring(tx.id) .. ":" .. i end
  tx.req.headers["X-Soak-Seen"] = seen
end

function before_connect(tx)
  if fault(tx) == "alloc-connect" then bomb() end
end
