/*
 * hooks_stdlib.c - the standard library functions whose running time a
 * script's arguments can stretch past any input and any memory cap,
 * replaced by versions the hook's time budget reaches.
 *
 * The budget stops Lua code through a debug hook, which never fires
 * inside a C function. Most library functions do work in proportion to
 * their inputs, or to what they build (which --lua-memory caps); these do
 * not:
 *
 *   string.rep("", 1e15)         returns "" after 10^15 empty copies
 *   table.move({}, 1, 2^62, 2)   moves 2^62 nils, allocating nothing
 *   table.insert/remove          shift up to #t elements, and __len may
 *                                say anything
 *   table.concat                 the same with __index from C, adding ""
 *   table.sort                   n log n comparisons, n from __len
 *   load(reader)                 calls the reader until it says stop
 *
 * string.rep answers at once when its result is empty; the table
 * functions count their steps (hooks_watch_spend) and raise the usual
 * timeout error past the budget; load's reader looks at the budget before
 * each piece. They are written from the Lua 5.4 manual and behave as
 * Lua's own do otherwise (table.sort is Lua's, given a comparison that
 * counts). The coroutines' __close metamethods are hooks_watch.c's.
 *
 * debug.sethook is refused: Lua runs a debug hook with hooks off, so no
 * time limit reaches an endless one (the same reason as for __gc, see
 * hooks_lib.c). load takes text only, and the debug functions that reach
 * the registry or other functions' upvalues are taken away (see
 * debug_refused).
 */
#include "hooks_internal.h"

#include <limits.h>
#include <string.h>

/* What an object must offer to be used as a table (Lua's rule: a table,
 * or anything whose metatable has these metamethods). */
#define TAB_READ 1
#define TAB_WRITE 2
#define TAB_LEN 4

static int has_metafield(lua_State *L, const char *name)
{
    int found = lua_getfield(L, -1, name) != LUA_TNIL; /* the metatable is on top */
    lua_pop(L, 1);
    return found;
}

/* Raises the usual "table expected" unless argument <arg> is a table or
 * offers the metamethods <what> asks for. */
static void check_table(lua_State *L, int arg, int what)
{
    int ok;
    if (lua_type(L, arg) == LUA_TTABLE)
        return;
    ok = lua_getmetatable(L, arg) &&
         (!(what & TAB_READ) || has_metafield(L, "__index")) &&
         (!(what & TAB_WRITE) || has_metafield(L, "__newindex")) &&
         (!(what & TAB_LEN) || has_metafield(L, "__len"));
    if (ok) {
        lua_pop(L, 1);
        return;
    }
    luaL_checktype(L, arg, LUA_TTABLE); /* raises */
}

/* #t of argument 1, after checking it offers <what>. */
static lua_Integer table_length(lua_State *L, int what)
{
    check_table(L, 1, what | TAB_LEN);
    return luaL_len(L, 1);
}

/* ---- string.rep ------------------------------------------------------------- */

/* Lua's string.rep (upvalue 1), except that an empty result is returned
 * at once: Lua copies "" n times to make it. A result with any byte in it
 * is as long as the copies, so --lua-memory bounds its time. */
static int string_rep(lua_State *L)
{
    /* The longest result Lua's string.rep makes (its MAXSIZE) */
    const size_t max = sizeof(size_t) < sizeof(int) ? (size_t)-1 : (size_t)INT_MAX;
    size_t len, sep_len;
    luaL_checklstring(L, 1, &len);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &sep_len);
    if (n <= 0 || len + sep_len == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    /* Here rather than in Lua's, where the message would not say where
     * the call is. */
    if (len + sep_len < len || len + sep_len > max / (size_t)n)
        return luaL_error(L, "resulting string too large");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* ---- table ------------------------------------------------------------------- */

/* table.insert(list, [pos,] value) */
static int table_insert(lua_State *L)
{
    lua_Integer end = table_length(L, TAB_READ | TAB_WRITE);
    lua_Integer pos;

    end = (lua_Integer)((lua_Unsigned)end + 1); /* the first empty slot; wraps as Lua's does */
    switch (lua_gettop(L)) {
    case 2:
        pos = end;
        break;
    case 3:
        pos = luaL_checkinteger(L, 2);
        /* 1 <= pos <= end, compared unsigned so that no sum overflows */
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)end, 2, "position out of bounds");
        for (lua_Integer i = end; i > pos; i--) { /* t[i] = t[i - 1] */
            hooks_watch_spend(L, 1, "table.insert");
            lua_geti(L, 1, i - 1);
            lua_seti(L, 1, i);
        }
        break;
    default:
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos); /* the value, on top */
    return 0;
}

/* table.remove(list [, pos]) */
static int table_remove(lua_State *L)
{
    lua_Integer size = table_length(L, TAB_READ | TAB_WRITE);
    lua_Integer pos = luaL_optinteger(L, 2, size);

    if (pos != size) /* 1 <= pos <= size + 1 */
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 1, "position out of bounds");
    lua_geti(L, 1, pos); /* the result */
    for (; pos < size; pos++) { /* t[pos] = t[pos + 1] */
        hooks_watch_spend(L, 1, "table.remove");
        lua_geti(L, 1, pos + 1);
        lua_seti(L, 1, pos);
    }
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    return 1;
}

/* table.move(a1, f, e, t [, a2]): a2[t..] = a1[f..e], in an order that
 * reads every element before it is overwritten. */
static int table_move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    lua_Integer t = luaL_checkinteger(L, 4);
    int to = lua_isnoneornil(L, 5) ? 1 : 5;

    check_table(L, 1, TAB_READ);
    check_table(L, to, TAB_WRITE);
    if (e >= f) {
        lua_Integer n;
        luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
        n = e - f + 1;
        luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
        if (t > e || t <= f || (to != 1 && !lua_rawequal(L, 1, to))) {
            for (lua_Integer i = 0; i < n; i++) {
                hooks_watch_spend(L, 1, "table.move");
                lua_geti(L, 1, f + i);
                lua_seti(L, to, t + i);
            }
        } else { /* overlapping, moving up: from the end */
            for (lua_Integer i = n - 1; i >= 0; i--) {
                hooks_watch_spend(L, 1, "table.move");
                lua_geti(L, 1, f + i);
                lua_seti(L, to, t + i);
            }
        }
    }
    lua_pushvalue(L, to);
    return 1;
}

/* Adds list[i] (argument 1) to <b>: a string or a number, else an error. */
static void add_element(lua_State *L, luaL_Buffer *b, lua_Integer i)
{
    lua_geti(L, 1, i);
    if (!lua_isstring(L, -1))
        luaL_error(L, "invalid value (%s) at index %I in table for 'concat'", luaL_typename(L, -1),
                   (LUAI_UACINT)i);
    luaL_addvalue(b);
}

/* table.concat(list [, sep [, i [, j]]]) */
static int table_concat(lua_State *L)
{
    luaL_Buffer b;
    size_t sep_len;
    lua_Integer last = table_length(L, TAB_READ);
    const char *sep = luaL_optlstring(L, 2, "", &sep_len);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    last = luaL_opt(L, luaL_checkinteger, 4, last);

    luaL_buffinit(L, &b);
    for (; i < last; i++) {
        hooks_watch_spend(L, 1, "table.concat");
        add_element(L, &b, i);
        luaL_addlstring(&b, sep, sep_len);
    }
    if (i == last) /* the last one, unless the range was empty */
        add_element(L, &b, i);
    luaL_pushresult(&b);
    return 1;
}

/* The comparison table.sort is given: the script's (upvalue 1), or `<`
 * when it gave none, counted. Every step of Lua's sort makes one. */
static int sort_compare(lua_State *L)
{
    hooks_watch_spend(L, 1, "table.sort");
    if (lua_isnil(L, lua_upvalueindex(1))) {
        lua_pushboolean(L, lua_compare(L, 1, 2, LUA_OPLT));
        return 1;
    }
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

/* table.sort(list [, comp]): Lua's (upvalue 1), with sort_compare. */
static int table_sort(lua_State *L)
{
    check_table(L, 1, TAB_READ | TAB_WRITE | TAB_LEN);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    lua_pushcclosure(L, sort_compare, 1);      /* +2 list compare */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);                          /* +3 sort list compare */
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        /* Lua's sort names the caller's line in this one; called from
         * here, it could not. */
        if (lua_type(L, -1) == LUA_TSTRING &&
            strcmp(lua_tostring(L, -1), "invalid order function for sorting") == 0) {
            luaL_where(L, 1);
            lua_insert(L, -2);
            lua_concat(L, 2);
        }
        return lua_error(L);
    }
    return 0;
}

/* ---- load --------------------------------------------------------------------- */

/* The piece the reader returned last is kept in this stack slot while the
 * parser reads it (load's arguments are at 1 to 4). */
#define LOAD_PIECE 5

/* Lua does not check precompiled chunks, and a crafted one can crash the
 * interpreter (the manual says so): a script may load text only. */
#define BINARY_REFUSED "attempt to load a binary chunk (scripts may load text chunks only)"

/* lua_Reader for load(reader): calls the reader (argument 1), after a
 * look at the budget. *<ud> is set until the first piece has been seen:
 * a binary chunk is refused there. */
static const char *read_piece(lua_State *L, void *ud, size_t *size)
{
    const char *piece;
    int *first = ud;
    hooks_watch_check(L, "load");
    luaL_checkstack(L, 2, "too many nested functions");
    lua_pushvalue(L, 1);
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        *size = 0;
        return NULL;
    }
    if (!lua_isstring(L, -1))
        luaL_error(L, "reader function must return a string");
    lua_replace(L, LOAD_PIECE);
    piece = lua_tolstring(L, LOAD_PIECE, size);
    if (*first && *size > 0) {
        *first = 0;
        if (piece[0] == LUA_SIGNATURE[0])
            luaL_error(L, BINARY_REFUSED);
    }
    return piece;
}

/* load(chunk [, chunkname [, mode [, env]]]), for text chunks only (see
 * BINARY_REFUSED); otherwise as Lua's own. */
static int guarded_load(lua_State *L)
{
    size_t len;
    const char *text = lua_tolstring(L, 1, &len);
    const char *mode = luaL_optstring(L, 3, "bt");
    int env = lua_isnone(L, 4) ? 0 : 4;
    int status, first = 1;

    if (text && len > 0 && text[0] == LUA_SIGNATURE[0]) {
        luaL_pushfail(L);
        lua_pushliteral(L, BINARY_REFUSED);
        return 2;
    }
    if (text) {
        const char *name = luaL_optstring(L, 2, text);
        status = luaL_loadbufferx(L, text, len, name, mode);
    } else {
        const char *name = luaL_optstring(L, 2, "=(load)");
        luaL_checktype(L, 1, LUA_TFUNCTION);
        lua_settop(L, LOAD_PIECE);
        status = lua_load(L, read_piece, &first, name, mode);
    }
    if (status != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2; /* fail and the message */
    }
    if (env) { /* the chunk's first upvalue is its _ENV */
        lua_pushvalue(L, env);
        if (!lua_setupvalue(L, -2, 1))
            lua_pop(L, 1);
    }
    return 1;
}

/* ---- debug.sethook -------------------------------------------------------------- */

static int refused_sethook(lua_State *L)
{
    return luaL_error(L, "debug.sethook cannot be used in a script (Lua runs a debug hook where "
                         "no time limit reaches it)");
}

/* ---- the debug library ------------------------------------------------------ */

/* What a script may not have of the debug library: the registry, where the
 * proxy keeps its own references (a script that replaced one could make
 * the C code meet a value it does not expect), and the functions that
 * reach into other functions' upvalues and locals (the guarded functions
 * above keep the originals as upvalues: getupvalue would hand them out).
 * traceback, getinfo, getlocal, getmetatable and the guarded setmetatable
 * stay, for debugging a script. */
static const char *const debug_refused[] = {
    "getregistry", "getupvalue", "setupvalue", "upvalueid", "upvaluejoin", "setlocal",
    "getuservalue", "setuservalue", "setcstacklimit", NULL,
};

/*
 * debug.getinfo and debug.getlocal, without the proxy's C functions and
 * what their frames hold. The proxy runs a script's code below C
 * functions of its own (a hook below call_hook, the coroutine's main
 * function; a metamethod below a protected call that reads a tx), which
 * take their arguments on trust (a light userdata as the session), and
 * getinfo's func would hand them to the script to call with anything:
 * getinfo leaves func out for a C function. getlocal reads no C frame (its
 * "locals" are the values the C function pushed). Both run the original,
 * an upvalue, with a stack level one deeper: this wrapper is a level.
 */

/* The original function (upvalue 1) called with this call's arguments,
 * the stack level among them shifted past this wrapper, all its results.
 * Sets *<c_frame> when that level is a C function's frame. */
static void call_original(lua_State *L, int *c_frame)
{
    int n = lua_gettop(L), level_at = 1;
    lua_State *of = L;
    lua_Debug ar;

    if (lua_type(L, 1) == LUA_TTHREAD) {
        of = lua_tothread(L, 1);
        level_at = 2;
    }
    *c_frame = 0;
    if (lua_isinteger(L, level_at)) {
        lua_Integer level = lua_tointeger(L, level_at);
        /* Here, level 0 is this wrapper, as the original's 0 is itself to
         * its caller: the level names the same frame. */
        if (level >= 0 && level < INT_MAX && lua_getstack(of, (int)level, &ar) &&
            lua_getinfo(of, "S", &ar) && strcmp(ar.what, "C") == 0)
            *c_frame = 1;
        if (of == L && level >= 0 && level < INT_MAX) {
            lua_pushinteger(L, level + 1);
            lua_replace(L, level_at);
        }
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
}

static int guarded_getinfo(lua_State *L)
{
    int c_frame;

    call_original(L, &c_frame);
    lua_settop(L, 1);
    if (lua_type(L, 1) == LUA_TTABLE) {
        if (lua_getfield(L, 1, "func") == LUA_TFUNCTION && lua_iscfunction(L, -1)) {
            lua_pushnil(L);
            lua_setfield(L, 1, "func");
        }
        lua_pop(L, 1);
    }
    return 1;
}

/* (debug.getlocal(f, n), with a function for a level, gives the names of
 * a Lua function's parameters only, no values.) */
static int guarded_getlocal(lua_State *L)
{
    int c_frame;

    call_original(L, &c_frame);
    if (c_frame) {
        lua_settop(L, 0);
        lua_pushnil(L);
        return 1;
    }
    return lua_gettop(L);
}

/* ---- installing --------------------------------------------------------------- */

/* <lib>.<name> = a closure of <fn> over the function it replaces. */
static void wrap(lua_State *L, const char *lib, const char *name, lua_CFunction fn)
{
    lua_getglobal(L, lib);           /* +1 lib */
    lua_getfield(L, -1, name);       /* +2 lib original */
    lua_pushcclosure(L, fn, 1);      /* +2 lib replacement */
    lua_setfield(L, -2, name);       /* +1 lib */
    lua_pop(L, 1);
}

static void set(lua_State *L, const char *lib, const char *name, lua_CFunction fn)
{
    lua_getglobal(L, lib);
    lua_pushcfunction(L, fn);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

void hooks_stdlib_install(lua_State *L)
{
    wrap(L, "string", "rep", string_rep); /* strings' methods too: their __index is this table */
    set(L, "table", "insert", table_insert);
    set(L, "table", "remove", table_remove);
    set(L, "table", "move", table_move);
    set(L, "table", "concat", table_concat);
    wrap(L, "table", "sort", table_sort);
    lua_pushcfunction(L, guarded_load);
    lua_setglobal(L, "load");
    set(L, "debug", "sethook", refused_sethook);
    wrap(L, "debug", "getinfo", guarded_getinfo);
    wrap(L, "debug", "getlocal", guarded_getlocal);
    lua_getglobal(L, "debug");
    for (const char *const *name = debug_refused; *name; name++) {
        lua_pushnil(L);
        lua_setfield(L, -2, *name);
    }
    lua_pop(L, 1);
}
