/*
 * hooks_headers.c - the methods of a header list (tx.req.headers,
 * tx.res.headers) in C: get, values, set, add, remove and the list's
 * __index and __newindex.
 *
 * A header list stays what hooks_api.lua makes it, a flat Lua table with
 * the name of field i at 2i-1 and its value at 2i (the layout C hands over
 * and reads back), plus a "changed" mark under a key only hooks_api holds.
 * These functions work on that table in place: no table per field, no
 * lowered copy of each name to compare (names are compared byte by byte,
 * ASCII case folded), no pattern match to check a value, and no Lua
 * instructions run for a lookup or a change. What they accept and refuse
 * is the reference's (scripts/README.md, "Header lists").
 */
#include "hooks_internal.h"

#include "http_parse.h"

/* Upvalues of every function here. */
#define CHANGED_KEY lua_upvalueindex(1) /* the mark hooks_api looks for */
#define METHODS lua_upvalueindex(2)     /* name -> method, for __index */

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Whether field name <a> is <b>, regardless of ASCII case. */
static int name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (a[i] != b[i] && ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
            return 0;
    return 1;
}

/* The field name at <idx>, which must be a token (RFC 9110 5.1). */
static const char *check_name(lua_State *L, int idx, size_t *len)
{
    const char *name = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, len) : NULL;
    int ok = name && *len > 0;
    for (size_t i = 0; ok && i < *len; i++)
        ok = http_is_tchar((unsigned char)name[i]);
    if (!ok) {
        luaL_tolstring(L, idx, NULL);
        luaL_error(L, "invalid header name %s", lua_tostring(L, -1));
    }
    return name;
}

/* Replaces the value at <idx> by what is sent: a number as its string,
 * spaces and tabs around it removed. A value with CR, LF or NUL would
 * split the head, and is an error. */
static void check_value(lua_State *L, int idx)
{
    size_t len, start = 0;
    const char *v;
    int t = lua_type(L, idx);

    if (t == LUA_TNUMBER) {
        luaL_tolstring(L, idx, NULL);
        lua_replace(L, idx);
    } else if (t != LUA_TSTRING) {
        luaL_error(L, "a header value must be a string, got %s", lua_typename(L, t));
    }
    v = lua_tolstring(L, idx, &len);
    for (size_t i = 0; i < len; i++)
        if (v[i] == '\0' || v[i] == '\r' || v[i] == '\n')
            luaL_error(L, "a header value must not contain CR, LF or NUL");
    while (start < len && (v[start] == ' ' || v[start] == '\t'))
        start++;
    while (len > start && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (start > 0 || len < lua_rawlen(L, idx)) {
        lua_pushlstring(L, v + start, len - start);
        lua_replace(L, idx);
    }
}

static void mark_changed(lua_State *L)
{
    lua_pushvalue(L, CHANGED_KEY);
    lua_pushboolean(L, 1);
    lua_rawset(L, 1);
}

/* Whether the name of field <i> (1-based index of a name) is <key>. */
static int field_is(lua_State *L, lua_Integer i, const char *key, size_t klen)
{
    size_t flen;
    const char *fname;
    int eq;
    lua_rawgeti(L, 1, i);
    fname = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &flen) : NULL;
    eq = fname && name_eq(fname, flen, key, klen);
    lua_pop(L, 1);
    return eq;
}

/* h:get(name): the value, the values joined with ", ", or nil. */
static int headers_get(lua_State *L)
{
    size_t klen;
    const char *key;
    lua_Integer n;
    int found = 0;
    luaL_Buffer b;

    luaL_checktype(L, 1, LUA_TTABLE);
    key = check_name(L, 2, &klen);
    n = (lua_Integer)lua_rawlen(L, 1);
    for (lua_Integer i = 1; i <= n; i += 2) {
        if (!field_is(L, i, key, klen))
            continue;
        if (found == 1) {
            /* a second one: join them (the first is on the stack) */
            luaL_buffinit(L, &b);
            lua_pushvalue(L, -2);
            luaL_addvalue(&b);
        }
        if (found >= 1) {
            luaL_addstring(&b, ", ");
            if (lua_rawgeti(L, 1, i + 1) != LUA_TSTRING) /* only rawset puts one there */
                return luaL_error(L, "invalid value in the header list");
            luaL_addvalue(&b);
        } else {
            lua_rawgeti(L, 1, i + 1);
        }
        found++;
    }
    if (found == 0)
        lua_pushnil(L);
    else if (found > 1)
        luaL_pushresult(&b);
    return 1;
}

/* h:values(name): a list of the values of every field <name>. */
static int headers_values(lua_State *L)
{
    size_t klen;
    const char *key;
    lua_Integer n, count = 0;

    luaL_checktype(L, 1, LUA_TTABLE);
    key = check_name(L, 2, &klen);
    n = (lua_Integer)lua_rawlen(L, 1);
    lua_newtable(L);
    for (lua_Integer i = 1; i <= n; i += 2) {
        if (!field_is(L, i, key, klen))
            continue;
        lua_rawgeti(L, 1, i + 1);
        lua_rawseti(L, -2, ++count);
    }
    return 1;
}

/* count(h, name): how many fields <name> there are (hooks_api's check
 * for exactly one Host, without the list h:values makes). */
static int headers_count(lua_State *L)
{
    size_t klen;
    const char *key;
    lua_Integer n, count = 0;

    luaL_checktype(L, 1, LUA_TTABLE);
    key = check_name(L, 2, &klen);
    n = (lua_Integer)lua_rawlen(L, 1);
    for (lua_Integer i = 1; i <= n; i += 2)
        count += field_is(L, i, key, klen);
    lua_pushinteger(L, count);
    return 1;
}

/* h:add(name, value): one more field at the end. */
static int headers_add(lua_State *L)
{
    lua_Integer n;
    size_t klen;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 3);
    check_name(L, 2, &klen);
    check_value(L, 3);
    mark_changed(L);
    n = (lua_Integer)lua_rawlen(L, 1);
    lua_pushvalue(L, 2);
    lua_rawseti(L, 1, n + 1);
    lua_pushvalue(L, 3);
    lua_rawseti(L, 1, n + 2);
    return 0;
}

/* h:set(name, value): one field <name> with <value> where the first one
 * was (else at the end), or none when <value> is nil. Fields only move
 * when one before them was removed. */
static int headers_set(lua_State *L)
{
    size_t klen;
    const char *key;
    lua_Integer n, out = 0;
    int has_value, placed = 0;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 3);
    key = check_name(L, 2, &klen);
    has_value = !lua_isnil(L, 3);
    if (has_value)
        check_value(L, 3);
    mark_changed(L);
    n = (lua_Integer)lua_rawlen(L, 1);
    for (lua_Integer i = 1; i <= n; i += 2) {
        int match = field_is(L, i, key, klen);
        if (!match) {
            if (out != i - 1) {
                lua_rawgeti(L, 1, i);
                lua_rawseti(L, 1, out + 1);
                lua_rawgeti(L, 1, i + 1);
                lua_rawseti(L, 1, out + 2);
            }
            out += 2;
        } else if (has_value && !placed) {
            if (out != i - 1) {
                lua_rawgeti(L, 1, i);
                lua_rawseti(L, 1, out + 1);
            }
            lua_pushvalue(L, 3);
            lua_rawseti(L, 1, out + 2);
            out += 2;
            placed = 1;
        }
    }
    for (lua_Integer i = n; i > out; i--) {
        lua_pushnil(L);
        lua_rawseti(L, 1, i);
    }
    if (has_value && !placed) {
        lua_pushvalue(L, 2);
        lua_rawseti(L, 1, out + 1);
        lua_pushvalue(L, 3);
        lua_rawseti(L, 1, out + 2);
    }
    return 0;
}

/* h:remove(name) */
static int headers_remove(lua_State *L)
{
    lua_settop(L, 2);
    lua_pushnil(L);
    return headers_set(L);
}

/* h.name / h["Name"]: a method, else the field's value. */
static int headers_index(lua_State *L)
{
    lua_pushvalue(L, 2);
    if (lua_rawget(L, METHODS) != LUA_TNIL)
        return 1;
    if (lua_type(L, 2) != LUA_TSTRING)
        return 1; /* nil */
    lua_settop(L, 2);
    return headers_get(L);
}

/* h["Name"] = value */
static int headers_newindex(lua_State *L)
{
    if (lua_type(L, 2) != LUA_TSTRING)
        return luaL_error(L, "header names are strings");
    return headers_set(L);
}

/* native.header_functions(changed_key, methods): the functions above, as
 * get, values, set, add, remove, __index, __newindex, count. */
static int header_functions(lua_State *L)
{
    static const lua_CFunction fns[] = {headers_get,    headers_values, headers_set,
                                        headers_add,    headers_remove, headers_index,
                                        headers_newindex, headers_count};
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        lua_pushvalue(L, 1);
        lua_pushvalue(L, 2);
        lua_pushcclosure(L, fns[i], 2);
    }
    return (int)(sizeof fns / sizeof fns[0]);
}

void hooks_headers_register(lua_State *L)
{
    lua_pushcfunction(L, header_functions);
    lua_setfield(L, -2, "header_functions");
}
