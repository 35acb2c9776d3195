-- throttle.lua - slow downloads down to a given rate, like a slow mobile
-- network, while other hosts (and other clients) go at full speed.
--
-- Shows proxy.sleep in on_response_chunk: it pauses that one body, not the
-- proxy. The body is left compressed (tx.res.decode_body = false), so the
-- rate counts the bytes that really cross the network, and bodies of
-- hosts not throttled keep the zero-copy path (tx.res.filter_body = false).
--
-- Both fields are the exchange's, not this script's: the last script to
-- set one wins. So this one sets them to false only where no script
-- before it set them (they are nil until one does), and another script
-- that needs the body, or needs it decoded (inject_html.lua), sets them to
-- true: then the two work together in either order, and a decoded body is
-- throttled by its decoded bytes.
--
-- Run:
--   build/luaproxy -s scripts/throttle.lua
--   curl -s -o /dev/null -w '%{speed_download} B/s\n' -x 127.0.0.1:8080 http://example.com/big

-- Configuration ---------------------------------------------------------
local config = {
  bytes_per_second = 50 * 1024, -- about "slow 3G"
  hosts = nil,                  -- nil: every host; or { ["example.com"] = true }
}
-- -----------------------------------------------------------------------

-- The configured hosts in one spelling (proxy.canonical_host), so that
-- "Example.COM." in the table names example.com, and "[::1]" ::1.
local hosts
if config.hosts then
  hosts = {}
  for host, on in pairs(config.hosts) do hosts[proxy.canonical_host(host) or host] = on end
end

function on_response(tx)
  -- A request's host in the same spelling: "Example.COM." is example.com.
  local host = proxy.canonical_host(tx.req.host) or tx.req.host
  if hosts and not hosts[host] then
    if tx.res.filter_body == nil then tx.res.filter_body = false end
    return
  end
  if tx.res.decode_body == nil then tx.res.decode_body = false end
  -- An earlier script (inject_html.lua on a download) may have turned it off.
  tx.res.filter_body = true
  tx.ctx.throttle = true
end

function on_response_chunk(tx, chunk, eof)
  if not tx.ctx.throttle then return end
  -- A piece can be a few hundred KiB, so at a low rate its pause may be
  -- longer than one wait is allowed (--hook-wait-timeout, 30 s by
  -- default): take it in short sleeps.
  local pause = #chunk / config.bytes_per_second
  while pause > 0 do
    local step = math.min(pause, 0.1)
    proxy.sleep(step)
    pause = pause - step
  end
end
