/*
 * test_pattern.c - unit tests for the step-counting pattern functions.
 *
 * The matcher must behave exactly as Lua's own: every case (and a few
 * thousand random patterns and subjects) runs through both, comparing
 * results and errors. Then the point of it: a backtracking pattern inside
 * a hook stops at the deadline instead of running for a minute.
 */
#include <time.h>

#include "hooks_internal.h"
#include "tap.h"

static const char compare_lua[] =
    "local stock, mine = ...\n"
    "local function pack(ok, ...) return { ok = ok, n = select('#', ...), ... } end\n"
    "local function same(a, b)\n"
    "  if a.ok ~= b.ok then return false end\n"
    "  if not a.ok then return true end -- both errors: the messages may differ\n"
    "  if a.n ~= b.n then return false end\n"
    "  for i = 1, a.n do if a[i] ~= b[i] or math.type(a[i]) ~= math.type(b[i]) then return false end end\n"
    "  return true\n"
    "end\n"
    "local function run(lib, fn, ...)\n"
    "  if fn == 'gmatch' then\n"
    "    local args = { ... }\n"
    "    return pack(pcall(function()\n"
    "      local out = {}\n"
    "      for a, b in lib.gmatch(table.unpack(args)) do out[#out + 1] = tostring(a) .. '|' .. tostring(b) if #out > 50 then break end end\n"
    "      return table.concat(out, ',')\n"
    "    end))\n"
    "  end\n"
    "  return pack(pcall(lib[fn], ...))\n"
    "end\n"
    "local bad = {}\n"
    "local function check(fn, ...)\n"
    "  local a, b = run(stock, fn, ...), run(mine, fn, ...)\n"
    "  if not same(a, b) then\n"
    "    local args = {}\n"
    "    for i, v in ipairs({ ... }) do args[i] = string.format('%q', tostring(v)) end\n"
    "    bad[#bad + 1] = fn .. '(' .. table.concat(args, ', ') .. '): ' .. tostring(a[1]) .. ' vs ' .. tostring(b[1])\n"
    "  end\n"
    "end\n"
    "local cases = {\n"
    "  {'hello world', 'o w'}, {'hello world', 'l+'}, {'hello world', '^h'}, {'hello world', 'd$'},\n"
    "  {'hello', '^(h)(e)'}, {'hello', '()ll()'}, {'  trim  ', '^%s*(.-)%s*$'}, {'key=val', '(%w+)=(%w+)'},\n"
    "  {'THE (quick) fox', '%((%a+)%)'}, {'f(a(b)c)d', '%b()'}, {'THE (quick) fox', '%f[%a]%a+'},\n"
    "  {'abcabc', '(abc)%1'}, {'x]y', '[]]'}, {'x-y', '[a-]'}, {'a.b', '%.'}, {'a1b2', '[%d]'},\n"
    "  {'a1b2', '[^%d]+'}, {'aaa', 'a-b'}, {'aaab', 'a-b'}, {'aaa', 'a?a?a?aaa'}, {'', ''}, {'', '.*'},\n"
    "  {'abc', ''}, {'abc', 'x*'}, {'abc', '[a-c]+$'}, {'ab$c', '$c'}, {'a^b', 'a^'}, {'ab', '(a)(b)(c?)'},\n"
    "  {'abc', '%'}, {'abc', '[a'}, {'abc', '(a'}, {'abc', 'a)'}, {'abc', '%1'}, {'abc', '%f'}, {'abc', '%b'},\n"
    "  {'abc', '[%'}, {'abc', '%z'}, {'a\\0b', '%z'}, {'a\\0b', '[\\0]'}, {'AbC', '%u%l%U'}, {'x = 1', '%s*=%s*'},\n"
    "  {'<a><b>', '<(.-)>'}, {'<a><b>', '<(.*)>'}, {'hello', 'l', 3}, {'hello', 'l', -2}, {'hello', 'l', 10},\n"
    "  {'hello', 'l', -10}, {'hello', 'h', 0}, {'a+b', '+', 1, true}, {'a+b', '+'}, {'hello', '', 6}, {'hello', '', 7},\n"
    "}\n"
    "for _, c in ipairs(cases) do\n"
    "  check('find', table.unpack(c))\n"
    "  check('match', c[1], c[2], c[3])\n"
    "  check('gmatch', c[1], c[2], c[3])\n"
    "  check('gsub', c[1], c[2], '[%0]')\n"
    "  check('gsub', c[1], c[2], '<%1>')\n"
    "  check('gsub', c[1], c[2], function(x) return x and x:upper() end)\n"
    "  check('gsub', c[1], c[2], { a = 'A', l = false })\n"
    "  check('gsub', c[1], c[2], 'x', 1)\n"
    "end\n"
    "check('gsub', 'abc', '%w', '%2')\n"
    "check('gsub', 'abc', '%w', '%')\n"
    "check('gsub', 'abc', '%w', '%%')\n"
    "check('gsub', 'abc', '%w', function() return {} end)\n"
    "check('gsub', 'abc', '%w', true)\n"
    "check('gsub', 'hello world', '(o)', 12)\n"
    "check('gsub', 'abc', '', '-')\n"
    "check('gsub', 'abc', '^', '-')\n"
    "check('gsub', 'abc', 'b*', '-')\n"
    "check('gmatch', 'abc', 'b*')\n"
    "check('gmatch', 'one two', '%a+', 4)\n"
    "check('find', ('a'):rep(300), ('(a)'):rep(40))\n"
    "check('find', ('('):rep(300) .. ('a'), ('%('):rep(250))\n"
    "-- random patterns against random subjects\n"
    "local atoms = { 'a', 'b', '.', '%a', '%d', '%s', '[ab]', '[^a]', '[a-c]', '%%', '(', ')', '()', '%b()', '%f[%w]', '%1', '^', '$', 'x' }\n"
    "local quants = { '', '', '', '*', '+', '-', '?' }\n"
    "local chars = { 'a', 'b', 'c', '1', ' ', '(', ')', '%', 'x' }\n"
    "local seed = 7\n"
    "local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648 return seed % n + 1 end\n"
    "for _ = 1, 4000 do\n"
    "  local p, s = {}, {}\n"
    "  for _ = 1, rnd(6) do p[#p + 1] = atoms[rnd(#atoms)] .. quants[rnd(#quants)] end\n"
    "  for _ = 1, rnd(10) - 1 do s[#s + 1] = chars[rnd(#chars)] end\n"
    "  p, s = table.concat(p), table.concat(s)\n"
    "  check('find', s, p)\n"
    "  check('match', s, p)\n"
    "  check('gmatch', s, p)\n"
    "  check('gsub', s, p, '<%0>')\n"
    "end\n"
    "return table.concat(bad, '\\n'), #bad\n";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
    lua_State *L = luaL_newstate();
    static struct hooks fake;

    (void)guarded_copy; /* Lua copies every subject: nothing to guard here */
    *(struct hooks **)lua_getextraspace(L) = NULL;
    /* stock: a copy of the string library; loaded first, so the strings'
     * metatable ends up indexing the one the install changes */
    luaL_requiref(L, "stockstring", luaopen_string, 1);
    lua_pop(L, 1);
    luaL_openlibs(L);
    hooks_pattern_install(L);

    if (luaL_loadbuffer(L, compare_lua, sizeof compare_lua - 1, "=compare") != LUA_OK) {
        ok(0, "compare script loads: %s", lua_tostring(L, -1));
        return tap_done();
    }
    lua_getglobal(L, "stockstring");
    lua_getglobal(L, "string");
    if (lua_pcall(L, 2, 2, 0) != LUA_OK) {
        ok(0, "comparison ran: %s", lua_tostring(L, -1));
        return tap_done();
    }
    if (!ok(lua_tointeger(L, -1) == 0, "same results as Lua's own on every case"))
        printf("# %s\n", lua_tostring(L, -2));
    lua_pop(L, 2);

    /* The bomb from the report: with no hook running it completes... */
    *(struct hooks **)lua_getextraspace(L) = &fake;
    fake.running_phase = -1;
    ok(luaL_dostring(L, "return (('a'):rep(20)):find(('a?'):rep(20) .. ('a'):rep(20))") == LUA_OK,
       "outside a hook a pattern has no deadline");
    lua_settop(L, 0);

    /* ...and inside one it stops at the deadline. */
    fake.running_phase = 0;
    fake.timed_out = 0;
    fake.deadline = now() + 0.2;
    double t0 = now();
    int rc = luaL_dostring(L, "return (('a'):rep(30)):find(('a?'):rep(30) .. ('a'):rep(30))");
    double took = now() - t0;
    ok(rc != LUA_OK && strstr(lua_tostring(L, -1), "timed out") != NULL,
       "a backtracking pattern fails in a hook");
    ok(fake.timed_out, "the hook is marked as timed out (its pcall cannot keep it)");
    /* Generous: the machine is shared. The stock matcher takes a minute. */
    ok(took < 10, "it stopped soon after its deadline (%.2f s)", took);
    lua_settop(L, 0);

    fake.deadline = now() + 0.2;
    fake.timed_out = 0;
    rc = luaL_dostring(L, "return (('a'):rep(30)):gsub(('a?'):rep(30) .. ('a'):rep(30), 'x')");
    ok(rc != LUA_OK && fake.timed_out, "gsub is bounded too");
    lua_settop(L, 0);
    fake.deadline = now() + 0.2;
    fake.timed_out = 0;
    rc = luaL_dostring(L, "for x in (('a'):rep(30)):gmatch(('a?'):rep(30) .. ('a'):rep(30)) do end");
    ok(rc != LUA_OK && fake.timed_out, "gmatch is bounded too");
    lua_settop(L, 0);

    lua_close(L);
    return tap_done();
}
