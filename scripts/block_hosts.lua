-- block_hosts.lua - refuse requests to hosts on a block list.
--
-- A host is blocked when it is on the list or is a subdomain of a listed
-- name: "ads.example" blocks "ads.example" and "x.ads.example", but not
-- "badads.example". Blocked requests get 403 with a short text and never
-- reach the network (not even DNS). HTTPS is covered too: a CONNECT to a
-- blocked host is refused the same way. The list may hold IP addresses
-- too; an IPv6 address is blocked however it is written, and an IPv4 one
-- also when written as IPv6 ([::ffff:10.0.0.1]). A name is not resolved:
-- listing a name does not block its addresses.
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

-- The 8 groups of the IPv6 address <ip> as numbers, in any of its
-- spellings ("2001:DB8::1", "2001:db8:0:0:0:0:0:1", "::ffff:10.0.0.1"),
-- or nil if <ip> is not one.
local function ipv6_groups(ip)
  local a, b, c, d = ip:match(":(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if a then -- a dotted IPv4 tail stands for the last two groups
    a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
    if math.max(a, b, c, d) > 255 then return nil end
    ip = ip:gsub("[%d.]+$", string.format("%x:%x", a * 256 + b, c * 256 + d))
  end
  local function parse(part, into) -- a group that is not 1 to 4 hex digits is false
    for g in part:gmatch("[^:]+") do
      into[#into + 1] = g:find("^%x%x?%x?%x?$") ~= nil and tonumber(g, 16)
    end
    return into
  end
  local head, tail = ip:match("^(.-)::(.*)$")
  local groups = parse(head or ip, {})
  if head then -- "::" stands for as many zero groups as are missing
    local rest = parse(tail, {})
    for _ = 1, 8 - #groups - #rest do groups[#groups + 1] = 0 end
    for _, g in ipairs(rest) do groups[#groups + 1] = g end
  end
  if #groups ~= 8 then return nil end
  for i = 1, 8 do if not groups[i] then return nil end end
  return groups
end

-- <host> spelt one way only: lower case, without trailing dots
-- ("ads.example." and "ads.example..", which still goes to the resolver,
-- name the same host), an IPv6 address with all its groups, and an IPv4
-- address written as IPv6 as IPv4.
local function canonical(host)
  host = host:lower():gsub("%.+$", "")
  local g = ipv6_groups(host)
  if not g then return host end
  if g[1] == 0 and g[2] == 0 and g[3] == 0 and g[4] == 0 and g[5] == 0 and g[6] == 0xffff then
    return string.format("%d.%d.%d.%d", g[7] >> 8, g[7] & 255, g[8] >> 8, g[8] & 255)
  end
  return string.format("%x:%x:%x:%x:%x:%x:%x:%x", table.unpack(g))
end

-- A set is quicker to look up than a list.
local blocked = {}
for _, name in ipairs(config.hosts) do blocked[canonical(name)] = true end

-- True if <host> or one of its parent domains is in the set: we try
-- "a.b.ads.example", then "b.ads.example", then "ads.example", ...
local function is_blocked(host)
  host = canonical(host)
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
