-- The benchmark report's comparison with the previous run
-- (tests/bench/report.lua), on made-up measurements: a figure worse than
-- last time counts against the "no figure worse" target only when it is
-- also worse relative to its reference in the same run, so that a slower
-- machine is not taken for a slower proxy.

package.path = "tests/spec/?.lua;" .. package.path
local h = require("support.harness")

-- One capture-small measurement whose CPU per request is <us>: 100,000
-- requests in 1 s, at us percent of a core.
local function line(contender, us, scenario)
  return ("scenario=%s contender=%s round=1 conns=50 requests=100000 duration_us=1000000"
    .. " bytes=1000000 connect=0 read=0 write=0 status=0 timeout=0 p50_us=500 p99_us=900"
    .. " peak_rss_kib=10000 cpu_pct=%s cpu_user_pct=1 origin_cpu_pct=60 wrk_cpu_pct=50"
    .. " irq_cpu_pct=50 other_cpu_pct=0 host_cpu_pct=90 procs=1\n"):format(scenario or "capture-small", contender, us * 10)
end

-- The report on a previous and a current run, each given as the text of
-- its measurements.
local function report_on(before, now)
  local files = {}
  local function write(text)
    local path = h.tmpfile(text, "bench.txt")
    files[#files + 1] = path
    return path
  end
  local meta = "cores=2\nseconds=1\nrounds=1\n"
  local args = {
    write(meta),
    write(now),
    write(meta),
    write(before),
  }
  local out = h.sh("lua5.4 tests/bench/report.lua " .. table.concat(args, " ") .. " 2>&1")
  for _, f in ipairs(files) do os.remove(f) end
  return out
end

-- The report on a previous and a current run of the capture scenario, each
-- given as { off = CPU us/req without capture, on = with it }.
local function report(before, now)
  local function run(r) return line("luaproxy", r.off) .. line("luaproxy+capture", r.on) end
  return report_on(run(before), run(now))
end

local function capture_row(out) return out:match("\n%s*(flow capture CPU us/req[^\n]*)") end
local function verdict(out) return out:match("no figure worse than the previous run%s+(%u+)%s+([^\n]*)") end

-- Each case: what it shows, the previous and the current run, a pattern
-- the capture row must match (change, reference, its change, change vs
-- it), and the target's verdict with what it lists.
local CASES = {
  { "marks a figure worse by itself as worse, and misses the target",
    { off = 10, on = 12 }, { off = 10, on = 14.4 },
    "%+20%% worse%s+luaproxy%s+%+0%%%s+%+20%%$", "MISS", "flow capture CPU us/req" },
  -- capture on +20%, off +15%: relative to off, +4%
  { "marks a figure its reference explains as the machine's, and passes",
    { off = 10, on = 12 }, { off = 11.5, on = 14.4 },
    "%+20%% machine%s+luaproxy%s+%+15%%%s+%+4%%$", "PASS",
    "none over 10%; with the machine: flow capture CPU us/req" },
  -- capture on +40%, off +15%: relative to off, +22%
  { "still counts a figure worse by more than its reference explains",
    { off = 10, on = 12 }, { off = 11.5, on = 16.8 },
    "%+40%% worse%s+luaproxy%s+%+15%%%s+%+22%%$", "MISS", "flow capture CPU us/req" },
  { "leaves a figure that got better unmarked",
    { off = 10, on = 12 }, { off = 12, on = 10.8 },
    "%s%-10%%%s+luaproxy%s+%+20%%%s+%-25%%$", "PASS", "none over 10%" },
}

describe("bench report, against the previous run", function()
  for _, c in ipairs(CASES) do
    local what, before, now, row, result, measured = table.unpack(c)
    it(what, function()
      local out = report(before, now)
      assert.matches(row, capture_row(out))
      assert.same({ result, measured }, { verdict(out) })
    end)
  end
end)

describe("bench report, its tables", function()
  it("lays out a cell wider than string.format's widths allow", function()
    -- Five figures worse at once make the target's "measured" cell longer
    -- than 99 characters, the widest a "%-Ns" format takes.
    local function run(us)
      return line("luaproxy", us, "small-ka") .. line("luaproxy", us, "hooks-small")
        .. line("luaproxy+noop", us * 2, "hooks-small") .. line("luaproxy+headers", us * 3, "hooks-small")
        .. line("luaproxy", us, "capture-small") .. line("luaproxy+capture", us * 2, "capture-small")
    end
    local out = report_on(run(10), run(20))
    local result, measured = verdict(out)
    assert.equals("MISS", result, out)
    assert.is_true(#measured > 99, measured)
    assert.matches("small keep%-alive CPU us/req.*header hook CPU us/req.*flow capture CPU us/req", measured)
  end)
end)
