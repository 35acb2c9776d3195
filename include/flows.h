/*
 * flows.h - capturing exchanges for the flow viewer (the relay's side).
 *
 * The relay describes each exchange through the narrow flows_record_*
 * calls below and knows nothing of how flows are kept or shown. A
 * struct flow gathers one exchange while it runs: its heads as raw bytes
 * (as received, as the proxy would forward them before any hook, as
 * forwarded, and the same for the response), bodies up to --flow-body-max,
 * timestamps, the hooks that ran and the lines scripts logged. When it
 * ends it becomes one self-contained record (flow_record.h) handed to a
 * sink: the store itself with one process, or a channel to the process
 * that serves the admin interface with several workers.
 *
 * The bodies (and WebSocket messages) that captures still in flight keep
 * are capped, all workers together, at --flows-memory: past that a body is
 * kept no further and its flow says it was cut short, as past
 * --flow-body-max. What is kept stays in flight only until the exchange
 * ends; then it is the store's (and --flows-memory's) again.
 *
 * Every call accepts a NULL flow and does nothing, so capture off
 * (--flows 0, or no --admin) costs one pointer test per call site.
 * Capture never changes what is relayed: it only copies bytes aside.
 */
#ifndef LUAPROXY_FLOWS_H
#define LUAPROXY_FLOWS_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "body.h"
#include "flow_record.h"

struct config;
struct flow;
struct flows;

/* Where finished records go: <rec> of <len> bytes, borrowed for the call. */
typedef void flows_sink(void *arg, const char *rec, size_t len);

/* The recorder of one loop. NULL (capture off) when --admin is not given
 * or --flows is 0. */
struct flows *flows_new(const struct config *cfg, flows_sink *sink, void *sink_arg);
/* A worker's recorder: records go down <fd> (one end of a socketpair, made
 * non-blocking here), batched, never blocking the loop; when the channel is
 * full, new records are dropped. Takes <fd>. */
struct flows *flows_new_channel(const struct config *cfg, struct ev_loop *loop, int fd);
/* Flushes what it can without blocking, then frees. Safe with NULL. */
void flows_free(struct flows *f);

/* Starts capturing an exchange whose request head <head> (raw bytes as
 * received) was just accepted. NULL when capture is off. */
struct flow *flows_record_begin(struct flows *f, uint64_t id, double started,
                                const char *client_ip, int client_port, const char *head,
                                size_t head_len);
/* Keeps <len> bytes of a head (or any FLOW_PART_* text part); a part
 * recorded twice keeps the last. */
void flows_record_part(struct flow *fl, enum flow_part part, const char *data, size_t len);
/* The same for the bytes appended to <buf> since it held <from> bytes. */
void flows_record_appended(struct flow *fl, enum flow_part part, const char *buf_data,
                           size_t buf_len, size_t from);
/* A step's time (ev_now). */
void flows_record_time(struct flow *fl, enum flow_mark mark, double t);
/* A hook that ran for this exchange and what it changed: <changes> of
 * <changes_len> bytes, one change a line ("request header X-A added"), or
 * NULL/0. The same one again in a row, as a chunk hook runs per piece, is
 * listed once, with the first change list a piece brought. */
void flows_record_hook(struct flow *fl, const char *script, const char *hook,
                       const char *changes, size_t changes_len);
/* A line a script logged while handling this exchange. */
void flows_record_log(struct flow *fl, const char *script, const char *line, size_t len);
void flows_record_flag(struct flow *fl, unsigned flag);
/* The request goes again, on a fresh upstream connection (a kept one was
 * closed before any answer): the flow forgets the first attempt's
 * lookup, connect, handshake and send times and its "reused" flag, so it
 * shows the attempt that answered. Until <t>, the retry's start, the
 * request counts as waiting for a connection ("blocked" in HAR). */
void flows_record_retry(struct flow *fl, double t);
/* Tunnel bytes (CONNECT or an upgraded connection), <to_upstream> or not:
 * WebSocket frames are parsed and kept per message, bounded. */
void flows_record_tunnel(struct flow *fl, int to_upstream, const char *data, size_t len,
                         double t);

/* <len> tunnel bytes the relay moved without showing them (splice, once
 * flows_wants_tunnel said no): a WebSocket flow is marked as missing
 * messages. */
void flows_record_unseen(struct flow *fl, size_t len);

/* Whether tunnel bytes are still wanted (WebSocket messages within their
 * budget); when not, the relay may splice. */
int flows_wants_tunnel(struct flow *fl);

/* Puts the body tap in front of <*filter>/<*arg> for a body_pump call, so
 * the payload is copied aside as it passes (up to --flow-body-max). With
 * an inner filter (a script's), the body is kept as received and as sent. */
void flows_tap(struct flow *fl, int response, body_filter **filter, void **arg);
/* A script's filter paused on a piece (body_filter returned 1) and has now
 * written its output: frame that into <out> as the tap would have. 0/-1. */
int flows_tap_resume(struct flow *fl, int response, struct buffer *out,
                     enum http_body_kind out_kind);
/* Whether the tap still wants bytes of that body; when not, the relay may
 * splice the rest past user space. */
int flows_wants_body(struct flow *fl, int response);

/* A body that did not pass the tap: <len> more bytes of it, <as_received>
 * (before the hooks) or as sent. A request body collected whole for
 * tx.req.buffer_body is kept this way, piece by piece as received and at
 * once as sent. */
void flows_record_body(struct flow *fl, int response, int as_received, const char *data,
                       size_t len);

/* Ends the capture: fills in the outcome, hands the record to the sink and
 * frees <fl>. */
void flows_record_end(struct flow *fl, int status, uint64_t req_bytes, uint64_t res_bytes,
                      const char *error, double ended);

#endif
