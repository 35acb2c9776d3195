-- proc.lua - what the benchmark reads about a running server from /proc.
--
-- A contender may be several processes (luaproxy's parent and its workers,
-- nginx's master and worker, squid and its helpers), so everything here
-- works on a process tree given by its root PID. Linux only; nothing here
-- starts or stops a process. Used by sample.lua and idle_clients.lua.

local proc = {}

local function read_file(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

-- Lists the thread ids of process <pid> (a process that is gone has none).
local function threads(pid)
  local list = {}
  local p = io.popen("ls /proc/" .. pid .. "/task 2>/dev/null")
  if not p then return list end
  for tid in p:lines() do
    if tid:match("^%d+$") then list[#list + 1] = tid end
  end
  p:close()
  return list
end

-- Returns <root> and all its descendants as a list of PID strings. A child
-- is listed in the children file of the thread that forked it, so every
-- thread is asked, not just the main one.
function proc.tree(root)
  local out, seen, queue = {}, {}, { tostring(root) }
  while #queue > 0 do
    local pid = table.remove(queue, 1)
    if not seen[pid] and read_file("/proc/" .. pid .. "/status") then
      seen[pid] = true
      out[#out + 1] = pid
      for _, tid in ipairs(threads(pid)) do
        local kids = read_file("/proc/" .. pid .. "/task/" .. tid .. "/children") or ""
        for kid in kids:gmatch("%d+") do queue[#queue + 1] = kid end
      end
    end
  end
  return out
end

-- Resident set size of one process in KiB (0 when it is gone).
function proc.rss_kib(pid)
  local status = read_file("/proc/" .. pid .. "/status") or ""
  return tonumber(status:match("VmRSS:%s*(%d+)")) or 0
end

-- Sum of VmRSS over the tree rooted at <root>, in KiB, and the process count.
-- Shared pages (the binary, libraries) are counted once per process, as
-- ps and top do.
function proc.tree_rss_kib(root)
  local sum, pids = 0, proc.tree(root)
  for _, pid in ipairs(pids) do sum = sum + proc.rss_kib(pid) end
  return sum, #pids
end

-- CPU time (user + system, all threads) used so far by one process, in
-- clock ticks (USER_HZ, 100 a second on Linux), and the user part of it.
function proc.cpu_ticks(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if not stat then return 0, 0 end
  -- The command name (field 2) may hold spaces; fields after ")" are fixed.
  local rest = stat:match("%) (.*)$") or ""
  local fields = {}
  for f in rest:gmatch("%S+") do fields[#fields + 1] = f end
  -- After ")" field 1 is the state (stat field 3), so utime (14) is 12.
  local user, system = tonumber(fields[12]) or 0, tonumber(fields[13]) or 0
  return user + system, user
end

-- CPU ticks of every process of the tree, keyed by PID, so a later reading
-- can be compared process by process (a process that exits in between just
-- drops out); the second table holds the user part alone.
function proc.tree_cpu(root)
  local t, u = {}, {}
  for _, pid in ipairs(proc.tree(root)) do t[pid], u[pid] = proc.cpu_ticks(pid) end
  return t, u
end

-- The PID of this Lua process.
function proc.self_pid()
  return (read_file("/proc/self/stat") or ""):match("^(%d+)")
end

-- CPU ticks and command names of every process on the machine, keyed by
-- PID.
function proc.all_cpu()
  local t, names = {}, {}
  local p = io.popen("ls /proc 2>/dev/null")
  if not p then return t, names end
  for pid in p:lines() do
    if pid:match("^%d+$") then
      local stat = read_file("/proc/" .. pid .. "/stat")
      if stat then
        t[pid] = proc.cpu_ticks(pid)
        names[pid] = stat:match("%((.*)%)") or "?"
      end
    end
  end
  p:close()
  return t, names
end

-- Ticks used between two tree_cpu() readings.
function proc.cpu_delta(before, after)
  local d = 0
  for pid, ticks in pairs(after) do d = d + ticks - (before[pid] or 0) end
  return d
end

-- Whole-machine busy and total ticks from /proc/stat's first line (all
-- cores added up), and of the busy ticks those spent in interrupts and
-- softirqs (where loopback TCP is partly processed, charged to no process).
function proc.host_cpu()
  local stat = read_file("/proc/stat") or ""
  local nums = {}
  for n in (stat:match("^cpu%s+([^\n]*)") or ""):gmatch("%d+") do nums[#nums + 1] = tonumber(n) end
  local total = 0
  for _, n in ipairs(nums) do total = total + n end
  local idle = (nums[4] or 0) + (nums[5] or 0) -- idle + iowait
  return total - idle, total, (nums[6] or 0) + (nums[7] or 0)
end

return proc
