/*
 * admin.h - the admin listener: a small HTTP/1.1 server on the event loop.
 *
 * It serves the flow viewer, its API and the operator pages (--admin). It
 * is a client of the core: modules register routes here and read their own
 * state; the relay knows nothing of it. What it owns: the listening socket,
 * its connections (strict limits on heads, bodies, count and time), the
 * access token, the Host check against DNS rebinding, the route table,
 * the Server-Sent Events streams and the framing and pacing of streamed
 * answers. What it doesn't: what any route answers.
 *
 * Access: a request must come from an --admin-allow address (default
 * loopback), name the admin's own address or localhost in Host (403
 * otherwise), and, unless its route is public, carry the token as the
 * cookie set from "?token=", or as "Authorization: Bearer TOKEN" (401).
 */
#ifndef LUAPROXY_ADMIN_H
#define LUAPROXY_ADMIN_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buffer.h"
#include "http_parse.h"

/* Connections served at once; more are closed. A process that serves
 * the admin keeps descriptors for them (config_fds). */
#define ADMIN_CONN_MAX 64

struct config;
struct admin;
struct admin_conn;

/* One parsed request, valid during the handler call only. */
struct admin_request {
    const char *method;
    size_t method_len;
    const char *path; /* without the query */
    size_t path_len;
    const char *query; /* after '?', "" when none */
    size_t query_len;
    const struct http_head *head;
    const char *body;
    size_t body_len;
};

/* A route's handler must answer with admin_reply*() or admin_events_start()
 * before it returns, or admin_hold() the connection and answer later. */
typedef void admin_handler(struct admin_conn *c, const struct admin_request *r, void *arg);

#define ADMIN_PUBLIC 1 /* no token needed (/metrics) */
#define ADMIN_PREFIX 2 /* <path> matches every path that starts with it */

/* Binds --admin (before any fork, so workers know the address) and makes
 * the token. NULL with <err> on failure. */
struct admin *admin_open(const struct config *cfg, char *err, size_t err_len);
/* Starts serving on <loop>; logs the ready-to-open URL. */
void admin_start(struct admin *a, struct ev_loop *loop);
/* Stops and frees everything. Safe with NULL. */
void admin_free(struct admin *a);
/* In a forked child: closes the inherited descriptors and frees, touching
 * no loop (the child's loop is not the one they were started on). */
void admin_forget(struct admin *a);

/* The bound address (its real port when --admin asked for port 0). */
const struct sockaddr *admin_address(const struct admin *a, socklen_t *len);
struct ev_loop *admin_loop(const struct admin *a);

/* Adds a route for <method> ("GET", "POST", "DELETE") and <path>. Routes
 * are tried in the order added. 0, or -1 when the table is full. */
int admin_route(struct admin *a, const char *method, const char *path, admin_handler *handler,
                void *arg, int flags);

/* The admin's own routes: GET /api/version. */
void admin_add_basic_routes(struct admin *a);

/* Answers with <body> (copied). <content_type> NULL means no body type. */
void admin_reply(struct admin_conn *c, int status, const char *content_type, const void *body,
                 size_t len);
/* The same, taking the bytes of <body> (left empty). */
void admin_reply_buffer(struct admin_conn *c, int status, const char *content_type,
                        struct buffer *body);
/* {"error": "<message>"} with <status>. */
void admin_reply_error(struct admin_conn *c, int status, const char *message);
/* An extra header line ("Name: value", no CRLF) for the next reply. */
void admin_reply_header(struct admin_conn *c, const char *line);

/* ---- streamed answers --------------------------------------------------
 *
 * An answer too large to make in one go on the loop (a listing or export
 * of the whole flow store) is made a part at a time: whenever the socket
 * can take more and less than ADMIN_STREAM_PART bytes wait to be sent,
 * the admin asks the answer's producer for about that much. So one
 * connection holds about a part (plus whatever unit the producer cannot
 * split), a client that stops reading stops the producing, and the loop
 * serves everyone else between two parts.
 */
#define ADMIN_STREAM_PART (256 * 1024)

enum admin_stream_result {
    ADMIN_STREAM_MORE,   /* call again */
    ADMIN_STREAM_DONE,   /* that was the last part */
    ADMIN_STREAM_FAILED, /* it cannot be finished: the connection closes
                          * without the body's end, so the client sees an
                          * incomplete answer, not a short one */
};

struct admin_stream_ops {
    /* Appends the next part to <out>: about <want> bytes (it may go past,
     * to the end of a unit it does not split) in a few milliseconds of
     * work at most; after spending them it may return MORE having
     * appended nothing. */
    enum admin_stream_result (*produce)(void *state, struct buffer *out, size_t want);
    /* The stream is over (done, failed, or its connection closed, the
     * admin freed included): frees <state>. */
    void (*free)(void *state);
};

/* Answers <status> with a body that begins with <first> (taken, left
 * empty) and goes on with what <ops> make of <state>, which the
 * connection now owns. The length is unknown up front: chunked to
 * HTTP/1.1, ended by closing the connection to HTTP/1.0. A HEAD gets the
 * head a GET would get, and <state> is freed at once. */
void admin_stream_start(struct admin_conn *c, int status, const char *content_type,
                        struct buffer *first, const struct admin_stream_ops *ops, void *state);

/* Keeps the connection open for an answer later; returns an id that
 * admin_find() turns back into the connection while it is still open. */
uint64_t admin_hold(struct admin_conn *c);
struct admin_conn *admin_find(struct admin *a, uint64_t id);

/* Turns the connection into a Server-Sent Events stream. */
void admin_events_start(struct admin_conn *c);
/* Whether any event stream is open (so an event is worth making). */
int admin_events_listening(const struct admin *a);
/* Sends "event: <event>\ndata: <data>\n\n" to every stream. A stream whose
 * reader falls too far behind is closed rather than buffered without end. */
void admin_events_send(struct admin *a, const char *event, const char *data, size_t len);

/* The value of query parameter <name>, percent-decoded into <out>
 * (NUL-terminated). Returns its length, -1 when absent, -2 when it does
 * not fit or is malformed. */
int admin_query(const struct admin_request *r, const char *name, char *out, size_t out_len);

#endif
