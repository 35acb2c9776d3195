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

-- Who <ip> is, for counting: an IPv4 address as a /32, or an IPv6 /64
-- ("10.0.0.7/32", "2001:db8:1:2::/64"). proxy.ip_prefix reads any
-- spelling of an address, and an IPv4 one written as IPv6 as IPv4.
local function client_of(ip)
  return proxy.ip_prefix(ip, 32, 64) or ip
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
