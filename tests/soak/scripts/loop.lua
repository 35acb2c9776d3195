-- Fault-soak script: never returns from a hook when the query asks for it
-- (soak=loop in on_request, soak=loop-response in on_response). The
-- proxy's --hook-timeout must stop it and answer 500.

local function fault(tx)
  return tx.req.path:match("[?&]soak=([%w%-]+)")
end

function on_request(tx)
  if fault(tx) == "loop" then
    while true do end
  end
end

function on_response(tx)
  if fault(tx) == "loop-response" then
    while true do end
  end
end
