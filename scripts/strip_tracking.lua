-- strip_tracking.lua - remove tracking data from outgoing requests.
--
-- Removes request headers that tell a server where you came from or who
-- you are (Referer, X-Forwarded-For, X-Real-IP, From), and tracking
-- parameters such as utm_source=... from the query string, separated by
-- "&" or ";" (see strip_params). Other query parameters are kept, in
-- their order. Plain http:// requests, and the
-- requests inside the HTTPS tunnels the proxy intercepts (--intercept or
-- tx:intercept); other tunnels are encrypted end to end and pass as they are.
--
-- Run:
--   build/luaproxy -s scripts/strip_tracking.lua
--   curl -x 127.0.0.1:8080 -H 'Referer: http://a.example/' \
--        'http://httpbin.org/get?utm_source=mail&page=2'
--   # the server sees neither the Referer nor utm_source, only page=2

-- Configuration ---------------------------------------------------------
local config = {
  -- Request headers to remove (case does not matter).
  headers = { "Referer", "X-Forwarded-For", "X-Real-IP", "From" },
  -- Query parameters whose name matches one of these Lua patterns are removed.
  params = { "^utm_" },
}
-- -----------------------------------------------------------------------

-- <name> as a server reads it: "utm%5Fsource" is utm_source to it, so it
-- must be to us too, or the encoded spelling slips through.
local function is_tracking(name)
  name = name:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end)
  for _, pattern in ipairs(config.params) do
    if name:find(pattern) then return true end
  end
  return false
end

-- Returns <path> without tracking parameters, and how many were removed.
-- "/p?utm_source=x&a=1" -> "/p?a=1"; "/p?utm_source=x" -> "/p".
--
-- The URL syntax (RFC 3986) leaves the query to the server. "&"
-- separates parameters for every server (the WHATWG URL standard and HTML
-- forms know no other separator); some split on ";" too (Perl's CGI.pm,
-- older versions of Python's and Ruby Rack's parsers), so a parameter
-- after a ";" is one to them: "a=1;utm_source=x" must lose its
-- utm_source, or those servers get it. So each piece between "&" or ";"
-- is judged, and only tracking pieces are taken out; everything else,
-- separators and ";" inside values included, stays as it was. (To a
-- server that splits on "&" only, ";utm_source=x" inside a value is part
-- of that value, which then loses it: tracking data all the same.)
local function strip_params(path)
  local base, query = path:match("^([^?]*)%?(.*)$")
  if not base then return path, 0 end
  local kept, removed, sep = {}, 0, nil
  for s, piece in ("&" .. query):gmatch("([&;])([^&;]*)") do
    -- The separator before a kept piece: "&" if one stood anywhere since
    -- the last kept piece, so that no piece is glued into a value.
    sep = (sep == "&" or s == "&") and "&" or s
    if piece ~= "" and is_tracking(piece:match("^[^=]*")) then
      removed = removed + 1
    else
      kept[#kept + 1] = (#kept > 0 and sep or "") .. piece
      sep = nil
    end
  end
  local rest = table.concat(kept)
  if rest == "" then return base, removed end
  return base .. "?" .. rest, removed
end

function on_request(tx)
  if tx.req.method == "CONNECT" then return end
  for _, name in ipairs(config.headers) do
    tx.req.headers[name] = nil -- removes every field of that name
  end
  local path, removed = strip_params(tx.req.path)
  -- Only touch the path when needed, so other requests go out byte for byte.
  if removed > 0 then tx.req.path = path end
end
