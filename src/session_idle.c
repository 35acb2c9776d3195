/*
 * session_idle.c - which clients are idle between requests, kept in order.
 *
 * This file decides what "idle" means for a client connection and keeps
 * the worker's list of idle ones (session_idle.h) true to it. It closes
 * nobody: proxy.c picks the head of the list when a new client needs a
 * slot, and session.c closes it (session_reclaim).
 */
#include "session_idle.h"

#include <sys/socket.h>

#include "session.h"

/* How many of the longest idle clients session_idle_closable looks at. */
#define IDLE_CLOSABLE_LOOKS 8

/*
 * Whether <s> is a keep-alive client waiting for its next request, with
 * nothing to lose if it is closed now: it finished at least one exchange,
 * none is in progress, nothing of the next request has arrived, and every
 * byte of the last answer has gone out. A TLS client mid-handshake (an
 * intercepted tunnel just opened) is not idle, nor one with decrypted
 * bytes still waiting in its transport, nor a refused client (it is
 * counted apart from --max-connections).
 */
static int idle_between_requests(const struct session *s)
{
    const struct endpoint *c = &s->client;

    return s->state == SESSION_HEAD && s->exchanges > 0 && !s->x.active && !s->reject_status &&
           s->head_started == 0 && c->fd >= 0 && !c->read_eof && !c->failed &&
           !c->handshaking && buffer_length(&c->in) == 0 && buffer_length(&c->out) == 0 &&
           c->ops->pending(c) == 0;
}

static int listed(const struct session *s)
{
    return s->idle.prev != NULL || s->proxy->idle.head == s;
}

void session_idle_leave(struct session *s)
{
    struct session_idle_list *l = &s->proxy->idle;

    if (!listed(s))
        return;
    if (s->idle.prev)
        s->idle.prev->idle.next = s->idle.next;
    else
        l->head = s->idle.next;
    if (s->idle.next)
        s->idle.next->idle.prev = s->idle.prev;
    else
        l->tail = s->idle.prev;
    s->idle.prev = s->idle.next = NULL;
}

void session_idle_note(struct session *s)
{
    struct session_idle_list *l = &s->proxy->idle;
    int idle = idle_between_requests(s);

    if (!idle) {
        session_idle_leave(s);
        return;
    }
    if (listed(s))
        return; /* idle since before: its place says since when */
    /* At the tail: it became idle after everyone already listed. */
    s->idle.next = NULL;
    s->idle.prev = l->tail;
    if (l->tail)
        l->tail->idle.next = s;
    else
        l->head = s;
    l->tail = s;
}

/* Whether bytes wait unread on <fd>: a peek, which leaves them there. An
 * end of stream (0) or an error counts as none: closing loses nothing. */
static int has_unread_bytes(int fd)
{
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n > 0;
}

struct session *session_idle_closable(const struct session_idle_list *l)
{
    struct session *s = l->head;
    for (int looks = 0; s && looks < IDLE_CLOSABLE_LOOKS; looks++, s = s->idle.next)
        if (!has_unread_bytes(s->client.fd))
            return s;
    return NULL;
}
