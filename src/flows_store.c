/*
 * flows_store.c - the bounded store of recent flows, and the admin side of
 * the workers' channels (see flows_store.h).
 */
#include "flows_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buffer.h"
#include "config.h"
#include "flow_record.h"
#include "log.h"

struct channel {
    struct flows_store *st;
    struct channel *next;
    int fd;
    ev_io io;
    struct ev_loop *loop;
    struct buffer in;
};

struct flows_store {
    size_t max_count, max_bytes; /* copied: a reload may free the config */
    struct stored_flow *oldest, *newest;
    size_t count, bytes;
    uint64_t next_seq; /* the seq the next flow stored gets */
    uint64_t dropped;
    flows_store_listener *listener;
    void *listener_arg;
    flows_store_start_listener *start_listener;
    void *start_listener_arg;
    struct channel *channels;
};

struct flows_store *flows_store_new(const struct config *cfg)
{
    struct flows_store *st = calloc(1, sizeof *st);
    if (st) {
        st->max_count = (size_t)cfg->flows_max;
        st->max_bytes = cfg->flows_memory;
        st->next_seq = 1;
    }
    return st;
}

void flows_store_listen(struct flows_store *st, flows_store_listener *fn, void *arg)
{
    st->listener = fn;
    st->listener_arg = arg;
}

void flows_store_listen_start(struct flows_store *st, flows_store_start_listener *fn, void *arg)
{
    st->start_listener = fn;
    st->start_listener_arg = arg;
}

/* Flows leave only from the oldest end and arrive only at the newest, each
 * with the next seq: the store always holds one unbroken run of seqs, from
 * oldest->seq to newest->seq. The cursors below rely on it. */
static void drop_oldest(struct flows_store *st)
{
    struct stored_flow *sf = st->oldest;
    st->oldest = sf->next;
    if (st->oldest)
        st->oldest->prev = NULL;
    else
        st->newest = NULL;
    st->count--;
    st->bytes -= sizeof *sf + sf->len;
    if (sf->pins > 0)
        sf->dropped = 1; /* the last unpin frees it */
    else
        free(sf);
}

void flows_store_clear(struct flows_store *st)
{
    while (st->oldest)
        drop_oldest(st);
}

int flows_store_add(struct flows_store *st, const char *rec, size_t len)
{
    struct stored_flow *sf;
    struct flow_header h;
    size_t cost = sizeof *sf + len;

    if (flow_record_check(rec, len) != 0 || cost > st->max_bytes) {
        st->dropped++;
        return -1;
    }
    flow_record_header(rec, &h);
    if (h.flags & FLOW_F_STARTED) {
        if (st->start_listener)
            st->start_listener(st->start_listener_arg, rec);
        return 0;
    }
    while (st->oldest && (st->count + 1 > st->max_count ||
                          st->bytes + cost > st->max_bytes))
        drop_oldest(st);
    sf = malloc(cost);
    if (!sf) {
        st->dropped++;
        return -1;
    }
    sf->id = h.id;
    sf->seq = st->next_seq++;
    sf->len = len;
    sf->pins = 0;
    sf->dropped = 0;
    memcpy(sf->rec, rec, len);
    sf->next = NULL;
    sf->prev = st->newest;
    if (st->newest)
        st->newest->next = sf;
    else
        st->oldest = sf;
    st->newest = sf;
    st->count++;
    st->bytes += cost;
    if (st->listener)
        st->listener(st->listener_arg, sf);
    return 0;
}

void flows_store_sink(void *arg, const char *rec, size_t len)
{
    flows_store_add(arg, rec, len);
}

const struct stored_flow *flows_store_first(const struct flows_store *st)
{
    return st->oldest;
}

/* ---- cursors -----------------------------------------------------------
 *
 * A cursor's pointers may be stale: the flows they named may have been
 * dropped and freed since. Since the store holds an unbroken run of seqs
 * (see drop_oldest), the flow numbered <seq> is still stored exactly when
 * oldest->seq <= seq < next_seq, and a pointer is followed only then.
 */

void flows_store_cursor_first(const struct flows_store *st, struct flows_store_cursor *cur)
{
    cur->before = NULL;
    cur->after = st->oldest;
    cur->seq = st->oldest ? st->oldest->seq : st->next_seq;
    cur->end = st->next_seq;
}

void flows_store_cursor_last(const struct flows_store *st, struct flows_store_cursor *cur)
{
    cur->before = st->newest;
    cur->after = NULL;
    cur->seq = st->next_seq;
    cur->end = st->next_seq;
}

const struct stored_flow *flows_store_cursor_next(const struct flows_store *st,
                                                  struct flows_store_cursor *cur)
{
    const struct stored_flow *sf;
    if (cur->seq >= cur->end || !st->oldest)
        return NULL;
    if (cur->seq < st->oldest->seq) {
        /* Dropped while the walk waited: go on with what is left of it. */
        cur->after = st->oldest;
        cur->seq = st->oldest->seq;
        if (cur->seq >= cur->end)
            return NULL; /* all of it was dropped, and newer flows came */
    }
    /* oldest->seq <= seq < end <= next_seq: "after" is stored. */
    sf = cur->after;
    cur->before = sf;
    cur->after = sf->next;
    cur->seq++;
    return sf;
}

const struct stored_flow *flows_store_cursor_prev(const struct flows_store *st,
                                                  struct flows_store_cursor *cur)
{
    const struct stored_flow *sf;
    /* seq - 1 < end always holds; is it still stored? */
    if (!st->oldest || cur->seq <= st->oldest->seq)
        return NULL;
    sf = cur->before;
    cur->after = sf;
    cur->before = sf->prev;
    cur->seq--;
    return sf;
}

const struct stored_flow *flows_store_find(const struct flows_store *st, uint64_t id)
{
    /* Newest first: the flows people look at are recent. */
    for (const struct stored_flow *sf = st->newest; sf; sf = sf->prev)
        if (sf->id == id)
            return sf;
    return NULL;
}

int flows_store_holds(const struct flows_store *st, uint64_t seq)
{
    return st->oldest && seq >= st->oldest->seq && seq < st->next_seq;
}

/* Readers get flows as const; their pins are the store's business, and
 * the store owns the flow. */
static struct stored_flow *owned(const struct stored_flow *sf)
{
    return (struct stored_flow *)(uintptr_t)sf;
}

void flows_store_pin(const struct stored_flow *sf)
{
    owned(sf)->pins++;
}

void flows_store_unpin(const struct stored_flow *sf)
{
    struct stored_flow *own = owned(sf);
    if (--own->pins == 0 && own->dropped)
        free(own);
}

size_t flows_store_count(const struct flows_store *st)
{
    return st->count;
}

size_t flows_store_bytes(const struct flows_store *st)
{
    return st->bytes;
}

uint64_t flows_store_dropped(const struct flows_store *st)
{
    return st->dropped;
}

size_t flows_store_max_count(const struct flows_store *st)
{
    return st->max_count;
}

size_t flows_store_max_bytes(const struct flows_store *st)
{
    return st->max_bytes;
}

/* ---- channels ---------------------------------------------------------- */

static void channel_close(struct channel *c)
{
    struct flows_store *st = c->st;
    struct channel **pp = &st->channels;
    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    if (c->loop)
        ev_io_stop(c->loop, &c->io);
    close(c->fd);
    buffer_free(&c->in);
    free(c);
}

/* Reads what is there and stores every complete record. 1 at EOF or on a
 * broken channel, else 0. */
static int channel_read(struct channel *c)
{
    for (;;) {
        char *p = buffer_reserve(&c->in, 256 * 1024);
        ssize_t n;
        if (!p)
            return 1;
        n = read(c->fd, p, 256 * 1024);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return 1;
        buffer_commit(&c->in, (size_t)n);
        while (buffer_length(&c->in) >= sizeof(struct flow_header)) {
            struct flow_header h;
            memcpy(&h, buffer_peek(&c->in), sizeof h);
            if (h.magic != FLOW_MAGIC || h.len < sizeof h || h.len > FLOW_RECORD_MAX) {
                log_error("flows: a worker's channel is out of step; closing it");
                return 1;
            }
            if (buffer_length(&c->in) < h.len)
                break;
            flows_store_add(c->st, buffer_peek(&c->in), h.len);
            buffer_consume(&c->in, h.len);
        }
        if (buffer_length(&c->in) == 0)
            buffer_shrink(&c->in);
    }
}

static void on_channel_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    struct channel *c = w->data;
    (void)loop;
    (void)revents;
    if (channel_read(c))
        channel_close(c);
}

int flows_store_watch(struct flows_store *st, struct ev_loop *loop, int fd)
{
    struct channel *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return -1;
    }
    c->st = st;
    c->fd = fd;
    c->loop = loop;
    buffer_init(&c->in);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    ev_io_init(&c->io, on_channel_readable, fd, EV_READ);
    c->io.data = c;
    ev_io_start(loop, &c->io);
    c->next = st->channels;
    st->channels = c;
    return 0;
}

void flows_store_drain(struct flows_store *st)
{
    while (st->channels) {
        channel_read(st->channels);
        channel_close(st->channels);
    }
}

void flows_store_forget(struct flows_store *st)
{
    if (!st)
        return;
    for (struct channel *c = st->channels; c; c = c->next)
        c->loop = NULL;
    while (st->channels)
        channel_close(st->channels);
    flows_store_clear(st);
    free(st);
}

void flows_store_free(struct flows_store *st)
{
    if (!st)
        return;
    while (st->channels)
        channel_close(st->channels);
    flows_store_clear(st);
    free(st);
}
