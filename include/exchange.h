/*
 * exchange.h - forwarding one request: connect, relay, tunnel.
 *
 * Called by session.c; see session.h for the states these functions move
 * a session through. They never change the state, end the exchange or
 * close the connection themselves: each returns what its step came to
 * (enum exchange_step), and session.c acts on it once the step has
 * returned all the way up (session_step in session.c). So nothing is torn
 * down under a caller, and the only calls from here to the session are
 * through the entry points it installed (struct exchange_events).
 */
#ifndef LUAPROXY_EXCHANGE_H
#define LUAPROXY_EXCHANGE_H

#include <stddef.h>

#include "auth.h"
#include "dns.h"
#include "hooks.h"
#include "http_parse.h"
#include "session_state.h"

struct exchange;
struct session;
struct addr_list;

/* The session's entry points for the answers to work an exchange starts:
 * the exchange hands them to the resolver and to the hook runner, so every
 * event reaches a session through the one list in session.c. */
struct exchange_events {
    dns_callback *dns_answer;   /* arg: the session */
    hooks_wake_fn *hook_wakeup;
    auth_done_fn *auth_done;    /* arg: the session */
};

/*
 * What one step of an exchange came to, for session.c to act on:
 *
 *   STEP_WAIT       nothing moved: wait for an event
 *   STEP_PROGRESS   something moved: the session runs another pass
 *   STEP_YIELD      something moved and more can, but not now: the session
 *                   ends its passes and goes on at the loop's next turn,
 *                   after other clients (a large decoded body)
 *   STEP_MOVE       the session moves to x->next.state (x->next.why)
 *   STEP_END        the exchange is over: log it, keep the connection or drain
 *   STEP_FAIL       answer x->next.status with the cause x->next.why (after
 *                   part of the response went out: cut it short), then end
 *   STEP_CLOSE      the client connection closes (x->next.why), the
 *                   exchange ends with it
 *
 * The rule for every function returning one: a step past STEP_PROGRESS
 * (exchange_step_is_outcome) is returned at once, unchanged, by every
 * caller up to session.c; nothing is done between the decision and the
 * session acting on it.
 */
enum exchange_step {
    STEP_WAIT,
    STEP_PROGRESS,
    STEP_YIELD,
    STEP_MOVE,
    STEP_END,
    STEP_FAIL,
    STEP_CLOSE,
};

/* The details of a STEP_MOVE, STEP_FAIL or STEP_CLOSE, and the place in the
 * source that decided it (for --trace's state lines). */
struct exchange_report {
    enum session_state state; /* STEP_MOVE: where to */
    int status;               /* STEP_FAIL: what the client is answered */
    const char *why;          /* the reason, or the failure's cause */
    const char *file, *func;
};

static inline int exchange_step_is_outcome(enum exchange_step step)
{
    return step > STEP_PROGRESS;
}

/* Records <step>'s details in x->next and returns <step>. <why> must live
 * until the session acts (a literal, or x->cause). Use the macros, which
 * pass the place: return exchange_fail(x, 502, "..."). */
enum exchange_step exchange_report_at(struct exchange *x, enum exchange_step step,
                                      enum session_state to, int status, const char *why,
                                      const char *file, const char *func);
#define exchange_move(x, to, why)                                                        \
    exchange_report_at((x), STEP_MOVE, (to), 0, (why), __FILE__, __func__)
#define exchange_fail(x, status, cause)                                                  \
    exchange_report_at((x), STEP_FAIL, SESSION_CLOSED, (status), (cause), __FILE__, __func__)
#define exchange_close_connection(x, why)                                                \
    exchange_report_at((x), STEP_CLOSE, SESSION_CLOSED, 0, (why), __FILE__, __func__)

/* --trace: one line for the chunk hooks' pass over a piece of a body:
 * <in> bytes in (<eof>: the body's end), the body bytes out since
 * <sent_before> in <*sent>, the filter's result <rc> (0 done, 1 waits,
 * -1 failed) and the time since <started>. For the filters' wrappers in
 * exchange.c and response.c. */
void exchange_trace_chunk(struct session *s, const char *file, const char *func, int response,
                          size_t in, int eof, const uint64_t *sent, uint64_t sent_before,
                          int rc, double started);

/* A failure's cause formatted (printf-style) into x->cause, which lives
 * until the exchange is released; <fallback> (a literal) when memory is
 * short. For exchange_fail's <cause>. */
const char *exchange_cause(struct exchange *x, const char *fallback, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The client connection ends after this exchange; <why> (a literal) is
 * what --trace gives as the reason. The first reason is kept. */
void exchange_no_keep(struct exchange *x, const char *why);

/* Replaces the forwarded method and path with copies that the exchange
 * owns (fwd_line). 0, or -1 when out of memory. */
int exchange_set_forward_line(struct exchange *x, const char *method, size_t mlen,
                              const char *path, size_t plen);

void exchange_init(struct exchange *x);
/* Frees what the exchange holds (not the upstream endpoint). */
void exchange_release(struct session *s);

/* A complete, syntactically valid request head of <head_len> bytes is at
 * the front of the client's input: check it, copy what is needed, consume
 * it and start connecting (or answer with an error). */
enum exchange_step exchange_begin(struct session *s, const struct http_head *head,
                                  size_t head_len);

/* SESSION_HOOK: runs the request hooks when the move to SESSION_HOOK was
 * for them (x->hooks_due); else waits (a hook asleep, credentials being
 * checked). */
enum exchange_step exchange_run_hooks(struct session *s);

/* The credentials' check finished (SESSION_HOOK): go on, or answer 407. */
enum exchange_step exchange_auth_done(struct session *s, enum auth_result verdict,
                                      const char *user);

/* For response.c: records the heads before the hooks ran (flows), and
 * answers with the response a hook made (tx:respond). */
void exchange_record_before_hooks(struct session *s, int response);
enum exchange_step exchange_respond_locally(struct session *s);

/* After an answer of the proxy's own (a script's, an error such as a
 * failed lookup or connect) with the request body unread: 1 if the rest
 * of the body will be read and dropped so the connection is kept (a
 * lookup or connect under way is given up first, upstream_abandon; the
 * caller then moves the session to SESSION_EXCHANGE, where exchange_pump
 * does it), 0 if the connection must close after the answer. */
int exchange_discard_body(struct session *s);

/* Whether the rest of the request body could be read and dropped after an
 * answer, to keep the connection: the client keeps it, the framing says
 * where the body ends, no more than 1 MiB of a length is left, and the
 * client sent no Expect. For response.c: an upstream's answer that begins
 * before the body is all read says keep-alive only then; the body goes on
 * up until the answer is complete, and its rest is dropped after. */
int exchange_request_body_droppable(const struct session *s);

/* A hook phase that slept has finished with <r> (SESSION_HOOK, or
 * RESPONSE_HOOK): acts on it as if the hooks had returned at once. */
enum exchange_step exchange_hooks_woke(struct session *s, enum hooks_result r);

/* SESSION_EXCHANGE: moves the request body up and the response down. */
enum exchange_step exchange_pump(struct session *s);

/* SESSION_EXCHANGE: the upstream went quiet for the idle timeout after its
 * response head. Ends the exchange: keeping the client connection when it
 * already has its whole answer (a body being dropped), else closing it
 * after what was sent (the body is cut). */
enum exchange_step exchange_response_stalled(struct session *s);

/* SESSION_TUNNEL: moves bytes both ways and relays half-closes
 * (src/tunnel.c). */
enum exchange_step tunnel_pump(struct session *s);
/* A tunnel closed before tunnel_pump ended it (idle while the bytes that
 * came before one side's abnormal end wait to go out): makes both closes
 * resets, as tunnel_pump would have. */
void tunnel_abort_if_cut(struct session *s);

#endif
