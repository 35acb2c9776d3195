-- block_hosts.lua - refuse requests to hosts on a block list.
--
-- A host is blocked when it is on the list or is a subdomain of a listed
-- name: "ads.example" blocks "ads.example" and "x.ads.example", but not
-- "badads.example". Blocked requests get 403 with a short text and never
-- reach the network (not even DNS). HTTPS is covered too: a CONNECT to a
-- blocked host is refused the same way. The list may hold IP addresses
-- too; an address is blocked however it is written: an IPv6 one in any of
-- its spellings, an IPv4 one also when written as IPv6 ([::ffff:10.0.0.1])
-- or with leading zeros (127.000.0.01). A name is not resolved: listing a
-- name does not block its addresses.
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

-- <host> spelt one way only (proxy.canonical_host): lower case, without
-- trailing dots ("ads.example." and "ads.example..", which still goes to
-- the resolver, name the same host), an IPv6 address as RFC 5952 writes
-- it, an IPv4 address written as IPv6 as IPv4, and 127.000.0.01 as
-- 127.0.0.1, as the proxy connects to it. The kind is "ipv4", "ipv6" or
-- "name"; nil for a host that is none (empty).
local canonical = proxy.canonical_host

-- A set is quicker to look up than a list.
local blocked = {}
for _, name in ipairs(config.hosts) do
  blocked[assert(canonical(name), "block_hosts.lua: an empty host in config.hosts")] = true
end

-- True if <host> or one of its parent domains is in the set: we try
-- "a.b.ads.example", then "b.ads.example", then "ads.example", ...
-- An address has no parent domains: it is blocked only when listed.
local function is_blocked(host)
  local kind
  host, kind = canonical(host)
  if not host then return false end
  if kind ~= "name" then return blocked[host] == true end
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
