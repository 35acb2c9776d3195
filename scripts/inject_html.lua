-- inject_html.lua - insert an HTML snippet before </body> in web pages,
-- compressed or not.
--
-- Shows how to edit a response body while it streams through, without
-- holding the whole page in memory. The body arrives in pieces of any size,
-- so "</body>" may be cut in two ("...</bo" then "dy>..."); we therefore
-- hold back the last few bytes of each piece until the next one arrives.
-- Only the first "</body>" (in any case) gets the snippet; pages without
-- one pass unchanged. A gzip, deflate, br or zstd page is decoded by the
-- proxy before on_response_chunk sees it (and goes to the client
-- uncompressed), so a gzip site needs nothing special. Everything that is
-- not a whole HTML page (a 206 range of one included) is left alone with
-- tx.res.filter_body = false: it takes the zero-copy path and costs no
-- Lua at all (unless a script listed before this one asked for the body,
-- as throttle.lua does: see on_response).
--
-- Run:
--   build/luaproxy -s scripts/inject_html.lua
--   curl -s --compressed -x 127.0.0.1:8080 http://example.com/ | tail -n 4

-- Configuration ---------------------------------------------------------
local config = {
  snippet = '<div style="position:fixed;bottom:0;right:0;background:#ffd;'
    .. 'padding:4px;font:12px sans-serif">seen through luaproxy</div>\n',
}
-- -----------------------------------------------------------------------

local MARK = "</body>"

-- The codings the proxy decodes for the chunk hooks.
local DECODED = { identity = true, gzip = true, ["x-gzip"] = true, deflate = true, br = true,
                  zstd = true }

-- The response head tells us whether this body is one to edit. The
-- decision is kept in tx.ctx, which all hooks of this exchange share.
function on_response(tx)
  local h = tx.res.headers
  local ctype = (h["Content-Type"] or ""):lower()
  local encoding = (h["Content-Encoding"] or "identity"):lower()
  -- A range (206) is a slice of the page: an insert would shift the bytes
  -- after it out of the place its Content-Range gives them.
  local whole = tx.res.status ~= 206 and not h["Content-Range"]
  if ctype:find("^%s*text/html") and DECODED[encoding] and whole then
    tx.ctx.inject = { held = "" } -- bytes held back from the last piece
    -- filter_body and decode_body are the exchange's, and the last script
    -- to set one wins: say so even where it is the default, in case a
    -- script before this one (throttle.lua) turned either off.
    tx.res.filter_body = true
    tx.res.decode_body = true
  elseif tx.res.filter_body == nil then
    -- images, downloads, ...: no Lua per piece, unless a script before
    -- this one asked for the body (nil: none did)
    tx.res.filter_body = false
  end
end

-- Called for each piece of the body, and once more with eof = true.
-- Returning a string sends it instead of the piece; returning nothing
-- sends the piece unchanged.
function on_response_chunk(tx, chunk, eof)
  local state = tx.ctx.inject
  if not state then return end -- not HTML, or already injected

  local data = state.held .. chunk
  -- Lower-casing keeps every byte where it is, so positions carry over.
  local at = data:lower():find(MARK, 1, true)
  if at then
    tx.ctx.inject = nil -- done: the rest of the body passes unchanged
    return data:sub(1, at - 1) .. config.snippet .. data:sub(at)
  end
  if eof then
    return data -- no </body> in this page: flush what we held
  end
  -- A "</body>" cut at the end of this piece has at most #MARK - 1 bytes
  -- here; hold that many back and send the rest now.
  local keep = math.min(#data, #MARK - 1)
  state.held = data:sub(#data - keep + 1)
  return data:sub(1, #data - keep)
end
