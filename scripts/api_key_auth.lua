-- api_key_auth.lua - let a request through only with an API key that an
-- authentication service accepts.
--
-- Shows proxy.http: the hook asks another service and waits for the
-- answer; the proxy serves every other client meanwhile. Answers are
-- remembered for a while in proxy.shared, which every worker (and, with
-- --shared redis://..., every proxy) sees, so the service is asked once
-- per key and period, not once per request. The key is not passed on.
--
-- Run (an auth service that answers 200 for good keys on port 9000):
--   build/luaproxy -s scripts/api_key_auth.lua
--   curl -s -x 127.0.0.1:8080 -H 'X-Api-Key: secret' http://example.com/

-- Configuration ---------------------------------------------------------
local config = {
  -- %s becomes the key (URL-encoded); the service answers 200 for a good
  -- key, anything else for a bad one.
  auth_url = "http://127.0.0.1:9000/check?key=%s",
  header = "X-Api-Key",
  cache_seconds = 30,
  timeout = 2, -- seconds to wait for the service
}
-- -----------------------------------------------------------------------

local function url_encode(s)
  return (s:gsub("[^%w%-._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

function on_request(tx)
  local key = tx.req.headers[config.header]
  if not key or key == "" then
    return tx:respond(401, "an API key is required (" .. config.header .. ")\n")
  end
  local cache_key = "api_key:" .. key
  local ok = proxy.shared.get(cache_key)
  if ok == nil then
    local res, err = proxy.http{ url = config.auth_url:format(url_encode(key)),
                                 timeout = config.timeout }
    if not res then
      proxy.log("auth service: " .. err)
      return tx:respond(503, "the authentication service is unavailable\n")
    end
    ok = res.status == 200
    proxy.shared.set(cache_key, ok, config.cache_seconds)
  end
  if not ok then
    return tx:respond(403, "this API key is not accepted\n")
  end
  tx.req.headers[config.header] = nil -- the key stays here
end
