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
    uint64_t seq; /* the store's own count: 1, 2, 3... in the order added */
    size_t len;
    unsigned pins; /* see flows_store_pin */
    int dropped;   /* out of the store, kept for its pins */
    char rec[];    /* the record */
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

/* A place in the store that a walk can keep while the loop runs on, so a
 * long listing or export is made a part at a time (flows_export.c). It sits
 * between two flows, like a text cursor, and knows them by their <seq>,
 * not by their id: flow ids follow the workers and the order flows start
 * in, while the store keeps them in the order they ended.
 *
 * The walk covers the flows stored when it began. A flow dropped meanwhile
 * (the store is full, or cleared) is skipped, never read: the pointers are
 * used only while their flow is known to be stored. Flows added meanwhile
 * are not part of it, so a walk ends even under steady traffic and gives
 * no flow twice. */
struct flows_store_cursor {
    const struct stored_flow *before, *after; /* flows seq - 1 and seq */
    uint64_t seq;   /* the seq of the flow after the cursor */
    uint64_t end;   /* the first seq added after the walk began */
};
/* Before the oldest flow stored now. */
void flows_store_cursor_first(const struct flows_store *st, struct flows_store_cursor *cur);
/* After the newest flow stored now. */
void flows_store_cursor_last(const struct flows_store *st, struct flows_store_cursor *cur);
/* The flow after the cursor, moving past it: the oldest one still stored
 * when the next ones were dropped. NULL at the end of the walk. */
const struct stored_flow *flows_store_cursor_next(const struct flows_store *st,
                                                  struct flows_store_cursor *cur);
/* The flow before the cursor, moving back over it. NULL at the oldest
 * flow, or where the flows before were dropped. */
const struct stored_flow *flows_store_cursor_prev(const struct flows_store *st,
                                                  struct flows_store_cursor *cur);
const struct stored_flow *flows_store_find(const struct flows_store *st, uint64_t id);
/* Whether the flow numbered <seq> is still stored, so that a pointer to it
 * taken earlier may still be followed (the cursors' reasoning, for one
 * flow: an answer that reads a flow's body a part at a time). */
int flows_store_holds(const struct flows_store *st, uint64_t seq);
/* Keeps the record of <sf> readable until as many flows_store_unpin, even
 * when the store drops the flow meanwhile: for a reader that goes through
 * one flow a step at a time (an HAR entry of large bodies) while the loop
 * runs on and new flows push old ones out. A dropped flow leaves the
 * store's count and bytes at once, and its memory with its last unpin, so
 * each pin may hold one record beyond --flows-memory. Neither call needs
 * the store: a pin may outlive it. */
void flows_store_pin(const struct stored_flow *sf);
void flows_store_unpin(const struct stored_flow *sf);
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
