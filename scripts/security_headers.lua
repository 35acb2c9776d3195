-- security_headers.lua - add CORS and security headers to responses.
--
-- Every response that comes back from a server gets the headers below,
-- handy to try out a policy on a site before changing the site itself, or
-- to let a web page on another origin call an API during development.
-- With replace = false a header the server already sent is left alone;
-- with replace = true the server's value is replaced.
-- (Responses a script makes itself with tx:respond do not pass through
-- on_response, so they are not changed.)
--
-- Run:
--   build/luaproxy -s scripts/security_headers.lua
--   curl -s -D - -o /dev/null -x 127.0.0.1:8080 http://example.com/

-- Configuration ---------------------------------------------------------
local config = {
  -- Added in this order. Delete a line to leave that header out.
  headers = {
    { "Access-Control-Allow-Origin", "*" },
    { "Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS" },
    { "Access-Control-Allow-Headers", "Content-Type, Authorization" },
    { "X-Content-Type-Options", "nosniff" },
    { "X-Frame-Options", "DENY" },
    { "Referrer-Policy", "no-referrer" },
    { "Permissions-Policy", "camera=(), microphone=(), geolocation=()" },
  },
  replace = false,
}
-- -----------------------------------------------------------------------

function on_response(tx)
  local h = tx.res.headers
  for _, field in ipairs(config.headers) do
    local name, value = field[1], field[2]
    if config.replace or h[name] == nil then
      h[name] = value -- one field with this value, in place of any others
    end
  end
end
