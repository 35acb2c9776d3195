/*
 * hooks.c - loading scripts and running their hooks for each exchange.
 *
 * Owns the Lua states. The relay calls in at fixed points (see hooks.h);
 * data crosses as copies: C builds the tx table before the first hook and
 * reads the changed fields back after each phase, so Lua never holds a C
 * pointer. Every Lua call that can raise an error (including "not enough
 * memory") runs inside lua_pcall or lua_resume, so a script can never
 * unwind through the relay.
 *
 * Safety nets, per state:
 *   - memory: the allocator refuses to go past --lua-memory;
 *   - time: a count hook ends a hook call that overruns --hook-timeout by
 *     yielding its coroutine out (uncatchable by the script's pcall);
 *   - errors: logged with a traceback; the exchange gets 500 (or, with
 *     --hook-errors open, the hook's changes are undone and it is skipped).
 */
#include "hooks.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "headers.h"
#include "log.h"
#include "message.h"
#include "proxy.h"
#include "session.h"

#include "hooks_api.h" /* generated from src/hooks_api.lua */

/* Instructions between two looks at the clock. */
#define COUNT_HOOK_INTERVAL 1000

static const char *const phase_names[HOOK_PHASE_COUNT] = {
    "on_request", "before_connect", "on_response", "on_response_chunk", "on_done",
};

/* A loaded set of scripts: one Lua state. */
struct hooks {
    lua_State *L;
    int refs;            /* the proxy's reference + one per exchange */
    size_t mem_used;
    size_t mem_limit;
    double budget;       /* seconds per hook call */
    enum hook_error_mode mode;
    struct ev_loop *loop;
    int api_ref;         /* the table hooks_api.lua returned */
    int script_count;
    int env_ref[CONFIG_MAX_SCRIPTS];
    const char *script_name[CONFIG_MAX_SCRIPTS];
    unsigned has[HOOK_PHASE_COUNT]; /* bit i: script i defines the hook */
    /* The hook call running now (the loop runs one at a time). */
    double deadline;
    int timed_out;
    int current_script;
    int running_phase;   /* enum hook_phase, or -1 */
    int responded;       /* tx:respond was called during this resume */
    /* Finished coroutines kept for the next hook call: creating a thread
     * per call is the largest fixed cost of a hook. */
    int idle_threads[16];
    int idle_count;
};

static double monotonic_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the Lua state ------------------------------------------------------ */

/* lua_Alloc with a cap: past it an allocation fails, which Lua turns into a
 * "not enough memory" error in the script that asked. */
static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct hooks *h = ud;
    size_t old = ptr ? osize : 0;
    void *p;

    if (nsize == 0) {
        free(ptr);
        h->mem_used -= old;
        return NULL;
    }
    if (nsize > old && h->mem_used + (nsize - old) > h->mem_limit)
        return NULL;
    p = realloc(ptr, nsize);
    if (!p)
        return NULL;
    h->mem_used = h->mem_used - old + nsize;
    return p;
}

static struct hooks *hooks_of(lua_State *L)
{
    return *(struct hooks **)lua_getextraspace(L);
}

/* Count hook: past the deadline, yield the coroutine out of the script. */
static void on_count(lua_State *L, lua_Debug *ar)
{
    struct hooks *h = hooks_of(L);
    (void)ar;
    if (monotonic_now() <= h->deadline)
        return;
    h->timed_out = 1;
    if (lua_isyieldable(L))
        lua_yield(L, 0); /* must be the hook's last action */
    else
        luaL_error(L, "hook timed out");
}

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
    lua_pushstring(L, h->running_phase >= 0 ? phase_names[h->running_phase] : "");
    return 1;
}

static int native_responded(lua_State *L)
{
    hooks_of(L)->responded = 1;
    return 0;
}

/* Pushes the function <name> of the internal API. */
static void push_api(lua_State *L, struct hooks *h, const char *name)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->api_ref);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
}

/* Pushes the API function <name> and the exchange's tx, its first
 * argument: the start of every call that moves data between C and Lua. */
static void push_api_tx(lua_State *L, const struct hook_state *hs, const char *name)
{
    push_api(L, hs->hooks, name);
    lua_rawgeti(L, LUA_REGISTRYINDEX, hs->tx_ref);
}

/* Whether <name> looks like a hook ("on_..." or "before_...") but is not. */
static int misspelt_hook(const char *name)
{
    if (strncmp(name, "on_", 3) != 0 && strncmp(name, "before_", 7) != 0)
        return 0;
    for (int i = 0; i < HOOK_PHASE_COUNT; i++)
        if (strcmp(name, phase_names[i]) == 0)
            return 0;
    return 1;
}

/* Runs inside lua_pcall: the API, then each script in its environment.
 * Upvalue-free; the struct hooks comes in as light userdata. */
static int setup_state(lua_State *L)
{
    struct hooks *h = lua_touserdata(L, 1);
    const struct config *cfg = lua_touserdata(L, 2);

    luaL_openlibs(L);
    if (luaL_loadbuffer(L, hooks_api_lua, sizeof hooks_api_lua - 1, "=hooks_api") != LUA_OK)
        return lua_error(L);
    lua_createtable(L, 0, 5);                      /* +1 native */
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
    lua_call(L, 1, 1);                             /* +1 api */
    h->api_ref = luaL_ref(L, LUA_REGISTRYINDEX);   /* 0 */

    for (int i = 0; i < cfg->script_count; i++) {
        h->current_script = i;
        /* Each script gets its own globals, falling back to the shared ones,
         * so two scripts can both define on_request. */
        lua_newtable(L);                           /* +1 env */
        lua_createtable(L, 0, 1);
        lua_pushglobaltable(L);
        lua_setfield(L, -2, "__index");
        lua_setmetatable(L, -2);
        if (luaL_loadfilex(L, cfg->scripts[i], "t") != LUA_OK) /* +2 chunk */
            return lua_error(L);
        lua_pushvalue(L, -2);
        lua_setupvalue(L, -2, 1);                  /* chunk's _ENV = env */
        lua_call(L, 0, 0);                         /* +1 env */
        for (int p = 0; p < HOOK_PHASE_COUNT; p++) {
            if (lua_getfield(L, -1, phase_names[p]) == LUA_TFUNCTION)
                h->has[p] |= 1u << i;
            lua_pop(L, 1);
        }
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {             /* warn about on_requset */
            if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TFUNCTION &&
                misspelt_hook(lua_tostring(L, -2)))
                log_warn("%s: '%s' looks like a hook but is not one (hooks are on_request, "
                         "before_connect, on_response, on_response_chunk, on_done)",
                         cfg->scripts[i], lua_tostring(L, -2));
            lua_pop(L, 1);
        }
        h->env_ref[i] = luaL_ref(L, LUA_REGISTRYINDEX); /* 0 */
        h->script_name[i] = cfg->scripts[i];
        h->script_count = i + 1;
    }
    h->current_script = -1;
    return 0;
}

static void hooks_unref(struct hooks *h)
{
    if (h && --h->refs == 0) {
        lua_close(h->L);
        free(h);
    }
}

/* Loads every script of <cfg> into a new state. NULL with <err>. */
static struct hooks *hooks_new(const struct config *cfg, struct ev_loop *loop, char *err,
                               size_t err_len)
{
    struct hooks *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    h->refs = 1;
    h->mem_limit = cfg->lua_memory;
    h->budget = cfg->hook_timeout;
    h->mode = cfg->hook_errors;
    h->loop = loop;
    h->current_script = -1;
    h->running_phase = -1;
    h->L = lua_newstate(capped_alloc, h);
    if (!h->L) {
        snprintf(err, err_len, "cannot create a Lua state");
        free(h);
        return NULL;
    }
    *(struct hooks **)lua_getextraspace(h->L) = h;
    lua_pushcfunction(h->L, setup_state);
    lua_pushlightuserdata(h->L, h);
    lua_pushlightuserdata(h->L, (void *)(uintptr_t)cfg);
    if (lua_pcall(h->L, 2, 0, 0) != LUA_OK) {
        const char *msg = lua_tostring(h->L, -1);
        snprintf(err, err_len, "%s", msg ? msg : "error loading scripts");
        hooks_unref(h);
        return NULL;
    }
    lua_gc(h->L, LUA_GCGEN, 0, 0); /* short-lived tx tables: generational GC suits */
    return h;
}

int hooks_load(struct proxy *p, char *err, size_t err_len)
{
    p->hooks = NULL;
    if (p->cfg->script_count == 0)
        return 0;
    p->hooks = hooks_new(p->cfg, p->loop, err, err_len);
    if (!p->hooks)
        return -1;
    for (int i = 0; i < p->cfg->script_count; i++)
        log_info("script loaded: %s", p->cfg->scripts[i]);
    return 0;
}

void hooks_reload(struct proxy *p)
{
    char err[1024];
    struct hooks *fresh;

    if (p->cfg->script_count == 0) {
        log_info("SIGHUP: no scripts to reload");
        return;
    }
    fresh = hooks_new(p->cfg, p->loop, err, sizeof err);
    if (!fresh) {
        log_error("reload failed, keeping the scripts in force: %s", err);
        return;
    }
    /* Exchanges in flight keep their reference to the old set. */
    hooks_unref(p->hooks);
    p->hooks = fresh;
    log_info("SIGHUP: %d script(s) reloaded", p->cfg->script_count);
}

void hooks_free(struct proxy *p)
{
    hooks_unref(p->hooks);
    p->hooks = NULL;
}

int hooks_try_load(const struct config *cfg, char *err, size_t err_len)
{
    struct hooks *h;
    if (cfg->script_count == 0)
        return 0;
    h = hooks_new(cfg, NULL, err, err_len);
    if (!h)
        return -1;
    hooks_unref(h);
    return 0;
}

int hooks_check(const struct config *cfg)
{
    int status = 0;

    for (int i = 0; i < cfg->script_count; i++) {
        struct config one = *cfg;
        char err[1024];
        struct hooks *h;
        one.scripts[0] = cfg->scripts[i];
        one.script_count = 1;
        /* Misspelt names are reported by setup_state as warnings; count
         * them by loading with a log watcher would be heavier than
         * checking again here. */
        h = hooks_new(&one, NULL, err, sizeof err);
        if (!h) {
            fprintf(stderr, "%s\n", err);
            status = 1;
            continue;
        }
        lua_State *L = h->L;
        int found = 0, problems = 0;
        lua_rawgeti(L, LUA_REGISTRYINDEX, h->env_ref[0]);
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TFUNCTION &&
                misspelt_hook(lua_tostring(L, -2))) {
                fprintf(stderr, "%s: '%s' is not a hook (hooks are on_request, before_connect, "
                                "on_response, on_response_chunk, on_done)\n",
                        cfg->scripts[i], lua_tostring(L, -2));
                problems++;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        for (int p = 0; p < HOOK_PHASE_COUNT; p++)
            found += h->has[p] != 0;
        if (problems)
            status = 1;
        else
            printf("%s: ok (%d hook%s)\n", cfg->scripts[i], found, found == 1 ? "" : "s");
        hooks_unref(h);
    }
    return status;
}

/* ---- per exchange --------------------------------------------------------- */

static void on_sleep_done(struct ev_loop *loop, ev_timer *w, int revents);

void hooks_exchange_begin(struct session *s)
{
    struct hook_state *hs = &s->x.hook;
    hs->hooks = s->proxy->hooks;
    hs->tx_ref = hs->co_ref = hs->snap_ref = LUA_NOREF;
    hs->co = NULL;
    hs->pending = 0;
    ev_init(&hs->sleep_timer, on_sleep_done);
    hs->sleep_timer.data = s;
    if (hs->hooks)
        hs->hooks->refs++;
}

void hooks_exchange_end(struct session *s)
{
    struct hook_state *hs = &s->x.hook;
    struct hooks *h = hs->hooks;
    if (!h)
        return;
    ev_timer_stop(s->proxy->loop, &hs->sleep_timer);
    luaL_unref(h->L, LUA_REGISTRYINDEX, hs->tx_ref);
    luaL_unref(h->L, LUA_REGISTRYINDEX, hs->co_ref);
    luaL_unref(h->L, LUA_REGISTRYINDEX, hs->snap_ref);
    hs->tx_ref = hs->co_ref = hs->snap_ref = LUA_NOREF;
    hs->co = NULL;
    hs->hooks = NULL;
    hooks_unref(h);
}

int hooks_wants(const struct session *s, enum hook_phase phase)
{
    const struct hooks *h = s->x.hook.hooks;
    return h && h->has[phase] != 0;
}

/* Runs <fn> (a lua_CFunction taking the session as light userdata) in
 * protected mode. Returns 0, or -1 after logging the error. */
static int protected(struct session *s, lua_CFunction fn, const char *what)
{
    lua_State *L = s->x.hook.hooks->L;
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, s);
    if (lua_pcall(L, 1, 0, 0) == LUA_OK)
        return 0;
    log_error("#%llu script %s: %s", (unsigned long long)s->x.id, what,
              lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
    lua_pop(L, 1);
    return -1;
}

/* Pushes the exchange's request fields as the list hooks_api expects. */
static void push_field_list(lua_State *L, const struct headers *fields)
{
    lua_createtable(L, (int)fields->count * 2, 0);
    for (size_t i = 0; i < fields->count; i++) {
        size_t nlen, vlen;
        const char *n = headers_name(fields, i, &nlen), *v = headers_value(fields, i, &vlen);
        lua_pushlstring(L, n, nlen);
        lua_rawseti(L, -2, (lua_Integer)(2 * i + 1));
        lua_pushlstring(L, v, vlen);
        lua_rawseti(L, -2, (lua_Integer)(2 * i + 2));
    }
}

static int make_tx(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    struct exchange *x = &s->x;
    struct hooks *h = x->hook.hooks;

    push_api(L, h, "new_tx");
    lua_pushinteger(L, (lua_Integer)x->id);
    lua_pushlstring(L, x->fwd_method, x->fwd_method_len);
    lua_pushstring(L, x->is_connect ? "" : "http");
    lua_pushstring(L, x->host);
    lua_pushinteger(L, x->port);
    lua_pushlstring(L, x->is_connect ? "" : x->fwd_path, x->is_connect ? 0 : x->fwd_path_len);
    lua_pushstring(L, x->minor >= 1 ? "1.1" : "1.0");
    push_field_list(L, &x->req_headers);
    lua_pushstring(L, s->client_ip);
    lua_pushinteger(L, s->client_port);
    lua_call(L, 10, 1);
    x->hook.tx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static int take_snapshot(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    struct hook_state *hs = &s->x.hook;
    luaL_unref(L, LUA_REGISTRYINDEX, hs->snap_ref);
    hs->snap_ref = LUA_NOREF;
    push_api_tx(L, hs, "snapshot");
    lua_call(L, 1, 1);
    hs->snap_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static int restore_snapshot(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    struct hook_state *hs = &s->x.hook;
    push_api_tx(L, hs, "restore");
    lua_rawgeti(L, LUA_REGISTRYINDEX, hs->snap_ref);
    lua_call(L, 2, 0);
    return 0;
}

/* The chunk being filtered, for start_call (only during on_response_chunk). */
struct chunk_args {
    const char *data;
    size_t len;
    int eof;
    const char *pushed; /* the Lua string made of it, to spot it returned */
};

/* Creates the coroutine for script hs->script's hook and pushes its
 * arguments onto it. Runs in protected mode; arg 2 is a chunk_args or NULL. */
static int start_call(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    struct chunk_args *chunk = lua_touserdata(L, 2);
    struct hook_state *hs = &s->x.hook;
    struct hooks *h = hs->hooks;
    lua_State *co;

    if (h->idle_count > 0) {
        /* A finished coroutine starts afresh with a new function. */
        int ref = h->idle_threads[--h->idle_count];
        lua_rawgeti(L, LUA_REGISTRYINDEX, ref);           /* +1 co */
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
        co = lua_tothread(L, -1);
    } else {
        co = lua_newthread(L);                            /* +1 co */
    }

    /* A chunk goes first, below the function, where it stays alive for
     * the whole call: a hook that returns this very string is recognised
     * by its address, with no copy and no comparison. */
    if (chunk)
        chunk->pushed = lua_pushlstring(L, chunk->data, chunk->len); /* +2 co str */
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->env_ref[hs->script]);
    lua_getfield(L, -1, phase_names[hs->phase]);
    lua_remove(L, -2);                                    /* +3 co str fn */
    lua_rawgeti(L, LUA_REGISTRYINDEX, hs->tx_ref);        /* +4 co str fn tx */
    if (chunk) {
        lua_pushvalue(L, -3);
        lua_pushboolean(L, chunk->eof);                   /* +6 co str fn tx str eof */
    }
    lua_xmove(L, co, chunk ? 5 : 2);                      /* +1 co */
    hs->co = co;
    hs->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);          /* 0 */
    return 0;
}

enum call_outcome { CALL_DONE, CALL_SLEEP, CALL_FAILED };

/* Logs why a hook call failed, with the script's traceback. */
static void log_failure(struct session *s, lua_State *co, int status)
{
    struct hook_state *hs = &s->x.hook;
    struct hooks *h = hs->hooks;
    const char *script = h->script_name[hs->script];
    const char *phase = phase_names[hs->phase];

    if (h->timed_out) {
        log_error("#%llu %s: %s took longer than %.0f ms and was stopped",
                  (unsigned long long)s->x.id, script, phase, h->budget * 1000);
        return;
    }
    if (status == LUA_ERRMEM) {
        log_error("#%llu %s: %s ran out of memory (--lua-memory is %zu MB)",
                  (unsigned long long)s->x.id, script, phase, h->mem_limit >> 20);
        return;
    }
    const char *msg = lua_type(co, -1) == LUA_TSTRING ? lua_tostring(co, -1) : NULL;
    luaL_traceback(h->L, co, msg ? msg : "(error object is not a string)", 0);
    log_error("#%llu %s: %s failed: %s", (unsigned long long)s->x.id, script, phase,
              lua_tostring(h->L, -1));
    lua_pop(h->L, 1);
}

static void drop_coroutine(struct hook_state *hs)
{
    struct hooks *h = hs->hooks;
    /* One that returned normally can be reused; one that failed or was
     * stopped is left to the garbage collector. */
    if (hs->co && lua_status(hs->co) == LUA_OK &&
        h->idle_count < (int)(sizeof h->idle_threads / sizeof h->idle_threads[0])) {
        lua_settop(hs->co, 0);
        h->idle_threads[h->idle_count++] = hs->co_ref;
    } else {
        luaL_unref(h->L, LUA_REGISTRYINDEX, hs->co_ref);
    }
    hs->co_ref = LUA_NOREF;
    hs->co = NULL;
}

/* Resumes the current hook call. <nargs> values are on its stack (0 when
 * waking from proxy.sleep). On CALL_DONE the results stay on the coroutine
 * (*nres of them) until drop_coroutine. */
static enum call_outcome resume(struct session *s, int nargs, int *nres, double *sleep_for)
{
    struct hook_state *hs = &s->x.hook;
    struct hooks *h = hs->hooks;
    lua_State *co = hs->co;
    int status;

    h->timed_out = 0;
    h->responded = 0;
    h->current_script = hs->script;
    h->running_phase = (int)hs->phase;
    h->deadline = monotonic_now() + h->budget;
    lua_sethook(co, on_count, LUA_MASKCOUNT, COUNT_HOOK_INTERVAL);
    status = lua_resume(co, h->L, nargs, nres);
    h->current_script = -1;
    h->running_phase = -1;
    if (h->responded)
        hs->responded = 1; /* per exchange: others may run while this sleeps */

    if (status == LUA_YIELD && !h->timed_out) {
        if (*nres == 2 && lua_type(co, -2) == LUA_TSTRING &&
            strcmp(lua_tostring(co, -2), "luaproxy.sleep") == 0 && lua_isnumber(co, -1)) {
            *sleep_for = lua_tonumber(co, -1);
            lua_pop(co, 2);
            if (hs->phase == HOOK_ON_RESPONSE_CHUNK || hs->phase == HOOK_ON_DONE) {
                lua_pushfstring(co, "proxy.sleep cannot be used in %s", phase_names[hs->phase]);
                log_failure(s, co, LUA_ERRRUN);
                return CALL_FAILED;
            }
            return CALL_SLEEP;
        }
        lua_pushstring(co, "a hook yielded outside proxy.sleep");
        log_failure(s, co, LUA_ERRRUN);
        return CALL_FAILED;
    }
    if (status != LUA_OK) {
        log_failure(s, co, status);
        /* A failed state may hold a lot of garbage (a memory bomb): free it
         * now rather than at the next allocation. */
        if (status == LUA_ERRMEM || h->timed_out) {
            lua_resetthread(co); /* its stack still holds the garbage */
            lua_gc(h->L, LUA_GCCOLLECT);
        }
        return CALL_FAILED;
    }
    return CALL_DONE;
}

/* Runs the remaining hooks of the current phase, starting at hs->script. */
static enum hooks_result continue_phase(struct session *s, int resuming)
{
    struct hook_state *hs = &s->x.hook;
    struct hooks *h = hs->hooks;

    for (; hs->script < h->script_count; hs->script++, resuming = 0) {
        int nres = 0;
        double sleep_for = 0;
        enum call_outcome outcome;

        if (!(h->has[hs->phase] & (1u << hs->script)))
            continue;
        if (!resuming) {
            if (h->mode == HOOK_ERRORS_OPEN && protected(s, take_snapshot, "snapshot") != 0)
                return HOOKS_FAILED;
            if (protected(s, start_call, "start") != 0)
                return HOOKS_FAILED;
            outcome = resume(s, 1, &nres, &sleep_for);
        } else {
            outcome = resume(s, 0, &nres, &sleep_for);
        }
        if (outcome == CALL_SLEEP) {
            hs->pending = 1;
            ev_timer_set(&hs->sleep_timer, sleep_for, 0.);
            ev_timer_start(s->proxy->loop, &hs->sleep_timer);
            return HOOKS_PENDING;
        }
        drop_coroutine(hs);
        if (outcome == CALL_FAILED) {
            if (h->mode == HOOK_ERRORS_OPEN && protected(s, restore_snapshot, "restore") == 0) {
                hs->responded = 0;
                continue; /* as if this hook were absent */
            }
            s->x.error = "a script failed";
            return HOOKS_FAILED;
        }
        if (hs->responded) {
            hs->script = h->script_count;
            return HOOKS_RESPOND; /* the phase's remaining hooks do not run */
        }
    }
    return HOOKS_CONTINUE;
}

static void on_sleep_done(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct session *s = w->data;
    struct hook_state *hs = &s->x.hook;
    enum hooks_result r;
    (void)loop;
    (void)revents;

    r = continue_phase(s, 1);
    if (r == HOOKS_PENDING)
        return;
    hs->pending = 0;
    hs->result = r;
    s->last_activity = ev_now(s->proxy->loop);
    session_epilogue(s);
}

enum hooks_result hooks_run(struct session *s, enum hook_phase phase)
{
    struct hook_state *hs = &s->x.hook;

    if (!hooks_wants(s, phase))
        return HOOKS_CONTINUE;
    hs->phase = phase;
    hs->script = 0;
    if (hs->tx_ref == LUA_NOREF && protected(s, make_tx, "tx") != 0)
        return HOOKS_FAILED;
    hs->responded = 0;
    return continue_phase(s, 0);
}

/* ---- reading the scripts' changes back -------------------------------------- */

/* The fields the proxy owns: a script may not set them (they are dropped
 * when read back), so framing and connection handling stay correct. */
static int proxy_owned(const char *name, size_t len)
{
    static const char *const owned[] = {"Content-Length", "Transfer-Encoding", "Connection",
                                        "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
                                        "Upgrade"};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        if (http_token_eq(name, len, owned[i]))
            return 1;
    return 0;
}

/* Replaces <out> by the list at the top of L ({n1, v1, ...}). Fields the
 * proxy owns are skipped, except those named in <keep>. */
static void read_field_list(lua_State *L, int index, struct headers *out, const char *keep)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, index);
    headers_free(out);
    for (lua_Integer i = 1; i + 1 <= n; i += 2) {
        size_t nlen, vlen;
        lua_rawgeti(L, index, i);
        lua_rawgeti(L, index, i + 1);
        const char *name = lua_tolstring(L, -2, &nlen);
        const char *value = lua_tolstring(L, -1, &vlen);
        if (name && value &&
            (!proxy_owned(name, nlen) || (keep && http_token_eq(name, nlen, keep))) &&
            headers_add(out, name, nlen, value, vlen) != 0)
            luaL_error(L, "invalid header %s", name);
        lua_pop(L, 2);
    }
}

/* Replaces the forwarded method and path. */
static void set_forward_line(struct exchange *x, const char *method, size_t mlen,
                             const char *path, size_t plen)
{
    char *line = malloc(mlen + plen + 2);
    if (!line)
        return;
    memcpy(line, method, mlen);
    line[mlen] = '\0';
    memcpy(line + mlen + 1, path, plen);
    line[mlen + 1 + plen] = '\0';
    free(x->fwd_line);
    x->fwd_line = line;
    x->fwd_method = line;
    x->fwd_method_len = mlen;
    x->fwd_path = line + mlen + 1;
    x->fwd_path_len = plen;
}

static int read_request(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    struct exchange *x = &s->x;
    size_t mlen, plen, hlen;

    push_api_tx(L, &x->hook, "request_out");
    lua_call(L, 1, 5);                 /* method path host port fields */
    const char *method = luaL_checklstring(L, -5, &mlen);
    const char *path = luaL_checklstring(L, -4, &plen);
    const char *host = luaL_checklstring(L, -3, &hlen);
    lua_Integer port = luaL_checkinteger(L, -2);
    if (hlen == 0 || hlen >= sizeof x->host || port < 1 || port > 65535)
        return luaL_error(L, "invalid host or port");
    read_field_list(L, lua_gettop(L), &x->req_headers, x->is_upgrade ? "Upgrade" : NULL);
    if (!x->is_connect)
        set_forward_line(x, method, mlen, path, plen);
    memcpy(x->host, host, hlen + 1);
    x->port = (uint16_t)port;
    return 0;
}

static int read_upstream(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    struct exchange *x = &s->x;
    size_t hlen;

    push_api_tx(L, &x->hook, "upstream_out");
    lua_call(L, 1, 2);
    const char *host = luaL_checklstring(L, -2, &hlen);
    if (hlen == 0 || hlen >= sizeof x->host)
        return luaL_error(L, "invalid upstream host");
    memcpy(x->host, host, hlen + 1);
    x->port = (uint16_t)luaL_checkinteger(L, -1);
    return 0;
}

static int begin_connect(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    push_api_tx(L, &s->x.hook, "begin_connect");
    lua_call(L, 1, 0);
    return 0;
}

static int set_response(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    struct exchange *x = &s->x;
    push_api_tx(L, &x->hook, "set_response");
    lua_pushinteger(L, x->status);
    lua_pushstring(L, x->res_reason);
    push_field_list(L, &x->res_headers);
    lua_call(L, 4, 0);
    return 0;
}

static int read_response(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    struct exchange *x = &s->x;
    size_t rlen;

    push_api_tx(L, &x->hook, "response_out");
    lua_call(L, 1, 3);
    x->status = (int)luaL_checkinteger(L, -3);
    const char *reason = luaL_checklstring(L, -2, &rlen);
    if (rlen >= sizeof x->res_reason)
        rlen = sizeof x->res_reason - 1;
    memcpy(x->res_reason, reason, rlen);
    x->res_reason[rlen] = '\0';
    read_field_list(L, lua_gettop(L), &x->res_headers, x->res_keep_length ? "Content-Length" : NULL);
    return 0;
}

int hooks_read_request(struct session *s)
{
    if (s->x.hook.tx_ref == LUA_NOREF)
        return 0;
    if (protected(s, read_request, "request") != 0)
        return -1;
    /* before_connect sees the upstream as the (rewritten) target. */
    return hooks_wants(s, HOOK_BEFORE_CONNECT) ? protected(s, begin_connect, "upstream") : 0;
}

int hooks_read_upstream(struct session *s)
{
    return s->x.hook.tx_ref == LUA_NOREF ? 0 : protected(s, read_upstream, "upstream");
}

int hooks_read_response(struct session *s)
{
    return s->x.hook.tx_ref == LUA_NOREF ? 0 : protected(s, read_response, "response");
}

int hooks_prepare_response(struct session *s)
{
    if (s->x.hook.tx_ref == LUA_NOREF && protected(s, make_tx, "tx") != 0)
        return -1;
    return protected(s, set_response, "response");
}

struct local_response {
    struct session *s;
    struct buffer *out;
    int failed;
};

static int write_local(lua_State *L)
{
    struct local_response *lr = lua_touserdata(L, 1);
    struct session *s = lr->s;
    struct exchange *x = &s->x;
    struct headers fields;
    size_t blen;
    int head_only = x->method_len == 4 && memcmp(x->method, "HEAD", 4) == 0;

    push_api_tx(L, &x->hook, "respond_out");
    lua_call(L, 1, 3);                   /* status body fields */
    int status = (int)luaL_checkinteger(L, -3);
    const char *body = luaL_checklstring(L, -2, &blen);
    headers_init(&fields);
    read_field_list(L, lua_gettop(L), &fields, NULL);
    if (headers_find(&fields, "Content-Type", 12, 0) < 0)
        headers_add(&fields, "Content-Type", 12, "text/plain; charset=utf-8", 25);
    headers_add(&fields, "Via", 3, MESSAGE_VIA, strlen(MESSAGE_VIA));
    x->status = status;
    /* 204 and 304 carry no body and no Content-Length (RFC 9110 8.6). */
    if (status == 204 || status == 304) {
        head_only = 1;
        blen = 0;
    }
    if (message_write_response(lr->out, status, message_reason(status),
                               strlen(message_reason(status)), &fields,
                               status == 204 || status == 304 ? HTTP_BODY_NONE
                                                              : HTTP_BODY_LENGTH,
                               blen, x->keep_alive, x->minor, 0) != 0 ||
        (!head_only && buffer_append(lr->out, body, blen) != 0))
        lr->failed = 1;
    if (!head_only)
        x->res_bytes += blen;
    headers_free(&fields);
    return 0;
}

int hooks_write_local_response(struct session *s, struct buffer *out)
{
    struct local_response lr = {s, out, 0};
    lua_State *L = s->x.hook.hooks->L;
    lua_pushcfunction(L, write_local);
    lua_pushlightuserdata(L, &lr);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        log_error("#%llu local response: %s", (unsigned long long)s->x.id,
                  lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    return lr.failed ? -1 : 0;
}

/* ---- body and done ---------------------------------------------------------- */

int hooks_body_filter(void *arg, const char *data, size_t len, int eof, struct buffer *out,
                      enum http_body_kind out_kind)
{
    struct session *s = arg;
    struct hook_state *hs = &s->x.hook;
    struct hooks *h = hs->hooks;
    struct chunk_args chunk = {data, len, eof, NULL};
    struct buffer held[2]; /* each script's output is the next one's input */
    int which = 0, rc = 0;

    if (hs->tx_ref == LUA_NOREF && protected(s, make_tx, "tx") != 0) {
        s->x.error = "a script failed in on_response_chunk";
        return -1;
    }
    buffer_init(&held[0]);
    buffer_init(&held[1]);
    hs->phase = HOOK_ON_RESPONSE_CHUNK;
    for (hs->script = 0; hs->script < h->script_count; hs->script++) {
        int nres = 0;
        double sleep_for;
        if (!(h->has[HOOK_ON_RESPONSE_CHUNK] & (1u << hs->script)))
            continue;
        lua_State *L = h->L;
        lua_pushcfunction(L, start_call);
        lua_pushlightuserdata(L, s);
        lua_pushlightuserdata(L, &chunk);
        if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
            log_error("#%llu on_response_chunk: %s", (unsigned long long)s->x.id,
                      lua_tostring(L, -1));
            lua_pop(L, 1);
            rc = -1;
            break;
        }
        if (resume(s, 3, &nres, &sleep_for) != CALL_DONE) {
            drop_coroutine(hs);
            if (h->mode == HOOK_ERRORS_OPEN)
                continue; /* pass the piece on unchanged */
            rc = -1;
            break;
        }
        /* A finished coroutine reports everything left on its stack, the
         * chunk kept below the function included: that one is no result. */
        nres = lua_gettop(hs->co) - 1;
        if (nres >= 1 && lua_type(hs->co, -nres) == LUA_TSTRING &&
            lua_tostring(hs->co, -nres) != chunk.pushed) {
                size_t rlen;
            const char *r = lua_tolstring(hs->co, -nres, &rlen);
            struct buffer *next = &held[which];
            buffer_consume(next, buffer_length(next));
            if (buffer_append(next, r, rlen) != 0) {
                drop_coroutine(hs);
                rc = -1;
                break;
            }
            chunk.data = buffer_peek(next);
            chunk.len = buffer_length(next);
            which = !which;
        } else if (nres >= 1 && lua_type(hs->co, -nres) != LUA_TNIL &&
                   lua_type(hs->co, -nres) != LUA_TSTRING) {
            lua_pushstring(hs->co, "on_response_chunk must return a string or nothing");
            log_failure(s, hs->co, LUA_ERRRUN);
            drop_coroutine(hs);
            if (h->mode == HOOK_ERRORS_OPEN)
                continue;
            rc = -1;
            break;
        }
        drop_coroutine(hs);
    }
    if (rc == 0 && body_write_data(out, out_kind, chunk.data, chunk.len) != 0)
        rc = -1;
    else if (rc == 0)
        s->x.res_filtered_bytes += chunk.len;
    if (rc != 0)
        s->x.error = "a script failed in on_response_chunk";
    buffer_free(&held[0]);
    buffer_free(&held[1]);
    return rc;
}

static int finish_tx(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    struct exchange *x = &s->x;
    push_api_tx(L, &x->hook, "finish");
    lua_pushinteger(L, x->status);
    if (x->error)
        lua_pushstring(L, x->error);
    else
        lua_pushnil(L);
    lua_pushinteger(L, (lua_Integer)(x->res_filter ? x->res_filtered_bytes : x->res_bytes));
    lua_pushinteger(L, (lua_Integer)x->req_bytes);
    lua_pushnumber(L, ev_now(s->proxy->loop) - x->started);
    lua_call(L, 6, 0);
    return 0;
}

void hooks_done(struct session *s)
{
    struct hook_state *hs = &s->x.hook;
    if (!hooks_wants(s, HOOK_ON_DONE) || hs->pending)
        return;
    /* An exchange refused before any hook ran still gets its on_done. */
    if (hs->tx_ref == LUA_NOREF && protected(s, make_tx, "tx") != 0)
        return;
    if (protected(s, finish_tx, "finish") != 0)
        return;
    hs->phase = HOOK_ON_DONE;
    hs->script = 0;
    hs->responded = 0; /* an earlier phase's answer does not end this one */
    continue_phase(s, 0);
}
