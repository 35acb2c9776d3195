/*
 * hooks_internal.h - what the files of the hooks group share: the loaded
 * script set (struct hooks) and the helpers that move data between C and
 * Lua. Included by src/hooks*.c only; it is the one header that names the
 * Lua API, so the relay never sees a lua_State.
 *
 *   hooks.c       loading, reload, --check, the Lua state and its setup
 *   hooks_run.c   per-exchange coroutines, the time budget, phases, proxy.sleep
 *   hooks_tx.c    building the tx, tx.req and tx.res
 *   hooks_readback.c  reading the scripts' changes back, responses a
 *                 script makes itself
 *   hooks_body.c  the on_response_chunk body filter
 *   hooks_lib.c   the proxy.* natives (log, now, phase, ...)
 *   hooks_output.c  io's standard files, which write to the log
 *   hooks_json.c  proxy.json
 *   hooks_base64.c   proxy.base64
 *   hooks_digest.c   proxy.sha256, proxy.hmac_sha256
 *   hooks_address.c  proxy.canonical_host, proxy.ip_prefix
 *   hooks_pattern.c  Lua's pattern functions with a step budget
 *   hooks_stdlib.c   the other standard functions that need one
 *   hooks_watch.c the --hook-timeout watchdog
 *   hooks_headers.c  the header list methods
 */
#ifndef LUAPROXY_HOOKS_INTERNAL_H
#define LUAPROXY_HOOKS_INTERNAL_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>

#include "config.h"
#include "hooks.h"

struct header;
struct headers;
struct shared_store;

extern const char *const hooks_phase_names[HOOK_PHASE_COUNT];

/* The blocks the Lua allocator keeps (see struct hooks): up to
 * HOOKS_SMALL_MAX bytes, in classes HOOKS_SMALL_STEP apart. */
#define HOOKS_SMALL_STEP 16
#define HOOKS_SMALL_MAX 1024
#define HOOKS_SMALL_CLASSES (HOOKS_SMALL_MAX / HOOKS_SMALL_STEP)

/* The keys C reads and writes on every exchange's tx (names in
 * hooks_key_names): interned once and kept in the registry, since making
 * a Lua string from C text costs a hash and a lookup each time. */
enum hooks_key {
    HOOKS_KEY_HEADERS,
    HOOKS_KEY_REQ,
    HOOKS_KEY_RES,
    HOOKS_KEY_INTERCEPT, /* "_intercept" */
    HOOKS_KEY_COUNT
};

/* What a tx holds in its array part (hooks_tx_make): tx.id, and what
 * tx.client is made from. Read through tx's __index (hooks_tx.c) and
 * hooks_api's tx_index_rest, which learns the slots from native. */
enum tx_slot {
    TX_SLOT_ID = 1,
    TX_SLOT_CLIENT_IP,
    TX_SLOT_CLIENT_PORT,
    TX_SLOT_COUNT = TX_SLOT_CLIENT_PORT
};

/* A loaded set of scripts: one Lua state. */
struct hooks {
    lua_State *L;
    int refs;            /* the proxy's reference + one per exchange */
    /* Replaced by a reload while exchanges still used it: on the list of
     * retired sets (hooks_retired_oldest), newest first. */
    int retired;
    struct hooks *retired_prev, *retired_next;
    size_t mem_used;
    size_t mem_limit;
    size_t mem_after_collect; /* mem_used after the last full collection
                               * of ours (hooks_collect_near_cap) */
    double budget;       /* seconds per hook call */
    enum hook_error_mode mode;
    struct ev_loop *loop;
    int api_ref;         /* the table hooks_api.lua returned */
    int tx_mt_ref;       /* api.Tx, to make a tx in C */
    int headers_mt_ref;  /* ... a header list */
    int request_mt_ref, response_mt_ref; /* ... and the sides, tx.req and tx.res */
    int hook_threads_ref; /* the hooks' own coroutines, as keys (weak): no script resumes them */
    int key_ref[HOOKS_KEY_COUNT];           /* the strings of enum hooks_key */
    int phase_key_ref[HOOK_PHASE_COUNT];    /* hooks_phase_names, as strings */
    int script_count;
    int env_ref[CONFIG_MAX_SCRIPTS];
    const char *script_name[CONFIG_MAX_SCRIPTS];
    unsigned has[HOOK_PHASE_COUNT]; /* bit i: script i defines the hook */
    /* The hook call running now (the loop runs one at a time). */
    double deadline;
    int timed_out;
    int alloc_refused;   /* the memory cap refused an allocation since the last collection */
    int current_script;
    struct session *current_session; /* whose hook runs now (proxy.log) */
    int running_phase;   /* enum hook_phase, or -1 */
    int responded;       /* tx:respond was called during this resume */
    struct session *current; /* the exchange whose hook runs now, or NULL */
    lua_State *current_co;   /* ... and its coroutine */
    /* The exchange whose request native.request_of may read now: set
     * around each hook call and each call into hooks_api for an exchange,
     * so Lua reaches the exchange by its id, never by a kept pointer. */
    struct session *data_session;
    /* The last on_request phase used tx.req, the last on_response phase
     * tx.res (learnt at the read-back): the next one gets it made before
     * its first call, else it is made on first look (hooks_tx.c). */
    int req_wanted, res_wanted;
    /* Calls out */
    double wait_timeout; /* --hook-wait-timeout */
    struct shared_store *shared; /* proxy.shared, or NULL (not in a worker) */
    /* Finished coroutines kept for the next hook call: creating a thread
     * per call is the largest fixed cost of a hook. */
    int idle_threads[16];
    int idle_count;
    /* Registry slots of finished exchanges' txs, emptied (false), for the
     * next tx: luaL_ref and luaL_unref cost some 600 instructions an
     * exchange, a store into a kept slot a fraction of that. */
    int idle_tx_refs[16];
    int idle_tx_count;
    /* Where a header list read back from Lua is put in order before it
     * replaces the relay's (hooks_tx.c): grown once, kept for the next. */
    struct header *scratch;
    size_t scratch_cap;
    /* Small blocks Lua freed, kept for its next allocations of the same
     * size class (hooks.c, capped_alloc): class i holds blocks of
     * (i + 1) * HOOKS_SMALL_STEP bytes, linked through their first word. */
    void *small_free[HOOKS_SMALL_CLASSES];
    size_t small_bytes; /* kept in all the classes */
};

static inline struct hooks *hooks_of(lua_State *L)
{
    return *(struct hooks **)lua_getextraspace(L);
}

/* Pushes the string of <key>. */
static inline void hooks_push_key(lua_State *L, const struct hooks *h, enum hooks_key key)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->key_ref[key]);
}

/* ---- hooks.c ---- */

/* Drops one reference; the last one closes the state. NULL is a no-op. */
void hooks_unref(struct hooks *h);
/* Pushes the function <name> of the internal API (hooks_api.lua). */
void hooks_push_api(lua_State *L, struct hooks *h, const char *name);
/* Pushes the API function <name> and the exchange's tx, its first
 * argument: the start of every call that moves data between C and Lua. */
void hooks_push_api_tx(lua_State *L, const struct hook_state *hs, const char *name);
/* Runs <fn> (a lua_CFunction taking the session as light userdata) in
 * protected mode. Returns 0, or -1 after logging the error. */
int hooks_protected(struct session *s, lua_CFunction fn, const char *what);

/* ---- hooks_run.c ---- */

/* The chunk being filtered, for hooks_start (only during the chunk
 * phases). */
struct chunk_args {
    const char *data;   /* the relay's bytes, unless hs->piece_in_lua */
    size_t len;
    int eof;
};

enum call_outcome { CALL_DONE, CALL_SLEEP, CALL_WAIT, CALL_FAILED };

/* For a native that starts a call out and must wait for its result: call
 * as `return hooks_wait(L, cancel, arg, &rec->s)` from a function the hook
 * called directly. The hook's coroutine yields; <cancel>(<arg>) stops the
 * call if the exchange ends (or waits too long) first. <owner> is where
 * the call keeps the session it will wake: an on_done hook that waits
 * moves to a record of its own, and the hooks point it there. Raises an
 * error where a hook cannot wait (outside a hook, inside a script's own
 * coroutine). */
int hooks_wait(lua_State *L, void (*cancel)(void *arg), void *arg, struct session **owner);
/* Whether the running code could wait with hooks_wait. */
int hooks_can_wait(lua_State *L);
/* The call out finished: resumes the waiting hook of <s> with the values
 * that <push>(<L>, <push_arg>) pushes (run in protected mode; on an error
 * the hook gets nil and the error). From the loop only. */
void hooks_wake(struct session *s, lua_CFunction push, void *push_arg);

/* Readies the call of script hs->script's hook for hs->phase on a
 * coroutine (hs->co): its first resume, with HOOKS_START_NARGS values,
 * makes what the call needs (the tx, tx.req or tx.res when due, the
 * chunk's string) and calls the hook. <chunk> is NULL outside the chunk
 * phases. Returns 0, or -1 (logged) when no coroutine could be made. */
#define HOOKS_START_NARGS 2
int hooks_start(struct session *s, struct chunk_args *chunk);
/* Resumes the current hook call. <nargs> values are on its stack (0 when
 * waking from proxy.sleep). On CALL_DONE the results stay on the coroutine
 * (*nres of them) until hooks_drop_coroutine. */
enum call_outcome hooks_resume(struct session *s, int nargs, int *nres, double *sleep_for);
/* Logs why a hook call failed, with the script's traceback. */
void hooks_log_failure(struct session *s, lua_State *co, int status);
void hooks_drop_coroutine(struct hook_state *hs);

/* ---- hooks_tx.c (lua_CFunctions for hooks_protected) ---- */

int hooks_tx_make(lua_State *L);     /* creates the exchange's tx */
int hooks_tx_request_of(lua_State *L); /* native.request_of(tx): tx.req's data */
int hooks_tx_make_request(lua_State *L); /* native.make_request(tx): tx.req */
int hooks_tx_snapshot(lua_State *L); /* --hook-errors open: before a hook */
int hooks_tx_restore(lua_State *L);  /* ... and after it failed */
int hooks_tx_change_base(lua_State *L);    /* flow capture: before a hook */
int hooks_tx_record_changes(lua_State *L); /* ... and what it changed */
int hooks_tx_finish(lua_State *L);   /* the outcome, for on_done */
/* Makes tx.req, then tx.res, of <s>'s exchange (its tx made already, and
 * <s> the data session); raise on no memory, so they run in protected
 * mode. */
void hooks_tx_make_request_now(lua_State *L, struct session *s);
void hooks_tx_make_response(lua_State *L, struct session *s);
/* Sets native.data_index (tx.req's and tx.res's __index), native.data_of
 * and the other natives of the tx in the table at the top of L. */
void hooks_tx_register(lua_State *L);
/* Whether the value at <tx> is the tx of <s>'s exchange (by identity: a
 * tx a script kept past its exchange is not, whatever it holds). <s> may
 * be NULL. */
int hooks_tx_is_of(lua_State *L, int tx, const struct session *s);
/* Pushes t[<key>] of the table at <t>, without metamethods; its type. */
int hooks_raw_get_field(lua_State *L, int t, const char *key);
/* The same for one of the keys of enum hooks_key (<t> absolute). */
int hooks_raw_get_key(lua_State *L, int t, enum hooks_key key);
/* Pushes the side (tx.req if <request>, else tx.res: see hooks_tx.c) the
 * proxy keeps in the tx at <tx>, whatever a script assigned to the names;
 * returns its type (LUA_TNIL before it is made). */
int hooks_tx_get_side(lua_State *L, int tx, int request);
/* Whether a script used the line of the side (tx.req or tx.res, see
 * hooks_tx.c) at <side>: read a field of it, or had its data table made;
 * 1 too for what is not a side. */
int hooks_tx_side_read(lua_State *L, int side);
/* Pushes the data table of the side at <side> (absolute), tx.req's if
 * <request> else tx.res's, and its header list (the data table's, once
 * there is one): returns 1. Without a data table, pushes nil and the
 * side's list: returns 0. Returns -1 (two values pushed) when the side's
 * parts are not what the proxy made for that side (a script stored into
 * them by index, or put one side in the other's place): the full
 * read-back then refuses. */
int hooks_tx_side_parts(lua_State *L, int side, int request);

/* ---- hooks_readback.c ---- */

/* The state's scratch array, grown to hold <want> fields; NULL when out
 * of memory. For a read-back: nothing to free if Lua raises. */
struct header *hooks_scratch(struct hooks *h, size_t want);

/* ---- hooks_lib.c ---- */

/* Pushes the table of native functions hooks_api.lua builds proxy.* on. */
void hooks_lib_push(lua_State *L);
/* Replaces the standard functions that would take the worker down or
 * block it (os.exit; os.execute and io.popen inside a hook) with ones that
 * raise an error instead. */
void hooks_lib_guard(lua_State *L);

/* One line a script logs (proxy.log, print, its standard output), with
 * its name, in the diagnostics log and the flow of the exchange it
 * serves, if any. */
void hooks_log_line(struct hooks *h, const char *msg, size_t len);

/* ---- hooks_output.c ---- */

/* Makes io.stdout, io.stderr and io.write's default output one stream
 * whose lines go to the log (hooks_log_line). */
void hooks_output_install(lua_State *L);
/* Closes that stream, writing what is left of a line: before lua_close. */
void hooks_output_close(lua_State *L);

/* ---- hooks_headers.c ---- */

/* The key of the "changed" mark (hooks_api's CHANGED) on a plain header
 * list and on tx.req's and tx.res's data: set when a script changes them
 * (a view is changed when it holds an edit: hooks_headers_changed). */
extern const char hooks_changed_key;
/* Sets native.header_functions, native.changed_key and native.number_text
 * in the table at the top of L. */
void hooks_headers_register(lua_State *L);
/* The longest text hooks_number_text writes, with its NUL. */
#define HOOKS_NUMBER_TEXT_MAX 32
/* Writes the text the number at <idx> is sent as in a field value into
 * <buf> (of <size> bytes, HOOKS_NUMBER_TEXT_MAX is enough) and returns its
 * length: an integer, or a float with a whole value that fits one, in
 * decimal digits; any other float in the fewest digits (at most 17) that
 * read back as the same number. 0 for NaN and the infinities, which have
 * no text to send. */
size_t hooks_number_text(lua_State *L, int idx, char *buf, size_t size);
/* Whether the header list at <index> was changed through its methods. */
int hooks_headers_changed(lua_State *L, int index);
/* Whether the header list at <index> is still a view no script has read
 * (hooks_headers.c): its head never turned into Lua strings. */
int hooks_headers_unread(lua_State *L, int index);
/* How many fields <key> the header list at <index> holds (a view is not
 * filled for it). */
lua_Integer hooks_headers_count(lua_State *L, int index, const char *key, size_t klen);
/* Pushes a header list that is a view of <fields> (a copy: Lua keeps no
 * pointer into them), made for exchange <stamp>, and then the block (a
 * userdata) the copy is in, which has <extra> bytes more for the caller:
 * returns where they are (one allocation for both). */
void *hooks_headers_push_view(lua_State *L, const struct headers *fields, uint64_t stamp,
                              size_t extra);
/* The caller's bytes of a block hooks_headers_push_view made. */
void *hooks_headers_extra(void *block);
/* Whether the value at <block> is the block hooks_headers_push_view made
 * for the list at <list> (the list it pushed, filled or not). */
int hooks_headers_block_of(lua_State *L, int block, int list);
/* Whether the value at <idx> is such a block (and not a userdata a
 * script put in its place). */
int hooks_headers_is_block(lua_State *L, int idx);
/* If the list at <index> is a view never filled, made from <out> for
 * exchange <stamp> (and <out> not changed since), applies the edits made
 * to it to <out> (checked as headers_add checks them) and returns 1.
 * Returns 0 for a plain list (a view of anything else is filled first),
 * or -1 with a message pushed and <out> as it was. With <quiet>, nothing
 * that allocates is done, so nothing can raise an error: a view of
 * anything else is -1 too, and -1 comes with no message (<out> as it
 * was, to be read back again in protected mode for one). */
int hooks_headers_apply(lua_State *L, int index, struct headers *out, uint64_t stamp, int quiet);

/* ---- hooks_pattern.c ---- */

/* Replaces string.find, match, gmatch and gsub with versions that count
 * their matching steps against the running hook's budget. */
void hooks_pattern_install(lua_State *L);

/* ---- hooks_json.c ---- */

/* Pushes the proxy.json table: encode, decode, null, array_mt. */
void hooks_json_push(lua_State *L);

/* ---- hooks_stdlib.c ---- */

/* Replaces the standard functions whose running time a script's arguments
 * can stretch past any input and any memory cap (string.rep of "" a huge
 * number of times, table.move over a huge range, ...) with versions that
 * finish at once or count their steps against the budget; load's reader
 * and debug.sethook too (see the file). */
void hooks_stdlib_install(lua_State *L);

/* The string argument <arg> of a native, or an error "<needs>, not
 * <type>" ("proxy.sha256 needs the data as a string, not nil"): a number
 * is not taken for its text, as a script that passes one made a mistake. */
const char *hooks_string_arg(lua_State *L, int arg, const char *needs, size_t *len);

/* ---- hooks_base64.c, hooks_digest.c, hooks_address.c ---- */

/* Pushes the proxy.base64 table: encode, decode. */
void hooks_base64_push(lua_State *L);
/* Set sha256 and hmac_sha256 in the table at the top of L. */
void hooks_digest_register(lua_State *L);
/* Set canonical_host and ip_prefix in the table at the top of L. */
void hooks_address_register(lua_State *L);

/* ---- hooks_watch.c ---- */

/* The resume of <co> about to start may run until <deadline> (monotonic
 * seconds): past it, the watchdog stops it. From the main thread only. */
void hooks_watch_arm(lua_State *co, double deadline);
/* The resume returned. */
void hooks_watch_disarm(void);
/* The budget ran out inside C code running on <L> (a pattern match): the
 * hook is marked timed out and its coroutines stop at their next
 * instruction, even if the script catches the error the caller raises. */
void hooks_watch_expire(lua_State *L);
/* For C code that runs on <L> for as long as its arguments say (a
 * library function's loop): raises "hook timed out in <what>" once the
 * running hook is past its budget (or "top-level code timed out in
 * <what>" past the load time limit), and stops the hook's coroutines at
 * their next instruction, even if the script catches the error. */
void hooks_watch_check(lua_State *L, const char *what);
/* Counts <steps> steps of such a loop, and every HOOKS_SPEND_CHECK steps
 * calls hooks_watch_check: a look at the clock costs more than a step. */
#define HOOKS_SPEND_CHECK 4096
void hooks_watch_spend(lua_State *L, unsigned steps, const char *what);
/* The count hook that yields a timed-out hook call out of the script. */
void hooks_on_count(lua_State *L, lua_Debug *ar);
/* Replaces coroutine.resume, coroutine.wrap and coroutine.close with
 * versions the watchdog can follow into. */
void hooks_watch_install(lua_State *L);
/* Runs the function on top of L (no arguments, no results: a script's
 * top-level code, while scripts load) in a coroutine of its own, stopped
 * once it has run <budget> seconds. Pops the function; returns LUA_OK, or
 * an error status with the message on top of L. */
int hooks_watch_load(lua_State *L, double budget);
/* Whether top-level code is running on <L> past its time limit: it is
 * then marked to stop at its next instruction, even if it catches the
 * error the caller raises. */
int hooks_watch_load_expired(lua_State *L);

#endif
