/*
 * test_json.c - unit tests for proxy.json (hooks_json.c).
 *
 * A value encoded and decoded again is the same value, types included
 * (integers, floats, arrays marked as such), for a few thousand random
 * ones; JSON reads as lua-cjson reads it, and what is not JSON is
 * refused; and an encode that would write without end stops at the
 * hook's deadline.
 */
#include <time.h>

#include "hooks_internal.h"
#include "tap.h"

static const char round_trip_lua[] =
    "local J = ...\n"
    "local seed = 11\n"
    "local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648 return seed % n + 1 end\n"
    "local specials = { 0, -0.0, 1, -1, 0.1, 1e300, -1e-300, 5e-324, 2^53, 2^53 + 1, 2^63,\n"
    "  math.maxinteger, math.mininteger, 1732990000.123456, 100000000000001, 3.0, 1/3 }\n"
    "local function value(depth)\n"
    "  local k = rnd(depth > 3 and 6 or 8)\n"
    "  if k == 1 then return specials[rnd(#specials)]\n"
    "  elseif k == 2 then return (rnd(1 << 30) - (1 << 29)) * rnd(1 << 30)\n"
    "  elseif k == 3 then -- any finite float, from its bits\n"
    "    local d = string.unpack('d', string.pack('i8', rnd(1 << 31) * rnd(1 << 31) * rnd(4)))\n"
    "    return (d == d and d ~= math.huge and d ~= -math.huge) and d or 0.5\n"
    "  end\n"
    "  if k == 4 then\n"
    "    local b = {}\n"
    "    for i = 1, rnd(12) - 1 do b[i] = string.char(rnd(256) - 1) end\n"
    "    return table.concat(b) .. (rnd(2) == 1 and 'caf\\u{e9} \\u{1F600}' or '')\n"
    "  elseif k == 5 then return rnd(3) == 1 and J.null or rnd(2) == 1\n"
    "  elseif k == 6 then return ''\n"
    "  elseif k == 7 then\n"
    "    local t = setmetatable({}, J.array_mt)\n"
    "    for i = 1, rnd(5) - 1 do t[i] = value(depth + 1) end\n"
    "    return t\n"
    "  end\n"
    "  local t = {}\n"
    "  for _ = 1, rnd(5) - 1 do t['k' .. rnd(100)] = value(depth + 1) end\n"
    "  return t\n"
    "end\n"
    "local function same(a, b)\n"
    "  if type(a) ~= type(b) then return false end\n"
    "  if type(a) == 'number' then\n"
    "    if math.type(a) ~= math.type(b) then return false end\n"
    "    if a ~= a then return b ~= b end\n"
    "    return a == b and (a ~= 0 or 1 / a == 1 / b)\n"
    "  end\n"
    "  if type(a) ~= 'table' then return a == b end\n"
    "  if (getmetatable(a) == J.array_mt) ~= (getmetatable(b) == J.array_mt) then return false end\n"
    "  for k, v in pairs(a) do if not same(v, b[k]) then return false end end\n"
    "  for k in pairs(b) do if a[k] == nil then return false end end\n"
    "  return true\n"
    "end\n"
    "for i = 1, 3000 do\n"
    "  local v = value(0)\n"
    "  local ok, text = pcall(J.encode, v)\n"
    "  if not ok then return 'case ' .. i .. ': encode failed: ' .. text end\n"
    "  local back = J.decode(text)\n"
    "  if not same(v, back) then return 'case ' .. i .. ': ' .. text .. ' came back as ' .. J.encode(back) end\n"
    "  if J.encode(back) ~= text and not text:find('{', 1, true) then\n"
    "    return 'case ' .. i .. ': ' .. text .. ' is written again as ' .. J.encode(back)\n"
    "  end\n"
    "end\n"
    "return nil\n";

/* JSON texts (RFC 8259) lua-cjson and proxy.json both read, to the same
 * values; and texts that are not JSON, which proxy.json refuses (lua-cjson
 * takes some: 01, 1., +1, 0x10, Infinity, NaN, a raw line feed in a
 * string). */
static const char agree_lua[] =
    "local J = ...\n"
    "local ok_c, cjson = pcall(require, 'cjson')\n"
    "local valid = { '{}', '[]', '0', '-0', '-0.5e-3', '1E+2', '\"\\\\u0041\"', '[1,2,[3,{\"a\":null}]]',\n"
    "  '  {\"a\" : [ true , false ], \"b\": \"x\\\\/y\" }  ', '\"\\\\ud83d\\\\ude00\"', '123456789', '[0.25,-7]' }\n"
    "local invalid = { '01', '1.', '.1', '+1', '[1,]', '{\"a\":1,}', '{a:1}', \"'x'\", '\"\\\\x\"', '\"a\\nb\"',\n"
    "  'tru', 'nul', '[', ']', '{\"a\"}', '1 2', '--1', '1e', '1e+', '0x10', 'Infinity', '[NaN]', '\"\\\\u12\"',\n"
    "  '\"\\\\u123g\"', '{\"a\":1}}', '', '\"\\\\udc00\"' }\n"
    "local function same(a, b)\n"
    "  if type(a) == 'number' and type(b) == 'number' then return a == b end\n"
    "  if type(a) ~= 'table' or type(b) ~= 'table' then return a == b end\n"
    "  for k, v in pairs(a) do if not same(v, b[k]) then return false end end\n"
    "  for k in pairs(b) do if a[k] == nil then return false end end\n"
    "  return true\n"
    "end\n"
    "local bad = {}\n"
    "for _, t in ipairs(valid) do\n"
    "  local ok, v = pcall(J.decode, t)\n"
    "  if not ok then bad[#bad + 1] = string.format('%q refused: %s', t, v)\n"
    "  elseif ok_c and not same(cjson.decode(t), v) then bad[#bad + 1] = string.format('%q read otherwise', t) end\n"
    "end\n"
    "for _, t in ipairs(invalid) do\n"
    "  if pcall(J.decode, t) then bad[#bad + 1] = string.format('%q accepted', t) end\n"
    "end\n"
    "return #bad > 0 and table.concat(bad, '; ') or nil\n";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs <code> with proxy.json as its argument; what it returned, or the
 * error, in <out>. 1 when it returned nil. */
static int run(lua_State *L, const char *code, size_t len, char *out, size_t out_len)
{
    int clean;
    if (luaL_loadbuffer(L, code, len, "=test") != LUA_OK) {
        snprintf(out, out_len, "%s", lua_tostring(L, -1));
        lua_settop(L, 0);
        return 0;
    }
    lua_getglobal(L, "json");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        snprintf(out, out_len, "error: %s", lua_tostring(L, -1));
        lua_settop(L, 0);
        return 0;
    }
    clean = lua_isnil(L, -1);
    snprintf(out, out_len, "%s", clean ? "" : lua_tostring(L, -1));
    lua_settop(L, 0);
    return clean;
}

int main(void)
{
    lua_State *L = luaL_newstate();
    static struct hooks fake;
    char msg[2048];
    double t0;
    int rc;

    (void)guarded_copy;
    fake.running_phase = -1; /* no hook runs: no deadline */
    *(struct hooks **)lua_getextraspace(L) = &fake;
    luaL_openlibs(L);
    hooks_stdlib_install(L);
    hooks_json_push(L);
    lua_setglobal(L, "json");

    if (!ok(run(L, round_trip_lua, sizeof round_trip_lua - 1, msg, sizeof msg),
            "random values come back as they were, types included"))
        printf("# %s\n", msg);
    if (!ok(run(L, agree_lua, sizeof agree_lua - 1, msg, sizeof msg),
            "reads JSON as lua-cjson does, and refuses what is not JSON"))
        printf("# %s\n", msg);

    /* A table that holds another twice, forty levels deep: 2^40 values. */
    fake.running_phase = 0;
    fake.timed_out = 0;
    fake.deadline = now() + 0.2;
    t0 = now();
    rc = luaL_dostring(L, "local t = {} for _ = 1, 40 do t = { t, t } end return json.encode(t)");
    ok(rc != LUA_OK && strstr(lua_tostring(L, -1), "hook timed out in proxy.json.encode") &&
           fake.timed_out && now() - t0 < 10,
       "an encode that would write 2^40 values stops at the deadline");
    lua_settop(L, 0);
    lua_sethook(L, NULL, 0, 0);
    fake.running_phase = -1;

    ok(luaL_dostring(L, "return json.decode(string.rep('[', 100000))") != LUA_OK &&
           strstr(lua_tostring(L, -1), "nested too deep"),
       "decoding stops at 1000 levels");
    lua_settop(L, 0);

    lua_close(L);
    return tap_done();
}
