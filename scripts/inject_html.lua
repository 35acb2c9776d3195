-- inject_html.lua - insert an HTML snippet before </body> in web pages.
--
-- Shows how to edit a response body while it streams through, without
-- holding the whole page in memory. The body arrives in pieces of any size,
-- so "</body>" may be cut in two ("...</bo" then "dy>..."); we therefore
-- hold back the last few bytes of each piece until the next one arrives.
-- Only the first "</body>" (in any case) gets the snippet; pages without
-- one pass unchanged. Only text/html responses are touched, and not
-- compressed ones (we ask servers for uncompressed bodies, see below).
--
-- Run:
--   build/luaproxy -s scripts/inject_html.lua
--   curl -s -x 127.0.0.1:8080 http://example.com/ | tail -n 4

-- Configuration ---------------------------------------------------------
local config = {
  snippet = '<div style="position:fixed;bottom:0;right:0;background:#ffd;'
    .. 'padding:4px;font:12px sans-serif">seen through luaproxy</div>\n',
  -- Drop Accept-Encoding from requests so servers send bodies we can edit
  -- (a gzip body cannot be searched for "</body>").
  ask_for_plain_bodies = true,
}
-- -----------------------------------------------------------------------

local MARK = "</body>"

function on_request(tx)
  if config.ask_for_plain_bodies then tx.req.headers["Accept-Encoding"] = nil end
end

-- The response head tells us whether this body is one to edit. The
-- decision is kept in tx.ctx, which all hooks of this exchange share.
function on_response(tx)
  local h = tx.res.headers
  local ctype = (h["Content-Type"] or ""):lower()
  local encoding = (h["Content-Encoding"] or "identity"):lower()
  if ctype:find("^%s*text/html") and encoding == "identity" then
    tx.ctx.inject = { held = "" } -- bytes held back from the last piece
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
