-- Fault-soak script: raises errors in the hooks of requests whose query
-- asks for it (soak=error, soak=error-response, soak=error-chunk), and
-- stays out of the way of every other request. tests/soak/soak.lua checks
-- the client gets the documented 500 (or, once the head is out, a cut body).

local function fault(tx)
  return tx.req.path:match("[?&]soak=([%w%-]+)")
end

function on_request(tx)
  if fault(tx) == "error" then error("soak: on_request fails on purpose") end
end

function on_response(tx)
  if fault(tx) == "error-response" then error("soak: on_response fails on purpose") end
end

-- Defining this hook makes every response chunked to HTTP/1.1 clients;
-- the soak checks bodies, not framing, so that is fine and exercises the
-- re-chunking path under load. Fails on the second piece, so the head is
-- usually already on its way.
function on_response_chunk(tx, chunk, eof)
  if fault(tx) == "error-chunk" and not eof then
    tx.ctx.pieces = (tx.ctx.pieces or 0) + 1
    if tx.ctx.pieces >= 2 then error("soak: on_response_chunk fails on purpose") end
  end
end
