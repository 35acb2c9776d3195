/*
 * session_state.h - the states of a session and the one table of the
 * changes allowed between them (src/session_state.c). Apart from
 * session.h so that exchange.h can name a state an exchange step asks
 * for without including the session.
 */
#ifndef LUAPROXY_SESSION_STATE_H
#define LUAPROXY_SESSION_STATE_H

#include <stddef.h>

enum session_state {
    SESSION_HEAD,       /* reading a request head */
    SESSION_HOOK,       /* credentials being checked, then on_request / before_connect */
    SESSION_RESOLVING,  /* looking up the upstream's name */
    SESSION_CONNECTING, /* TCP connect to the upstream in progress */
    SESSION_EXCHANGE,   /* request forwarded, response being relayed */
    SESSION_TUNNEL,     /* CONNECT or upgrade: bytes both ways */
    SESSION_DRAINING,   /* last response queued: flush, then close */
    SESSION_CLOSED,     /* to be freed at the end of the callback */
};
#define SESSION_STATE_COUNT (SESSION_CLOSED + 1)

const char *session_state_name(enum session_state state);

/* One allowed change of state (src/session_state.c holds the table). */
struct session_transition {
    enum session_state from, to;
    const char *why;
};
extern const struct session_transition session_transitions[];
extern const size_t session_transition_count;
/* The table's entry for <from> -> <to>, or NULL when it is not allowed. */
const struct session_transition *session_transition_find(enum session_state from,
                                                         enum session_state to);
/* Prints the diagram drawn in this header and in README.md from the table
 * into <out> (NUL-terminated when it fits); returns its full length. */
size_t session_state_diagram(char *out, size_t len);

#endif
