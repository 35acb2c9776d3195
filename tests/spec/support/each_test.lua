-- The processes one test starts, stopped when the test ends.
--
-- Specs use it inside a describe block:
--   local procs = each_test.processes()
--   local origin
--   before_each(function() origin = procs.origin() end)
--   ...
--   local proxy = procs.proxy({ "--verbose" })
--
-- What it owns: a before_each that starts each test with an empty list and
-- an after_each that stops everything on the list in reverse order and
-- fails the test unless every proxy among them exited with status 0, as
-- SIGTERM must. That check catches crashes and sanitizer reports that a
-- passing exchange would hide. Busted runs hooks in the order they were
-- registered, so a spec's own before_each, registered after this call,
-- can start what every test needs.
--
-- A proxy a test expects to fail (a bad option, a script that cannot load)
-- is started with the harness directly and not put on the list.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")
-- The hooks are busted's own: a spec's globals are not this module's.
local busted = require("busted")

local each_test = {}

function each_test.processes()
  local procs = { list = {} }

  -- Puts <p> on the list; returns all its arguments, so that
  -- `procs.add(a.start(args))` still yields the proxy and its admin.
  function procs.add(p, ...)
    procs.list[#procs.list + 1] = p
    return p, ...
  end
  -- h.start_origin(mode) and h.start_proxy(args, opts), on the list.
  function procs.origin(mode) return procs.add(h.start_origin(mode)) end
  function procs.proxy(args, opts) return procs.add(h.start_proxy(args, opts)) end

  busted.before_each(function() procs.list = {} end)
  busted.after_each(function()
    local problem = h.stop_procs(procs.list)
    procs.list = {}
    if problem then busted.fail(problem) end
  end)
  return procs
end

return each_test
