-- rewrite_json.lua - change fields of JSON request bodies on their way to
-- the server.
--
-- Shows on_request_chunk with tx.req.buffer_body: the proxy collects the
-- whole body (up to --max-body-buffer MB), calls the hook once with it,
-- and sends the result with a correct Content-Length. proxy.json decodes
-- and encodes. Bodies that are not JSON keep the fast path
-- (tx.req.filter_body = false): no Lua runs for them.
--
-- Only the fields named below change; the rest of the document keeps its
-- values: proxy.json reads integers as integers and writes floats with
-- all their digits, and keeps [] an array. What it cannot write back as
-- it came goes to the server untouched: a body that is not a JSON object
-- (an array, a string, broken JSON), a number past what Lua holds (an
-- integer of 19 digits or more may not fit in 64 bits; 1e999 is beyond
-- any float). The order of the fields may change: JSON objects have none.
--
-- Decoding and encoding take time, and a hook may run for --hook-timeout
-- (100 ms by default; a megabyte of JSON takes about that): a body longer
-- than max_bytes goes to the server untouched, with a line in the log,
-- rather than fail with 500. Raise both together. A longer body with a
-- Content-Length is not even collected; one sent chunked is, and past
-- --max-body-buffer (8 MB) it gets 413.
--
-- Run:
--   build/luaproxy -s scripts/rewrite_json.lua
--   curl -s -x 127.0.0.1:8080 -H 'Content-Type: application/json' \
--        -d '{"user":"ann","password":"x"}' http://httpbin.org/post

-- Configuration ---------------------------------------------------------
local config = {
  set = { client = "luaproxy" }, -- fields added (or replaced) at the top level
  remove = { "password" },       -- fields removed
  max_bytes = 256 * 1024,        -- longer bodies go on untouched (see above)
}
-- -----------------------------------------------------------------------

-- Whether <body> has an integer past 64 bits, which proxy.json would read
-- as a float and write back changed. Strings (keys included) are blanked
-- first, so long digit runs in them, or in a fraction, do not count.
local function has_huge_integer(body)
  local bare = body:gsub("\\.", ""):gsub('"[^"]*"', '""')
  for number in bare:gmatch("%-?%d[%d.eE+-]*") do
    if number:find("^%-?%d+$") and math.type(tonumber(number)) ~= "integer" then
      return true
    end
  end
  return false
end

function on_request(tx)
  -- The media type without its parameters: application/json, or any
  -- type/subtype+json (application/vnd.api+json, application/problem+json).
  local ctype = (tx.req.headers["Content-Type"] or ""):lower():match("^%s*([^;%s]*)")
  if not (ctype == "application/json" or ctype:find("^[%w!#$&^_.+-]+/[%w!#$&^_.+-]*%+json$")) then
    tx.req.filter_body = false
    return
  end
  local length = tonumber(tx.req.headers["Content-Length"])
  if length and length > config.max_bytes then
    proxy.log("JSON body of " .. length .. " bytes sent untouched (max_bytes)")
    tx.req.filter_body = false
    return
  end
  tx.req.buffer_body = true
end

function on_request_chunk(tx, body, eof)
  if #body > config.max_bytes then -- sent chunked, so not known in on_request
    proxy.log("JSON body of " .. #body .. " bytes sent untouched (max_bytes)")
    return
  end
  if has_huge_integer(body) then
    return -- it would come back changed
  end
  local ok, doc = pcall(proxy.json.decode, body)
  if not ok or type(doc) ~= "table" or getmetatable(doc) == proxy.json.array_mt then
    return -- not a JSON object: sent as it came
  end
  for name, value in pairs(config.set) do doc[name] = value end
  for _, name in ipairs(config.remove) do doc[name] = nil end
  local text
  ok, text = pcall(proxy.json.encode, doc)
  if not ok then
    return -- a number no JSON can hold (1e999 read as infinity): as it came
  end
  return text
end
