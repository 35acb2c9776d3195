/*
 * test_stdlib.c - unit tests for the library functions the time budget
 * reaches (hooks_stdlib.c, and coroutine.close in hooks_watch.c).
 *
 * Each must answer as Lua's own does: every case runs through both,
 * comparing results and error messages. Then the point of them: a call
 * whose arguments would keep it going for good stops at the deadline.
 */
#include <time.h>

#include "hooks_internal.h"
#include "tap.h"

/* Runs each case with Lua's functions (the tables stock_table and
 * stock_string, and stock_load) and with the replacements; returns the
 * cases that differ and their count. */
static const char compare_lua[] =
    "local S = { table = stock_table, string = stock_string, load = stock_load,\n"
    "            close = stock_close }\n"
    "local M = { table = table, string = string, load = load, close = coroutine.close }\n"
    "local function show(t, n)\n"
    "  local out = {}\n"
    "  for i = 1, n or rawlen(t) do out[i] = tostring(rawget(t, i)) end\n"
    "  return '{' .. table.concat(out, ',') .. '}'\n"
    "end\n"
    "local function run(L, case)\n"
    "  local r = table.pack(pcall(case, L))\n"
    "  for i = 1, r.n do\n"
    "    local v = r[i]\n"
    "    if type(v) == 'table' then r[i] = show(v, 8)\n"
    "    elseif type(v) == 'string' then r[i] = v:gsub('table: 0x%x+', 'table')\n"
    "    elseif type(v) == 'function' then r[i] = 'function'\n"
    "    else r[i] = math.type(v) or tostring(v) end\n"
    "    if type(v) == 'number' then r[i] = r[i] .. ':' .. tostring(v) end\n"
    "  end\n"
    "  return table.concat(r, ' ', 1, r.n)\n"
    "end\n"
    "local cases = {\n"
    "  function(L) local t = {1,2,3}; L.table.insert(t, 4); L.table.insert(t, 1, 0); L.table.insert(t, 3, 'x'); return t end,\n"
    "  function(L) return L.table.insert({1}, 0, 1) end,\n"
    "  function(L) return L.table.insert({1}, 9, 1) end,\n"
    "  function(L) return L.table.insert({1}) end,\n"
    "  function(L) return L.table.insert({1}, 1, 2, 3) end,\n"
    "  function(L) return L.table.insert(nil, 1) end,\n"
    "  function(L) return L.table.insert({}, 'a', 1) end,\n"
    "  function(L) return L.table.insert({}, 1.5, 1) end,\n"
    "  function(L) local t = {}; L.table.insert(t, 1, 'a'); return t end,\n"
    "  function(L) local t = {1,2,3,4}; return L.table.remove(t), t end,\n"
    "  function(L) local t = {1,2,3,4}; return L.table.remove(t, 1), t end,\n"
    "  function(L) local t = {1,2}; return L.table.remove(t, 3), t end,\n"
    "  function(L) return L.table.remove({1,2}, 4) end,\n"
    "  function(L) return L.table.remove({}), L.table.remove({}, 0) end,\n"
    "  function(L) return L.table.remove({}, -1) end,\n"
    "  function(L) return L.table.remove({1}, 0) end,\n"
    "  function(L) local t = {1,2,3,4,5}; L.table.move(t, 1, 3, 2); return t end,\n"
    "  function(L) local t = {1,2,3,4,5}; L.table.move(t, 2, 5, 1); return t end,\n"
    "  function(L) return L.table.move({1,2,3}, 1, 3, 1, {}) end,\n"
    "  function(L) return L.table.move({1,2,3}, 1, 0, 5) end,\n"
    "  function(L) return L.table.move({}, 1, math.maxinteger, 2) end,\n"
    "  function(L) return L.table.move({}, -1, math.maxinteger, 2) end,\n"
    "  function(L) return L.table.move({}, 1, 2, math.maxinteger) end,\n"
    "  function(L) return L.table.move({}, 'x', 2, 3) end,\n"
    "  function(L) return L.table.move(1, 1, 2, 3) end,\n"
    "  function(L) local t = {1,2,3}; return L.table.move(t, 1, 3, 3, t) end,\n"
    "  function(L) return L.table.concat({1, 2, 'x', 3.5}, '-') end,\n"
    "  function(L) return L.table.concat({}, 'x'), L.table.concat({1,2,3}, ', ', 2, 3) end,\n"
    "  function(L) return L.table.concat({1,2,3}, ', ', 3, 2) end,\n"
    "  function(L) return L.table.concat({1, {}, 3}) end,\n"
    "  function(L) return L.table.concat({1, 2}, ',', 1, 3) end,\n"
    "  function(L) return L.table.concat(5) end,\n"
    "  function(L)\n"
    "    local log = {}\n"
    "    local p = setmetatable({}, { __len = function() return 3 end,\n"
    "      __index = function(_, k) return 'v' .. k end,\n"
    "      __newindex = function(_, k, v) log[#log + 1] = k .. '=' .. tostring(v) end })\n"
    "    L.table.insert(p, 1, 'n')\n"
    "    local r = L.table.remove(p, 2)\n"
    "    return L.table.concat(p, ','), r, table.concat(log, ';')\n"
    "  end,\n"
    "  function(L) local t = {5, 2, 8, 1, 9, 3}; L.table.sort(t); return t end,\n"
    "  function(L) local t = {5, 2, 8, 1}; L.table.sort(t, function(a, b) return a > b end); return t end,\n"
    "  function(L) local t = {'b', 'a', 'c'}; L.table.sort(t); return t end,\n"
    "  function(L) return L.table.sort({1, 'a', 2}) end,\n"
    "  function(L) return L.table.sort({1, 2}, 3) end,\n"
    "  function(L) return L.table.sort(nil) end,\n"
    "  function(L) return L.table.sort({3,2,1,4,5,6,7,8,9,10,11,12,13,14,15}, function() return true end) end,\n"
    "  function(L) local t = {}; for i = 1, 500 do t[i] = (i * 7919) % 500 end; L.table.sort(t); return t end,\n"
    "  function(L) return L.string.rep('ab', 3, '-'), L.string.rep('', 5), L.string.rep('a', 0), L.string.rep('', 3, ',') end,\n"
    "  function(L) return L.string.rep('', 0, ''), L.string.rep('x', -1), L.string.rep('', 1000, '') end,\n"
    "  function(L) return L.string.rep('x', 'y') end,\n"
    "  function(L) return L.string.rep({}, 1) end,\n"
    "  function(L) return L.string.rep('x', 1 << 62) end,\n"
    "  function(L) return L.string.rep('', 2, {}) end,\n"
    "  function(L) return L.load('return 1 + 2')() end,\n"
    "  function(L) return L.load('syntax error here') end,\n"
    "  function(L) local p, i = {'return ', '4', '2'}, 0; return L.load(function() i = i + 1; return p[i] end)() end,\n"
    "  function(L) return L.load('return x', 'chunk', 't', { x = 7 })() end,\n"
    "  function(L) return L.load(5) end,\n"
    "  function(L) return L.load(function() return {} end) end,\n"
    "  function(L) return L.load('return 1', 'c', 'b') end,\n"
    "  function(L) return L.load('return ...', '=name')(1, 2) end,\n"
    "  function(L) return L.load(nil) end,\n"
    "  function(L) local i = 0; return L.load(function() i = i + 1; if i == 1 then return 'return 3' end return '' end)() end,\n"
    "  function(L) return L.load(function() error('reader fails') end) end,\n"
    "  function(L) return L.load('return x', 'c', 't', nil)() end,\n"
    "  function(L)\n"
    "    local log = {}\n"
    "    local co = coroutine.create(function()\n"
    "      local x <close> = setmetatable({}, { __close = function() log[#log + 1] = 'closed' end })\n"
    "      coroutine.yield()\n"
    "    end)\n"
    "    coroutine.resume(co)\n"
    "    return L.close(co), coroutine.status(co), log[1]\n"
    "  end,\n"
    "  function(L)\n"
    "    local co = coroutine.create(function()\n"
    "      local x <close> = setmetatable({}, { __close = function() error('in close', 0) end })\n"
    "      coroutine.yield()\n"
    "    end)\n"
    "    coroutine.resume(co)\n"
    "    return L.close(co)\n"
    "  end,\n"
    "  function(L) return L.close(coroutine.running()) end,\n"
    "  function(L) return L.close(1) end,\n"
    "  function(L) return L.close(coroutine.create(print)) end,\n"
    "}\n"
    "local bad = {}\n"
    "for i, case in ipairs(cases) do\n"
    "  local a, b = run(S, case), run(M, case)\n"
    "  if a ~= b then bad[#bad + 1] = 'case ' .. i .. ': ' .. a .. ' | ' .. b end\n"
    "end\n"
    "return table.concat(bad, '\\n'), #bad\n";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs <code> as if in a hook whose budget ends in 0.2 s; whether it
 * failed with a timeout, and the hook was marked as timed out, soon. */
static int stops_in_a_hook(lua_State *L, struct hooks *fake, const char *code)
{
    double t0;
    int rc, timed_out;
    fake->running_phase = 0;
    fake->timed_out = 0;
    fake->deadline = now() + 0.2;
    t0 = now();
    rc = luaL_dostring(L, code);
    /* Generous: the machine is shared; without the budget these run for
     * hours. */
    timed_out = rc != LUA_OK && strstr(lua_tostring(L, -1), "timed out") != NULL &&
                fake->timed_out && now() - t0 < 10;
    if (!timed_out)
        printf("# %s: %s\n", code, rc == LUA_OK ? "returned" : lua_tostring(L, -1));
    lua_settop(L, 0);
    lua_sethook(L, NULL, 0, 0); /* the one the timeout set */
    fake->running_phase = -1;
    return timed_out;
}

int main(void)
{
    lua_State *L = luaL_newstate();
    static struct hooks fake;

    (void)guarded_copy;
    fake.running_phase = -1; /* no hook runs: no deadline */
    *(struct hooks **)lua_getextraspace(L) = &fake;
    /* Lua's own, kept apart; loaded first, so that the strings'
     * metatable ends up indexing the string table the install changes */
    luaL_requiref(L, "stock_table", luaopen_table, 1);
    luaL_requiref(L, "stock_string", luaopen_string, 1);
    lua_pop(L, 2);
    luaL_openlibs(L);
    lua_getglobal(L, "load");
    lua_setglobal(L, "stock_load");
    lua_getglobal(L, "coroutine");
    lua_getfield(L, -1, "close");
    lua_setglobal(L, "stock_close");
    lua_pop(L, 1);
    hooks_stdlib_install(L);
    hooks_watch_install(L);

    if (luaL_loadbuffer(L, compare_lua, sizeof compare_lua - 1, "=compare") != LUA_OK) {
        ok(0, "compare script loads: %s", lua_tostring(L, -1));
        return tap_done();
    }
    if (lua_pcall(L, 0, 2, 0) != LUA_OK) {
        ok(0, "comparison ran: %s", lua_tostring(L, -1));
        return tap_done();
    }
    if (!ok(lua_tointeger(L, -1) == 0, "the same results and errors as Lua's own"))
        printf("# %s\n", lua_tostring(L, -2));
    lua_settop(L, 0);

    ok(luaL_dostring(L, "assert(#string.rep('', 1e15) == 0 and #string.rep('', 1e15, '') == 0)") ==
           LUA_OK,
       "string.rep of an empty string returns at once");
    lua_settop(L, 0);
    ok(luaL_dostring(L, "table.move({}, 1, 100000, 2)") == LUA_OK,
       "outside a hook a table function has no deadline");
    lua_settop(L, 0);

    ok(stops_in_a_hook(L, &fake, "table.move({}, 1, math.maxinteger - 1, 2)"),
       "table.move over a huge range stops at the deadline");
    ok(stops_in_a_hook(L, &fake, "table.move({}, 1, math.maxinteger - 1, 2, {})"),
       "so does one to another table");
    ok(stops_in_a_hook(L, &fake, "table.insert(setmetatable({}, { __len = function() "
                                 "return math.maxinteger - 1 end }), 1, 'x')"),
       "table.insert with a huge __len");
    ok(stops_in_a_hook(L, &fake, "table.remove(setmetatable({}, { __len = function() "
                                 "return math.maxinteger end }), 1)"),
       "table.remove with a huge __len");
    ok(stops_in_a_hook(L, &fake, "table.concat(setmetatable({}, { __index = function() return '' "
                                 "end, __len = function() return math.maxinteger end }))"),
       "table.concat of empty strings");
    ok(stops_in_a_hook(L, &fake, "debug.setmetatable(0, { __index = math.abs, __newindex = "
                                 "math.abs, __len = function() return 2^31 - 2 end }) "
                                 "table.sort(5)"),
       "table.sort of a huge proxy, compared in C");
    ok(luaL_dostring(L, "debug.setmetatable(0, nil)") == LUA_OK, "(numbers' metatable cleared)");
    lua_settop(L, 0);
    ok(stops_in_a_hook(L, &fake, "assert(load(os.time) == nil) while true do end"),
       "load reads no further past the deadline");

    ok(luaL_dostring(L, "debug.sethook(print, '', 1)") != LUA_OK &&
           strstr(lua_tostring(L, -1), "debug.sethook cannot be used") != NULL,
       "debug.sethook is refused");
    lua_settop(L, 0);

    lua_close(L);
    return tap_done();
}
