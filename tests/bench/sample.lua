-- sample.lua - watches a contender while wrk loads it.
--
--   lua5.4 tests/bench/sample.lua SECONDS ROOT_PID ORIGIN_PID WRK_PID
--
-- For SECONDS it samples the summed VmRSS of the process tree under
-- ROOT_PID (the contender) ten times a second, and prints one line:
--
--   SAMPLE peak_rss_kib=N cpu_pct=N cpu_user_pct=N origin_cpu_pct=N wrk_cpu_pct=N
--          irq_cpu_pct=N other_cpu_pct=N host_cpu_pct=N procs=N other_top=NAME/PID:N
--
-- Each *_cpu_pct is CPU time over wall time (200 = both cores of a 2-core
-- machine): the contender's tree, the origin's (nginx), wrk's, interrupts
-- and softirqs (charged to no process), and everything else on the machine
-- (other programs, kernel threads; the sampler itself included, a few per
-- cent at most); other_top names the biggest of those others. host_cpu_pct is the
-- whole machine's busy share (100 = every core busy). cpu_user_pct is the
-- part of cpu_pct spent in the contender's own code, the rest being the
-- kernel's work for it (system calls, TCP). Together they tell
-- whether a run was limited by the proxy, the origin, wrk, or by something
-- else taking the cores. Run by tests/bench/run.sh beside each wrk run; it
-- starts nothing but `ls`.

package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local proc = require("proc")
local socket = require("socket")

local seconds = tonumber(arg[1])
local root, origin, wrk = arg[2], arg[3], arg[4]
if not (seconds and root and origin and wrk) then
  io.stderr:write("usage: sample.lua SECONDS ROOT_PID ORIGIN_PID WRK_PID\n")
  os.exit(2)
end

-- The trees are listed again once a second only: listing a process's
-- threads runs `ls`, which would cost more than the sampling itself.
local function union_cpu()
  local seen, t = {}, {}
  for _, r in ipairs({ root, origin, wrk }) do
    for _, pid in ipairs(proc.tree(r)) do
      if not seen[pid] then
        seen[pid] = true
        t[pid] = proc.cpu_ticks(pid)
      end
    end
  end
  return t
end

local t0 = socket.gettime()
local cpu0, ucpu0 = proc.tree_cpu(root)
local ocpu0, wcpu0 = proc.tree_cpu(origin), proc.tree_cpu(wrk)
local all0 = union_cpu()
local everyone0 = proc.all_cpu()
local busy0, total0, irq0 = proc.host_cpu()
local peak, procs, pids, n = 0, 0, proc.tree(root), 0

-- Stop a little early, so the last reading is taken while wrk still runs
-- (the CPU time of a process that has exited cannot be read any more).
local stop = math.max(0.5, seconds - 0.3)
while socket.gettime() - t0 < stop do
  n = n + 1
  if n % 10 == 0 then pids = proc.tree(root) end
  local rss = 0
  for _, pid in ipairs(pids) do rss = rss + proc.rss_kib(pid) end
  if rss > peak then peak, procs = rss, #pids end
  socket.sleep(0.1)
end

local wall = socket.gettime() - t0
local cpu1, ucpu1 = proc.tree_cpu(root)
local cpu, ucpu = proc.cpu_delta(cpu0, cpu1), proc.cpu_delta(ucpu0, ucpu1)
local ocpu = proc.cpu_delta(ocpu0, proc.tree_cpu(origin))
local wcpu = proc.cpu_delta(wcpu0, proc.tree_cpu(wrk))
local ours_after = union_cpu()
local ours = proc.cpu_delta(all0, ours_after)
-- The biggest CPU user that is none of ours, named to explain "other".
local everyone1, names = proc.all_cpu()
local top_name, top_ticks = "-", 0
for pid, ticks in pairs(everyone1) do
  local d = ticks - (everyone0[pid] or ticks)
  if not ours_after[pid] and pid ~= proc.self_pid() and d > top_ticks then
    top_name, top_ticks = names[pid]:gsub("[^%w._+-]", "_") .. "/" .. pid, d
  end
end
local busy1, total1, irq1 = proc.host_cpu()
local host = total1 > total0 and 100 * (busy1 - busy0) / (total1 - total0) or 0
local irq = irq1 - irq0
local other = math.max(0, (busy1 - busy0) - irq - ours)

print(string.format(
  "SAMPLE peak_rss_kib=%d cpu_pct=%.0f cpu_user_pct=%.1f origin_cpu_pct=%.0f wrk_cpu_pct=%.0f irq_cpu_pct=%.0f other_cpu_pct=%.0f host_cpu_pct=%.0f procs=%d other_top=%s:%.0f",
  peak, cpu / wall, ucpu / wall, ocpu / wall, wcpu / wall, irq / wall, other / wall, host, procs, top_name, top_ticks / wall))
