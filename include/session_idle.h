/*
 * session_idle.h - a worker's clients idle between requests, longest idle
 * first (src/session_idle.c).
 *
 * At --max-connections a new client takes the place of the client that
 * has waited longest for its next request (proxy.c), rather than being
 * turned away while idle keep-alive connections hold every slot. To find
 * that client without a walk over every session, each worker keeps its
 * idle ones in an intrusive doubly linked list: the links live in the
 * sessions themselves (no allocation), a session joins at the tail when it
 * becomes idle and leaves when its next request starts or it closes, so
 * the head is always the longest idle. Finding, joining and leaving are
 * O(1).
 *
 * The list is per worker (struct proxy), like the sessions: the count of
 * connections may be shared across workers, but a worker can only close
 * its own clients.
 */
#ifndef LUAPROXY_SESSION_IDLE_H
#define LUAPROXY_SESSION_IDLE_H

struct session;

/* A session's place in the list (inside struct session). */
struct session_idle_link {
    struct session *prev, *next;
};

/* The list's ends (inside struct proxy); both NULL when it is empty. */
struct session_idle_list {
    struct session *head; /* idle longest */
    struct session *tail; /* idle since most recently */
};

/* Puts <s> in its worker's list, or takes it out, to match what it is now:
 * idle between requests or not. Called after each event has moved the
 * session as far as it goes (session_advance); a session that stays idle
 * keeps its place. */
void session_idle_note(struct session *s);

/* Takes <s> out of the list if it is there (a session being freed). */
void session_idle_leave(struct session *s);

/* The session idle longest whose socket holds no bytes yet unread, or
 * NULL when none does. A client whose next request is already in its
 * socket (this loop turn has not read it yet) is not idle any more: closing
 * it would lose that request, and the unread bytes would make the kernel
 * reset the connection. Looks at most at the first few of the list, so a
 * new client never costs a walk over every session. */
struct session *session_idle_closable(const struct session_idle_list *l);

#endif
