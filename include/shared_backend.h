/*
 * shared_backend.h - what shared_store.c needs from its two backends.
 * Nothing outside the shared_* files includes this.
 */
#ifndef LUAPROXY_SHARED_BACKEND_H
#define LUAPROXY_SHARED_BACKEND_H

#include "shared_store.h"

/* shared_shm.c: runs <rq> on the region under its lock; always completes
 * (SHARED_DONE or SHARED_FAILED). <now> is CLOCK_MONOTONIC seconds, which
 * every process of the machine shares. */
enum shared_status shm_call(struct shared_region *r, const struct shared_request *rq,
                            struct shared_reply *reply, double now);

/* shared_redis.c */
struct redis_backend;
struct redis_backend *redis_backend_new(const char *host, int port, int db, struct ev_loop *loop);
void redis_backend_free(struct redis_backend *rb);
enum shared_status redis_call(struct redis_backend *rb, const struct shared_request *rq,
                              struct shared_reply *reply, shared_callback *cb, void *arg,
                              struct shared_call **call);
void redis_call_cancel(struct shared_call *call);

#endif
