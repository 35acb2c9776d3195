-- jwt_auth.lua - let a request through only with a valid signed JWT
-- (RFC 7519) in "Authorization: Bearer <token>".
--
-- Shows proxy.base64 (the URL alphabet), proxy.json and
-- proxy.hmac_sha256. Only HS256 (HMAC-SHA-256 with a shared secret) is
-- accepted: a token that names another algorithm is refused, "none"
-- above all (an unsigned token is anyone's), and so is one with a "crit"
-- header, which names extensions this script does not know. The
-- signature is compared by HMACs of both under a key made at load, so
-- the time a comparison takes tells a client nothing about how close its
-- guess was. "exp" is required; "nbf", "iss" and "aud" are checked when
-- present or configured, with a little leeway for clocks. The token's
-- "sub" goes on to the server as X-User (one a client sent itself is
-- removed), and the token itself is not passed on.
--
-- A check that guards access must fail closed: on_request only records
-- its verdict in tx.ctx, and before_connect, which runs next even when
-- on_request failed and --hook-errors open skipped it, refuses every
-- request without one. A CONNECT needs a token too (curl --proxy-header).
--
-- Run (the secret comes from the environment; JWT_MAKE=alice logs a token
-- for alice, valid one hour, to try it with):
--   JWT_SECRET=s3cret JWT_MAKE=alice build/luaproxy -s scripts/jwt_auth.lua
--   curl -i -x 127.0.0.1:8080 -H "Authorization: Bearer <token from the log>" http://example.com/

-- Configuration ---------------------------------------------------------
local config = {
  secret = os.getenv("JWT_SECRET") or "change me",
  issuer = nil,      -- e.g. "https://login.example": then "iss" must be it
  audience = nil,    -- e.g. "api": then "aud" must be it or hold it
  leeway = 30,       -- seconds of clock difference allowed for exp and nbf
  user_header = "X-User",
  max_length = 8192, -- longer tokens are refused unread
}
-- -----------------------------------------------------------------------

local b64, json = proxy.base64, proxy.json

if config.secret == "change me" then
  proxy.log("jwt_auth.lua: JWT_SECRET is not set; using a secret everyone knows")
end

-- The key the signatures are compared under: made at load, never sent.
local compare_key = proxy.sha256(table.concat({ tostring({}), proxy.now(), math.random() }))

local function same_bytes(a, b)
  return proxy.hmac_sha256(compare_key, a) == proxy.hmac_sha256(compare_key, b)
end

-- The JSON object in a token part, or nil.
local function object_of(part)
  local text = b64.decode(part, "url")
  if not text then return nil end
  local ok, value = pcall(json.decode, text)
  if ok and type(value) == "table" then return value end
end

local function has_audience(aud, want)
  if aud == want then return true end
  if type(aud) ~= "table" then return false end
  for _, a in ipairs(aud) do if a == want then return true end end
  return false
end

-- The claims of a valid <token>, or nil and why it is not.
local function verify(token)
  if #token > config.max_length then return nil, "the token is too long" end
  local head, body, sig = token:match("^([%w_-]+)%.([%w_-]+)%.([%w_-]+)$")
  if not head then return nil, "the token is not three base64url parts" end
  local header = object_of(head)
  if not header then return nil, "the token's header is not JSON" end
  if header.alg ~= "HS256" then return nil, "only HS256 tokens are accepted" end
  if header.crit ~= nil then return nil, "the token names extensions (crit)" end
  local got = b64.decode(sig, "url")
  local want = proxy.hmac_sha256(config.secret, head .. "." .. body, "raw")
  if not got or not same_bytes(got, want) then return nil, "the signature does not match" end
  local claims = object_of(body)
  if not claims then return nil, "the token's claims are not JSON" end
  local now = proxy.now()
  if math.type(claims.exp) == nil then return nil, "the token has no exp" end
  if now > claims.exp + config.leeway then return nil, "the token has expired" end
  if claims.nbf ~= nil and (math.type(claims.nbf) == nil or now + config.leeway < claims.nbf) then
    return nil, "the token is not valid yet"
  end
  if config.issuer and claims.iss ~= config.issuer then
    return nil, "the token's issuer is not accepted"
  end
  if config.audience and not has_audience(claims.aud, config.audience) then
    return nil, "the token is not for this audience"
  end
  if claims.sub ~= nil and type(claims.sub) ~= "string" then
    return nil, "the token's sub is not a string"
  end
  return claims
end

-- A 401 as RFC 6750 has it: the scheme, and why when a token was sent.
local function refuse(tx, why)
  local challenge = 'Bearer realm="luaproxy"'
  if why then
    challenge = challenge .. ', error="invalid_token", error_description="' .. why .. '"'
  end
  return tx:respond(401, (why or "a bearer token is required") .. "\n",
    { ["WWW-Authenticate"] = challenge })
end

function on_request(tx)
  local headers = tx.req.headers
  headers[config.user_header] = nil -- only the token says who the user is
  local auth = headers["Authorization"]
  local token = auth and auth:match("^[Bb][Ee][Aa][Rr][Ee][Rr] +(%S+)$")
  if not token then return refuse(tx) end
  local claims, why = verify(token)
  if not claims then return refuse(tx, why) end
  headers["Authorization"] = nil -- the token stays here
  if claims.sub then headers[config.user_header] = claims.sub end
  tx.ctx.jwt_accepted = true
end

-- Runs after on_request, even if on_request failed and was skipped
-- (--hook-errors open): nothing gets through without its verdict.
function before_connect(tx)
  if not tx.ctx.jwt_accepted then
    return refuse(tx, "the token could not be checked")
  end
end

-- JWT_MAKE=<user>: log a token for that user, valid one hour, to try the
-- script with. Never set it where the log is read by others.
local make_for = os.getenv("JWT_MAKE")
if make_for then
  local head = b64.encode(json.encode({ alg = "HS256", typ = "JWT" }), "url")
  local claims = { sub = make_for, exp = math.floor(proxy.now()) + 3600 }
  local body = b64.encode(json.encode(claims), "url")
  local sig = b64.encode(proxy.hmac_sha256(config.secret, head .. "." .. body, "raw"), "url")
  proxy.log("jwt_auth.lua: a token for " .. make_for .. ": " .. head .. "." .. body .. "." .. sig)
end
