/*
 * hooks_watch.c - the time budget of a hook call (--hook-timeout), kept
 * without a cost per Lua instruction, and of a script's top-level code.
 *
 * Lua stops a running script only through a debug hook, and in Lua 5.4 a
 * count hook, however large its count, makes the VM trap into the hook
 * machinery on every instruction. So no hook is set while a hook call
 * runs within its budget. A watchdog thread (one per process, started in
 * the worker on first use) looks at the resume running now: the main
 * thread publishes each resume's deadline and a generation number with a
 * few atomic stores, no system call. Only when a resume is still running
 * past its deadline does the watchdog send the main thread a signal, whose
 * handler sets a count hook of 1 on the running coroutine (the Lua manual
 * allows lua_sethook from a signal handler; lua.c stops a script on SIGINT
 * this way). The hook then yields the coroutine out of the script, which
 * the script's pcall cannot catch.
 *
 *   main thread                      watchdog thread
 *   resume start: deadline, gen++    wakes at most every WATCH_TICK_NS;
 *   (gen odd: a resume runs)         gen odd and past its deadline:
 *   resume end: gen++                  fired = gen; signal the main thread
 *                                    handler (main thread): gen == fired
 *                                      still? then lua_sethook(co, 1)
 *
 * A signal that arrives after its resume ended finds another generation
 * and does nothing; a hook it set just before the end is cleared when the
 * coroutine is next resumed. The thread sleeps on a condition variable
 * when no hook has run for a while, and is woken by the next resume.
 *
 * A coroutine the script made itself runs on its own lua_State, which a
 * hook on the hook's coroutine does not reach: coroutine.resume and
 * coroutine.wrap are replaced by versions that record the innermost
 * coroutine running, so the handler stops that one too.
 *
 * A script's top-level code, run while scripts load (at start, and on
 * SIGHUP inside a running worker, where an endless loop would stop the
 * worker for good), has a budget too. Loading is rare, so it needs no
 * thread: a count hook looks at the clock every LOAD_CHECK_INTERVAL
 * instructions, and the code runs in a coroutine so that the hook can
 * yield out of it past any pcall the script makes.
 *
 * No hook reaches into a C function: one that loops for as long as its
 * arguments say (table.move over a huge range, say) looks at the budget
 * itself through hooks_watch_check (hooks_pattern.c, hooks_stdlib.c). A
 * blocking system call is cut short by the signal (EINTR), and the hook
 * meets its limit as it returns to Lua. As a last resort, for C code that
 * never returns (a C module that loops, or that retries its call after a
 * signal), the watchdog ends the process once a hook has run past its
 * deadline by STUCK_FACTOR budgets, and at least STUCK_MIN_NS, after the
 * signal: a worker stuck for good serves nobody, and its replacement
 * (the supervisor starts one; with one process, whatever runs the proxy)
 * serves everybody. HAProxy's watchdog does the same with a stuck thread.
 */
#include "hooks_internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* The watchdog's longest sleep while hooks run: a resume that starts
 * while it sleeps is seen at most this late. */
#define WATCH_TICK_NS 5000000LL
/* Ticks without any resume before the watchdog sleeps until woken: it
 * ticks on only while hooks run often (where waking it at each resume, a
 * system call, would cost more than its ticks), and an idle proxy, such
 * as a debugging one on a laptop, wakes it at most 20 times after each
 * request with a hook, not hundreds. */
#define WATCH_IDLE_TICKS 20
/* A resume still running this long past its deadline, after the signal,
 * is stuck in C code: STUCK_FACTOR times the hook budget, at least
 * STUCK_MIN_NS (a full collection of a large heap is one C call too). */
#define STUCK_FACTOR 10
#define STUCK_MIN_NS 5000000000LL
/* The most one look of the watchdog adds to the time a resume has been
 * stuck: a longer gap means the watchdog itself did not run (the process
 * was stopped, the machine suspended), which says nothing of the hook. */
#define STUCK_STEP_MAX_NS 100000000LL
/* The exit status of a process ended for a stuck hook (EX_SOFTWARE). */
#define STUCK_EXIT 70

static struct {
    atomic_uint_fast64_t gen;     /* odd while a resume runs */
    atomic_llong deadline;        /* the running resume's, in ns */
    atomic_uint_fast64_t fired;   /* a generation found past its deadline */
    atomic_llong stuck_ns;        /* the running resume's: see STUCK_FACTOR */
    _Atomic(const char *) script; /* ... and its script and hook, for the log */
    _Atomic(const char *) phase;
    atomic_int parked;            /* the thread waits on <cv> */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t main;
    int started;                  /* in this process (reset in a fork child) */
    int failed;                   /* no thread: fall back to the count hook */
} watch = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* Read by the signal handler, written by the main thread only. */
static _Atomic(lua_State *) watch_co;    /* the hook's coroutine */
static _Atomic(lua_State *) watch_inner; /* the innermost one the script resumed */

/* Instructions between two looks at the clock when there is no watchdog. */
#define COUNT_HOOK_INTERVAL 1000
/* The same while a script's top-level code runs. */
#define LOAD_CHECK_INTERVAL 10000

/* The top-level code this thread runs now, if any: scripts load on the
 * loop's thread at start, and on a thread of their own on a reload (see
 * proxy.c), while the loop's thread runs hooks. */
static _Thread_local struct {
    int running;
    int timed_out;
    double deadline;
} load;

static int watch_signal(void)
{
    return SIGRTMIN + 2;
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double now_seconds(void)
{
    return (double)now_ns() / 1e9;
}

void hooks_on_count(lua_State *L, lua_Debug *ar)
{
    struct hooks *h = hooks_of(L);
    (void)ar;
    if (!h->timed_out && (h->running_phase < 0 || now_seconds() <= h->deadline)) {
        /* Left over from a firing that came as a resume ended, or the
         * fallback's periodic look: nothing to stop. */
        if (!watch.failed)
            lua_sethook(L, NULL, 0, 0);
        return;
    }
    h->timed_out = 1;
    if (lua_isyieldable(L))
        lua_yield(L, 0); /* must be the hook's last action */
    else
        luaL_error(L, "hook timed out");
}

static void stop_running(void)
{
    lua_State *co = atomic_load(&watch_co), *inner = atomic_load(&watch_inner);
    if (co)
        lua_sethook(co, hooks_on_count, LUA_MASKCOUNT, 1);
    if (inner)
        lua_sethook(inner, hooks_on_count, LUA_MASKCOUNT, 1);
}

static void on_watch_signal(int sig)
{
    int saved = errno;
    uint_fast64_t gen = atomic_load(&watch.gen);
    (void)sig;
    if ((gen & 1) && gen == atomic_load(&watch.fired))
        stop_running();
    errno = saved;
}

static void sleep_ns(long long ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The running resume has been stuck <stuck> ns past its deadline: see
 * the file's comment. From the watchdog thread, which reads only what the
 * main thread published for it. */
static void give_up(long long stuck)
{
    const char *script = atomic_load(&watch.script), *phase = atomic_load(&watch.phase);
    log_error("%s: %s has run %.1f s past --hook-timeout inside a C function that cannot be "
              "interrupted (a blocking call?); this process ends (status %d) rather than hold "
              "its clients for good",
              script ? script : "a script", phase ? phase : "a hook", (double)stuck / 1e9,
              STUCK_EXIT);
    log_flush(); /* the line above goes out first (bounded) */
    _exit(STUCK_EXIT);
}

static void *watch_main(void *arg)
{
    uint_fast64_t last_seen = 0, last_fired = 0;
    long long last_look = 0, stuck = 0;
    int idle = 0;
    (void)arg;

    for (;;) {
        uint_fast64_t gen = atomic_load(&watch.gen);
        if (!(gen & 1)) {
            idle = gen == last_seen ? idle + 1 : 0;
            last_seen = gen;
            if (idle < WATCH_IDLE_TICKS) {
                sleep_ns(WATCH_TICK_NS);
                continue;
            }
            /* Park; the next resume start sees <parked> and wakes us (or
             * we see its generation here and carry on). */
            pthread_mutex_lock(&watch.mu);
            atomic_store(&watch.parked, 1);
            if (atomic_load(&watch.gen) == gen)
                while (atomic_load(&watch.parked))
                    pthread_cond_wait(&watch.cv, &watch.mu);
            atomic_store(&watch.parked, 0);
            pthread_mutex_unlock(&watch.mu);
            idle = 0;
            continue;
        }
        long long deadline = atomic_load(&watch.deadline);
        if (atomic_load(&watch.gen) != gen)
            continue; /* that resume ended meanwhile */
        last_seen = gen;
        idle = 0;
        long long now = now_ns(), left = deadline - now;
        if (left > 0) {
            sleep_ns(left < WATCH_TICK_NS ? left : WATCH_TICK_NS);
            continue;
        }
        if (gen != last_fired) {
            last_fired = gen;
            stuck = 0;
            atomic_store(&watch.fired, gen);
            pthread_kill(watch.main, watch_signal());
        } else {
            /* Still running after the signal: the hook it set has not
             * fired, so the code is in C. */
            long long step = now - last_look;
            stuck += step < STUCK_STEP_MAX_NS ? step : STUCK_STEP_MAX_NS;
            if (stuck >= atomic_load(&watch.stuck_ns) && atomic_load(&watch.gen) == gen)
                give_up(stuck);
        }
        last_look = now;
        sleep_ns(WATCH_TICK_NS);
    }
    return NULL;
}

/* A forked child has no watchdog thread: it starts its own when it first
 * runs a hook. */
static void on_fork_child(void)
{
    pthread_mutex_init(&watch.mu, NULL);
    pthread_cond_init(&watch.cv, NULL);
    atomic_store(&watch.parked, 0);
    watch.started = 0;
}

static void start_thread(void)
{
    static int atfork_done;
    struct sigaction sa;
    sigset_t all, old;
    pthread_t thread;
    int rc;

    watch.started = 1;
    if (!atfork_done) {
        atfork_done = 1;
        pthread_atfork(NULL, NULL, on_fork_child);
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_watch_signal;
    /* No SA_RESTART: a hook blocked in a system call (a read from a pipe,
     * an open of a FIFO) gets EINTR from it, returns to Lua, and meets
     * the hook set above; with the call restarted it would only end with
     * the process, STUCK_FACTOR budgets later. The signal is sent only
     * while a hook runs, and the loop's own calls do not block. */
    sa.sa_flags = 0;
    sigemptyset(&sa.sa_mask);
    if (sigaction(watch_signal(), &sa, NULL) != 0) {
        log_error("hook timeout watchdog: sigaction: %s; using the count hook", strerror(errno));
        watch.failed = 1;
        return;
    }
    watch.main = pthread_self();
    /* The thread takes no signal: every one stays with the main thread
     * and its event loop. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&thread, NULL, watch_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0) /* what ps -L and top -H show for it */
        pthread_setname_np(thread, "hook watchdog");
    if (rc != 0) {
        log_error("hook timeout watchdog: pthread_create: %s; using the count hook", strerror(rc));
        watch.failed = 1;
        return;
    }
    pthread_detach(thread);
}

void hooks_watch_arm(lua_State *co, double deadline)
{
    if (!watch.started)
        start_thread();
    if (watch.failed) {
        lua_sethook(co, hooks_on_count, LUA_MASKCOUNT, COUNT_HOOK_INTERVAL);
        return;
    }
    lua_sethook(co, NULL, 0, 0); /* see the file's comment */
    /* Two resumes per exchange with a hook, so only what needs it is a
     * locked instruction. The coroutines are read by the signal handler,
     * on this very thread: program order is enough. The deadline must be
     * seen before the generation turns odd: a release store, and the
     * fetch_add after it, orders it. That fetch_add is sequentially
     * consistent because <parked> is read after it while the watchdog
     * writes <parked> and then reads the generation: with anything
     * weaker, each could miss the other's store and the watchdog would
     * sleep through this resume. */
    atomic_store_explicit(&watch_co, co, memory_order_relaxed);
    atomic_store_explicit(&watch_inner, NULL, memory_order_relaxed);
    {
        const struct hooks *h = hooks_of(co);
        long long stuck = (long long)(h->budget * STUCK_FACTOR * 1e9);
        int script = h->current_script, phase = h->running_phase;
        atomic_store_explicit(&watch.stuck_ns, stuck > STUCK_MIN_NS ? stuck : STUCK_MIN_NS,
                              memory_order_relaxed);
        atomic_store_explicit(&watch.script,
                              script >= 0 && script < h->script_count ? h->script_name[script]
                                                                      : NULL,
                              memory_order_relaxed);
        atomic_store_explicit(&watch.phase, phase >= 0 ? hooks_phase_names[phase] : NULL,
                              memory_order_relaxed);
    }
    atomic_store_explicit(&watch.deadline, (long long)(deadline * 1e9), memory_order_release);
    atomic_fetch_add(&watch.gen, 1);
    if (atomic_load(&watch.parked)) {
        pthread_mutex_lock(&watch.mu);
        atomic_store(&watch.parked, 0);
        pthread_cond_signal(&watch.cv);
        pthread_mutex_unlock(&watch.mu);
    }
}

void hooks_watch_disarm(void)
{
    if (watch.failed)
        return;
    /* Only this thread writes the generation. A watchdog that still reads
     * the odd one may fire for it; the handler, on this thread, then finds
     * another generation and does nothing. */
    atomic_store_explicit(&watch.gen, atomic_load_explicit(&watch.gen, memory_order_relaxed) + 1,
                          memory_order_release);
    atomic_store_explicit(&watch_co, NULL, memory_order_relaxed);
    atomic_store_explicit(&watch_inner, NULL, memory_order_relaxed);
}

void hooks_watch_expire(lua_State *L)
{
    struct hooks *h = hooks_of(L);
    h->timed_out = 1;
    lua_sethook(L, hooks_on_count, LUA_MASKCOUNT, 1);
    if (!watch.failed)
        stop_running();
}

void hooks_watch_check(lua_State *L, const char *what)
{
    struct hooks *h = hooks_of(L);
    if (!h)
        return;
    if (h->running_phase < 0) { /* no hook runs: top-level code, or nothing */
        if (hooks_watch_load_expired(L))
            luaL_error(L, "top-level code timed out in %s", what);
        return;
    }
    if (!h->timed_out && now_seconds() <= h->deadline)
        return;
    hooks_watch_expire(L); /* even if the script catches the error below */
    luaL_error(L, "hook timed out in %s", what);
}

/* Steps counted by hooks_watch_spend, over all calls: a loop of a few
 * steps per call is still seen. (Per thread, as load is.) */
static _Thread_local unsigned spent_steps;

void hooks_watch_spend(lua_State *L, unsigned steps, const char *what)
{
    unsigned before = spent_steps;
    spent_steps += steps;
    if (before / HOOKS_SPEND_CHECK != spent_steps / HOOKS_SPEND_CHECK)
        hooks_watch_check(L, what);
}

/* ---- the script's own coroutines ------------------------------------------
 *
 * What Lua's coroutine library does (lcorolib.c), plus a note of the
 * coroutine running, so the watchdog's handler reaches it. */

/* The count hook of a script's top-level code: past the budget, every
 * instruction stops it, by a yield where it can (a pcall in the script
 * cannot catch that), else by an error. */
static void on_load_count(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    if (!load.timed_out && now_seconds() <= load.deadline)
        return;
    load.timed_out = 1;
    lua_sethook(L, on_load_count, LUA_MASKCOUNT, 1);
    if (lua_isyieldable(L))
        lua_yield(L, 0); /* must be the hook's last action */
    else
        luaL_error(L, "top-level code ran longer than the load time limit");
}

/* Lua code is about to run on <co>, a coroutine of the script, called
 * from <L>: gives <co> the hook the time limit needs there, and notes it
 * as the innermost coroutine running, for the watchdog's handler. Returns
 * the one noted before, for leave_inner. */
static lua_State *enter_inner(lua_State *L, lua_State *co)
{
    struct hooks *h = hooks_of(L);
    lua_State *outer = atomic_load(&watch_inner);
    if (load.running)
        lua_sethook(co, on_load_count, LUA_MASKCOUNT, load.timed_out ? 1 : LOAD_CHECK_INTERVAL);
    else if (h->timed_out)
        lua_sethook(co, hooks_on_count, LUA_MASKCOUNT, 1);
    else if (!watch.failed)
        lua_sethook(co, NULL, 0, 0);
    /* The watchdog's handler stops the hook the loop's thread runs: top-level
     * code (perhaps on another thread) is not its business. */
    if (!watch.failed && !load.running)
        atomic_store(&watch_inner, co);
    return outer;
}

/* The code on the coroutine enter_inner noted is done: <outer> is the
 * innermost one again, and if the limit ran out meanwhile, <L> stops too. */
static void leave_inner(lua_State *L, lua_State *outer)
{
    struct hooks *h = hooks_of(L);
    if (!watch.failed && !load.running)
        atomic_store(&watch_inner, outer);
    if (load.running && load.timed_out) /* stop the caller too */
        lua_sethook(L, on_load_count, LUA_MASKCOUNT, 1);
    else if (h->timed_out)
        lua_sethook(L, hooks_on_count, LUA_MASKCOUNT, 1);
}

/* lua_resetthread(<co>) where the time limit reaches the __close
 * metamethods it runs, on <co> itself; its status. */
static int watched_reset(lua_State *L, lua_State *co)
{
    lua_State *outer = enter_inner(L, co);
    int status = lua_resetthread(co);
    leave_inner(L, outer);
    return status;
}

/* Resumes <co> with <narg> values from the top of L. The count of values
 * it yielded or returned, moved onto L; or -1 with the error on L. */
static int watched_resume(lua_State *L, lua_State *co, int narg)
{
    lua_State *outer;
    int status, nres;

    if (!lua_checkstack(co, narg)) {
        lua_pushliteral(L, "too many arguments to resume");
        return -1;
    }
    lua_xmove(L, co, narg);
    outer = enter_inner(L, co);
    status = lua_resume(co, L, narg, &nres);
    leave_inner(L, outer);
    if (status == LUA_OK || status == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushliteral(L, "too many results to resume");
            return -1;
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    lua_xmove(co, L, 1);
    return -1;
}

/* Whether <co> (at <idx>) is a hook's own coroutine, which only the proxy
 * resumes: resumed by a script from another hook, that hook would run on
 * in the wrong exchange's call and be found finished when its wait ended
 * (its exchange failed); closed, the same. */
static int hook_thread(lua_State *L, int idx)
{
    struct hooks *h = hooks_of(L);
    int found;
    if (!h || h->hook_threads_ref == LUA_NOREF || h->hook_threads_ref == 0)
        return 0;
    idx = lua_absindex(L, idx);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->hook_threads_ref);
    lua_pushvalue(L, idx);
    found = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return found;
}

static int co_resume(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    int r;
    luaL_argexpected(L, co, 1, "coroutine");
    if (co != L && hook_thread(L, 1)) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "cannot resume a hook's own coroutine (the proxy resumes it)");
        return 2;
    }
    r = watched_resume(L, co, lua_gettop(L) - 1);
    if (r < 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(r + 1));
    return r + 1;
}

static int co_wrapped(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int r = watched_resume(L, co, lua_gettop(L));
    if (r < 0) {
        int status = lua_status(co);
        if (status != LUA_OK && status != LUA_YIELD) { /* error in the coroutine? */
            status = watched_reset(L, co);            /* close its tbc variables */
            lua_xmove(co, L, 1);                       /* its error, after closing */
            lua_remove(L, -2);
        }
        if (status != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
            luaL_where(L, 1);
            lua_insert(L, -2);
            lua_concat(L, 2);
        }
        return lua_error(L);
    }
    return r;
}

static int co_wrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, co_wrapped, 1);
    return 1;
}

/* coroutine.close runs the __close metamethods of a suspended coroutine
 * on that coroutine: Lua's own function (upvalue 1), with the coroutine
 * noted so that the time limit reaches them. */
static int co_close(lua_State *L)
{
    lua_State *co, *outer;
    lua_Debug ar;
    int status;
    luaL_checktype(L, 1, LUA_TTHREAD);
    co = lua_tothread(L, 1);
    /* Only a dead or suspended one can be closed (checked here, where the
     * message can say where the call is): */
    if (co == L)
        return luaL_error(L, "cannot close a running coroutine");
    if (hook_thread(L, 1))
        return luaL_error(L, "cannot close a hook's own coroutine (the proxy ends it)");
    if (lua_status(co) == LUA_OK && lua_getstack(co, 0, &ar))
        return luaL_error(L, "cannot close a normal coroutine"); /* it resumed another */
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    outer = enter_inner(L, co);
    status = lua_pcall(L, 1, LUA_MULTRET, 0); /* to note the outer one again on an error */
    leave_inner(L, outer);
    if (status != LUA_OK)
        return lua_error(L);
    return lua_gettop(L);
}

void hooks_watch_install(lua_State *L)
{
    lua_getglobal(L, "coroutine");
    if (lua_istable(L, -1)) {
        lua_pushcfunction(L, co_resume);
        lua_setfield(L, -2, "resume");
        lua_pushcfunction(L, co_wrap);
        lua_setfield(L, -2, "wrap");
        lua_getfield(L, -1, "close");
        lua_pushcclosure(L, co_close, 1);
        lua_setfield(L, -2, "close");
    }
    lua_pop(L, 1);
}

int hooks_watch_load_expired(lua_State *L)
{
    if (!load.running || (!load.timed_out && now_seconds() <= load.deadline))
        return 0;
    load.timed_out = 1;
    lua_sethook(L, on_load_count, LUA_MASKCOUNT, 1);
    return 1;
}

int hooks_watch_load(lua_State *L, double budget)
{
    lua_State *co = lua_newthread(L); /* +1 co (kept until the end) */
    int status, nres;

    lua_rotate(L, -2, 1);  /* co under the function */
    lua_xmove(L, co, 1);   /* the function, onto co */
    load.running = 1;
    load.timed_out = 0;
    load.deadline = now_seconds() + budget;
    lua_sethook(co, on_load_count, LUA_MASKCOUNT, LOAD_CHECK_INTERVAL);
    status = lua_resume(co, L, 0, &nres);
    load.running = 0;
    if (load.timed_out && status == LUA_YIELD) {
        lua_pop(L, 1);
        char msg[96];
        snprintf(msg, sizeof msg, "its top-level code ran longer than %g s (the load time limit)",
                 budget);
        lua_pushstring(L, msg);
        return LUA_ERRRUN;
    }
    if (status == LUA_YIELD) {
        lua_pop(L, 1);
        lua_pushliteral(L, "its top-level code yielded (a script may yield only inside a hook)");
        return LUA_ERRRUN;
    }
    if (status != LUA_OK) { /* an error: the script's, or a limit's where it could not yield */
        lua_xmove(co, L, 1);
        lua_remove(L, -2);
        if (load.timed_out) { /* a limit's, raised in C (hooks_watch_check): say which */
            const char *where = lua_tostring(L, -1);
            char msg[96];
            snprintf(msg, sizeof msg, "its top-level code ran longer than %g s (the load time limit)",
                     budget);
            lua_pushfstring(L, "%s: %s", msg, where ? where : "stopped");
            lua_remove(L, -2);
        }
        return status;
    }
    lua_pop(co, nres);
    lua_pop(L, 1);
    return LUA_OK;
}
