/*
 * session_idle.c - which clients are idle, waiting for a request, kept in
 * order.
 *
 * This file decides what "idle" means for a client connection and keeps
 * the worker's lists of idle ones (session_idle.h) true to it. It closes
 * nobody: proxy.c asks which ones may go when a new client needs a slot,
 * and session.c closes them (session_reclaim).
 */
#include "session_idle.h"

#include <sys/socket.h>

#include "session.h"

/* How many clients with bytes unread in their socket one call of
 * session_idle_closable passes over (a peek each) before it gives up. */
#define IDLE_CLOSABLE_SKIPS 8

/*
 * Whether <s> waits for a request with nothing to lose if it is closed
 * now: no exchange is in progress, nothing of a request has arrived, and
 * every byte of the last answer, if any, has gone out. Either it has sent
 * nothing since it connected (a silent client: its head_started is its
 * accept time, as the --header-timeout of a first request counts from
 * there), or it finished an exchange and was kept alive. A client that has
 * sent part of a request head is not idle (its bytes are in c->in), nor a
 * TLS client mid-handshake (an intercepted tunnel just opened), nor one
 * with decrypted bytes still waiting in its transport, nor a refused
 * client (it is counted apart from --max-connections).
 */
int session_idle_waiting(const struct session *s)
{
    const struct endpoint *c = &s->client;

    return s->state == SESSION_HEAD && !s->x.active && !s->reject_status &&
           (s->exchanges == 0 || s->head_started == 0) && c->fd >= 0 && !c->read_eof &&
           !c->failed && !c->handshaking && buffer_length(&c->in) == 0 &&
           buffer_length(&c->out) == 0 && c->ops->pending(c) == 0;
}

/* The list <s> belongs in. Its exchange count only changes when an
 * exchange ends, and session.c takes it out of its list then, so a listed
 * session is always in the list this names. */
static struct session_idle_queue *queue_of(const struct session *s)
{
    struct session_idle_list *l = &s->proxy->idle;
    return s->exchanges == 0 ? &l->silent : &l->kept;
}

static int listed(const struct session *s)
{
    return s->idle.prev != NULL || queue_of(s)->head == s;
}

void session_idle_leave(struct session *s)
{
    struct session_idle_queue *q = queue_of(s);

    if (!listed(s))
        return;
    if (s->idle.prev)
        s->idle.prev->idle.next = s->idle.next;
    else
        q->head = s->idle.next;
    if (s->idle.next)
        s->idle.next->idle.prev = s->idle.prev;
    else
        q->tail = s->idle.prev;
    s->idle.prev = s->idle.next = NULL;
}

void session_idle_note(struct session *s)
{
    struct session_idle_queue *q = queue_of(s);

    if (!session_idle_waiting(s)) {
        session_idle_leave(s);
        return;
    }
    if (listed(s))
        return; /* idle since before: its place says since when */
    /* At the tail: it became idle after everyone already listed. */
    s->idle.next = NULL;
    s->idle.prev = q->tail;
    if (q->tail)
        q->tail->idle.next = s;
    else
        q->head = s;
    q->tail = s;
}

/* Whether bytes wait unread on <fd>: a peek, which leaves them there. An
 * end of stream (0) or an error counts as none: closing loses nothing. */
static int has_unread_bytes(int fd)
{
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n > 0;
}

/*
 * Silent clients go first. A client sends its request as soon as it has
 * connected, and the proxy reads it in the turn of the loop that accepted
 * it (proxy.c, on_fresh_client): one still silent after that has used its
 * slot for nothing, and may never (a speculative preconnect, or a client
 * holding connections open on purpose, which would otherwise keep the
 * proxy full with a handful of them). A kept client has been served, is
 * the likeliest to send again soon, and would pay for a new connection
 * (and for an intercepted one, a TLS handshake) if closed.
 *
 * Except a silent client accepted in this very turn (<now>, the loop's
 * time, is its accept time): the proxy has not yet had a chance to read
 * it, and its request may be a moment behind its connection. Closing it
 * would fail that request with no answer at all, where a 503 at least
 * says why. The silent list is in accept order, so the first such client
 * ends the walk.
 */
int session_idle_closable(const struct session_idle_list *l, double now, struct session **out,
                          int max)
{
    int n = 0, skips = 0;

    for (struct session *s = l->silent.head; s && n < max && s->accepted < now; s = s->idle.next) {
        if (!has_unread_bytes(s->client.fd))
            out[n++] = s;
        else if (++skips == IDLE_CLOSABLE_SKIPS)
            return n;
    }
    for (struct session *s = l->kept.head; s && n < max; s = s->idle.next) {
        if (!has_unread_bytes(s->client.fd))
            out[n++] = s;
        else if (++skips == IDLE_CLOSABLE_SKIPS)
            return n;
    }
    return n;
}
