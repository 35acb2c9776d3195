/*
 * hooks_lib.c - the natives behind proxy.*: what a script may ask of the
 * proxy (log, now, phase, ...). hooks_api.lua wraps them into the proxy
 * table the scripts see.
 */
#include "hooks_internal.h"

#include <ev.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "headers.h"
#include "http_client.h"
#include "log.h"
#include "session.h"
#include "shared_store.h"

void hooks_log_line(struct hooks *h, const char *msg, size_t len)
{
    /* script_name is set before a script's top level runs, script_count
     * only once it has loaded: a line logged while loading names it too. */
    const char *name = h->current_script >= 0 && h->current_script < CONFIG_MAX_SCRIPTS &&
                               h->script_name[h->current_script]
                           ? h->script_name[h->current_script]
                           : "script";
    /* The log escapes what it is given, but reads a C string: a NUL
     * would hide the rest of the line, so it is escaped here first. */
    if (memchr(msg, '\0', len)) {
        char escaped[2048];
        size_t n = log_escape(escaped, sizeof escaped, msg, len, 0);
        log_info("[%s] %.*s", name, (int)n, escaped);
    } else {
        log_info("[%s] %.*s", name, (int)len, msg);
    }
    if (h->current_session)
        flows_record_log(h->current_session->x.flow, name, msg, len);
}

static int native_log(lua_State *L)
{
    size_t len;
    const char *msg = luaL_checklstring(L, 1, &len);
    hooks_log_line(hooks_of(L), msg, len);
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

/* native.can_wait(): whether the running code may wait here (proxy.sleep
 * asks before it yields): in a hook's own coroutine, not in one of the
 * script's, whose resume would take the yield for its own. */
static int native_can_wait(lua_State *L)
{
    lua_pushboolean(L, hooks_can_wait(L));
    return 1;
}

/* native.responded(tx): tx:respond on <tx>. Marks the running hook as
 * having answered, if <tx> is that of the exchange it serves; returns
 * whether it was. */
static int native_responded(lua_State *L)
{
    struct hooks *h = hooks_of(L);
    int ours = hooks_tx_is_of(L, 1, h->current_session);
    if (ours)
        h->responded = 1;
    lua_pushboolean(L, ours);
    return 1;
}

/* os.exit would end the worker (the whole proxy with --workers 1): in a
 * hook it fails that exchange, at a script's top level it fails the load. */
static int guarded_exit(lua_State *L)
{
    return luaL_error(L, "os.exit cannot be used in a script (it would stop the proxy)");
}

/* The guarded function's original (upvalue 1), called with the arguments
 * as given: returns what it returns. */
static int call_original(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* os.execute and io.popen wait for another program: fine while a script
 * loads, but in a hook every client of the worker would wait too. The
 * original function is upvalue 1, its name upvalue 2. */
static int guarded_blocking(lua_State *L)
{
    if (hooks_of(L) && hooks_of(L)->running_phase >= 0)
        return luaL_error(L, "%s cannot be used in a hook (it would block every client)",
                          lua_tostring(L, lua_upvalueindex(2)));
    return call_original(L);
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

/* os.setlocale, for reading only: the locale is the whole process's, and
 * one a script set (LC_NUMERIC "de_DE", say) would change how the proxy
 * writes every number from then on, for every exchange: "1,5" in header
 * values, in proxy.json's output and in the JSON access log. A query
 * (no locale, or nil) goes to the original, upvalue 1. */
static int guarded_setlocale(lua_State *L)
{
    if (!lua_isnoneornil(L, 1))
        return luaL_error(L, "os.setlocale cannot change the locale in a script (it is the "
                             "whole proxy's); os.setlocale() reads it");
    return call_original(L);
}

/* collectgarbage("collect") (the default), then one basic step: Lua 5.4.4
 * leaves the generational collector without a next target after a full
 * collection, and garbage then piles up for megabytes (see hooks_run.c).
 * The original function is upvalue 1. */
static int guarded_collectgarbage(lua_State *L)
{
    int full = lua_isnoneornil(L, 1) ||
               (lua_type(L, 1) == LUA_TSTRING && strcmp(lua_tostring(L, 1), "collect") == 0);
    int results = call_original(L);
    if (full)
        lua_gc(L, LUA_GCSTEP, 0);
    return results;
}

/* setmetatable and debug.setmetatable, refusing a metatable with __gc:
 * Lua runs finalizers with debug hooks off, so no time budget reaches one,
 * and an endless finalizer would hold the worker for good (the collector
 * may run it inside any hook, or between them). The original function is
 * upvalue 1. */
static int guarded_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        int has_gc = lua_rawget(L, 2) != LUA_TNIL;
        lua_pop(L, 1);
        if (has_gc)
            return luaL_error(L, "a metatable with __gc cannot be used in a script (a finalizer "
                                 "runs where no time limit reaches it)");
    }
    return call_original(L);
}

void hooks_lib_guard(lua_State *L)
{
    lua_getglobal(L, "setmetatable");
    lua_pushcclosure(L, guarded_setmetatable, 1);
    lua_setglobal(L, "setmetatable");
    lua_getglobal(L, "debug");
    lua_getfield(L, -1, "setmetatable");
    lua_pushcclosure(L, guarded_setmetatable, 1);
    lua_setfield(L, -2, "setmetatable");
    lua_pop(L, 1);
    lua_getglobal(L, "collectgarbage");
    lua_pushcclosure(L, guarded_collectgarbage, 1);
    lua_setglobal(L, "collectgarbage");
    lua_getglobal(L, "os");
    lua_pushcfunction(L, guarded_exit);
    lua_setfield(L, -2, "exit");
    lua_getfield(L, -1, "setlocale");
    lua_pushcclosure(L, guarded_setlocale, 1);
    lua_setfield(L, -2, "setlocale");
    lua_pop(L, 1);
    guard(L, "os", "execute");
    guard(L, "io", "popen");
}

/* ---- proxy.shared ------------------------------------------------------- */

static const char *const shared_ops[] = {"get", "set", "incr", "delete", NULL};

/* Pushes a stored value as the Lua type it was stored as. */
static void push_shared_value(lua_State *L, const struct shared_value *v)
{
    switch (v->type) {
    case SHARED_NIL: lua_pushnil(L); break;
    case SHARED_STRING: lua_pushlstring(L, v->s, v->len); break;
    case SHARED_INTEGER: lua_pushinteger(L, (lua_Integer)v->i); break;
    case SHARED_FLOAT: lua_pushnumber(L, v->f); break;
    case SHARED_BOOLEAN: lua_pushboolean(L, (int)v->i); break;
    }
}

/* What a set or delete answers: true; a get or incr: the value. */
static int push_shared_result(lua_State *L, enum shared_op op, enum shared_status status,
                              const struct shared_reply *reply)
{
    if (status == SHARED_FAILED) {
        lua_pushnil(L);
        lua_pushstring(L, reply->err);
        return 2;
    }
    if (op == SHARED_SET || op == SHARED_DELETE)
        lua_pushboolean(L, 1);
    else
        push_shared_value(L, &reply->value);
    return 1;
}

/* A call to Redis in flight for a waiting hook. */
struct shared_wait {
    struct session *s;
    enum shared_op op;
    struct shared_call *call;
    enum shared_status status; /* for the push, once it came back */
    struct shared_reply *reply;
};

static int push_shared_wait(lua_State *L)
{
    struct shared_wait *sw = lua_touserdata(L, 1);
    return push_shared_result(L, sw->op, sw->status, sw->reply);
}

static void on_shared_reply(void *arg, enum shared_status status, struct shared_reply *reply)
{
    struct shared_wait *sw = arg;
    sw->status = status;
    sw->reply = reply;
    sw->call = NULL;
    hooks_wake(sw->s, push_shared_wait, sw);
    free(sw);
}

static void cancel_shared_wait(void *arg)
{
    struct shared_wait *sw = arg;
    shared_call_cancel(sw->call);
    free(sw);
}

/* native.shared(op, key, value, ttl): the one entry of proxy.shared's
 * functions (hooks_api.lua checks the arguments' shapes). */
static int native_shared(lua_State *L)
{
    struct hooks *h = hooks_of(L);
    struct shared_request rq;
    struct shared_reply reply;
    struct shared_wait *sw = NULL;
    enum shared_status status;

    memset(&rq, 0, sizeof rq);
    rq.op = (enum shared_op)luaL_checkoption(L, 1, NULL, shared_ops);
    rq.key = luaL_checklstring(L, 2, &rq.key_len);
    switch (lua_type(L, 3)) {
    case LUA_TSTRING:
        rq.value.type = SHARED_STRING;
        rq.value.s = lua_tolstring(L, 3, &rq.value.len);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, 3)) {
            rq.value.type = SHARED_INTEGER;
            rq.value.i = (int64_t)lua_tointeger(L, 3);
        } else {
            rq.value.type = SHARED_FLOAT;
            rq.value.f = lua_tonumber(L, 3);
            if (!isfinite(rq.value.f))
                return luaL_error(L, "proxy.shared: numbers must be finite");
        }
        break;
    case LUA_TBOOLEAN:
        rq.value.type = SHARED_BOOLEAN;
        rq.value.i = lua_toboolean(L, 3);
        break;
    default:
        rq.value.type = SHARED_NIL;
        break;
    }
    rq.ttl = luaL_optnumber(L, 4, 0);
    if (!h->shared) {
        lua_pushnil(L);
        lua_pushstring(L, SHARED_ERR_UNAVAILABLE);
        return 2;
    }
    if (hooks_can_wait(L)) {
        sw = calloc(1, sizeof *sw);
        if (!sw)
            return luaL_error(L, "not enough memory");
        sw->s = h->current;
        sw->op = rq.op;
    }
    buffer_init(&reply.text);
    status = shared_store_call(h->shared, &rq, &reply, on_shared_reply, sw, sw ? &sw->call : NULL);
    if (status == SHARED_PENDING && !sw) {
        /* Cannot happen: a backend only goes pending with a place to report. */
        status = SHARED_FAILED;
        snprintf(reply.err, sizeof reply.err, "%s", SHARED_ERR_UNAVAILABLE);
    }
    if (status == SHARED_PENDING)
        return hooks_wait(L, cancel_shared_wait, sw, &sw->s);
    free(sw);
    /* Answered at once. Pushing may raise (memory): do it protected, so
     * the reply's buffer is freed either way. */
    {
        struct shared_wait done = {.op = rq.op, .status = status, .reply = &reply};
        int top = lua_gettop(L), rc;
        lua_pushcfunction(L, push_shared_wait);
        lua_pushlightuserdata(L, &done);
        rc = lua_pcall(L, 1, LUA_MULTRET, 0);
        buffer_free(&reply.text);
        if (rc != LUA_OK)
            return lua_error(L);
        return lua_gettop(L) - top;
    }
}

/* ---- proxy.http ------------------------------------------------------------ */

struct http_wait {
    struct session *s;
    struct http_call *call;
    const char *error;
    struct http_client_response *res;
};

/* Pushes res (a table) or nil and the error: the hook's results. */
static int push_http_result(lua_State *L)
{
    struct http_wait *hw = lua_touserdata(L, 1);
    struct http_client_response *res = hw->res;
    if (hw->error) {
        lua_pushnil(L);
        lua_pushstring(L, hw->error);
        return 2;
    }
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, res->status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, buffer_peek(&res->body), buffer_length(&res->body));
    lua_setfield(L, -2, "body");
    /* headers: lower-case names; repeated fields joined with ", " */
    lua_createtable(L, 0, (int)res->fields.count);
    for (size_t i = 0; i < res->fields.count; i++) {
        size_t nlen, vlen;
        const char *name = headers_name(&res->fields, i, &nlen);
        const char *value = headers_value(&res->fields, i, &vlen);
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (size_t k = 0; k < nlen; k++)
            luaL_addchar(&b, (char)(name[k] >= 'A' && name[k] <= 'Z' ? name[k] + 32 : name[k]));
        luaL_pushresult(&b);                            /* +1 name */
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TSTRING) {         /* +2 name old */
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, value, vlen);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, value, vlen);
        }
        lua_rawset(L, -3);
    }
    lua_setfield(L, -2, "headers");
    return 1;
}

static void on_http_done(void *arg, const char *error, struct http_client_response *res)
{
    struct http_wait *hw = arg;
    hw->error = error;
    hw->res = res;
    hw->call = NULL;
    hooks_wake(hw->s, push_http_result, hw);
    free(hw);
}

static void cancel_http_wait(void *arg)
{
    struct http_wait *hw = arg;
    http_call_cancel(hw->call);
    free(hw);
}

/* native.http(url, method, headers, body, timeout, max_body, proxy):
 * hooks_api.lua checks the shapes; headers is a list {n1, v1, n2, v2,
 * ...}; proxy is nil (--upstream's choice), false (directly) or a parent
 * proxy's URL. */
static int native_http(lua_State *L)
{
    struct hooks *h = hooks_of(L);
    struct http_client_request rq;
    struct headers fields;
    struct http_wait *hw;
    struct parent_proxy parent;
    char err[128];
    lua_Integer n;
    size_t url_len;

    memset(&rq, 0, sizeof rq);
    if (lua_type(L, 7) == LUA_TSTRING) {
        size_t proxy_len;
        const char *proxy_url = lua_tolstring(L, 7, &proxy_len);
        char why[160];
        /* parent_parse reads a C string: a NUL would leave a parent the
         * script did not name. */
        if (strlen(proxy_url) != proxy_len)
            return luaL_error(L, "proxy.http: proxy: the URL holds a NUL byte");
        if (parent_parse(proxy_url, &parent, why, sizeof why) != 0)
            return luaL_error(L, "proxy.http: proxy: %s", why);
        rq.parent = &parent;
    } else {
        rq.direct = lua_type(L, 7) == LUA_TBOOLEAN && !lua_toboolean(L, 7);
    }
    rq.url = luaL_checklstring(L, 1, &url_len);
    /* The client reads the URL as a C string: a NUL would cut it short,
     * and the call would go somewhere else than the script said (the
     * host before it, or the path before it). */
    if (strlen(rq.url) != url_len) {
        lua_pushnil(L);
        lua_pushstring(L, "invalid url (http://host[:port]/path or https://...)");
        return 2;
    }
    rq.method = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    if (!lua_isnil(L, 4))
        rq.body = luaL_checklstring(L, 4, &rq.body_len);
    rq.timeout = luaL_checknumber(L, 5);
    /* The body becomes a Lua string: it can never be longer than the
     * state's memory cap, and the C side buffers it until then (outside
     * that cap), so a larger max_body is taken as the cap. */
    {
        lua_Integer max_body = luaL_checkinteger(L, 6);
        rq.max_body = max_body < 0 ? 0
                      : (lua_Unsigned)max_body > h->mem_limit ? h->mem_limit
                                                              : (size_t)max_body;
        /* Every body ends up in this one state too: together, the calls
         * in flight can use no more. */
        rq.all_calls_max = h->mem_limit;
    }
    if (!hooks_can_wait(L)) {
        lua_pushnil(L);
        lua_pushstring(L, "proxy.http cannot wait here (not inside a hook, or inside a "
                          "coroutine of the script)");
        return 2;
    }
    hw = calloc(1, sizeof *hw);
    if (!hw)
        return luaL_error(L, "not enough memory");
    hw->s = h->current;
    headers_init(&fields);
    n = (lua_Integer)lua_rawlen(L, 3);
    for (lua_Integer i = 1; i + 1 <= n; i += 2) {
        size_t nlen, vlen;
        lua_rawgeti(L, 3, i);
        lua_rawgeti(L, 3, i + 1);
        const char *name = lua_tolstring(L, -2, &nlen);
        const char *value = lua_tolstring(L, -1, &vlen);
        if (name && value)
            headers_add(&fields, name, nlen, value, vlen);
        lua_pop(L, 2);
    }
    rq.fields = &fields;
    hw->call = http_client_start(h->current->proxy, &rq, on_http_done, hw, err, sizeof err);
    headers_free(&fields);
    if (!hw->call) {
        free(hw);
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return hooks_wait(L, cancel_http_wait, hw, &hw->s);
}

const char *hooks_string_arg(lua_State *L, int arg, const char *needs, size_t *len)
{
    if (lua_type(L, arg) != LUA_TSTRING)
        luaL_error(L, "%s, not %s", needs, luaL_typename(L, arg));
    return lua_tolstring(L, arg, len);
}

/* ---- the table -------------------------------------------------------------- */

void hooks_lib_push(lua_State *L)
{
    static const luaL_Reg natives[] = {
        {"log", native_log},
        {"now", native_now},
        {"phase", native_phase},
        {"can_wait", native_can_wait},
        {"responded", native_responded},
        {"request_of", hooks_tx_request_of},
        {"make_request", hooks_tx_make_request},
        {"shared", native_shared},
        {"http", native_http},
        {NULL, NULL},
    };
    lua_createtable(L, 0, 16);
    luaL_setfuncs(L, natives, 0);
    lua_pushstring(L, LUAPROXY_VERSION);
    lua_setfield(L, -2, "version");
    hooks_json_push(L);
    lua_setfield(L, -2, "json");
    hooks_base64_push(L);
    lua_setfield(L, -2, "base64");
    hooks_digest_register(L);
    hooks_address_register(L);
    hooks_headers_register(L);
    hooks_tx_register(L);
}
