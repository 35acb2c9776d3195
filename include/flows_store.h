/*
 * flows_store.h - the bounded store of recent flows, in the process that
 * serves the admin interface.
 *
 * Records (flow_record.h) are kept oldest first, at most --flows of them
 * and --flows-memory bytes in all; adding one drops the oldest until both
 * hold. With several workers each worker's records arrive over its own
 * channel (a socketpair made before the fork) and are read on the loop.
 */
#ifndef LUAPROXY_FLOWS_STORE_H
#define LUAPROXY_FLOWS_STORE_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

struct config;

struct stored_flow {
    struct stored_flow *prev, *next;
    uint64_t id;
    size_t len;
    char rec[]; /* the record */
};

/* Told of every flow added (for the event stream and replays). */
typedef void flows_store_listener(void *arg, const struct stored_flow *sf);

struct flows_store;

struct flows_store *flows_store_new(const struct config *cfg);
void flows_store_free(struct flows_store *st);
void flows_store_listen(struct flows_store *st, flows_store_listener *fn, void *arg);
/* Told of every flow that starts (a FLOW_F_STARTED record, not kept). */
typedef void flows_store_start_listener(void *arg, const char *rec);
void flows_store_listen_start(struct flows_store *st, flows_store_start_listener *fn, void *arg);

/* Checks and copies a record in; drops the oldest as needed. 0, or -1
 * when it is malformed or does not fit at all. Matches flows_sink. */
int flows_store_add(struct flows_store *st, const char *rec, size_t len);
void flows_store_sink(void *arg, const char *rec, size_t len);
void flows_store_clear(struct flows_store *st);

/* Oldest first; NULL at the end. */
const struct stored_flow *flows_store_first(const struct flows_store *st);
const struct stored_flow *flows_store_find(const struct flows_store *st, uint64_t id);
size_t flows_store_count(const struct flows_store *st);
size_t flows_store_bytes(const struct flows_store *st);
uint64_t flows_store_dropped(const struct flows_store *st);
size_t flows_store_max_count(const struct flows_store *st);
size_t flows_store_max_bytes(const struct flows_store *st);

/* Reads records from <fd> (the admin side of a worker's channel) on
 * <loop> until EOF. Takes <fd>. */
int flows_store_watch(struct flows_store *st, struct ev_loop *loop, int fd);
/* Reads every channel until EOF or until nothing is ready (after the
 * workers have exited), then closes them. */
void flows_store_drain(struct flows_store *st);
/* In a forked child: closes the channels' descriptors, frees everything. */
void flows_store_forget(struct flows_store *st);

#endif
