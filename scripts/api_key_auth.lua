-- api_key_auth.lua - let a request through only with an API key that an
-- authentication service accepts.
--
-- Shows proxy.http: the hook asks another service and waits for the
-- answer; the proxy serves every other client meanwhile. Accepted keys
-- are remembered for a while in proxy.shared, which every worker (and,
-- with --shared redis://..., every proxy) sees, so the service is asked
-- once per key and period, not once per request. Refused keys are
-- remembered too, but only by each worker, in a table of bounded size:
-- anyone can make up keys, and each one stored in proxy.shared would push
-- out entries that earned their place there (accepted keys, the counters
-- of rate_limit.lua). Each made-up key still costs one call to the
-- service: list rate_limit.lua before this script to bound how many keys
-- a client can try. The key is not passed on, and not kept either: the
-- caches hold its SHA-256 (proxy.sha256), so a dump of the shared store
-- or of Redis shows no key that would work.
--
-- A check that guards access must fail closed: whatever goes wrong, the
-- request is refused, never let through. A key that is too long or holds
-- odd characters is refused before anything is asked; a cache that
-- cannot answer means asking the service; a service that cannot answer
-- means 503. And since a hook that fails is skipped under --hook-errors
-- open (as if it were absent), on_request only records its verdict in
-- tx.ctx, and before_connect, which runs next whatever happened, refuses
-- every request without one.
--
-- Run (an auth service that answers 200 for good keys on port 9000):
--   build/luaproxy -s scripts/api_key_auth.lua
--   curl -s -x 127.0.0.1:8080 -H 'X-Api-Key: secret' http://example.com/

-- Configuration ---------------------------------------------------------
local config = {
  -- %s becomes the key (URL-encoded); the service answers 200 for a good
  -- key, 4xx for a bad one; a 5xx, 408, 429 (or anything else) means it
  -- failed.
  auth_url = "http://127.0.0.1:9000/check?key=%s",
  header = "X-Api-Key",
  cache_seconds = 30,
  timeout = 2, -- seconds to wait for the service
  -- What a key may look like: longer ones, or other characters, are
  -- refused with 401 without asking.
  max_length = 128,
  characters = "^[%w%-._~+/=]+$",
  max_refused = 1000, -- refused keys each worker remembers (see above)
}
-- -----------------------------------------------------------------------

local function url_encode(s)
  return (s:gsub("[^%w%-._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- Refused keys, by hash: hash -> when the refusal expires (proxy.now()). When full
-- it is emptied, so a flood of made-up keys costs at most this table and
-- makes the keys refused before it be asked about again, nothing more.
local refused, refused_count = {}, 0

local function remember_refusal(hash)
  if refused_count >= config.max_refused then refused, refused_count = {}, 0 end
  if not refused[hash] then refused_count = refused_count + 1 end
  refused[hash] = proxy.now() + config.cache_seconds
end

-- Whether the service accepts <key>: true or false, or nil and a reason
-- when it cannot tell.
local function accepted(key)
  local hash = proxy.sha256(key)
  local expires = refused[hash]
  if expires and expires > proxy.now() then return false end
  local cache_key = "api_key:" .. hash
  -- Only true is stored there; nil: not cached, or the cache failed.
  if proxy.shared.get(cache_key) == true then return true end
  local res, err = proxy.http{ url = config.auth_url:format(url_encode(key)),
                               timeout = config.timeout }
  if not res then return nil, err end
  -- Only a 200 or a 4xx speaks about the key. A service in trouble (500,
  -- 503 from its own proxy, ...) must not lock every key out for
  -- cache_seconds as if they were bad; nor must one that is busy (429
  -- Too Many Requests) or timed out reading the call (408): those two
  -- speak about the caller, the proxy, not the key.
  if res.status ~= 200 and (res.status < 400 or res.status > 499
                            or res.status == 408 or res.status == 429) then
    return nil, "status " .. res.status
  end
  if res.status ~= 200 then
    remember_refusal(hash)
    return false
  end
  proxy.shared.set(cache_key, true, config.cache_seconds) -- if it fails, we ask again next time
  return true
end

function on_request(tx)
  local key = tx.req.headers[config.header]
  if not key or key == "" then
    return tx:respond(401, "an API key is required (" .. config.header .. ")\n")
  end
  if #key > config.max_length or not key:find(config.characters) then
    return tx:respond(401, "this API key is malformed\n")
  end
  local ok, err = accepted(key)
  if ok == nil then
    proxy.log("auth service: " .. err)
    return tx:respond(503, "the authentication service is unavailable\n")
  end
  if not ok then
    return tx:respond(403, "this API key is not accepted\n")
  end
  tx.req.headers[config.header] = nil -- the key stays here
  tx.ctx.api_key_accepted = true
end

-- Runs after on_request, even if on_request failed and was skipped
-- (--hook-errors open): nothing gets through without its verdict.
function before_connect(tx)
  if not tx.ctx.api_key_accepted then
    return tx:respond(403, "the API key could not be checked\n")
  end
end
