-- Fault-soak script: counts every request in proxy.shared and, for one
-- request in ten, asks the request's own server for /hello with
-- proxy.http first (the hook waits; broken servers make it time out or
-- fail, which the script shrugs off). Exercises calls out, their
-- cancellation when a client goes away mid-wait, and the shared store.

function on_request(tx)
  local n = proxy.shared.incr("soak:requests", 1)
  proxy.shared.set("soak:last", tx.req.path, 60)
  if n and tx.id % 10 == 0 and tx.req.scheme == "http" then
    proxy.http{ url = "http://" .. tx.req.host .. ":" .. tx.req.port .. "/hello",
                timeout = 1, max_body = 4096 }
  end
end
