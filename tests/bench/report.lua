-- report.lua - turns the benchmark's measurements into its report.
--
--   lua5.4 tests/bench/report.lua META RESULTS [PREV_META PREV_RESULTS]
--
-- META has key=value lines written by run.sh (cores, seconds, rounds,
-- version=..., note=...). RESULTS has one line per measurement,
-- "scenario=S contender=C round=R key=value ...", as run.sh appends them
-- from wrk.lua's BENCH line, sample.lua's SAMPLE line, curl (tunnel) or
-- idle_clients.lua's IDLE line. PREV_META and PREV_RESULTS are the same
-- files of the previous run, if there was one. The report goes to standard
-- output: the tables per scenario with each contender's CPU time per
-- request, the cost of the hooks in microseconds, luaproxy against each
-- peer, today's figures beside the previous run's, and the targets of the
-- performance work with PASS or MISS. A missed target is not an error.

local meta_path, results_path = arg[1], arg[2]
if not meta_path or not results_path then
  io.stderr:write("usage: report.lua META RESULTS [PREV_META PREV_RESULTS]\n")
  os.exit(2)
end

-- Reads one run's META and RESULTS. runs[scenario][contender] is the list
-- of rounds, each a table of the line's fields (numbers where they parse).
local function load(mpath, rpath)
  local m, vs, ns, rs = {}, {}, {}, {}
  for line in io.lines(mpath) do
    local k, v = line:match("^([%w_]+)=(.*)$")
    if k == "version" then
      vs[#vs + 1] = v
    elseif k == "note" then
      ns[#ns + 1] = v
    elseif k then
      m[k] = v
    end
  end
  for line in io.lines(rpath) do
    local f = {}
    for k, v in line:gmatch("([%w_]+)=(%S*)") do f[k] = tonumber(v) or v end
    if f.scenario and f.contender then
      rs[f.scenario] = rs[f.scenario] or {}
      rs[f.scenario][f.contender] = rs[f.scenario][f.contender] or {}
      table.insert(rs[f.scenario][f.contender], f)
    end
  end
  return m, vs, ns, rs
end

local meta, versions, notes, runs = load(meta_path, results_path)
local prev_meta, prev_runs
if arg[3] and arg[4] then
  local ok, m, _, _, r = pcall(load, arg[3], arg[4])
  if ok then prev_meta, prev_runs = m, r end
end

local out = {}
local function say(fmt, ...) out[#out + 1] = fmt:format(...) end

-- ------------------------------------------------------------- the figures

-- Derived figures of one wrk run (nil for a failed one).
local function wrk_figures(f)
  if f.failed or not f.duration_us or f.duration_us <= 0 then return nil end
  local s = f.duration_us / 1e6
  return {
    rps = f.requests / s,
    mbps = f.bytes / s / 1e6,
    p99 = f.p99_us / 1000,
    http_errors = f.status,
    sock_errors = f.connect + f.write + f.timeout,
    closed = f.read,
    rss = f.peak_rss_kib,
    cpu = f.cpu_pct,
    origin_cpu = f.origin_cpu_pct,
    wrk_cpu = f.wrk_cpu_pct,
    irq_cpu = f.irq_cpu_pct,
    other_cpu = f.other_cpu_pct,
    host_cpu = f.host_cpu_pct,
    -- CPU microseconds per request: the contender's CPU time over the run
    -- (cpu_pct of one core's wall time) divided by the requests served in
    -- it. For no-proxy that is nginx's own.
    cpu_us = (f.cpu_pct and f.requests > 0)
      and (f.cpu_pct / 100) * 1e6 / (f.requests / s) or nil,
    -- The part of cpu_us spent in the contender's own code (user time);
    -- the rest is the kernel's work for it. Absent from older reports.
    user_us = (f.cpu_user_pct and f.requests > 0)
      and (f.cpu_user_pct / 100) * 1e6 / (f.requests / s) or nil,
  }
end

-- Figures of one tunnel download (nil when it failed or came back short).
local function tunnel_figures(f)
  if f.http_code ~= 200 or f.bytes ~= f.expected or not f.seconds or f.seconds <= 0 then return nil end
  return { mbps = f.bytes / f.seconds / 1e6 }
end

local BY_MBPS = { ["10m"] = true, ["hooks-10m"] = true, tunnel = true }

-- The result of <contender> in <scenario>: its best round (highest req/s, or
-- MB/s for the large bodies), with every round's figure, the errors summed
-- over all rounds and the highest RSS seen in any round. nil if no round
-- succeeded; the second result then says why.
-- cpu_us is the lowest CPU time per request of any round: other programs
-- on the machine lower a throughput more than they raise it. user_us comes
-- from that same round.
local function best(scenario, contender, from)
  local rounds = (from or runs)[scenario] and (from or runs)[scenario][contender]
  if not rounds then return nil, "not run" end
  local key = BY_MBPS[scenario] and "mbps" or "rps"
  local chosen, all, http, sock, closed, rss, failed = nil, {}, 0, 0, 0, 0, 0
  local cpu_us, user_us
  for _, f in ipairs(rounds) do
    local fig = scenario == "tunnel" and tunnel_figures(f) or wrk_figures(f)
    if fig then
      if contender == "no-proxy" and fig.origin_cpu and fig.rps and fig.rps > 0 then
        fig.cpu_us, fig.user_us = (fig.origin_cpu / 100) * 1e6 / fig.rps, nil
      end
      if fig.cpu_us and (not cpu_us or fig.cpu_us < cpu_us) then cpu_us, user_us = fig.cpu_us, fig.user_us end
      all[#all + 1] = fig[key]
      http = http + (fig.http_errors or 0)
      sock = sock + (fig.sock_errors or 0)
      closed = closed + (fig.closed or 0)
      rss = math.max(rss, fig.rss or 0)
      if not chosen or fig[key] > chosen[key] then chosen = fig end
    else
      failed = failed + 1
    end
  end
  if not chosen then return nil, "every round failed" end
  local r = {}
  for k, v in pairs(chosen) do r[k] = v end
  r.value, r.all, r.http_total, r.sock_total, r.rss_peak, r.failed = chosen[key], all, http, sock, rss, failed
  r.closed_total = closed
  r.errors = http + sock
  r.cpu_us, r.user_us = cpu_us, user_us
  return r
end

local function num(v, fmt) return v and string.format(fmt or "%.0f", v) or "-" end
local function ratio(a, b) return (a and b and b > 0) and string.format("%.2fx", a / b) or "-" end
local function mib(kib) return (kib and kib > 0) and string.format("%.1f MiB", kib / 1024) or "-" end

-- Prints rows as a table with aligned columns; the first row is the header.
-- The first column is aligned left, the others right unless <left> is set.
local function table_out(rows, left)
  local widths = {}
  for _, row in ipairs(rows) do
    for i, cell in ipairs(row) do widths[i] = math.max(widths[i] or 0, #cell) end
  end
  for n, row in ipairs(rows) do
    local cells = {}
    for i, cell in ipairs(row) do
      -- Padded by hand: string.format takes widths up to 99 only, and a
      -- notes column can be wider.
      local pad = string.rep(" ", widths[i] - #cell)
      cells[#cells + 1] = (i == 1 or left) and cell .. pad or pad .. cell
    end
    say("  %s", (table.concat(cells, "  "):gsub("%s+$", "")))
    if n == 1 then
      local rule = {}
      for i in ipairs(row) do rule[#rule + 1] = string.rep("-", widths[i]) end
      say("  %s", table.concat(rule, "  "))
    end
  end
end

-- A run during which other programs took more than this much CPU (per cent
-- of one core) is marked "~" in the tables.
local DISTURBED = 25

local MAIN = { "no-proxy", "luaproxy", "haproxy", "nginx-proxy", "tinyproxy", "squid", "privoxy" }
local HOOKS = { "no-proxy", "luaproxy", "luaproxy+noop", "luaproxy+headers", "luaproxy+chunk" }
local PEERS = { "haproxy", "nginx-proxy", "tinyproxy", "squid", "privoxy" }

local function wrk_table(scenario, title, contenders)
  if not runs[scenario] then return end
  say("")
  say("%s  [%s]", title, scenario)
  local base = best(scenario, "no-proxy")
  local metric = BY_MBPS[scenario] and "MB/s" or "req/s"
  local rows = { { "contender", "req/s", "p99 ms", "MB/s", "cpu us/req", "user", "peak RSS", "errors http/sock",
    "closed", "vs no-proxy", "cpu% proxy/nginx/wrk/irq/other", "rounds (" .. metric .. ")" } }
  for _, c in ipairs(contenders) do
    local r, why = best(scenario, c)
    if r then
      local rounds = {}
      for _, v in ipairs(r.all) do rounds[#rounds + 1] = num(v) end
      if r.failed > 0 then rounds[#rounds + 1] = r.failed .. " failed" end
      local mark = (r.errors > 0 and " !" or "") .. ((r.other_cpu or 0) > DISTURBED and " ~" or "")
      rows[#rows + 1] = {
        c .. mark, num(r.rps), num(r.p99, "%.2f"), num(r.mbps, "%.1f"), num(r.cpu_us, "%.1f"), num(r.user_us, "%.1f"),
        mib(r.rss_peak),
        r.http_total .. "/" .. r.sock_total, tostring(r.closed_total),
        c == "no-proxy" and "1.00x" or ratio(r.value, base and base.value),
        c == "no-proxy" and ("-/%s/%s/%s/%s"):format(num(r.origin_cpu), num(r.wrk_cpu), num(r.irq_cpu), num(r.other_cpu))
          or ("%s/%s/%s/%s/%s"):format(num(r.cpu), num(r.origin_cpu), num(r.wrk_cpu), num(r.irq_cpu), num(r.other_cpu)),
        table.concat(rounds, " "),
      }
    elseif runs[scenario][c] then
      local row = { c, why }
      for i = 3, #rows[1] do row[i] = "" end
      rows[#rows + 1] = row
    end
  end
  table_out(rows)
end

-- ------------------------------------------------------------- the report

local cores = meta.cores or "?"
say("luaproxy benchmark")
say("==================")
say("Machine: %s cores. wrk, the proxy under test and the origin (nginx) all run on these", cores)
say("same cores, so the figures are NOISY: a difference under ~10-15%% is within the noise,")
say("and absolute numbers say little about a machine where the load generator has its own cores.")
say("")
say("Method: each wrk run lasts %s s (BENCH_SECONDS), wrk -t2; %s rounds, the contenders take",
  meta.seconds or "?", meta.rounds or "?")
say("turns within a round and the order reverses every round. Shown per contender: its BEST round")
say("(highest req/s; MB/s for 10 MiB and tunnels); 'rounds' lists every round's figure. p99, cpu%%")
say("and MB/s are from that round; 'peak RSS' is the highest summed VmRSS of all the contender's")
say("processes sampled every 0.1 s in any round; 'errors' add up all rounds: http = responses")
say("with status >= 400, sock = connect/write errors and timeouts (a row marked ! had some: a")
say("proxy that answers errors quickly is not faster); 'closed' = wrk's read errors, i.e. the")
say("server closed (or reset) a connection wrk meant to reuse: about one per request means it")
say("does not keep client connections alive, so keep-alive rows then measure new connections.")
say("cpu%%: CPU time over wall time in the chosen round (%s00%% = every core) of the proxy (all its", cores)
say("processes), nginx, wrk, interrupts/softirqs, and everything else on the machine; a row marked")
say("~ had other programs using over %d%% (its figure is probably low). Before each run the", DISTURBED)
say("benchmark waits (up to 10 s) for the machine to be idle: it waited %s s in all, and %s runs",
  meta.quiet_waited or "?", meta.busy_starts or "?")
say("started on a busy machine anyway. Load average at start %s, at end %s.",
  meta.load_start or "?", meta.load_end or "?")
say("Origin: nginx, 1 worker process, keep-alive (keepalive_requests 1e8), access_log off,")
say("sendfile. Every proxy is pinned to one core (taskset): luaproxy with --workers 1 and its")
say("defaults otherwise, haproxy with nbthread 1, nginx-proxy with 1 worker. haproxy and")
say("nginx-proxy are reverse proxies (origin-form requests), the others forward proxies.")
say("cpu us/req: the contender's CPU time (user + system, all its processes, from /proc) per")
say("request served, the lowest of the rounds; for no-proxy it is nginx's own. 'user' is the")
say("part of it spent in the contender's own code, in the same round; the rest is the kernel's")
say("work for it (system calls, and TCP over loopback, which is most of a small request's cost).")
say("")
for _, v in ipairs(versions) do say("  %s", v) end
for _, n in ipairs(notes) do say("  note: %s", n) end

wrk_table("small-ka", "Small response (100 B), keep-alive, 50 connections", MAIN)
wrk_table("close", "New connection per request (Connection: close), 50 connections", MAIN)
wrk_table("16k", "16 KiB body, keep-alive, 50 connections", MAIN)
wrk_table("10m", "10 MiB body, keep-alive, 10 connections", MAIN)
wrk_table("hooks-small", "Hooks: small response, keep-alive, 50 connections", HOOKS)
wrk_table("hooks-10m", "Hooks: 10 MiB body, keep-alive, 10 connections", HOOKS)
wrk_table("capture-small", "Flow capture (--admin, default limits): small response, keep-alive, 50 connections",
  { "luaproxy", "luaproxy+capture" })
if runs["hooks-small"] or runs["hooks-10m"] then
  say("  (luaproxy+noop: on_request that does nothing; +headers: on_request sets one field and")
  say("   removes one, on_response adds one; +chunk: on_response_chunk returning each piece)")
end

if runs.tunnel then
  say("")
  say("CONNECT tunnel, %s MiB downloaded with curl -p (one connection)  [tunnel]", meta.tunnel_mib or "?")
  local base = best("tunnel", "no-proxy")
  local rows = { { "contender", "MB/s", "vs no-proxy", "how", "rounds (MB/s)" } }
  for _, c in ipairs(MAIN) do
    local r, why = best("tunnel", c)
    local how = (c == "no-proxy" and "GET straight to nginx")
      or ((c == "haproxy" or c == "nginx-proxy") and ("GET through " .. c .. " (no CONNECT)"))
      or "CONNECT tunnel"
    if r then
      local rounds = {}
      for _, v in ipairs(r.all) do rounds[#rounds + 1] = num(v, "%.1f") end
      if r.failed > 0 then rounds[#rounds + 1] = r.failed .. " failed" end
      rows[#rows + 1] = { c, num(r.mbps, "%.1f"), c == "no-proxy" and "1.00x" or ratio(r.value, base and base.value),
        how, table.concat(rounds, " ") }
    elseif runs.tunnel[c] then
      local f = runs.tunnel[c][1]
      rows[#rows + 1] = { c, "failed", "", how, ("HTTP %s, %s of %s bytes"):format(f.http_code, f.bytes, f.expected) }
    end
  end
  table_out(rows)
end

local idle = {}
if runs.idle then
  say("")
  say("%s idle keep-alive connections, one request each, then held open  [idle]", meta.idle or "?")
  local rows = { { "contender", "KiB/conn", "RSS before", "RSS after", "ok/opened", "still open", "processes" } }
  for _, c in ipairs(MAIN) do
    local f = runs.idle[c] and runs.idle[c][1]
    if f and f.ok then
      idle[c] = f
      rows[#rows + 1] = { c .. ((f.failed > 0 or f.still_open < f.ok) and " !" or ""), num(f.per_conn_kib, "%.2f"),
        mib(f.rss_before_kib), mib(f.rss_after_kib), f.ok .. "/" .. f.opened, tostring(f.still_open), tostring(f.procs) }
    elseif f then
      rows[#rows + 1] = { c, "failed", "", "", "", "", "" }
    end
  end
  table_out(rows)
  say("  (KiB/conn = growth of the summed VmRSS of all the server's processes over the idle clients,")
  say("   measured after the other scenarios, so memory those freed is reused first; no-proxy is")
  say("   nginx itself; a row marked ! had failed requests or connections the server closed before")
  say("   the reading: its figure is then not comparable)")
end

-- ------------------------------------------------------------- luaproxy vs peers

say("")
say("luaproxy vs peers: every ratio is luaproxy's advantage, >1.00x = luaproxy better")
say("(throughput: luaproxy / peer; p99, RSS and KiB/conn: peer / luaproxy)")
do
  local rows = { { "measure", table.unpack(PEERS) } }
  table.insert(rows[1], "no-proxy")
  local function row(label, get, lower_better)
    local cells = { label }
    local mine = get("luaproxy")
    for _, p in ipairs(PEERS) do
      local theirs = get(p)
      cells[#cells + 1] = lower_better and ratio(theirs, mine) or ratio(mine, theirs)
    end
    local b = get("no-proxy")
    cells[#cells + 1] = lower_better and ratio(b, mine) or ratio(mine, b)
    rows[#rows + 1] = cells
  end
  local function field(sc, k) return function(c) local r = best(sc, c); return r and r[k] end end
  row("small keep-alive req/s", field("small-ka", "rps"))
  row("small keep-alive CPU/req", field("small-ka", "cpu_us"), true)
  row("small keep-alive p99", field("small-ka", "p99"), true)
  row("small keep-alive peak RSS", field("small-ka", "rss_peak"), true)
  row("new connection/request req/s", field("close", "rps"))
  row("new connection/request CPU/req", field("close", "cpu_us"), true)
  row("16 KiB req/s", field("16k", "rps"))
  row("10 MiB MB/s", field("10m", "mbps"))
  row("tunnel MB/s", field("tunnel", "mbps"))
  -- A server that closed the idle connections holds nothing for them.
  row("idle KiB/conn", function(c)
    local f = idle[c]
    return f and f.still_open == f.ok and f.per_conn_kib or nil
  end, true)
  table_out(rows)
  say("  (haproxy's and nginx-proxy's tunnel figures are plain GETs, no CONNECT; no-proxy's RSS and")
  say("   KiB/conn are nginx's own; '-' = not measured, or the peer closed the idle connections)")
end

-- ------------------------------------------------------------- targets

-- ------------------------------------------------------------- hook costs

-- What each script costs luaproxy, in CPU microseconds per request: the
-- figure that says whether a user pays for a script, independent of how
-- fast wrk and the origin are on this machine.
local hook_rows = {
  { "luaproxy", "no script" },
  { "luaproxy+noop", "a no-op on_request" },
  { "luaproxy+headers", "the header-rewriting hook" },
  { "luaproxy+chunk", "a no-op on_response_chunk" },
}
local function hook_cost(from, scenario, c)
  local r, base = best(scenario, c, from), best(scenario, "luaproxy", from)
  if not (r and base and r.cpu_us and base.cpu_us) then return nil end
  local user_added = (r.user_us and base.user_us) and r.user_us - base.user_us or nil
  return r.cpu_us, r.cpu_us - base.cpu_us, r.value / base.value, user_added
end
if runs["hooks-small"] or runs["hooks-10m"] then
  say("")
  say("Hook costs: luaproxy's CPU time per request, microseconds  [hooks-small, hooks-10m]")
  local rows = { { "script", "small: us/req", "added", "user added", "10 MiB: us/req", "added", "10 MiB throughput" } }
  for _, h in ipairs(hook_rows) do
    local su, sa, _, sua = hook_cost(runs, "hooks-small", h[1])
    local bu, ba, br = hook_cost(runs, "hooks-10m", h[1])
    local base_row = h[1] == "luaproxy"
    rows[#rows + 1] = { h[2], num(su, "%.1f"), base_row and "-" or num(sa, "%+.1f"),
      base_row and "-" or num(sua, "%+.1f"),
      num(bu, "%.0f"), base_row and "-" or num(ba, "%+.0f"),
      br and string.format("%.2fx", br) or "-" }
  end
  table_out(rows)
  say("  (added = over no script in the same run, of which 'user added' in luaproxy's own code")
  say("   and Lua, the rest being kernel time that moves with the machine; throughput relative")
  say("   to no script)")
end

-- ------------------------------------------------------------- previous run

-- The figures a change is judged by, for today's and the previous run side
-- by side. Each entry: label, scenario, contender, field, whether lower is
-- better, and the reference it is also compared through: a contender of
-- the same scenario, measured in the same run, whose figure moves with the
-- machine and not with luaproxy's code (nginx serving directly, or luaproxy
-- without the hook or capture the figure is about).
local TRACKED = {
  { "small keep-alive req/s", "small-ka", "luaproxy", "value", false, "no-proxy" },
  { "small keep-alive CPU us/req", "small-ka", "luaproxy", "cpu_us", true, "no-proxy" },
  { "  haproxy CPU us/req", "small-ka", "haproxy", "cpu_us", true, "no-proxy" },
  { "  nginx-proxy CPU us/req", "small-ka", "nginx-proxy", "cpu_us", true, "no-proxy" },
  { "new connection/request req/s", "close", "luaproxy", "value", false, "no-proxy" },
  { "new connection/request CPU us/req", "close", "luaproxy", "cpu_us", true, "no-proxy" },
  { "  nginx-proxy CPU us/req", "close", "nginx-proxy", "cpu_us", true, "no-proxy" },
  { "16 KiB req/s", "16k", "luaproxy", "value", false, "no-proxy" },
  { "10 MiB MB/s", "10m", "luaproxy", "value", false, "no-proxy" },
  { "no-op on_request CPU us/req", "hooks-small", "luaproxy+noop", "cpu_us", true, "luaproxy" },
  { "header hook CPU us/req", "hooks-small", "luaproxy+headers", "cpu_us", true, "luaproxy" },
  { "no-op chunk hook 10 MiB MB/s", "hooks-10m", "luaproxy+chunk", "value", false, "luaproxy" },
  { "tunnel MB/s", "tunnel", "luaproxy", "value", false, "no-proxy" },
  { "flow capture CPU us/req", "capture-small", "luaproxy+capture", "cpu_us", true, "luaproxy" },
}
local function tracked_value(from, t, contender)
  local r = best(t[2], contender or t[3], from)
  return r and r[t[4]]
end
local function idle_kib(from)
  local f = from.idle and from.idle.luaproxy and from.idle.luaproxy[1]
  return f and f.ok and f.ok > 0 and f.per_conn_kib or nil
end
-- Figures of luaproxy worse than last time by more than the noise, and
-- those worse only as much as their reference (the machine was slower).
local worse, drifted = {}, {}
if prev_runs then
  say("")
  say("Today beside the previous run (%s cores, %s s x %s rounds then; %s s x %s rounds now)",
    prev_meta.cores or "?", prev_meta.seconds or "?", prev_meta.rounds or "?", meta.seconds or "?",
    meta.rounds or "?")
  local rows = { { "figure", "previous", "today", "change", "reference", "its change", "change vs it" } }
  -- Whether every figure given was measured (and is not zero).
  local function known(...)
    for i = 1, select("#", ...) do
      local v = select(i, ...)
      if not (v and v > 0) then return false end
    end
    return true
  end
  -- The change from <before> to <now>, as shown.
  local function pct(before, now)
    return known(before, now) and ("%+.0f%%"):format((now - before) / before * 100) or "-"
  end
  -- The same as a fraction, positive when worse.
  local function worsening(before, now, lower_better)
    if not known(before, now) then return nil end
    local d = (now - before) / before
    return lower_better and d or -d
  end
  local function compare(label, before, now, lower_better, ref_name, ref_before, ref_now)
    local w = worsening(before, now, lower_better)
    local change, ref_change, adjusted = pct(before, now), "-", "-"
    -- The figure relative to its reference, so that what made both slower
    -- (the machine, between runs) cancels out.
    local wa
    if ref_name and known(before, now, ref_before, ref_now) then
      ref_change = pct(ref_before, ref_now)
      adjusted = pct(before / ref_before, now / ref_now)
      wa = worsening(before / ref_before, now / ref_now, lower_better)
    end
    if w and w >= 0.10 and not label:match("^  ") then
      -- Worse by over 10%, and not explained by its reference getting as
      -- much worse: a change of luaproxy's own.
      if not wa or wa >= 0.10 then
        worse[#worse + 1] = label
        change = change .. " worse"
      else
        drifted[#drifted + 1] = label
        change = change .. " machine"
      end
    end
    local fmt = (now or before or 0) < 100 and "%.2f" or "%.0f"
    rows[#rows + 1] = { label, num(before, fmt), num(now, fmt), change, ref_name or "-", ref_change, adjusted }
  end
  for _, t in ipairs(TRACKED) do
    compare(t[1], tracked_value(prev_runs, t), tracked_value(runs, t), t[5], t[6],
      tracked_value(prev_runs, t, t[6]), tracked_value(runs, t, t[6]))
  end
  compare("idle KiB/conn", idle_kib(prev_runs), idle_kib(runs), true)
  table_out(rows)
  say("  (luaproxy unless indented; the reference is a contender of the same scenario and run whose")
  say("   figure moves with the machine, not with luaproxy's code: nginx serving directly, or")
  say("   luaproxy without the hook or capture measured. 'worse' marks a figure over 10%% worse both")
  say("   as measured and relative to its reference; 'machine' one over 10%% worse as measured that")
  say("   its reference explains: the reference got about as much worse, in the same run)")
end

say("")
say("Targets (from the performance work)")
do
  local rows = { { "target", "result", "measured" } }
  local function check(label, ok, measured)
    local verdict = ok == nil and "N/A" or (ok and "PASS" or "MISS")
    rows[#rows + 1] = { label, verdict, measured }
  end
  local function clean(...)
    for _, r in ipairs({ ... }) do
      if r.errors > 0 then return false end
    end
    return true
  end
  -- The same comparison for the user-space part alone, since the kernel's
  -- share (the same system calls and TCP work for every proxy) is most of it.
  local function user_split(a, b)
    if not (a.user_us and b.user_us and b.user_us > 0) then return "" end
    return ("; user %.1f vs %.1f = %.2fx"):format(a.user_us, b.user_us, a.user_us / b.user_us)
  end

  local _, noop = hook_cost(runs, "hooks-small", "luaproxy+noop")
  local _, hdr = hook_cost(runs, "hooks-small", "luaproxy+headers")
  check("no-op on_request adds <= 1.5 us/req", noop and noop <= 1.5,
    noop and ("%+.2f us"):format(noop) or "not measured")
  check("header-rewriting hook adds <= 3 us/req", hdr and hdr <= 3,
    hdr and ("%+.2f us"):format(hdr) or "not measured")

  local off, on = best("capture-small", "luaproxy"), best("capture-small", "luaproxy+capture")
  if off and on and off.cpu_us and on.cpu_us then
    check("flow capture on: small keep-alive CPU/req <= 1.3x off", on.cpu_us <= 1.3 * off.cpu_us,
      ("%.1f vs %.1f us = %.2fx"):format(on.cpu_us, off.cpu_us, on.cpu_us / off.cpu_us))
  else
    check("flow capture on: small keep-alive CPU/req <= 1.3x off", nil, "not measured")
  end

  local _, _, chunk = hook_cost(runs, "hooks-10m", "luaproxy+chunk")
  check("no-op chunk hook, 10 MiB >= 0.8x no script", chunk and chunk >= 0.8,
    chunk and ("%.2fx"):format(chunk) or "not measured")

  local lp, ha = best("small-ka", "luaproxy"), best("small-ka", "haproxy")
  if lp and ha and lp.cpu_us and ha.cpu_us then
    check("small keep-alive CPU/req <= 0.85x haproxy's", lp.cpu_us <= 0.85 * ha.cpu_us and clean(lp),
      ("%.1f vs %.1f us = %.2fx"):format(lp.cpu_us, ha.cpu_us, lp.cpu_us / ha.cpu_us) .. user_split(lp, ha))
  else
    check("small keep-alive CPU/req <= 0.85x haproxy's", nil, "not measured")
  end
  local lc, nc = best("close", "luaproxy"), best("close", "nginx-proxy")
  if lc and nc and lc.cpu_us and nc.cpu_us then
    check("new connection/request CPU/req <= 0.85x nginx's", lc.cpu_us <= 0.85 * nc.cpu_us and clean(lc),
      ("%.1f vs %.1f us = %.2fx"):format(lc.cpu_us, nc.cpu_us, lc.cpu_us / nc.cpu_us) .. user_split(lc, nc))
  else
    check("new connection/request CPU/req <= 0.85x nginx's", nil, "not measured")
  end

  local li = idle["luaproxy"]
  local label = ("%s idle connections <= 2.5 KiB each, defaults"):format(meta.idle or "?")
  if li and li.ok > 0 then
    local complete = li.ok == tonumber(meta.idle) and li.still_open == li.ok
    check(label, li.per_conn_kib <= 2.5 and complete,
      ("%.2f KiB/conn (%d ok, %d still open)"):format(li.per_conn_kib, li.ok, li.still_open))
  else
    check(label, nil, "not measured")
  end

  if prev_runs then
    local measured = #worse == 0 and "none over 10%" or table.concat(worse, ", ")
    if #drifted > 0 then
      measured = measured .. "; with the machine: " .. table.concat(drifted, ", ")
    end
    check("no figure worse than the previous run", #worse == 0, measured)
  else
    check("no figure worse than the previous run", nil, "no previous run")
  end
  table_out(rows, true)
  say("  (a target counts as met only if luaproxy's runs had no errors; given the noise, a result")
  say("   within ~10%% of its threshold could go either way on another run)")
end

-- Every run that other programs disturbed, chosen or not, with the biggest
-- of them, so a reader can tell a slow proxy from a busy machine.
do
  local lines = {}
  for _, sc in ipairs({ "small-ka", "close", "16k", "10m", "hooks-small", "hooks-10m" }) do
    for c, rounds in pairs(runs[sc] or {}) do
      for _, f in ipairs(rounds) do
        if (f.other_cpu_pct or 0) > DISTURBED then
          lines[#lines + 1] = ("%s/%s round %s: other programs %s%% (mostly %s)"):format(
            sc, c, f.round, f.other_cpu_pct, (tostring(f.other_top):gsub(":%d+$", "")))
        end
      end
    end
  end
  if #lines > 0 then
    table.sort(lines)
    say("")
    say("Runs disturbed by other programs (over %d%% CPU; the other round of each usually counts):", DISTURBED)
    for _, l in ipairs(lines) do say("  %s", l) end
  end
end

print(table.concat(out, "\n"))
