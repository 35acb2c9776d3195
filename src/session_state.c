/*
 * session_state.c - the session's states and the one table of the changes
 * allowed between them.
 *
 * Every change of s->state goes through session_set_state(), which checks
 * it against session_transitions[] below. The diagram in include/session.h
 * and in README.md is printed from this same table (session_state_diagram),
 * and tests/unit/test_session_state.c fails when either copy differs, so
 * the drawing cannot drift from the code. A change that is not in the table
 * is a bug: it is logged, aborts a debug build (LUAPROXY_DEBUG, set by
 * `make SANITIZE=...`), and in a normal build closes the connection, the
 * one outcome that is always safe.
 */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "trace.h"

const char *session_state_name(enum session_state state)
{
    static const char *const names[SESSION_STATE_COUNT] = {
        "head", "hook", "resolving", "connecting", "exchange", "tunnel", "draining", "closed"};
    return (unsigned)state < SESSION_STATE_COUNT ? names[state] : "?";
}

/* Every allowed change, grouped by the state it leaves. */
const struct session_transition session_transitions[] = {
    {SESSION_HEAD, SESSION_HOOK, "a valid head, and --auth-file credentials or request hooks to run"},
    {SESSION_HEAD, SESSION_RESOLVING, "a valid head for a host name: ask the resolver"},
    {SESSION_HEAD, SESSION_CONNECTING, "a valid head for an IP address: connect() under way"},
    {SESSION_HEAD, SESSION_EXCHANGE, "a kept or pooled upstream connection; or answered, a body to drop"},
    {SESSION_HEAD, SESSION_TUNNEL, "CONNECT, and connect() succeeded at once"},
    {SESSION_HEAD, SESSION_HEAD, "a refused head was answered; the connection is kept"},
    {SESSION_HEAD, SESSION_DRAINING, "the client closed, or a refusal ends the connection"},
    {SESSION_HEAD, SESSION_CLOSED, "idle timeout, its slot given to a new client, or a reset"},

    {SESSION_HOOK, SESSION_RESOLVING, "hooks done: ask the resolver"},
    {SESSION_HOOK, SESSION_CONNECTING, "hooks done: connect() under way"},
    {SESSION_HOOK, SESSION_EXCHANGE, "hooks done: a kept or pooled connection; or answered, a body to drop"},
    {SESSION_HOOK, SESSION_TUNNEL, "hooks done: CONNECT, connected at once"},
    {SESSION_HOOK, SESSION_HEAD, "a script answered (tx:respond) or failed; connection kept"},
    {SESSION_HOOK, SESSION_DRAINING, "a script answered or failed; connection not kept"},
    {SESSION_HOOK, SESSION_CLOSED, "the client reset, or left while a hook waited"},

    {SESSION_RESOLVING, SESSION_CONNECTING, "the name resolved: connect() under way"},
    {SESSION_RESOLVING, SESSION_EXCHANGE, "resolved and connected at once; or failed (502/504), a body to drop"},
    {SESSION_RESOLVING, SESSION_TUNNEL, "resolved and connected at once (CONNECT)"},
    {SESSION_RESOLVING, SESSION_HEAD, "lookup failed or timed out (502/504); connection kept"},
    {SESSION_RESOLVING, SESSION_DRAINING, "lookup failed; connection not kept"},
    {SESSION_RESOLVING, SESSION_CLOSED, "the client reset"},

    {SESSION_CONNECTING, SESSION_CONNECTING, "that address failed: try the next one"},
    {SESSION_CONNECTING, SESSION_EXCHANGE, "connected: the request head is written; or failed, a body to drop"},
    {SESSION_CONNECTING, SESSION_TUNNEL, "connected: 200 to the CONNECT"},
    {SESSION_CONNECTING, SESSION_HEAD, "every address failed or timed out (502/504); kept"},
    {SESSION_CONNECTING, SESSION_DRAINING, "connect failed; connection not kept"},
    {SESSION_CONNECTING, SESSION_CLOSED, "the client reset"},

    {SESSION_EXCHANGE, SESSION_HEAD, "response complete (or an error answered); kept alive"},
    {SESSION_EXCHANGE, SESSION_DRAINING, "response complete (or an error answered); not kept"},
    {SESSION_EXCHANGE, SESSION_TUNNEL, "101 Switching Protocols to an upgrade"},
    {SESSION_EXCHANGE, SESSION_RESOLVING, "a reused connection was closed: retry, fresh (name)"},
    {SESSION_EXCHANGE, SESSION_CONNECTING, "a reused connection was closed: retry, fresh"},
    {SESSION_EXCHANGE, SESSION_EXCHANGE, "retry, connected at once; or the upstream failed (502/504), a body to drop"},
    {SESSION_EXCHANGE, SESSION_CLOSED, "the client went away, or a response cut short"},

    {SESSION_TUNNEL, SESSION_CLOSED, "both sides done, a reset, a write failed, or idle too long"},

    {SESSION_DRAINING, SESSION_CLOSED, "last bytes out and the client closed or 2 s passed; or it stopped reading"},
};
const size_t session_transition_count =
    sizeof session_transitions / sizeof session_transitions[0];

const struct session_transition *session_transition_find(enum session_state from,
                                                         enum session_state to)
{
    for (size_t i = 0; i < session_transition_count; i++)
        if (session_transitions[i].from == from && session_transitions[i].to == to)
            return &session_transitions[i];
    return NULL;
}

/* The table as one bit per allowed target for each state, built on first
 * use: a state change is checked with a shift instead of a walk through
 * the table (it happens several times in every exchange). */
static int transition_allowed(enum session_state from, enum session_state to)
{
    static unsigned allowed[SESSION_STATE_COUNT];
    static int built;

    if (!built) {
        for (size_t i = 0; i < session_transition_count; i++)
            allowed[session_transitions[i].from] |= 1u << session_transitions[i].to;
        built = 1;
    }
    return (unsigned)from < SESSION_STATE_COUNT && (unsigned)to < SESSION_STATE_COUNT &&
           (allowed[from] >> to & 1u);
}

void session_set_state_at(struct session *s, enum session_state to, const char *why,
                          const char *file, const char *func)
{
    enum session_state from = s->state;

    if (from == SESSION_CLOSED && to == SESSION_CLOSED)
        return; /* closing twice is allowed and changes nothing */
    if (trace_enabled)
        trace_step(s, file, func, "state %s -> %s: %s", session_state_name(from),
                   session_state_name(to), why);
    if (!transition_allowed(from, to)) {
        log_error("c%llu: state change %s -> %s (%s) is not in session_transitions[]",
                  (unsigned long long)s->id, session_state_name(from), session_state_name(to),
                  why);
#ifdef LUAPROXY_DEBUG
        log_flush(); /* the line above goes out first (bounded) */
        abort();
#endif
        to = SESSION_CLOSED;
    }
    s->state = to;
}

size_t session_state_diagram(char *out, size_t len)
{
    size_t n = 0;
    int w;

#define PUT(...)                                                                \
    do {                                                                        \
        w = snprintf(out + (n < len ? n : len), n < len ? len - n : 0, __VA_ARGS__); \
        n += w > 0 ? (size_t)w : 0;                                             \
    } while (0)

    PUT("accept -> head\n");
    for (size_t i = 0; i < session_transition_count; i++) {
        const struct session_transition *t = &session_transitions[i];
        PUT("%-10s -> %-10s  %s\n", i == 0 || session_transitions[i - 1].from != t->from
                                          ? session_state_name(t->from)
                                          : "",
            session_state_name(t->to), t->why);
    }
    PUT("closed: freed at the end of the event\n");
#undef PUT
    return n;
}
