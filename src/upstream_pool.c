/*
 * upstream_pool.c - parking and reusing idle upstream connections.
 *
 * A plain list: the pool is small (bounded by max_total), lookups compare
 * the port first, and the most recently parked connection is found first,
 * which is also the one least likely to have been closed by the upstream.
 * The per-host bound counts a host's connections whatever their
 * credentials: it bounds what one server is made to hold open.
 */
#include "upstream_pool.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "endpoint.h"

struct pooled_conn {
    struct pooled_conn *next, *prev;
    struct upstream_pool *pool;
    int fd;
    ev_io io;
    ev_tstamp last_used;      /* the end of its last response */
    uint16_t port;
    unsigned char creds[PARENT_CREDENTIALS_ID_LEN]; /* all zeros: none */
    char host[256];
};

static void unlink_conn(struct upstream_pool *pool, struct pooled_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        pool->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pool->count--;
    ev_io_stop(pool->loop, &c->io);
    if (pool->count == 0)
        ev_timer_stop(pool->loop, &pool->sweep);
}

static void drop(struct upstream_pool *pool, struct pooled_conn *c)
{
    unlink_conn(pool, c);
    close(c->fd);
    free(c);
}

/* A parked connection became readable: the upstream closed it, or sent
 * bytes nobody asked for. Either way it cannot be reused. */
static void on_parked_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pooled_conn *c = w->data;
    (void)loop;
    (void)revents;
    drop(c->pool, c);
}

/* Sets the sweep timer for when a connection idle since <last_used>
 * expires, unless it is already set for earlier. */
static void schedule_sweep(struct upstream_pool *pool, ev_tstamp last_used)
{
    ev_tstamp wait = last_used + pool->idle_timeout - ev_now(pool->loop);
    if (wait < 0.001)
        wait = 0.001;
    if (ev_is_active(&pool->sweep) && ev_timer_remaining(pool->loop, &pool->sweep) <= wait)
        return;
    ev_timer_stop(pool->loop, &pool->sweep);
    ev_timer_set(&pool->sweep, wait, 0.);
    ev_timer_start(pool->loop, &pool->sweep);
}

/* Closes every connection idle for idle_timeout, then waits for the next
 * one to expire: none is kept longer than the timeout. */
static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct upstream_pool *pool = w->data;
    ev_tstamp now = ev_now(loop), oldest = 0;
    (void)revents;

    for (struct pooled_conn *c = pool->head, *next; c; c = next) {
        next = c->next;
        if (now - c->last_used >= pool->idle_timeout - 0.0005)
            drop(pool, c);
        else if (oldest == 0 || c->last_used < oldest)
            oldest = c->last_used;
    }
    if (pool->head)
        schedule_sweep(pool, oldest);
}

void upstream_pool_set_idle_timeout(struct upstream_pool *pool, double idle_timeout)
{
    ev_tstamp oldest = 0;

    pool->idle_timeout = idle_timeout;
    for (const struct pooled_conn *c = pool->head; c; c = c->next)
        if (oldest == 0 || c->last_used < oldest)
            oldest = c->last_used;
    if (!pool->head)
        return;
    ev_timer_stop(pool->loop, &pool->sweep); /* it may be set for later */
    schedule_sweep(pool, oldest);
}

void upstream_pool_init(struct upstream_pool *pool, struct ev_loop *loop, int max_total,
                        int max_per_host, double idle_timeout)
{
    memset(pool, 0, sizeof *pool);
    pool->loop = loop;
    pool->max_total = max_total;
    pool->max_per_host = max_per_host;
    pool->idle_timeout = idle_timeout;
    ev_timer_init(&pool->sweep, on_sweep, 0., 0.);
    pool->sweep.data = pool;
}

void upstream_pool_free(struct upstream_pool *pool)
{
    while (pool->head)
        drop(pool, pool->head);
    ev_timer_stop(pool->loop, &pool->sweep);
}

static int same_place(const struct pooled_conn *c, const char *host, uint16_t port)
{
    return c->port == port && strcasecmp(c->host, host) == 0;
}

static const unsigned char no_creds[PARENT_CREDENTIALS_ID_LEN];

int upstream_pool_take(struct upstream_pool *pool, const char *host, uint16_t port,
                       const unsigned char *creds)
{
    if (!creds)
        creds = no_creds;
    for (struct pooled_conn *c = pool->head, *next; c; c = next) {
        next = c->next;
        if (!same_place(c, host, port) || memcmp(c->creds, creds, sizeof c->creds) != 0)
            continue;
        /* Readable in this turn of the loop, its event still queued
         * behind the one that brought this request: it spoke out of turn
         * (on_parked_readable), and its bytes would be read as the answer
         * to the request sent on it. */
        if (ev_is_pending(&c->io)) {
            drop(pool, c);
            continue;
        }
        int fd = c->fd;
        unlink_conn(pool, c);
        free(c);
        return fd;
    }
    return -1;
}

void upstream_pool_put(struct upstream_pool *pool, int fd, const char *host, uint16_t port,
                       const unsigned char *creds, ev_tstamp last_used)
{
    struct pooled_conn *c, *oldest_same = NULL, *last = NULL;
    int same = 0;

    if (pool->max_total <= 0 || strlen(host) >= sizeof c->host) {
        close(fd);
        return;
    }
    for (c = pool->head; c; c = c->next) {
        if (same_place(c, host, port)) {
            same++;
            oldest_same = c;
        }
        last = c;
    }
    /* Make room by dropping the oldest: of this host, or of all. */
    if (same >= pool->max_per_host)
        drop(pool, oldest_same);
    else if (pool->count >= pool->max_total)
        drop(pool, last);

    /* (malloc: every field is set below, and zeroing the host buffer
     * would cost more than the rest of parking a connection) */
    c = malloc(sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->prev = NULL;
    c->pool = pool;
    c->fd = fd;
    c->port = port;
    memcpy(c->creds, creds ? creds : no_creds, sizeof c->creds);
    memcpy(c->host, host, strlen(host) + 1);
    c->last_used = last_used;
    ev_io_init(&c->io, on_parked_readable, fd, EV_READ);
    /* The session's endpoint watched this very socket until now. */
    ENDPOINT_SAME_FILE(&c->io);
    c->io.data = c;
    ev_io_start(pool->loop, &c->io);
    c->next = pool->head;
    if (pool->head)
        pool->head->prev = c;
    pool->head = c;
    pool->count++;
    schedule_sweep(pool, last_used);
}
