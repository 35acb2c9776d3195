/*
 * hooks_lib.c - the natives behind proxy.*: what a script may ask of the
 * proxy (log, now, phase, ...). hooks_api.lua wraps them into the proxy
 * table the scripts see.
 */
#include "hooks_internal.h"

#include <ev.h>

#include "log.h"

static int native_log(lua_State *L)
{
    struct hooks *h = hooks_of(L);
    const char *msg = luaL_checkstring(L, 1);
    const char *name = h->current_script >= 0 && h->current_script < h->script_count
                           ? h->script_name[h->current_script]
                           : "script";
    log_info("[%s] %s", name, msg);
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
