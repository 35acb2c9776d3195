/*
 * hooks.h - the Lua scripts' entry points into the relay.
 *
 * Only the hooks group (src/hooks*.c, via hooks_internal.h) includes the
 * Lua headers; the relay sees these functions and nothing of Lua. A loaded set of scripts is one struct hooks (one Lua
 * state, memory-capped). Every exchange holds a reference to the set it
 * started with, so a reload (SIGHUP) never changes the scripts under an
 * exchange in flight.
 *
 * Each hook call runs in its own coroutine with a time budget: a count hook
 * checks the clock and, past the budget, yields the coroutine out for good,
 * which no pcall inside the script can catch. proxy.sleep() yields too, and
 * the exchange waits on a timer while every other client is served.
 */
#ifndef LUAPROXY_HOOKS_H
#define LUAPROXY_HOOKS_H

#include <ev.h>
#include <stddef.h>

#include "body.h"
#include "buffer.h"

struct proxy;
struct session;
struct config;
struct hooks;
struct lua_State;
struct body_decoding;
struct headers;

enum hook_phase {
    HOOK_ON_REQUEST,
    HOOK_BEFORE_CONNECT,
    HOOK_ON_RESPONSE,
    HOOK_ON_RESPONSE_CHUNK,
    HOOK_ON_DONE,
    HOOK_ON_REQUEST_CHUNK,
    HOOK_PHASE_COUNT,
};

enum hooks_result {
    HOOKS_CONTINUE, /* every hook of the phase ran; carry on */
    HOOKS_PENDING,  /* a hook sleeps; the phase finishes later by itself */
    HOOKS_RESPOND,  /* a hook called tx:respond: answer locally */
    HOOKS_FAILED,   /* a hook failed (error, timeout, memory): 500 */
};

/* How a phase that slept (HOOKS_PENDING) reports its result, once its last
 * hook has returned: the owner of the exchange installs it with
 * hooks_exchange_begin. It runs from the loop, as an event entry point. */
typedef void hooks_wake_fn(struct session *s, enum hooks_result result);

/* Why a body filter failed, when it was not a script. */
enum hooks_body_error {
    HOOKS_BODY_OK,
    HOOKS_BODY_CORRUPT,   /* the compressed body does not decode */
    HOOKS_BODY_BOMB,      /* it decodes to too much (size or ratio) */
    HOOKS_BODY_TOO_LARGE, /* tx.req.buffer_body past --max-body-buffer */
    HOOKS_BODY_BUSY,      /* the bodies collected at once past --lua-memory */
};

/* Per-exchange hook state, embedded in struct exchange. */
struct hook_state {
    struct hooks *hooks;    /* the script set this exchange uses, or NULL */
    int tx_ref;             /* registry reference of the tx table */
    int co_ref;             /* the coroutine of a sleeping hook */
    struct lua_State *co;
    int co_failed;          /* its last resume failed: not to be reused */
    int snap_ref;           /* --hook-errors open: tx before the hook ran */
    int req_read;           /* a script has read tx.req (see hooks_tx_request_of) */
    enum hook_phase phase;
    int script;             /* index of the script whose hook runs next */
    int pending;            /* a hook is asleep in proxy.sleep */
    int responded;          /* a hook of this phase called tx:respond */
    hooks_wake_fn *on_wake; /* where a phase that slept reports its result */
    ev_timer sleep_timer;   /* proxy.sleep, or the watchdog of a wait */
    int waiting;            /* pending on a call out (proxy.shared, proxy.http) */
    int wake_nargs;         /* values pushed for the hook to resume with */
    double used;            /* running time of this hook call so far */
    int trace_fp_ref;       /* --trace: the tx's fingerprint before the call */
    int flow_base_ref;      /* flow capture: the tx before the call */
    void (*wait_cancel)(void *arg); /* stops the call out the hook waits on */
    void *wait_arg;
    struct session **wait_owner;    /* where the call out keeps its session */
    /* Bodies: what on_request / on_response chose (tx.req.filter_body,
     * tx.req.buffer_body, tx.res.filter_body, tx.res.decode_body). */
    int req_filter_off, req_buffer, res_filter_off, res_decode_off;
    /* A response body decoded for the hooks: its decoder and where the
     * text is (hooks_body.c), or NULL. Made only for such a body, so an
     * idle connection does not carry it. */
    struct body_decoding *dec;
    struct buffer collected;    /* tx.req.buffer_body: the body so far */
    size_t collected_held;      /* of it, counted in proxy->collected_held */
    enum hooks_body_error body_error;
    int res_due; /* tx.res is made with on_response's first call (hooks_prepare_response) */
    int res_lazy; /* tx.res is made on a script's first look at it in on_response,
                   * or in a chunk hook when no script has on_response */
    /* The piece the chunk hooks work on: the relay's bytes (<piece_data>,
     * valid during the filter call only) until the first hook starts, then
     * a Lua string in registry slot <piece_ref> (each hook's result
     * replaces it), so a hook that waits (proxy.sleep, a call out) pauses
     * its body without a copy. Where the output goes, until it is done. */
    const char *piece_data;
    size_t piece_len;
    int piece_in_lua;           /* the piece is the string in <piece_ref> */
    int piece_ref;              /* registry slot, made once per exchange */
    int piece_eof;
    struct buffer *piece_out;
    enum http_body_kind piece_kind;
    uint64_t *piece_sent;
    uint64_t sent_scratch;      /* piece_sent for request bodies */
    /* Set by the relay: a piece for the client (direct) or the upstream
     * (req_direct) may skip that side's output buffer. */
    struct body_direct direct, req_direct;
};

/* Loads the configured scripts into p->hooks (NULL when there are none).
 * 0, or -1 with <err>. */
int hooks_load(struct proxy *p, char *err, size_t err_len);
/* SIGHUP, in steps so that a reload neither holds the loop while scripts
 * load nor puts anything in force unless all of it can be:
 * hooks_prepare_apart loads <cfg>'s scripts into a fresh state, touching
 * no loop, so on a thread of its own (*<out> NULL when there are none);
 * 0, or -1 with <err> and nothing made. hooks_attach, on the loop's
 * thread, gives it <loop> and what needs it (a Redis store); 0, or -1
 * with <err> (the set is then discarded). hooks_replace then puts <fresh>
 * (or no scripts, if NULL) in force in place of the current set, and
 * cannot fail. */
int hooks_prepare_apart(const struct config *cfg, struct hooks **out, char *err, size_t err_len);
int hooks_attach(struct hooks *h, const struct config *cfg, struct ev_loop *loop, char *err,
                 size_t err_len);
void hooks_replace(struct proxy *p, struct hooks *fresh);
/* Sets a reload replaced that exchanges still use (each holds its Lua
 * state, up to --lua-memory), and the oldest of them, or NULL. */
int hooks_retired_count(void);
const struct hooks *hooks_retired_oldest(void);
/* Gives back a set hooks_prepare made that is not put in force (the
 * reload failed elsewhere). Safe with NULL. */
void hooks_discard(struct hooks *h);
void hooks_free(struct proxy *p);

/* Loads the configured scripts once and throws the state away: lets the
 * parent of the workers refuse a broken script before starting any. 0, or
 * -1 with <err>. */
int hooks_try_load(const struct config *cfg, char *err, size_t err_len);

/* --check: loads each script, reports errors and names that look like
 * misspelt hooks. Returns the exit status (0 when all is well). */
int hooks_check(const struct config *cfg);

/* Takes a reference on the proxy's current script set for the exchange;
 * <on_wake> receives the result of any phase that sleeps. */
void hooks_exchange_begin(struct session *s, hooks_wake_fn *on_wake);
/* Drops everything the exchange holds in Lua. */
void hooks_exchange_end(struct session *s);

/* Whether any script of the exchange defines <phase>. */
int hooks_wants(const struct session *s, enum hook_phase phase);

/* Runs <phase>'s hooks in script order and returns what they decided. On
 * HOOKS_PENDING a hook sleeps: the phase later finishes by itself and
 * calls hook.on_wake with the result (never from inside this call). */
enum hooks_result hooks_run(struct session *s, enum hook_phase phase);

/* Hands the response head (status, reason, fields) to the tx before
 * on_response. 0, or -1. */
int hooks_prepare_response(struct session *s);
/* No script defines on_response: the chunk hooks get tx.res all the
 * same, made from the head as it went to the client the first time one
 * looks at it (nothing is made for hooks that do not). */
void hooks_response_on_look(struct session *s);

/* Hands the upstream (the possibly rewritten target) to the tx before
 * before_connect. 0, or -1. */
int hooks_prepare_upstream(struct session *s);

/* Copy what the scripts changed back into the exchange. 0, or -1. */
int hooks_read_request(struct session *s);
int hooks_read_upstream(struct session *s);
int hooks_read_response(struct session *s);

/* Writes the response a hook made with tx:respond. 0, or -1. */
int hooks_write_local_response(struct session *s, struct buffer *out);

/* Whether a body goes through the chunk hooks: a script defines the hook
 * and on_request / on_response did not set filter_body = false. */
int hooks_filters_request(const struct session *s);
int hooks_filters_response(const struct session *s);
/* Whether on_request asked for the whole request body at once. */
int hooks_collects_request(const struct session *s);

/* Before a filtered response's head goes out: when its Content-Encoding is
 * one the proxy decodes (and tx.res.decode_body was not set to false),
 * sets up the decoder and removes the field from <fields>, so the chunk
 * hooks see the real text and the client gets it as it is. 0, or -1. */
int hooks_prepare_response_body(struct session *s, struct headers *fields);
/* Whether a response with <fields> would have its body decoded for the
 * chunk hooks, by the rules above: for the answer to a HEAD, or a 304,
 * whose head should be the one that body would come with. */
int hooks_response_decodes(const struct session *s, const struct headers *fields);
/* The head of a response whose body goes out decoded (or would, for a
 * HEAD or a 304): no Content-Encoding, and a strong ETag made weak, since
 * the decoded bytes are not the ones it was given for (RFC 9110 8.8.1). */
void hooks_head_decoded(struct headers *fields);

/* body_filters (arg: the session): response pieces through
 * on_response_chunk (decoded first when set up), request pieces through
 * on_request_chunk, and, for tx.req.buffer_body, the request body
 * collected whole (up to <max>, then HOOKS_BODY_TOO_LARGE) and run through
 * on_request_chunk once at its end; the result is in hooks_collected. */
int hooks_body_filter(void *arg, const char *data, size_t len, int eof, struct buffer *out,
                      enum http_body_kind out_kind);
int hooks_request_filter(void *arg, const char *data, size_t len, int eof, struct buffer *out,
                         enum http_body_kind out_kind);
int hooks_request_collect(void *arg, const char *data, size_t len, int eof,
                          struct buffer *out, enum http_body_kind out_kind);
struct buffer *hooks_collected(struct session *s);
/* The collected body is whole (or the exchange ends): it no longer counts
 * against the bodies all of the worker's exchanges may collect at once
 * (HOOKS_BODY_BUSY past --lua-memory). */
void hooks_collected_release(struct session *s);

/* A chunk hook that waited woke up: finishes its piece. CONTINUE, PENDING
 * (it waits again) or FAILED. Decoded text after the piece is left for
 * hooks_decode_resume. */
enum hooks_result hooks_chunk_continue(struct session *s);

/* A decoded response body is handed to the hooks a bounded amount at a
 * time: hooks_body_filter may take a piece (returning 1) with text still
 * to make from it. While hooks_decoding, the relay calls
 * hooks_decode_resume (once no hook waits) before it reads on: 0 when the
 * piece is done, 1 when it stopped again (a hook waits, the client's
 * output is full, or the turn's share is made), -1 when it failed. */
int hooks_decode_resume(struct session *s);
int hooks_decoding(const struct hook_state *hs);
/* Frees a decoded body's state (at the exchange's end). */
void hooks_decoding_free(struct hook_state *hs);

/* Whether <phase> is a chunk hook (whose wait pauses a body). */
static inline int hooks_is_chunk_phase(int phase)
{
    return phase == HOOK_ON_RESPONSE_CHUNK || phase == HOOK_ON_REQUEST_CHUNK;
}

/* on_done: runs once per exchange, after it finished or failed. A hook
 * that waits goes on apart from the session, which need not wait for it. */
void hooks_done(struct session *s);
/* Shutdown: ends the on_done hooks of <p> that still wait. */
void hooks_detached_free(struct proxy *p);

#endif
