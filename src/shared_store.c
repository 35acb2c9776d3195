/*
 * shared_store.c - proxy.shared's one interface over its two backends
 * (shared_shm.c, shared_redis.c). Checks what every backend relies on
 * (key and value sizes, number types) once, here.
 */
#include "shared_store.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared_backend.h"

struct shared_store {
    struct shared_region *region;
    struct redis_backend *redis;
};

/* Set once, before any fork, and never changed: every process of the tree
 * sees the same mapping at the same address. */
static struct shared_region *process_region;

int shared_region_setup(size_t bytes, char *err, size_t err_len)
{
    if (process_region)
        return 0;
    process_region = shared_region_create(bytes, err, err_len);
    return process_region ? 0 : -1;
}

struct shared_region *shared_region_get(void)
{
    return process_region;
}

int shared_redis_url_parse(const char *url, char *host, size_t host_len, int *port, int *db,
                           char *err, size_t err_len)
{
    const char *p, *colon, *slash;
    unsigned char addr[16];
    char *end;
    long n;

    if (strncmp(url, "redis://", 8) != 0)
        goto bad;
    p = url + 8;
    colon = strrchr(p, ':');
    slash = strchr(p, '/');
    if (!colon || (slash && slash < colon) || colon == p || (size_t)(colon - p) >= host_len)
        goto bad;
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host) - 2);
        host[strlen(host) - 2] = '\0';
    }
    if (strcmp(host, "localhost") == 0)
        snprintf(host, host_len, "127.0.0.1");
    /* An address, not a name: connecting must not wait on a resolver. */
    if (inet_pton(AF_INET, host, addr) != 1 && inet_pton(AF_INET6, host, addr) != 1) {
        snprintf(err, err_len, "--shared: %s: the Redis host must be an IP address or localhost",
                 url);
        return -1;
    }
    /* strtol alone would take " +6379": digits only. */
    if (colon[1] < '0' || colon[1] > '9')
        goto bad;
    n = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || n < 1 || n > 65535 || (*end != '\0' && *end != '/'))
        goto bad;
    *port = (int)n;
    *db = 0;
    if (*end == '/' && end[1] != '\0') {
        const char *d = end + 1;
        if (*d < '0' || *d > '9')
            goto bad;
        n = strtol(d, &end, 10);
        if (end == d || *end != '\0' || n < 0 || n > 1000000)
            goto bad;
        *db = (int)n;
    }
    return 0;
bad:
    snprintf(err, err_len, "--shared: %s is not redis://HOST:PORT[/DB]", url);
    return -1;
}

struct shared_store *shared_store_open(struct shared_region *region, const char *redis_url,
                                       struct ev_loop *loop, char *err, size_t err_len)
{
    struct shared_store *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    if (redis_url) {
        char host[64];
        int port, db;
        if (shared_redis_url_parse(redis_url, host, sizeof host, &port, &db, err, err_len) != 0)
            goto fail;
        st->redis = redis_backend_new(host, port, db, loop);
        if (!st->redis) {
            snprintf(err, err_len, "out of memory");
            goto fail;
        }
    } else {
        st->region = region;
    }
    return st;
fail:
    free(st);
    return NULL;
}

void shared_store_close(struct shared_store *st)
{
    if (!st)
        return;
    redis_backend_free(st->redis);
    free(st);
}

enum shared_status shared_store_call(struct shared_store *st, const struct shared_request *rq,
                                     struct shared_reply *reply, shared_callback *cb,
                                     void *arg, struct shared_call **call)
{
    struct timespec ts;

    reply->value.type = SHARED_NIL;
    reply->err[0] = '\0';
    if (rq->key_len == 0 || rq->key_len > SHARED_MAX_KEY) {
        snprintf(reply->err, sizeof reply->err, "keys are 1 to %d bytes", SHARED_MAX_KEY);
        return SHARED_FAILED;
    }
    if (rq->op == SHARED_SET && rq->value.type == SHARED_STRING &&
        rq->value.len > SHARED_MAX_VALUE) {
        snprintf(reply->err, sizeof reply->err, "values are at most %d bytes", SHARED_MAX_VALUE);
        return SHARED_FAILED;
    }
    if (rq->op == SHARED_INCR && rq->value.type != SHARED_INTEGER &&
        rq->value.type != SHARED_FLOAT) {
        snprintf(reply->err, sizeof reply->err, "incr: the step must be a number");
        return SHARED_FAILED;
    }
    if (st->redis)
        return redis_call(st->redis, rq, reply, cb, arg, call);
    if (!st->region) {
        snprintf(reply->err, sizeof reply->err, "%s", SHARED_ERR_UNAVAILABLE);
        return SHARED_FAILED;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return shm_call(st->region, rq, reply, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
}

void shared_call_cancel(struct shared_call *call)
{
    redis_call_cancel(call);
}
