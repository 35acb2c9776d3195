-- block_hosts.lua - refuse requests to hosts on a block list.
--
-- A host is blocked when it is on the list or is a subdomain of a listed
-- name: "ads.example" blocks "ads.example" and "x.ads.example", but not
-- "badads.example". Blocked requests get 403 with a short text and never
-- reach the network (not even DNS). HTTPS is covered too: a CONNECT to a
-- blocked host is refused the same way.
--
-- Run:
--   build/luaproxy -s scripts/block_hosts.lua
--   curl -i -x 127.0.0.1:8080 http://ads.example/banner.js      # 403
--   curl -i -x 127.0.0.1:8080 https://x.ads.example/            # CONNECT refused

-- Configuration ---------------------------------------------------------
local config = {
  -- Names to block, with all their subdomains. Case does not matter.
  hosts = {
    "ads.example",
    "tracker.example",
  },
  -- What a blocked request is answered with.
  status = 403,
  message = "Blocked by luaproxy: this host is on the block list.\n",
}
-- -----------------------------------------------------------------------

-- A set is quicker to look up than a list.
local blocked = {}
for _, name in ipairs(config.hosts) do blocked[name:lower()] = true end

-- True if <host> or one of its parent domains is in the set: we try
-- "a.b.ads.example", then "b.ads.example", then "ads.example", ...
local function is_blocked(host)
  -- "ads.example." (and "ads.example..", which still goes to the
  -- resolver) name the same host: drop every trailing dot.
  host = host:lower():gsub("%.+$", "")
  while host do
    if blocked[host] then return true end
    host = host:match("^[^.]*%.(.+)$")
  end
  return false
end

-- before_connect, not on_request: it runs after every script's
-- on_request, so a URL another script rewrote (rewrite_urls.lua) is judged
-- where it now points, and still before any DNS lookup. tx.req.host is the
-- target of plain requests and of CONNECT; tx.upstream.host is where the
-- proxy will connect, which a before_connect listed earlier
-- (redirect_host.lua) may have moved: list this script after such ones.
function before_connect(tx)
  for _, host in ipairs({ tx.req.host, tx.upstream.host }) do
    if is_blocked(host) then
      proxy.log("blocked", tx.req.method, host)
      return tx:respond(config.status, config.message)
    end
  end
end
