/*
 * hooks_lib.c - the natives behind proxy.*: what a script may ask of the
 * proxy (log, now, phase, ...). hooks_api.lua wraps them into the proxy
 * table the scripts see.
 */
#include "hooks_internal.h"

#include <ev.h>

#include "log.h"
#include "session.h"

static int native_log(lua_State *L)
{
    struct hooks *h = hooks_of(L);
    const char *msg = luaL_checkstring(L, 1);
    const char *name = h->current_script >= 0 && h->current_script < h->script_count
                           ? h->script_name[h->current_script]
                           : "script";
    log_info("[%s] %s", name, msg);
    if (h->current_session) {
        size_t len;
        lua_tolstring(L, 1, &len);
        flows_record_log(h->current_session->x.flow, name, msg, len);
    }
    return 0;
}

static int native_now(lua_State *L)
{
    lua_pushnumber(L, ev_time());
    return 1;
}

static int native_phase(lua_State *L)
{
    struct hooks *h = hooks_of(L);
    lua_pushstring(L, h->running_phase >= 0 ? hooks_phase_names[h->running_phase] : "");
    return 1;
}

static int native_responded(lua_State *L)
{
    hooks_of(L)->responded = 1;
    return 0;
}

/* os.exit would end the worker (the whole proxy with --workers 1): in a
 * hook it fails that exchange, at a script's top level it fails the load. */
static int guarded_exit(lua_State *L)
{
    return luaL_error(L, "os.exit cannot be used in a script (it would stop the proxy)");
}

/* os.execute and io.popen wait for another program: fine while a script
 * loads, but in a hook every client of the worker would wait too. The
 * original function is upvalue 1, its name upvalue 2. */
static int guarded_blocking(lua_State *L)
{
    if (hooks_of(L) && hooks_of(L)->running_phase >= 0)
        return luaL_error(L, "%s cannot be used in a hook (it would block every client)",
                          lua_tostring(L, lua_upvalueindex(2)));
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static void guard(lua_State *L, const char *lib, const char *name)
{
    lua_getglobal(L, lib);                       /* +1 lib */
    lua_getfield(L, -1, name);                   /* +2 lib fn */
    lua_pushfstring(L, "%s.%s", lib, name);      /* +3 lib fn name */
    lua_pushcclosure(L, guarded_blocking, 2);    /* +2 lib guarded */
    lua_setfield(L, -2, name);                   /* +1 lib */
    lua_pop(L, 1);
}

void hooks_lib_guard(lua_State *L)
{
    lua_getglobal(L, "os");
    lua_pushcfunction(L, guarded_exit);
    lua_setfield(L, -2, "exit");
    lua_pop(L, 1);
    guard(L, "os", "execute");
    guard(L, "io", "popen");
}

void hooks_lib_push(lua_State *L)
{
    lua_createtable(L, 0, 5);
    lua_pushcfunction(L, native_log);
    lua_setfield(L, -2, "log");
    lua_pushcfunction(L, native_now);
    lua_setfield(L, -2, "now");
    lua_pushcfunction(L, native_phase);
    lua_setfield(L, -2, "phase");
    lua_pushcfunction(L, native_responded);
    lua_setfield(L, -2, "responded");
    lua_pushstring(L, LUAPROXY_VERSION);
    lua_setfield(L, -2, "version");
}
