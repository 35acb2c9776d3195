/*
 * session_idle.h - a worker's clients idle between requests, longest idle
 * first (src/session_idle.c).
 *
 * At --max-connections a new client takes the place of a client that
 * waits for a request (proxy.c), rather than being turned away while idle
 * connections hold every slot. Two kinds of client wait so:
 *
 *   silent  connected, and has sent nothing yet: no byte of a first
 *           request has been read;
 *   kept    kept alive after an exchange, waiting for its next request.
 *
 * To find them without a walk over every session, each worker keeps each
 * kind in an intrusive doubly linked list: the links live in the sessions
 * themselves (no allocation), a session joins at the tail when it becomes
 * idle and leaves when its next request starts, an exchange ends, or it
 * closes, so each head is the longest idle of its kind. Finding, joining
 * and leaving are O(1). Which list a session is in follows from its
 * exchange count (none: silent), which cannot change while it is listed.
 *
 * The lists are per worker (struct proxy), like the sessions: the count
 * of connections may be shared across workers, but a worker can only
 * close its own clients.
 */
#ifndef LUAPROXY_SESSION_IDLE_H
#define LUAPROXY_SESSION_IDLE_H

struct session;

/* A session's place in a list (inside struct session). */
struct session_idle_link {
    struct session *prev, *next;
};

/* One list's ends; both NULL when it is empty. */
struct session_idle_queue {
    struct session *head; /* idle longest */
    struct session *tail; /* idle since most recently */
};

/* A worker's idle clients, by kind (inside struct proxy). */
struct session_idle_list {
    struct session_idle_queue silent; /* connected, nothing sent yet */
    struct session_idle_queue kept;   /* kept alive after an exchange */
};

/* Whether <s> waits for a request with nothing to lose if it is closed
 * now: silent since it connected, or kept alive after an exchange whose
 * answer is all out; nothing of a request in, no TLS handshake running. */
int session_idle_waiting(const struct session *s);

/* Puts <s> in its worker's list, or takes it out, to match what it is now:
 * idle or not. Called after each event has moved the session as far as it
 * goes (session_advance); a session that stays idle keeps its place. */
void session_idle_note(struct session *s);

/* Takes <s> out of its list if it is there: a session being freed, or one
 * whose exchange ends (it joins again, at the tail, once idle anew). */
void session_idle_leave(struct session *s);

/* Fills <out> with up to <max> clients that can be closed now to make
 * room, in the order to close them (silent ones first, then kept ones,
 * each kind longest idle first), and returns how many. <now> is the loop's
 * time: a silent client accepted in this turn of the loop is left alone,
 * as its first request may be on its way (see session_idle.c).
 *
 * A client whose next request is already in its socket (this loop turn
 * has not read it yet) is passed over: it is not idle any more, closing
 * it would lose that request, and the unread bytes would make the kernel
 * reset the connection. Each such one costs a peek (a system call), so a
 * call passes over only a few before it gives up: a new client never
 * costs a walk over every session. The sessions stay valid until one of
 * them is closed; closing one (session_reclaim) frees none of the
 * others. */
int session_idle_closable(const struct session_idle_list *l, double now, struct session **out,
                          int max);

#endif
