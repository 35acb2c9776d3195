-- Fault-soak script: answers requests whose query asks for it
-- (soak=respond) itself with tx:respond, so a pipelined burst mixes local
-- answers with the proxy's own (508) and nothing reaches an origin.

function on_request(tx)
  if tx.req.path:match("[?&]soak=respond") then tx:respond(200, "local\n") end
end
