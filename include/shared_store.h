/*
 * shared_store.h - the state scripts share across workers (proxy.shared):
 * one interface, two backends.
 *
 *   shared memory  one mapping made before the workers fork, so every
 *                  worker of one proxy sees the same keys (the default);
 *   Redis          --shared redis://HOST:PORT[/DB], so a fleet of proxies
 *                  shares them (keys prefixed "luaproxy:").
 *
 * A call either completes at once (SHARED_DONE, the reply filled in) or
 * later (SHARED_PENDING: the callback runs from the loop, never before
 * shared_store_call has returned). The caller can cancel a pending call
 * when the exchange that waits for it goes away.
 *
 * Values keep their type: strings, integers, floats and booleans come back
 * as what was stored.
 */
#ifndef LUAPROXY_SHARED_STORE_H
#define LUAPROXY_SHARED_STORE_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer.h"

/* Largest key and value, in bytes: a store is for counters, flags and
 * tokens, not for bodies. */
#define SHARED_MAX_KEY 256
#define SHARED_MAX_VALUE (64 * 1024)

enum shared_type { SHARED_NIL, SHARED_STRING, SHARED_INTEGER, SHARED_FLOAT, SHARED_BOOLEAN };

struct shared_value {
    enum shared_type type;
    int64_t i;       /* SHARED_INTEGER, SHARED_BOOLEAN (0/1) */
    double f;        /* SHARED_FLOAT */
    const char *s;   /* SHARED_STRING: a view owned by whoever filled it */
    size_t len;
};

enum shared_op { SHARED_GET, SHARED_SET, SHARED_INCR, SHARED_DELETE };

struct shared_request {
    enum shared_op op;
    const char *key;
    size_t key_len;
    struct shared_value value; /* SET: the value; INCR: the step (a number) */
    double ttl;                /* seconds; 0: the key does not expire */
};

enum shared_status {
    SHARED_DONE,    /* the reply is filled in */
    SHARED_PENDING, /* the callback will bring the reply */
    SHARED_FAILED,  /* reply.err says why ("unavailable", a type error...) */
};

/* The reasons a call fails with (reply.err), worded the same by both
 * backends, so that a script reads one text whichever is in use. A key or
 * value out of bounds is refused before either is asked, in
 * shared_store.c. */
#define SHARED_ERR_UNAVAILABLE "unavailable"     /* no store here, or Redis is down */
#define SHARED_ERR_FULL "no room in the store"   /* the value cannot fit */
#define SHARED_ERR_NOT_NUMBER "incr: the value is not a number"
#define SHARED_ERR_OVERFLOW "incr: integer overflow"
#define SHARED_ERR_NO_MEMORY "out of memory"     /* the worker's, not the store's */

struct shared_reply {
    struct shared_value value; /* GET: the value (NIL if none); INCR: the sum */
    struct buffer text;        /* backs value.s; the caller frees it */
    char err[96];
};

struct shared_store;
struct shared_call;
struct shared_region;

/* Runs from the loop when a pending call finishes (or fails). The reply is
 * valid during the callback only (take text with buffer_swap to keep it). */
typedef void shared_callback(void *arg, enum shared_status status, struct shared_reply *reply);

/* The shared memory region, made once before the workers fork. <bytes>
 * bounds keys, values and bookkeeping together; when full, the least
 * recently used keys are evicted. NULL with <err>. */
struct shared_region *shared_region_create(size_t bytes, char *err, size_t err_len);
void shared_region_destroy(struct shared_region *r);

/* The region of this process tree: made once by the process that forks the
 * workers (shared_region_setup, 0 or -1 with <err>), inherited by each of
 * them (shared_region_get, NULL when there is none). */
int shared_region_setup(size_t bytes, char *err, size_t err_len);
struct shared_region *shared_region_get(void);

/* A worker's handle. With <redis_url> (not NULL) the Redis backend, which
 * connects in the background on <loop>; otherwise the shared memory
 * <region>. NULL with <err>. */
struct shared_store *shared_store_open(struct shared_region *region, const char *redis_url,
                                       struct ev_loop *loop, char *err, size_t err_len);
/* Cancels the pending calls (their callbacks never run) and closes. */
void shared_store_close(struct shared_store *st);

/* Starts <rq>. See enum shared_status. With SHARED_PENDING, *call (if not
 * NULL) is a handle for shared_call_cancel, valid until the callback runs.
 * The reply's text buffer must be initialised (buffer_init) by the caller. */
enum shared_status shared_store_call(struct shared_store *st, const struct shared_request *rq,
                                     struct shared_reply *reply, shared_callback *cb,
                                     void *arg, struct shared_call **call);
void shared_call_cancel(struct shared_call *call);

/* Checks a "redis://HOST:PORT[/DB]" URL. 0, or -1 with <err>. */
int shared_redis_url_parse(const char *url, char *host, size_t host_len, int *port, int *db,
                           char *err, size_t err_len);

#endif
