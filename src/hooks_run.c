/*
 * hooks_run.c - running the hooks of one exchange: a coroutine per hook
 * call, the time budget that stops a runaway script, the phases in script
 * order, and proxy.sleep, which parks a hook on a timer while the loop
 * serves everybody else. Owns the on_done calls that wait after their
 * exchange is over (detached from the session, see hooks_done).
 */
#include "hooks_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decode.h"
#include "log.h"
#include "trace.h"
#include "proxy.h"
#include "session.h"
#include "stats.h"

/* The metrics keep a row per phase, in the order of enum hook_phase. */
_Static_assert(STATS_HOOK_PHASES == HOOK_PHASE_COUNT, "stats.h: one row per hook phase");

static double monotonic_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_sleep_done(struct ev_loop *loop, ev_timer *w, int revents);

void hooks_exchange_begin(struct session *s, hooks_wake_fn *on_wake)
{
    struct hook_state *hs = &s->x.hook;
    hs->hooks = s->proxy->hooks;
    hs->on_wake = on_wake;
    hs->tx_ref = hs->co_ref = hs->snap_ref = hs->trace_fp_ref = hs->flow_base_ref = LUA_NOREF;
    hs->co = NULL;
    hs->pending = 0;
    hs->req_read = 0;
    hs->res_due = 0;
    hs->res_lazy = 0;
    hs->waiting = 0;
    hs->wake_nargs = 0;
    hs->wait_cancel = NULL;
    hs->wait_owner = NULL;
    hs->req_filter_off = hs->req_buffer = hs->res_filter_off = hs->res_decode_off = 0;
    hs->dec = NULL;
    buffer_init(&hs->collected);
    hs->collected_held = 0;
    hs->piece_ref = LUA_NOREF;
    hs->piece_in_lua = 0;
    hs->body_error = HOOKS_BODY_OK;
    hs->direct = hs->req_direct = (struct body_direct){NULL, NULL, NULL};
    ev_init(&hs->sleep_timer, on_sleep_done);
    hs->sleep_timer.data = s;
    if (hs->hooks)
        hs->hooks->refs++;
}

void hooks_exchange_end(struct session *s)
{
    struct hook_state *hs = &s->x.hook;
    struct hooks *h = hs->hooks;
    hooks_decoding_free(hs);
    hooks_collected_release(s);
    buffer_free(&hs->collected);
    if (!h)
        return;
    ev_timer_stop(s->proxy->loop, &hs->sleep_timer);
    if (hs->waiting && hs->wait_cancel)
        hs->wait_cancel(hs->wait_arg);
    hs->waiting = 0;
    hs->wait_cancel = NULL;
    if (hs->tx_ref != LUA_NOREF &&
        h->idle_tx_count < (int)(sizeof h->idle_tx_refs / sizeof h->idle_tx_refs[0])) {
        /* Kept for the next tx (see struct hooks); the tx itself is let go. */
        lua_pushboolean(h->L, 0);
        lua_rawseti(h->L, LUA_REGISTRYINDEX, hs->tx_ref);
        h->idle_tx_refs[h->idle_tx_count++] = hs->tx_ref;
    } else {
        luaL_unref(h->L, LUA_REGISTRYINDEX, hs->tx_ref);
    }
    luaL_unref(h->L, LUA_REGISTRYINDEX, hs->co_ref);
    luaL_unref(h->L, LUA_REGISTRYINDEX, hs->snap_ref);
    luaL_unref(h->L, LUA_REGISTRYINDEX, hs->trace_fp_ref);
    luaL_unref(h->L, LUA_REGISTRYINDEX, hs->flow_base_ref);
    luaL_unref(h->L, LUA_REGISTRYINDEX, hs->piece_ref);
    hs->tx_ref = hs->co_ref = hs->snap_ref = hs->trace_fp_ref = hs->flow_base_ref = LUA_NOREF;
    hs->piece_ref = LUA_NOREF;
    hs->co = NULL;
    hs->hooks = NULL;
    hooks_unref(h);
}

int hooks_wants(const struct session *s, enum hook_phase phase)
{
    const struct hooks *h = s->x.hook.hooks;
    return h && h->has[phase] != 0;
}

/*
 * A full collection before a hook call, when the garbage since the last
 * one may fill more than half the room left under --lua-memory.
 *
 * Lua runs a full collection before it gives up on an allocation, but
 * lauxlib's string buffers (string.upper, gsub, rep, table.concat, ...)
 * grow through the allocator directly and fail at once. The generational
 * collector reaches a large string that lived through one minor
 * collection (as a collected body does) only in a major one, which comes
 * after the heap has grown by half or more: megabytes of bodies of the
 * exchanges before then sat under the cap, and a hook that needed room
 * for twice its body failed every other time though it fitted alone. A
 * script that keeps much alive pays only when as much again has piled up.
 */
static void collect_near_cap(struct hooks *h, lua_State *L)
{
    size_t base = h->mem_after_collect;

    if (h->mem_used <= base || base >= h->mem_limit ||
        h->mem_used - base <= (h->mem_limit - base) / 2)
        return;
    lua_gc(L, LUA_GCCOLLECT);
    lua_gc(L, LUA_GCSTEP, 0); /* Lua 5.4.4: see collect_after_bomb */
    h->mem_after_collect = h->mem_used;
}

/* The continuation of call_hook: what the hook returned, and for a
 * chunk hook the piece kept below it. */
static int call_hook_done(lua_State *co, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    return lua_gettop(co);
}

/*
 * The main function of a hook call's coroutine (hooks_start): makes what
 * the call needs, then calls script hs->script's hook for hs->phase.
 * Arguments: the session and the chunk_args (or NULL), as light userdata.
 *
 * It runs inside the call's first resume, so an error here (no memory
 * under --lua-memory) fails the hook call as any error of the hook would,
 * and the call costs no protected call of its own beside the resume.
 */
static int call_hook(lua_State *co)
{
    struct hooks *h = hooks_of(co);
    struct session *s = lua_touserdata(co, 1);
    struct chunk_args *chunk = lua_touserdata(co, 2);
    struct hook_state *hs;
    lua_Debug caller;

    /* It sits one level above every hook. debug.getinfo hands no C
     * function to a script (hooks_stdlib.c); should a script get hold of
     * this one all the same, it could call it with anything: only the
     * first resume of the call hooks_start readied runs it, as the main
     * function of the exchange's own coroutine. */
    if (!h || co != h->current_co || s == NULL || s != h->current || lua_getstack(co, 1, &caller))
        return luaL_error(co, "the proxy's hook caller cannot be called by a script");
    hs = &s->x.hook;
    lua_settop(co, 1); /* the session, at 1 for hooks_tx_make */
    /* Inside the resume, as all of the call's work: under its time
     * budget and the watchdog. */
    collect_near_cap(h, co);
    if (hs->tx_ref == LUA_NOREF) {
        hooks_tx_make(co); /* the exchange's first hook (see hooks_run) */
        /* tx.req too when the last on_request used it: a first look costs
         * a call of tx's __index more. */
        if (hs->phase == HOOK_ON_REQUEST && h->req_wanted)
            hooks_tx_make_request_now(co, s);
    }
    if (hs->res_due) { /* on_response's first call (see hooks_prepare_response) */
        hooks_tx_make_response(co, s);
        hs->res_due = 0;
    }
    lua_settop(co, 0);

    /* A chunk goes first, below the function, where it stays alive for
     * the whole call: a hook that returns this very string is recognised
     * by its address, with no copy and no comparison. */
    if (chunk && !hs->piece_in_lua) {
        /* The one copy of the relay's bytes: from here on the piece is
         * this string, kept in a registry slot made once per exchange (a
         * later store into an existing slot cannot fail). */
        if (hs->piece_ref == LUA_NOREF) {
            lua_pushboolean(co, 0);
            hs->piece_ref = luaL_ref(co, LUA_REGISTRYINDEX);
        }
        lua_pushlstring(co, chunk->data, chunk->len);     /* 1 str */
        lua_pushvalue(co, -1);
        lua_rawseti(co, LUA_REGISTRYINDEX, hs->piece_ref);
        hs->piece_in_lua = 1;
    } else if (chunk) {
        lua_rawgeti(co, LUA_REGISTRYINDEX, hs->piece_ref); /* 1 str */
    }
    lua_rawgeti(co, LUA_REGISTRYINDEX, h->env_ref[hs->script]);
    lua_rawgeti(co, LUA_REGISTRYINDEX, h->phase_key_ref[hs->phase]);
    lua_gettable(co, -2);
    lua_remove(co, -2);                                   /* (str) fn */
    lua_rawgeti(co, LUA_REGISTRYINDEX, hs->tx_ref);       /* (str) fn tx */
    if (chunk) {
        lua_pushvalue(co, 1);
        lua_pushboolean(co, chunk->eof);                  /* str fn tx str eof */
    }
    lua_callk(co, chunk ? 3 : 1, LUA_MULTRET, 0, call_hook_done);
    return call_hook_done(co, LUA_OK, 0);
}

/* Makes a coroutine for hook calls, noted as the proxy's, under a
 * registry reference: hs->co and hs->co_ref. Runs in protected mode. */
static int new_coroutine(lua_State *L)
{
    struct hook_state *hs = &((struct session *)lua_touserdata(L, 1))->x.hook;
    lua_State *co = lua_newthread(L);                     /* +1 co */

    /* Noted as the proxy's: a script that keeps it (coroutine.running)
     * may not resume or close it from another hook (hooks_watch.c). */
    lua_rawgeti(L, LUA_REGISTRYINDEX, hs->hooks->hook_threads_ref);
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);                                        /* +1 co */
    hs->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);          /* 0 */
    hs->co = co;
    return 0;
}

int hooks_start(struct session *s, struct chunk_args *chunk)
{
    struct hook_state *hs = &s->x.hook;
    struct hooks *h = hs->hooks;

    if (h->idle_count > 0) {
        /* A finished coroutine starts afresh with a new function, under
         * the registry reference it had. */
        hs->co_ref = h->idle_threads[--h->idle_count];
        lua_rawgeti(h->L, LUA_REGISTRYINDEX, hs->co_ref);
        hs->co = lua_tothread(h->L, -1);
        lua_pop(h->L, 1);
    } else if (hooks_protected(s, new_coroutine, "start") != 0) {
        return -1;
    }
    /* Its stack is empty, and Lua never shrinks one below its minimum
     * of 40 slots: these three fit, and pushing them allocates nothing. */
    lua_pushcfunction(hs->co, call_hook);
    lua_pushlightuserdata(hs->co, s);
    lua_pushlightuserdata(hs->co, chunk);
    hs->co_failed = 0;
    hs->used = 0;
    return 0;
}

/* Pushes the traceback of the coroutine and message given as light
 * userdata (the message may be NULL), without its last line: the
 * coroutine's main function, call_hook, which is the proxy's, not the
 * script's. */
static int push_traceback(lua_State *L)
{
    static const char ours[] = "\n\t[C]: in ?";
    size_t len, n = sizeof ours - 1;
    const char *trace;

    luaL_traceback(L, lua_touserdata(L, 1), lua_touserdata(L, 2), 0);
    trace = lua_tolstring(L, -1, &len);
    if (len >= n && memcmp(trace + len - n, ours, n) == 0)
        lua_pushlstring(L, trace, len - n);
    return 1;
}

/* The traceback of <co> under <msg>, on top of h->L, or NULL: it is made
 * in protected mode, since a hook that failed may have left the heap full
 * (its memory error caught, then stopped by the time limit). Pop it after
 * use either way. */
static const char *traceback(struct hooks *h, lua_State *co, const char *msg, size_t len)
{
    /* The message is the script's (perhaps holding what a client sent):
     * one line, escaped (all <len> bytes: a NUL must not hide the rest);
     * the lines after it are the traceback's own. */
    char escaped[1024];
    if (msg) {
        size_t n = log_escape(escaped, sizeof escaped - 1, msg, len, 0);
        escaped[n] = '\0';
        msg = escaped;
    }
    lua_pushcfunction(h->L, push_traceback);
    lua_pushlightuserdata(h->L, co);
    lua_pushlightuserdata(h->L, (void *)(uintptr_t)msg);
    if (lua_pcall(h->L, 2, 1, 0) != LUA_OK)
        return NULL;
    return lua_tostring(h->L, -1);
}

void hooks_log_failure(struct session *s, lua_State *co, int status)
{
    struct hook_state *hs = &s->x.hook;
    struct hooks *h = hs->hooks;
    const char *script = h->script_name[hs->script];
    const char *phase = hooks_phase_names[hs->phase];
    const char *trace;
    size_t len = 0;

    if (h->timed_out) {
        /* Where it was stopped; and in what, when a library function
         * stopped it with an error (hooks_watch_check). */
        const char *why = status != LUA_OK && status != LUA_YIELD && lua_type(co, -1) == LUA_TSTRING
                              ? lua_tolstring(co, -1, &len)
                              : NULL;
        trace = traceback(h, co, why, len);
        log_msg_lines(LOG_ERROR,
                      "c%llu #%llu %s: %s took longer than %.0f ms and was stopped%s%s",
                      (unsigned long long)s->id, (unsigned long long)s->x.id, script, phase,
                      h->budget * 1000, trace ? ": " : "", trace ? trace : "");
        lua_pop(h->L, 1);
        return;
    }
    if (status == LUA_ERRMEM) {
        log_error("c%llu #%llu %s: %s ran out of memory (--lua-memory is %zu MB)",
                  (unsigned long long)s->id, (unsigned long long)s->x.id, script, phase, h->mem_limit >> 20);
        return;
    }
    const char *msg = lua_type(co, -1) == LUA_TSTRING ? lua_tolstring(co, -1, &len) : NULL;
    if (!msg) {
        msg = "(error object is not a string)";
        len = strlen(msg);
    }
    trace = traceback(h, co, msg, len);
    log_msg_lines(LOG_ERROR, "c%llu #%llu %s: %s failed: %s", (unsigned long long)s->id,
                  (unsigned long long)s->x.id, script, phase, trace ? trace : msg);
    lua_pop(h->L, 1);
}

void hooks_drop_coroutine(struct hook_state *hs)
{
    struct hooks *h = hs->hooks;
    /* One that returned normally can be reused; one that failed or was
     * stopped is left to the garbage collector, even once reset: a hook
     * stopped inside a C function (a gsub callback, a sort comparator)
     * raises its error from within Lua's debug hook, which leaves debug
     * hooks switched off on that coroutine, and the next budget overrun
     * on it would never be stopped. */
    if (hs->co && !hs->co_failed && lua_status(hs->co) == LUA_OK &&
        h->idle_count < (int)(sizeof h->idle_threads / sizeof h->idle_threads[0])) {
        lua_settop(hs->co, 0);
        h->idle_threads[h->idle_count++] = hs->co_ref;
    } else {
        luaL_unref(h->L, LUA_REGISTRYINDEX, hs->co_ref);
    }
    hs->co_ref = LUA_NOREF;
    hs->co = NULL;
}

/* What hooks_wait yields: its address tells it from every other yield. */
static const char wait_marker = 'w';

/* Every phase may wait: a chunk hook's wait pauses its body, an on_done
 * that waits is detached from its exchange (see hooks_done). */
int hooks_can_wait(lua_State *L)
{
    struct hooks *h = hooks_of(L);
    return h && h->current && h->current_co == L && h->running_phase >= 0 && lua_isyieldable(L);
}

int hooks_wait(lua_State *L, void (*cancel)(void *arg), void *arg, struct session **owner)
{
    struct hooks *h = hooks_of(L);
    struct hook_state *hs;
    if (!hooks_can_wait(L)) {
        if (cancel)
            cancel(arg);
        return luaL_error(L, "cannot wait here (not inside a hook, or inside a coroutine of "
                             "the script)");
    }
    hs = &h->current->x.hook;
    hs->wait_cancel = cancel;
    hs->wait_arg = arg;
    hs->wait_owner = owner;
    lua_pushlightuserdata(L, (void *)(uintptr_t)&wait_marker);
    return lua_yield(L, 1);
}

/* A full collection, now: after a hook that hit the memory cap, whose heap
 * may be full of garbage. Lua 5.4.4 (Debian 12's) then leaves the
 * generational collector without a target: the one the bomb set stays,
 * and young garbage piles up for megabytes before the next collection,
 * which some innocent hook pays for, or fails in. One basic step after it
 * sets the target (fixed in Lua 5.4.5; harmless there). */
static void collect_after_bomb(struct hooks *h)
{
    lua_gc(h->L, LUA_GCCOLLECT);
    lua_gc(h->L, LUA_GCSTEP, 0);
    h->alloc_refused = 0;
    h->mem_after_collect = h->mem_used;
}

/* Empties the coroutine of <s>'s failed hook call: its stack may hold a
 * memory bomb's garbage. That runs the __close metamethods of its pending
 * to-be-closed variables, on the coroutine, with what is left of the
 * call's budget: one that loops is stopped like the hook (nothing is left
 * of a call that ran out of time, so there they fail at once). */
static void reset_failed(struct session *s, lua_State *co)
{
    struct hook_state *hs = &s->x.hook;
    struct hooks *h = hs->hooks;
    int timed_out = h->timed_out;

    h->running_phase = (int)hs->phase;
    h->current_script = hs->script;
    h->deadline = monotonic_now() + h->budget - hs->used;
    hooks_watch_arm(co, h->deadline);
    if (timed_out)
        lua_sethook(co, hooks_on_count, LUA_MASKCOUNT, 1);
    lua_resetthread(co);
    hooks_watch_disarm();
    lua_sethook(co, NULL, 0, 0);
    h->timed_out = timed_out; /* as the log said */
    h->running_phase = -1;
    h->current_script = -1;
}

/* Resumes the hook call of <s>, which starts running at <started>; its
 * end goes to *<ended> (for the metrics: one clock reading each way). */
static enum call_outcome resume(struct session *s, int nargs, int *nres, double *sleep_for,
                                double started, double *ended)
{
    struct hook_state *hs = &s->x.hook;
    struct hooks *h = hs->hooks;
    lua_State *co = hs->co;
    int status;

    h->timed_out = 0;
    h->responded = 0;
    h->current_script = hs->script;
    h->current_session = s;
    h->running_phase = (int)hs->phase;
    h->current = s;
    h->current_co = co;
    /* The budget counts running time only: what earlier resumes of this
     * call used is spent, the time it waited is not. */
    h->deadline = started + h->budget - hs->used;
    hooks_watch_arm(co, h->deadline);
    struct session *outer = h->data_session;
    h->data_session = s;
    status = lua_resume(co, h->L, nargs, nres);
    hooks_watch_disarm();
    h->data_session = outer;
    *ended = monotonic_now();
    hs->used += *ended - started;
    h->current_script = -1;
    h->current_session = NULL;
    h->running_phase = -1;
    h->current = NULL;
    h->current_co = NULL;
    if (h->responded)
        hs->responded = 1; /* per exchange: others may run while this sleeps */

    if (status == LUA_YIELD && !h->timed_out) {
        if (*nres == 1 && lua_touserdata(co, -1) == &wait_marker) {
            lua_pop(co, 1);
            return CALL_WAIT; /* only yields where a hook can wait */
        }
        if (*nres == 2 && lua_type(co, -2) == LUA_TSTRING &&
            strcmp(lua_tostring(co, -2), "luaproxy.sleep") == 0 && lua_isnumber(co, -1)) {
            *sleep_for = lua_tonumber(co, -1);
            lua_pop(co, 2);
            if (*sleep_for > h->wait_timeout) {
                lua_pushfstring(co, "proxy.sleep(%f) is longer than --hook-wait-timeout (%f s)",
                                *sleep_for, h->wait_timeout);
                hooks_log_failure(s, co, LUA_ERRRUN);
                return CALL_FAILED;
            }
            return CALL_SLEEP;
        }
        lua_pushstring(co, "a hook yielded outside proxy.sleep");
        hooks_log_failure(s, co, LUA_ERRRUN);
        return CALL_FAILED;
    }
    /* A budget overrun inside a C function (a pattern match) raises an
     * error the script may catch; the hook fails all the same. */
    if (status != LUA_OK || h->timed_out) {
        hs->co_failed = 1;
        hooks_log_failure(s, co, status);
        /* A failed state may hold a lot of garbage (a memory bomb): free it
         * now rather than at the next allocation. */
        if (status == LUA_ERRMEM || h->timed_out || h->alloc_refused) {
            reset_failed(s, co); /* its stack still holds the garbage */
            collect_after_bomb(h);
        }
        return CALL_FAILED;
    }
    /* A memory error the script caught (pcall) ends the hook well, with
     * the bomb's garbage still on the heap. */
    if (h->alloc_refused)
        collect_after_bomb(h);
    return CALL_DONE;
}

/* One resume, counted and timed for the metrics (a sleeping hook's wait
 * is not its run time: each resume is measured alone). */
enum call_outcome hooks_resume(struct session *s, int nargs, int *nres, double *sleep_for)
{
    double started = monotonic_now(), ended;
    enum call_outcome outcome = resume(s, nargs, nres, sleep_for, started, &ended);
    if (outcome != CALL_SLEEP && outcome != CALL_WAIT)
        stats_hook_call((int)s->x.hook.phase, ended - started, outcome == CALL_FAILED,
                        s->x.hook.hooks->timed_out);
    return outcome;
}

/* --trace: the fingerprint (api.fingerprint) of the side of the tx the
 * current phase can change, as a registry reference; LUA_NOREF if it could
 * not be made. A request hook that answers with tx:respond has not changed
 * the request, so the answer is not part of the request side. */
static int trace_fingerprint(struct session *s)
{
    struct hooks *h = s->x.hook.hooks;
    lua_State *L = h->L;
    enum hook_phase phase = s->x.hook.phase;
    struct session *outer = h->data_session;
    int status;

    hooks_push_api_tx(L, &s->x.hook, "fingerprint");
    lua_pushboolean(L, phase == HOOK_ON_REQUEST || phase == HOOK_BEFORE_CONNECT);
    /* tx.req not made yet is made from this exchange: before a hook that
     * only reads it, the fingerprint must see the same request as after. */
    h->data_session = s;
    status = lua_pcall(L, 2, 1, 0);
    h->data_session = outer;
    if (status != LUA_OK) {
        lua_pop(L, 1);
        return LUA_NOREF;
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* --trace: one line for a finished hook call: script, result, running
 * time, and whether it changed the request or the response. */
static void trace_hook_end(struct session *s, enum call_outcome outcome, const char *func)
{
    struct hook_state *hs = &s->x.hook;
    struct hooks *h = hs->hooks;
    lua_State *L = h->L;
    const char *changed = "?";
    int after = trace_fingerprint(s);

    if (hs->trace_fp_ref != LUA_NOREF && after != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, hs->trace_fp_ref);
        lua_rawgeti(L, LUA_REGISTRYINDEX, after);
        changed = lua_rawequal(L, -1, -2) ? "no" : "yes";
        lua_pop(L, 2);
    }
    luaL_unref(L, LUA_REGISTRYINDEX, after);
    luaL_unref(L, LUA_REGISTRYINDEX, hs->trace_fp_ref);
    hs->trace_fp_ref = LUA_NOREF;
    trace_step(s, __FILE__, func, "hook %s in %s: %s, %.3f ms running; changed the %s: %s",
               hooks_phase_names[hs->phase],
          h->script_name[hs->script],
          outcome == CALL_FAILED ? (h->mode == HOOK_ERRORS_OPEN ? "failed (undone: --hook-errors open)"
                                                                 : "failed")
          : hs->responded        ? "answered itself (tx:respond)"
                                 : "returned",
          hs->used * 1000.0,
          hs->phase == HOOK_ON_REQUEST || hs->phase == HOOK_BEFORE_CONNECT ? "request" : "response",
          changed);
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
            if (trace_enabled)
                hs->trace_fp_ref = trace_fingerprint(s);
            /* Capture only: a failure here (no memory) costs the record its
             * change list, never the exchange. */
            if (s->x.flow)
                (void)hooks_protected(s, hooks_tx_change_base, "flow capture");
            if (h->mode == HOOK_ERRORS_OPEN && hooks_protected(s, hooks_tx_snapshot, "snapshot") != 0)
                return HOOKS_FAILED;
            if (hooks_start(s, NULL) != 0)
                return HOOKS_FAILED;
            outcome = hooks_resume(s, HOOKS_START_NARGS, &nres, &sleep_for);
        } else if (hs->wake_nargs < 0) {
            outcome = CALL_FAILED; /* the watchdog ended its wait */
            hs->wake_nargs = 0;
        } else {
            int nargs = hs->wake_nargs;
            hs->wake_nargs = 0;
            outcome = hooks_resume(s, nargs, &nres, &sleep_for);
        }
        if (outcome == CALL_SLEEP || outcome == CALL_WAIT) {
            hs->pending = 1;
            hs->waiting = outcome == CALL_WAIT;
            /* a wait has a watchdog: --hook-wait-timeout */
            ev_timer_set(&hs->sleep_timer, outcome == CALL_WAIT ? h->wait_timeout : sleep_for, 0.);
            ev_timer_start(s->proxy->loop, &hs->sleep_timer);
            TRACE(s, "hook %s in %s: %s", hooks_phase_names[hs->phase], h->script_name[hs->script],
                  outcome == CALL_WAIT ? "waits for a call out (proxy.http, proxy.shared)"
                                       : "sleeps (proxy.sleep): the loop serves others meanwhile");
            return HOOKS_PENDING;
        }
        if (trace_enabled)
            trace_hook_end(s, outcome, __func__);
        hooks_drop_coroutine(hs);
        if (outcome == CALL_DONE && s->x.flow && hooks_protected(s, hooks_tx_record_changes, "flow capture") != 0)
            flows_record_hook(s->x.flow, h->script_name[hs->script], hooks_phase_names[hs->phase], NULL, 0);
        if (outcome == CALL_FAILED) {
            if (h->mode == HOOK_ERRORS_OPEN && hooks_protected(s, hooks_tx_restore, "restore") == 0) {
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

    if (hs->waiting) {
        /* The watchdog: the call out took too long. */
        log_error("c%llu #%llu %s: %s waited longer than --hook-wait-timeout (%.0f s)",
                  (unsigned long long)s->id, (unsigned long long)s->x.id, hs->hooks->script_name[hs->script],
                  hooks_phase_names[hs->phase], hs->hooks->wait_timeout);
        if (hs->wait_cancel)
            hs->wait_cancel(hs->wait_arg);
        hs->waiting = 0;
        hs->wait_cancel = NULL;
        hs->wake_nargs = -1;
    }
    r = hooks_is_chunk_phase(hs->phase) ? hooks_chunk_continue(s) : continue_phase(s, 1);
    if (r == HOOKS_PENDING)
        return;
    hs->pending = 0;
    hs->on_wake(s, r); /* the owner acts on it; may free the session */
}

/* Pushes the values a call out brought, on the main state, in protected
 * mode (they allocate); then hands them to the waiting coroutine. */
struct wake_push {
    lua_CFunction push;
    void *arg;
};

static int push_wake_values(lua_State *L)
{
    struct wake_push *wp = lua_touserdata(L, 1);
    lua_settop(L, 0);
    lua_pushcfunction(L, wp->push);
    lua_pushlightuserdata(L, wp->arg);
    lua_call(L, 1, LUA_MULTRET);
    return lua_gettop(L);
}

void hooks_wake(struct session *s, lua_CFunction push, void *push_arg)
{
    struct hook_state *hs = &s->x.hook;
    struct hooks *h = hs->hooks;
    lua_State *L = h->L;
    struct wake_push wp = {push, push_arg};
    int top = lua_gettop(L), n;
    enum hooks_result r;

    ev_timer_stop(s->proxy->loop, &hs->sleep_timer);
    hs->waiting = 0;
    hs->wait_cancel = NULL;
    lua_pushcfunction(L, push_wake_values);
    lua_pushlightuserdata(L, &wp);
    if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
        /* nil and the error (a message string, already made) */
        lua_pushnil(L);
        lua_insert(L, -2);
    }
    n = lua_gettop(L) - top;
    if (!lua_checkstack(hs->co, n)) {
        lua_settop(L, top);
        n = 0;
    }
    lua_xmove(L, hs->co, n);
    hs->wake_nargs = n;
    r = hooks_is_chunk_phase(hs->phase) ? hooks_chunk_continue(s) : continue_phase(s, 1);
    if (r == HOOKS_PENDING)
        return;
    hs->pending = 0;
    hs->on_wake(s, r); /* the owner acts on it; may free the session */
}

enum hooks_result hooks_run(struct session *s, enum hook_phase phase)
{
    struct hook_state *hs = &s->x.hook;

    if (!hooks_wants(s, phase))
        return HOOKS_CONTINUE;
    hs->phase = phase;
    hs->script = 0;
    /* The tx is made by the phase's first hook call (call_hook), inside
     * its first resume, unless something looks at it before
     * the hook runs: --trace, the flow capture, the --hook-errors open
     * snapshot. */
    if (hs->tx_ref == LUA_NOREF &&
        (trace_enabled || s->x.flow || hs->hooks->mode == HOOK_ERRORS_OPEN) &&
        hooks_protected(s, hooks_tx_make, "tx") != 0)
        return HOOKS_FAILED;
    hs->responded = 0;
    return continue_phase(s, 0);
}

/* ---- on_done hooks that wait ------------------------------------------------
 *
 * on_done runs when the exchange is over: the client has its response and
 * the session goes on with the next request (or is freed). An on_done hook
 * that waits (proxy.sleep, proxy.http, proxy.shared over Redis) therefore
 * cannot stay on the session. Its hook state moves into a record of its
 * own, a bare session shell that carries only what the hook runner reads
 * (the ids, the proxy, the hook state), and the record finishes the
 * remaining on_done hooks by itself. The records are few (a cap per
 * worker), bounded in time (--hook-wait-timeout) and freed at shutdown. */

#define MAX_DETACHED 256

struct detached {
    struct session s;          /* first: the runner sees a session */
    struct detached *prev, *next;
};

static struct detached *detached_list;
static int detached_count;

static void detached_free(struct detached *d)
{
    hooks_exchange_end(&d->s); /* cancels a wait, stops the timer, drops the refs */
    if (d->prev)
        d->prev->next = d->next;
    else
        detached_list = d->next;
    if (d->next)
        d->next->prev = d->prev;
    detached_count--;
    free(d);
}

/* The detached on_done phase ended (its result no longer matters: errors
 * were logged where they happened). */
static void on_detached_done(struct session *s, enum hooks_result result)
{
    (void)result;
    detached_free((struct detached *)s);
}

/* protected: tx.req is read from the exchange on first use; make it now,
 * while the exchange is still there. */
static int load_request(lua_State *L)
{
    struct session *s = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->x.hook.tx_ref);
    lua_getfield(L, -1, "req");
    return 0;
}

/* Moves the waiting on_done call of <s> into a record. 0, or -1 (the cap
 * is reached, or no memory) with the hook state left on <s>. */
static int detach_done(struct session *s)
{
    struct hook_state *hs = &s->x.hook, *dh;
    struct ev_loop *loop = s->proxy->loop;
    struct detached *d;
    double left;

    if (detached_count >= MAX_DETACHED)
        return -1;
    d = calloc(1, sizeof *d);
    if (!d)
        return -1;
    /* A watcher is never moved while active: stop it and start the copy. */
    left = ev_timer_remaining(loop, &hs->sleep_timer);
    ev_timer_stop(loop, &hs->sleep_timer);
    d->s.id = s->id;
    d->s.proxy = s->proxy;
    d->s.x.id = s->x.id; /* for the logs; tx.req was read above */
    d->s.x.started = s->x.started;
    d->s.x.hook = *hs;
    dh = &d->s.x.hook;
    dh->on_wake = on_detached_done;
    /* The bodies' state stays with the session, which frees it. */
    dh->dec = NULL;
    buffer_init(&dh->collected);
    dh->collected_held = 0;
    /* No body is left to filter: the piece's slot goes. */
    luaL_unref(hs->hooks->L, LUA_REGISTRYINDEX, hs->piece_ref);
    hs->piece_ref = dh->piece_ref = LUA_NOREF;
    ev_init(&dh->sleep_timer, on_sleep_done);
    dh->sleep_timer.data = &d->s;
    ev_timer_set(&dh->sleep_timer, left > 0 ? left : 0., 0.);
    ev_timer_start(loop, &dh->sleep_timer);
    if (dh->waiting && dh->wait_owner)
        *dh->wait_owner = &d->s;
    /* The session keeps nothing of it: its reference on the script set
     * is the record's now. */
    hs->hooks = NULL;
    hs->tx_ref = hs->co_ref = hs->snap_ref = hs->trace_fp_ref = hs->flow_base_ref = LUA_NOREF;
    hs->co = NULL;
    hs->pending = hs->waiting = 0;
    hs->wait_cancel = NULL;
    hs->wait_owner = NULL;
    d->next = detached_list;
    if (detached_list)
        detached_list->prev = d;
    detached_list = d;
    detached_count++;
    return 0;
}

void hooks_detached_free(struct proxy *p)
{
    struct detached *d = detached_list, *next;
    for (; d; d = next) {
        next = d->next;
        if (d->s.proxy == p)
            detached_free(d);
    }
}

/* The exchange ends under a hook call that waits (its client went away,
 * or the exchange failed around a paused chunk hook): the call never
 * resumes. Its timer and call out are cancelled, as the watchdog cancels
 * them, and its coroutine is dropped, so on_done can run. Not a script
 * error: nothing is logged or counted as one. */
static void abandon_call(struct session *s)
{
    struct hook_state *hs = &s->x.hook;

    TRACE(s, "hook %s in %s: its exchange ended while it waited; cancelled",
          hooks_phase_names[hs->phase], hs->hooks->script_name[hs->script]);
    ev_timer_stop(s->proxy->loop, &hs->sleep_timer);
    if (hs->waiting && hs->wait_cancel)
        hs->wait_cancel(hs->wait_arg);
    hs->waiting = 0;
    hs->wait_cancel = NULL;
    hs->wait_owner = NULL;
    hs->wake_nargs = 0;
    luaL_unref(hs->hooks->L, LUA_REGISTRYINDEX, hs->trace_fp_ref);
    hs->trace_fp_ref = LUA_NOREF;
    hs->co_failed = 1; /* stopped mid-call: never reused */
    hooks_drop_coroutine(hs);
    hs->pending = 0;
}

void hooks_done(struct session *s)
{
    struct hook_state *hs = &s->x.hook;
    if (!hooks_wants(s, HOOK_ON_DONE))
        return; /* a call that waits is cancelled with the exchange */
    if (hs->pending)
        abandon_call(s);
    /* An exchange refused before any hook ran still gets its on_done. */
    if (hs->tx_ref == LUA_NOREF && hooks_protected(s, hooks_tx_make, "tx") != 0)
        return;
    if (hooks_protected(s, hooks_tx_finish, "finish") != 0)
        return;
    hs->phase = HOOK_ON_DONE;
    hs->script = 0;
    hs->responded = 0; /* an earlier phase's answer does not end this one */
    if (continue_phase(s, 0) != HOOKS_PENDING)
        return;
    if (hooks_protected(s, load_request, "tx.req") == 0 && detach_done(s) == 0) {
        TRACE(s, "on_done waits: it goes on apart from the connection");
        return;
    }
    /* Left on the session, the wait ends with the exchange, below. */
    log_error("c%llu #%llu %s: on_done cannot wait: %d on_done hooks wait already",
              (unsigned long long)s->id, (unsigned long long)s->x.id, hs->hooks->script_name[hs->script],
              detached_count);
    hs->pending = 0;
}
