-- rate_limit.lua - at most N requests per client per time window,
-- counted across all workers; the rest get 429 Too Many Requests.
--
-- Shows proxy.shared.incr: an atomic counter that every worker process of
-- the proxy shares (and every proxy of a fleet with --shared
-- redis://HOST:PORT), with a TTL so old windows disappear by themselves.
--
-- A client is an IPv4 address, or an IPv6 /64: a host usually gets a whole
-- /64 and can pick a new address in it for each request, so counting
-- IPv6 addresses one by one would give it a fresh budget each time. An
-- IPv4 address written as IPv6 (::ffff:10.0.0.1) counts as that IPv4
-- address.
--
-- Run:
--   build/luaproxy -s scripts/rate_limit.lua
--   for i in $(seq 12); do curl -s -o /dev/null -w '%{http_code}\n' -x 127.0.0.1:8080 http://example.com/; done

-- Configuration ---------------------------------------------------------
local config = {
  limit = 10,      -- requests allowed per window
  window = 60,     -- seconds
  fail_open = true, -- when the store is unavailable (Redis down): let requests through
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

-- Who <ip> is, for counting: an IPv4 address, or an IPv6 /64.
local function client_of(ip)
  local g = ipv6_groups(ip)
  if not g then return ip end -- IPv4
  if g[1] == 0 and g[2] == 0 and g[3] == 0 and g[4] == 0 and g[5] == 0 and g[6] == 0xffff then
    return string.format("%d.%d.%d.%d", g[7] >> 8, g[7] & 255, g[8] >> 8, g[8] & 255)
  end
  return string.format("%x:%x:%x:%x::/64", g[1], g[2], g[3], g[4])
end

function on_request(tx)
  local now = proxy.now()
  local window = math.floor(now / config.window)
  local key = "rate:" .. client_of(tx.client.ip) .. ":" .. window
  -- The first incr of a window creates the key with its TTL.
  local count, err = proxy.shared.incr(key, 1, config.window * 2)
  if not count then
    -- Logged either way: letting requests through unlimited must not go unseen.
    proxy.log("rate limit store: " .. tostring(err))
    if config.fail_open then return end
    return tx:respond(503, "try again later\n")
  end
  if count > config.limit then
    local retry = math.ceil(config.window - now % config.window)
    return tx:respond(429, "too many requests\n", { ["Retry-After"] = retry })
  end
end
