/*
 * hooks.c - loading scripts: the Lua state of a script set, reload, --check.
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
 *   - time: a watchdog ends a hook call that overruns --hook-timeout by
 *     setting a count hook that yields its coroutine out (uncatchable by
 *     the script's pcall; see hooks_watch.c);
 *   - errors: logged with a traceback; the exchange gets 500 (or, with
 *     --hook-errors open, the hook's changes are undone and it is skipped).
 */
#include "hooks_internal.h"

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "shared_store.h"
#include "proxy.h"
#include "session.h"

#include "hooks_api.h" /* generated from src/hooks_api.lua */

const char *const hooks_phase_names[HOOK_PHASE_COUNT] = {
    "on_request", "before_connect", "on_response", "on_response_chunk", "on_done",
    "on_request_chunk",
};

static const char *const hooks_key_names[HOOKS_KEY_COUNT] = {
    [HOOKS_KEY_HEADERS] = "headers",
    [HOOKS_KEY_REQ] = "req",
    [HOOKS_KEY_RES] = "res",
    [HOOKS_KEY_INTERCEPT] = "_intercept",
};

/* ---- the Lua state ------------------------------------------------------ */

/*
 * Small blocks. A hook call makes and drops dozens of small objects (the
 * tx and its tables, strings, a header view), and the collector frees them
 * in batches: glibc's per-thread cache keeps only seven blocks of a size,
 * so most of a batch went through malloc's bins and came back out of them
 * on the next exchange (malloc, free and their helpers were about a tenth
 * of the header hook's instructions). The state keeps freed blocks of up
 * to HOOKS_SMALL_MAX bytes per 16-byte class, SMALL_BUDGET bytes in all,
 * and takes from them first. The budget is in bytes, not blocks per
 * class: with many exchanges at once the heap is larger, a minor
 * collection frees a few thousand blocks of a handful of sizes at once,
 * and a cap of a hundred per class sent most of each batch to malloc
 * anyway. Every block Lua holds of up to HOOKS_SMALL_MAX bytes is
 * allocated at its class's full size, so any freed one fits the next
 * request of its class. Off under AddressSanitizer, so a use after free
 * in a Lua object is still caught.
 */
#define SMALL_BUDGET (1024 * 1024)

#if defined(__SANITIZE_ADDRESS__)
#define SMALL_CACHE 0
#else
#define SMALL_CACHE 1
#endif

static size_t small_class(size_t size)
{
    return (size - 1) / HOOKS_SMALL_STEP;
}

/* What to ask malloc for to hold <size> bytes. */
static size_t small_rounded(size_t size)
{
    return size <= HOOKS_SMALL_MAX ? (small_class(size) + 1) * HOOKS_SMALL_STEP : size;
}

static void small_release(struct hooks *h, void *ptr, size_t size)
{
    if (SMALL_CACHE && size <= HOOKS_SMALL_MAX &&
        h->small_bytes + small_rounded(size) <= SMALL_BUDGET) {
        size_t c = small_class(size);
        *(void **)ptr = h->small_free[c];
        h->small_free[c] = ptr;
        h->small_bytes += small_rounded(size);
        return;
    }
    free(ptr);
}

static void small_drain(struct hooks *h)
{
    for (size_t c = 0; c < HOOKS_SMALL_CLASSES; c++) {
        while (h->small_free[c]) {
            void *next = *(void **)h->small_free[c];
            free(h->small_free[c]);
            h->small_free[c] = next;
        }
    }
    h->small_bytes = 0;
}

/* capped_alloc's path through malloc: growing or shrinking a block, and a
 * new one no kept block fits. Apart, so the common paths (a kept block
 * taken or given back) make no call and save no registers. */
static __attribute__((noinline)) void *alloc_slow(struct hooks *h, void *ptr, size_t old,
                                                  size_t nsize)
{
    void *p = realloc(ptr, small_rounded(nsize));
    if (p)
        h->mem_used = h->mem_used - old + nsize;
    return p;
}

/* lua_Alloc with a cap: past it an allocation fails, which Lua turns into a
 * "not enough memory" error in the script that asked. */
static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct hooks *h = ud;
    size_t old = ptr ? osize : 0;

    if (nsize == 0) {
        if (ptr) {
            h->mem_used -= old;
            small_release(h, ptr, old);
        }
        return NULL;
    }
    if (nsize > old && h->mem_used + (nsize - old) > h->mem_limit) {
        h->alloc_refused = 1; /* the hook that asked may catch the error */
        return NULL;
    }
    if (!ptr && nsize <= HOOKS_SMALL_MAX && h->small_free[small_class(nsize)]) {
        size_t c = small_class(nsize);
        void *p = h->small_free[c];
        h->small_free[c] = *(void **)p;
        h->small_bytes -= (c + 1) * HOOKS_SMALL_STEP;
        h->mem_used += nsize;
        return p;
    }
    return alloc_slow(h, ptr, old, nsize);
}

void hooks_push_api(lua_State *L, struct hooks *h, const char *name)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->api_ref);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
}

void hooks_push_api_tx(lua_State *L, const struct hook_state *hs, const char *name)
{
    hooks_push_api(L, hs->hooks, name);
    lua_rawgeti(L, LUA_REGISTRYINDEX, hs->tx_ref);
}

int hooks_protected(struct session *s, lua_CFunction fn, const char *what)
{
    struct hooks *h = s->x.hook.hooks;
    lua_State *L = h->L;
    struct session *outer = h->data_session;
    /* What a script left in tx (a table with an __index that loops, say)
     * runs its code here, outside any hook: it gets a hook's budget, and
     * the watchdog stops it like a hook (an error lua_pcall catches).
     * Only outside a resume: the watchdog follows one call at a time. */
    int watched = h->current == NULL, phase = h->running_phase;
    int status;

    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, s);
    h->data_session = s;
    if (watched) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        h->timed_out = 0;
        h->running_phase = (int)s->x.hook.phase;
        h->deadline = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + h->budget;
        hooks_watch_arm(L, h->deadline);
    }
    status = lua_pcall(L, 1, 0, 0);
    if (watched) {
        hooks_watch_disarm();
        lua_sethook(L, NULL, 0, 0); /* a firing that came as it ended */
        h->running_phase = phase;
    }
    h->data_session = outer;
    if (status == LUA_OK)
        return 0;
    log_error("c%llu #%llu script %s: %s", (unsigned long long)s->id, (unsigned long long)s->x.id, what,
              lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
    lua_pop(L, 1);
    return -1;
}

/* Whether <name> looks like a hook ("on_..." or "before_...") but is not. */
static int misspelt_hook(const char *name)
{
    if (strncmp(name, "on_", 3) != 0 && strncmp(name, "before_", 7) != 0)
        return 0;
    for (int i = 0; i < HOOK_PHASE_COUNT; i++)
        if (strcmp(name, hooks_phase_names[i]) == 0)
            return 0;
    return 1;
}

/* The time a script's top-level code may take: LOAD_BUDGET, or the hook
 * budget when that is longer. Enough to read a file or build a table. */
#define LOAD_BUDGET 1.0

static double load_budget(const struct config *cfg)
{
    return cfg->hook_timeout > LOAD_BUDGET ? cfg->hook_timeout : LOAD_BUDGET;
}

/* Raises the error on top of L, naming <script> when the message does not
 * already (a time limit's message has no position). Joined by
 * lua_concat, not a format, which would end the message at a NUL. */
static int load_error(lua_State *L, const char *script)
{
    const char *msg = lua_tostring(L, -1);
    if (msg && strncmp(msg, script, strlen(script)) != 0) {
        lua_pushfstring(L, "%s: ", script);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

/* Runs inside lua_pcall: the API, then each script in its environment.
 * Upvalue-free; the struct hooks comes in as light userdata. */
static int setup_state(lua_State *L)
{
    struct hooks *h = lua_touserdata(L, 1);
    const struct config *cfg = lua_touserdata(L, 2);

    luaL_openlibs(L);
    hooks_output_install(L);
    hooks_pattern_install(L);
    hooks_stdlib_install(L);
    hooks_watch_install(L);
    hooks_lib_guard(L);
    if (luaL_loadbuffer(L, hooks_api_lua, sizeof hooks_api_lua - 1, "=hooks_api") != LUA_OK)
        return lua_error(L);
    hooks_lib_push(L);                             /* +1 native */
    lua_call(L, 1, 1);                             /* +1 api */
    /* What C keeps of the api table, to make a tx and its parts itself. */
    const struct { const char *name; int *ref; } kept[] = {
        {"Tx", &h->tx_mt_ref},           {"Headers", &h->headers_mt_ref},
        {"Request", &h->request_mt_ref}, {"Response", &h->response_mt_ref},
    };
    for (size_t k = 0; k < sizeof kept / sizeof kept[0]; k++) {
        lua_getfield(L, -1, kept[k].name);
        *kept[k].ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    h->api_ref = luaL_ref(L, LUA_REGISTRYINDEX);   /* 0 */
    lua_newtable(L);                               /* +1 set */
    lua_createtable(L, 0, 1);                      /* +2 set mt */
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);                       /* +1 set */
    h->hook_threads_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* 0 */
    for (int k = 0; k < HOOKS_KEY_COUNT; k++) {
        lua_pushstring(L, hooks_key_names[k]);
        h->key_ref[k] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    for (int p = 0; p < HOOK_PHASE_COUNT; p++) {
        lua_pushstring(L, hooks_phase_names[p]);
        h->phase_key_ref[p] = luaL_ref(L, LUA_REGISTRYINDEX);
    }

    for (int i = 0; i < cfg->script_count; i++) {
        h->current_script = i;
        h->script_name[i] = cfg->scripts[i]; /* proxy.log at the top level names it */
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
        if (hooks_watch_load(L, load_budget(cfg)) != LUA_OK) /* +1 env */
            return load_error(L, cfg->scripts[i]);
        for (int p = 0; p < HOOK_PHASE_COUNT; p++) {
            if (lua_getfield(L, -1, hooks_phase_names[p]) == LUA_TFUNCTION)
                h->has[p] |= 1u << i;
            lua_pop(L, 1);
        }
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {             /* warn about on_requset */
            if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TFUNCTION &&
                misspelt_hook(lua_tostring(L, -2)))
                log_warn("%s: '%s' looks like a hook but is not one (hooks are on_request, "
                         "on_request_chunk, before_connect, on_response, on_response_chunk, on_done)",
                         cfg->scripts[i], lua_tostring(L, -2));
            lua_pop(L, 1);
        }
        h->env_ref[i] = luaL_ref(L, LUA_REGISTRYINDEX); /* 0 */
        h->script_count = i + 1;
    }
    h->current_script = -1;
    return 0;
}

/* The sets a reload replaced that exchanges still use, newest first, and
 * how many (one process's: each worker has its own). */
static struct hooks *retired_newest, *retired_oldest;
static int retired_count;

static void retired_unlink(struct hooks *h)
{
    if (h->retired_prev)
        h->retired_prev->retired_next = h->retired_next;
    else
        retired_newest = h->retired_next;
    if (h->retired_next)
        h->retired_next->retired_prev = h->retired_prev;
    else
        retired_oldest = h->retired_prev;
    h->retired = 0;
    retired_count--;
}

int hooks_retired_count(void)
{
    return retired_count;
}

const struct hooks *hooks_retired_oldest(void)
{
    return retired_oldest;
}

void hooks_unref(struct hooks *h)
{
    if (h && --h->refs == 0) {
        if (h->retired)
            retired_unlink(h);
        hooks_output_close(h->L);
        lua_close(h->L);
        small_drain(h);
        shared_store_close(h->shared); /* no exchange is left to wait on it */
        free(h->scratch);
        free(h);
    }
}

/* A chunk hook gets every piece of a body as a new Lua string, up to 256
 * KiB each (a bulk read, or a decoded piece), and the collector frees them
 * a batch at a time. With glibc's defaults a piece past 128 KiB is a fresh
 * mmap and a batch freed at the heap's top goes back to the system at
 * once: page faults on every byte of the body, twice over (brk grew and
 * shrank ~30 times per 10 MiB body, ~230 faults). So pieces stay on the
 * heap, and the heap keeps a few MiB free for the next batch: a bounded
 * amount, kept only by workers whose scripts filter bodies. */
static void keep_pieces_on_heap(void)
{
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_TRIM_THRESHOLD, 4 << 20);
}

/* Lua's generational collector makes a collection a major one (every
 * object walked and marked) when the heap has grown by the major
 * multiplier, 100% of what was live after the last one, and on a heap of
 * a few hundred KiB that growth comes quickly:
 *   - many exchanges at once: each one's tables live through two minor
 *     collections and grow old, and only a major one frees them after
 *     the exchange; with fifty keep-alive clients and the header hook,
 *     one request in a hundred paid for a major collection (9% of the
 *     hook's instructions went to the collector; 4% at 400%);
 *   - a chunk hook's 256 KiB piece is that much growth by itself: nearly
 *     every piece made a major collection (4% of the proxy's CPU on a 10
 *     MiB body).
 * At 400% the minor collections do the work. The heap can grow to five
 * times what is live before a major collection, within --lua-memory. */
#define MAJOR_MULTIPLIER 400

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
    /* Most on_request and on_response hooks change what they get. */
    h->req_wanted = h->res_wanted = 1;
    h->mode = cfg->hook_errors;
    h->loop = loop;
    h->current_script = -1;
    h->running_phase = -1;
    h->wait_timeout = cfg->hook_wait_timeout;
    /* Redis needs a loop to talk on: a load without one (the parent's
     * check before forking, --check) has shared memory at most. */
    if (loop || !cfg->shared_url) {
        h->shared = shared_store_open(shared_region_get(), loop ? cfg->shared_url : NULL, loop,
                                      err, err_len);
        if (!h->shared) {
            free(h);
            return NULL;
        }
    }
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
        size_t len;
        const char *msg = lua_tolstring(h->L, -1, &len);
        /* <err> is a C string, read by the log and by --check: a NUL in
         * the message (a script's error("...\0...")) would hide the rest,
         * so it is escaped as the log escapes what a script logs. */
        if (msg && memchr(msg, '\0', len) && err_len > 0)
            err[log_escape(err, err_len - 1, msg, len, 0)] = '\0';
        else
            snprintf(err, err_len, "%s", msg ? msg : "error loading scripts");
        hooks_unref(h);
        return NULL;
    }
    /* Short-lived tx tables: generational GC suits. */
    lua_gc(h->L, LUA_GCGEN, 0, MAJOR_MULTIPLIER);
    h->mem_after_collect = h->mem_used;
    if (h->has[HOOK_ON_RESPONSE_CHUNK] || h->has[HOOK_ON_REQUEST_CHUNK])
        keep_pieces_on_heap();
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

int hooks_prepare_apart(const struct config *cfg, struct hooks **out, char *err, size_t err_len)
{
    *out = NULL;
    if (cfg->script_count == 0)
        return 0;
    /* No loop: nothing here touches one, so this may run on any thread. A
     * Redis store (it talks on the loop) is opened by hooks_attach. */
    *out = hooks_new(cfg, NULL, err, err_len);
    return *out ? 0 : -1;
}

int hooks_attach(struct hooks *h, const struct config *cfg, struct ev_loop *loop, char *err,
                 size_t err_len)
{
    if (!h)
        return 0;
    h->loop = loop;
    if (!h->shared) {
        h->shared = shared_store_open(shared_region_get(), cfg->shared_url, loop, err, err_len);
        if (!h->shared)
            return -1;
    }
    return 0;
}

void hooks_discard(struct hooks *h)
{
    hooks_unref(h);
}

void hooks_replace(struct proxy *p, struct hooks *fresh)
{
    if (!fresh && !p->hooks) {
        log_info("SIGHUP: no scripts to reload");
        return;
    }
    /* Exchanges in flight keep their reference to the old set. */
    struct hooks *old = p->hooks;
    if (old && old->refs > 1) {
        old->retired = 1;
        old->retired_prev = NULL;
        old->retired_next = retired_newest;
        if (retired_newest)
            retired_newest->retired_prev = old;
        else
            retired_oldest = old;
        retired_newest = old;
        retired_count++;
    }
    hooks_unref(old);
    p->hooks = fresh;
    if (fresh)
        log_info("SIGHUP: %d script(s) reloaded", fresh->script_count);
    else
        log_info("SIGHUP: scripts unloaded"); /* the file no longer names any */
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
                fprintf(stderr, "%s: '%s' is not a hook (hooks are on_request, "
                                "on_request_chunk, before_connect, on_response, "
                                "on_response_chunk, on_done)\n",
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
