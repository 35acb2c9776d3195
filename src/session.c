/*
 * session.c - a client connection's life: read a head, dispatch, repeat.
 *
 * This file owns the session's shape: its timer, reading and checking
 * request heads, local (error) responses, keep-alive and closing. What its
 * sockets are watched for, and how much each side may read, is in
 * session_watch.c.
 * The forwarding of one request (connect, relay both bodies, tunnels) is in
 * exchange.c, upstream.c, response.c and tunnel.c.
 *
 * Control goes one way: this file calls down, and the layers below return
 * what each step came to (enum exchange_step); session_step() is the one
 * place that acts on it, changing the state, answering a failure or ending
 * the exchange. So an exchange is never re-initialised under a caller that
 * still looks at it.
 *
 * Every event reaches a session through one of the entry points listed at
 * the end of this file, and each ends the same way, with end_event(): run
 * the state machine as far as it can go, set the watchers to what the new
 * state needs, and free the session if it ended. Nothing frees a session in
 * the middle of a call chain: code deep inside only sets state =
 * SESSION_CLOSED (see session_close()).
 */
#include "session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access_log.h"
#include "acl.h"
#include "exchange.h"
#include "https.h"
#include "log.h"
#include "message.h"
#include "session_watch.h"
#include "stats.h"
#include "trace.h"
#include "upstream.h"
#include "upstream_pool.h"

/* A client whose connection ends gets this long, once the last bytes of
 * our answer are out, to close before we close on it ("lingering close",
 * RFC 9112 9.6). */
#define DRAIN_TIME 2.0
/* State machine passes in one go (see session_advance). */
#define ADVANCE_SLICE 64
/* Read-relay-write rounds one readiness event may run for a socket. */
#define IO_ROUNDS 4

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents);
static void on_upstream_io(struct ev_loop *loop, ev_io *w, int revents);
static void on_timer(struct ev_loop *loop, ev_timer *w, int revents);
static void on_resume(struct ev_loop *loop, ev_idle *w, int revents);
static void on_dns_answer(void *arg, enum dns_status status, const struct addr_list *addrs);
static void on_hook_wakeup(struct session *s, enum hooks_result r);
static void on_auth_done(void *arg, enum auth_result verdict, const char *user);
static void session_advance(struct session *s);
static void end_event(struct session *s);
static void session_end_exchange(struct session *s);
static void session_fail_at(struct session *s, int status, const char *cause, const char *file,
                            const char *func);
/* --trace names the place that decided the failure. */
#define session_fail(s, status, cause) session_fail_at((s), (status), (cause), __FILE__, __func__)

/* Marks the session for closing (freed when the current event ends);
 * <why> is for the logs. */
#define session_close(s, why) session_set_state((s), SESSION_CLOSED, (why))

/* Handed to each exchange for the work it starts (see exchange.h). */
static const struct exchange_events session_events = {
    .dns_answer = on_dns_answer,
    .hook_wakeup = on_hook_wakeup,
    .auth_done = on_auth_done,
};

struct session *session_start(struct proxy *p, int fd, const struct sockaddr *addr,
                              socklen_t addr_len, int reject_status, session_gone_fn *on_gone)
{
    struct session *s = calloc(1, sizeof *s);
    (void)addr_len;
    if (!s) {
        close(fd);
        return NULL;
    }
    s->proxy = p;
    s->id = proxy_next_session_id(p);
    s->on_gone = on_gone;
    s->events = &session_events;
    endpoint_init(&s->client, on_client_io, s);
    endpoint_init(&s->upstream, on_upstream_io, s);
    s->client.fd = fd;
    s->reject_status = reject_status;
    exchange_init(&s->x);

    proxy_client_address(addr, s->client_ip, sizeof s->client_ip, &s->client_port);
    s->client_local = acl_is_loopback(addr);

    s->state = SESSION_HEAD; /* the start, not a change: "accept -> head" */
    s->last_activity = s->head_started = ev_now(p->loop);
    /* Loop time, like an exchange's start: trace lines count from either. */
    s->accepted = ev_now(p->loop);
    ev_init(&s->timer, on_timer);
    s->timer.data = s;
    ev_idle_init(&s->resume, on_resume);
    /* Highest priority: an idle watcher of the default priority would wait
     * until no other event is pending, which on a busy proxy is never. */
    ev_set_priority(&s->resume, EV_MAXPRI);
    s->resume.data = s;
    s->rearm_timer = 1; /* the first arming */
    session_advance(s); /* arms the watchers; nothing can close it yet */
    return s;
}

/* Closes the idle upstream connection the session keeps. */
static void drop_idle_upstream(struct session *s)
{
    s->upstream_idle = 0;
    s->proxy->kept_upstreams--;
    endpoint_close(s->proxy->loop, &s->upstream);
}

void session_free(struct session *s)
{
    struct proxy *p = s->proxy;

    /* A handshake still running, or one that failed: the held line says
     * why the tunnel ended there. */
    session_log_handshake_over(s, s->client.error ? s->client.error
                                                  : "the client closed inside the TLS handshake");
    https_session_closing(s);
    session_idle_leave(s);
    upstream_release_idle(s);
    exchange_release(s);
    ev_timer_stop(p->loop, &s->timer);
    ev_idle_stop(p->loop, &s->resume);
    /* An answer cut short (client_abort), or a close-delimited one closed
     * before all of it went out (the client stopped reading, the proxy
     * stops): a FIN would end it as if whole, as an HTTP/1.0 body is read
     * to the connection's end. A reset says it is not. Any other answer
     * carries its own length: a plain close delivers what the kernel
     * holds of it, which a reset would throw away. */
    if (s->client_abort || (s->client_eof_delimits && (buffer_length(&s->client.out) > 0 ||
                                                       s->upstream.piped > 0)))
        endpoint_abort(&s->client);
    endpoint_close(p->loop, &s->upstream);
    endpoint_close(p->loop, &s->client);
    TRACE(s, "connection closed after %d exchange(s); the session is freed", s->exchanges);
    s->on_gone(p, s);
    free(s->tunnel);
    free(s);
}

void session_stop(struct session *s)
{
    exchange_no_keep(&s->x, "the proxy is stopping");
    upstream_release_idle(s);
    if (session_idle_waiting(s)) {
        /* Idle between requests: nothing is lost by closing now. */
        session_close(s, "stopping: idle between requests");
        end_event(s); /* SIGTERM is an event too: it frees the session now */
    } else if (s->state == SESSION_HEAD && buffer_length(&s->client.in) == 0 && !s->x.active) {
        /* Between requests, but its last answer still going out: it
         * drains (within the stop's limit), then closes. */
        session_set_state(s, SESSION_DRAINING, "stopping: its last answer still goes out");
        s->drain_started = ev_now(s->proxy->loop);
        s->client_done = 1;
        end_event(s);
    } else if (s->state == SESSION_EXCHANGE && s->x.req_discard) {
        /* Answered, and only reading a body to drop it for a next request
         * that will not come: the exchange is over, the connection drains
         * (its answer still goes out) instead of holding the shutdown. */
        session_end_exchange(s);
        end_event(s);
    }
}

void session_reclaim(struct session *s)
{
    double idle = ev_now(s->proxy->loop) - s->last_activity;

    stats_add(STAT_CONNECTIONS_RECLAIMED, 1);
    if (s->exchanges == 0) {
        log_debug("c%llu %s: connected %.1f s ago and sent nothing, closed to make room for a "
                  "new client (--max-connections)",
                  (unsigned long long)s->id, s->client_ip, idle);
        TRACE(s, "silent %.1f s since it connected: closed so a new client can have its slot "
                 "(--max-connections)",
              idle);
    } else {
        log_debug("c%llu %s: idle %.1f s after %d exchange(s), closed to make room for a new "
                  "client (--max-connections)",
                  (unsigned long long)s->id, s->client_ip, idle, s->exchanges);
        TRACE(s, "idle %.1f s between requests: closed so a new client can have its slot "
                 "(--max-connections)",
              idle);
    }
    /* The same close as an idle timeout's, except that an intercepted
     * client is told with a close_notify: it waited for nothing wrong, and
     * a clean TLS end lets it tell "closed" from "cut off". A plain socket's
     * close sends its FIN itself. */
    endpoint_end_for_close(&s->client);
    session_close(s, "its slot was given to a new client (--max-connections)");
    end_event(s); /* frees it */
}

void session_abort(struct session *s, const char *why)
{
    s->x.error = s->x.error ? s->x.error : why;
    exchange_no_keep(&s->x, why);
    if (s->state == SESSION_TUNNEL && !s->x.tunnel_closer)
        s->x.tunnel_closer = "the proxy";
    /* Closed first, so the exchange's end goes nowhere but closed. */
    session_close(s, why);
    if (s->x.active)
        session_end_exchange(s);
    end_event(s); /* frees it */
}

/* Logs and clears the finished exchange; the session goes back to reading
 * heads (keep-alive) or to draining (or stays closed). On return s->x is a
 * fresh, inactive exchange: only session.c calls this, at the end of a
 * step, when nothing below holds a view of the old one. */
static void session_end_exchange(struct session *s)
{
    struct exchange *x = &s->x;
    int keep = x->keep_alive && !s->proxy->stopping;
    /* The client asked to close and its request was read to the end: it
     * will send nothing more, so no reset can eat the answer and the close
     * need not wait for its FIN (see drain). */
    int client_done = !keep && !x->client_keep && x->req_body_done && !x->error;

    if (trace_enabled)
        session_trace_end(s, keep, __FILE__, __func__);
    s->client_eof_delimits = x->response_started && x->res_out_kind == HTTP_BODY_CLOSE;
    hooks_done(s);
    session_log_exchange(s);
    upstream_detach(s);
    exchange_release(s);
    exchange_init(x);
    /* Out of the idle lists before the count changes, which picks the list
     * (session_idle.c); idle again, it joins the kept ones at the tail. */
    session_idle_leave(s);
    s->exchanges++;
    if (s->state == SESSION_CLOSED)
        return;
    if (keep) {
        /* An idle keep-alive connection should cost next to nothing: give
         * back the input buffer if nothing is pipelined behind. */
        buffer_shrink(&s->client.in);
        session_set_state(s, SESSION_HEAD, "exchange over, connection kept alive");
        s->head_started = buffer_length(&s->client.in) ? ev_now(s->proxy->loop) : 0;
        s->rearm_timer = 1; /* the head timer starts afresh */
    } else {
        session_set_state(s, SESSION_DRAINING, "exchange over, connection not kept");
        s->drain_started = ev_now(s->proxy->loop);
        s->client_done = client_done;
    }
}

/* Answers the current request with a local error and ends the exchange
 * (session_end_exchange); after part of a response was sent, closes the
 * connection instead; or, when the rest of the request body can be read
 * and dropped to keep the connection (exchange_discard_body), moves to
 * SESSION_EXCHANGE, where that happens. Otherwise s->x is fresh
 * afterwards, as after session_end_exchange. <file>:
 * <func> decided it (for --trace: a failure an exchange step reported
 * names where, not this function). */
static void session_fail_at(struct session *s, int status, const char *cause, const char *file,
                            const char *func)
{
    struct exchange *x = &s->x;
    char named[400];
    int discard = 0;

    /* Through a parent proxy, a gateway failure is the parent's (or the
     * way to it): say which, so the operator knows where to look. The text
     * is ours: the parent's address comes from the configuration. Once
     * the parent's tunnel for https is open, "the upstream" is the origin
     * at its far end (its certificate, its answer), not the parent: the
     * cause keeps its subject and only says which way it went. */
    if (x->parent && (status == 502 || status == 504)) {
        static const char *const subjects[] = {"the upstream's ", "the upstream ",
                                               "the parent proxy "};
        int origin_side = x->upstream_tls &&
                          (x->parent_connected || endpoint_is_tls(&s->upstream));
        char authority[300];
        size_t i;
        parent_authority(x->parent, authority, sizeof authority);
        for (i = origin_side ? 2 : 0; i < 3; i++)
            if (strncmp(cause, subjects[i], strlen(subjects[i])) == 0)
                break;
        if (i < 3)
            snprintf(named, sizeof named, "the parent proxy %s%s%s", authority,
                     i == 0 ? "'s " : " ", cause + strlen(subjects[i]));
        else
            snprintf(named, sizeof named, "%s (via the parent proxy %s)", cause, authority);
        cause = named;
    }
    if (trace_enabled)
        trace_step(s, file, func, "%s: %d, %s",
                   x->response_started ? "failed after the response began (the client sees it "
                                         "cut short)"
                                       : "answered by the proxy",
                   status, cause);
    x->error = cause;
    if (x->response_started) {
        /* Part of the response is already on its way: the only honest
         * signal left is to close after what was queued, so the client sees
         * a truncated message instead of a complete-looking wrong one. */
        exchange_no_keep(x, "an error after the response began: the client must see it cut "
                            "short");
        /* A body the client reads to the connection's end would look whole
         * after a FIN: a reset is the only sign left (drain). */
        if (x->res_out_kind == HTTP_BODY_CLOSE && !x->tunneled)
            s->client_abort = 1;
        session_end_exchange(s);
        return;
    }
    x->status = status;
    if (!x->active) {
        size_t seen = buffer_length(&s->client.in);
        x->started = ev_now(s->proxy->loop);
        x->id = proxy_next_exchange_id(s->proxy);
        /* A head refused before it was understood: the viewer shows what
         * came (up to the head cap) and why it was refused. */
        x->flow = flows_record_begin(s->proxy->flows, x->id, x->started, s->client_ip,
                                     s->client_port, buffer_peek(&s->client.in),
                                     seen < s->proxy->cfg->max_header_bytes
                                         ? seen
                                         : s->proxy->cfg->max_header_bytes);
    }
    /* The connection can only carry on if we know where the next request
     * starts: the head was valid and its body was read completely. */
    if (!x->active)
        exchange_no_keep(x, "the request head was refused: where the next one starts is not "
                            "known");
    else if (!x->req_body_done && !(discard = exchange_discard_body(s)))
        exchange_no_keep(x, "an error before the request body was read");
    else if (x->is_connect)
        exchange_no_keep(x, "a refused CONNECT ends its connection");
    /* A HEAD gets the error's head alone, like any answer to it. */
    int head_only = x->active && x->method_len == 4 && memcmp(x->method, "HEAD", 4) == 0;
    size_t before = buffer_length(&s->client.out);
    int body_len = message_write_error(&s->client.out, status, cause, x->keep_alive,
                                       x->active ? x->minor : 1, head_only);
    if (body_len < 0)
        session_close(s, "out of memory for an error response");
    else
        x->res_bytes = (uint64_t)body_len;
    flows_record_appended(x->flow, FLOW_PART_RES_OUT, buffer_peek(&s->client.out),
                          buffer_length(&s->client.out), before);
    x->response_started = 1;
    if (discard && s->state != SESSION_CLOSED) {
        /* The exchange outlives this call, and its log line reads
         * x->error: a cause named for the parent cannot stay in this
         * frame. */
        if (x->error == named)
            x->error = exchange_cause(x, "the parent proxy failed", "%s", named);
        session_set_state(s, SESSION_EXCHANGE, "answered: the rest of the request body is read "
                                               "and dropped");
        return;
    }
    session_end_exchange(s);
}

/*
 * Acts on what a step of the exchange came to (enum exchange_step,
 * exchange.h): the one place where the forwarding's outcome changes the
 * session. The details are in s->x.next, with the place in the source
 * that decided them, which --trace names. Returns 1 if anything changed.
 */
static int session_step(struct session *s, enum exchange_step step)
{
    const struct exchange_report *r = &s->x.next;

    switch (step) {
    case STEP_WAIT:
        return 0;
    case STEP_PROGRESS:
        return 1;
    case STEP_YIELD:
        s->yielding = true;
        return 1;
    case STEP_MOVE:
        session_set_state_at(s, r->state, r->why, r->file, r->func);
        return 1;
    case STEP_END:
        session_end_exchange(s);
        return 1;
    case STEP_FAIL:
        session_fail_at(s, r->status, r->why, r->file, r->func);
        return 1;
    case STEP_CLOSE:
        /* Closed first, so the exchange's end goes nowhere but closed. */
        session_set_state_at(s, SESSION_CLOSED, r->why, r->file, r->func);
        session_end_exchange(s);
        return 1;
    }
    return 0;
}

/* Tells 414 from 431 for a head that did not fit: a request line that alone
 * exceeds the cap is "URI too long", anything else "fields too large". */
static void fail_oversized_head(struct session *s)
{
    const char *buf = buffer_peek(&s->client.in);
    size_t cap = s->proxy->cfg->max_header_bytes;
    size_t len = buffer_length(&s->client.in);
    size_t start = 0;

    while (start + 1 < len && buf[start] == '\r' && buf[start + 1] == '\n')
        start += 2; /* the empty lines a parser skips */
    if (!memchr(buf + start, '\n', (len < cap ? len : cap) - start))
        session_fail(s, 414, "the request target is longer than the proxy accepts");
    else
        session_fail(s, 431, "the request head is larger than the proxy accepts");
}

/*
 * SESSION_HEAD: tries to parse a request head from the client's bytes and
 * hands a valid one to exchange.c. Returns 1 if the state changed.
 */
static int parse_request_head(struct session *s)
{
    const struct config *cfg = s->proxy->cfg;
    struct http_head head;
    enum http_error err = HTTP_ERR_NONE;
    size_t len = buffer_length(&s->client.in);
    ssize_t n;

    if (len == 0) {
        if (s->client.read_eof) {
            /* The client is done: a clean close between requests. */
            session_set_state(s, SESSION_DRAINING, "the client closed between requests");
            s->drain_started = ev_now(s->proxy->loop);
            return 1;
        }
        return 0;
    }
    /* Pipelined requests wait while the client has not read the answers
     * queued for it: a client that sends and never reads must not make us
     * buffer answers without bound. */
    if (session_output_blocked(s))
        return 0;
    if (s->head_started == 0) {
        s->head_started = ev_now(s->proxy->loop);
        s->rearm_timer = 1;
    }
    if (s->reject_status) {
        session_fail(s, s->reject_status,
                     s->reject_status == 403 ? "this client is not allowed to use the proxy"
                                             : "the proxy is at its connection limit");
        return 1;
    }
    head.field_limit = (size_t)cfg->max_header_fields;
    n = http_parse_request(buffer_peek(&s->client.in), len, &head, &err);
    if (n == -2) {
        if (len >= cfg->max_header_bytes) {
            fail_oversized_head(s);
            return 1;
        }
        if (s->client.read_eof) {
            session_fail(s, 400, "the connection ended inside the request head");
            return 1;
        }
        return 0;
    }
    if (n == -1) {
        session_fail(s, http_error_status(err), http_error_text(err));
        return 1;
    }
    if ((size_t)n > cfg->max_header_bytes) {
        fail_oversized_head(s);
        return 1;
    }
    session_step(s, exchange_begin(s, &head, (size_t)n));
    return 1;
}

/* DRAINING: once our last bytes are out, half-close; then close at once if
 * the client asked to close and sent nothing more, or else wait (briefly)
 * for the client to close, discarding what it still sends. */
static int drain(struct session *s)
{
    if (buffer_length(&s->client.out) > 0)
        return 0;
    if (s->client_abort) {
        /* session_free makes the close a reset (client_abort). */
        session_close(s, "the close-delimited answer was cut short: the connection is reset, "
                         "so the client cannot take it for whole");
        return 1;
    }
    if (buffer_length(&s->client.in) > 0)
        s->client_done = 0; /* it did send more: linger after all */
    if (s->client_done) {
        endpoint_end_for_close(&s->client);
        /* Nothing unread: the close sends no reset. The lingering below
         * is for clients that may still be sending (an error cut their
         * request short, or they meant to keep the connection). */
        session_close(s, "answered: the client asked to close and sent nothing more");
        return 1;
    }
    endpoint_shutdown_write(&s->client);
    buffer_consume(&s->client.in, buffer_length(&s->client.in));
    if (s->client.read_eof || s->client.failed) {
        session_close(s, "drained: the client closed");
        return 1;
    }
    return 0;
}

/* Writes pending output on both sides; a dead client ends the session. */
static int flush_both(struct session *s)
{
    int progress = 0;
    enum endpoint_io r;

    if (buffer_length(&s->client.out) > 0) {
        /* Draining, these are the last bytes: their FIN goes with them.
         * Not for an answer cut short, which ends with a reset: a last
         * part held back for a FIN (MSG_MORE) would die with it. */
        r = s->state == SESSION_DRAINING && !s->client_abort
                ? endpoint_flush_final(&s->client,
                                       s->client_done && buffer_length(&s->client.in) == 0)
                : endpoint_flush(&s->client);
        if (r == ENDPOINT_ERROR && s->state == SESSION_TUNNEL) {
            /* Left to tunnel_pump, as a reset read: the upstream is
             * reset too, after what the client sent before. What could
             * not be written never will be. */
            buffer_consume(&s->client.out, buffer_length(&s->client.out));
            progress = 1;
        } else if (r == ENDPOINT_ERROR) {
            if (s->x.active)
                s->x.error = s->x.error ? s->x.error : "the client went away";
            exchange_no_keep(&s->x, "the client went away");
            /* Closed first, so the exchange's end goes nowhere but closed. */
            session_close(s, "the client went away");
            if (s->x.active)
                session_end_exchange(s);
            return 1;
        }
        if (r == ENDPOINT_PROGRESS) {
            s->last_activity = ev_now(s->proxy->loop);
            progress = 1;
            /* Draining, its time counts from the last write (see
             * deadline): what the client sends then is dropped and
             * buys it no time. */
            if (s->state == SESSION_DRAINING) {
                s->drain_started = s->last_activity;
                if (buffer_length(&s->client.out) == 0)
                    s->rearm_timer = 1; /* the linger's 2 s, sooner */
            }
        }
        /* Between requests an idle connection keeps no buffers. */
        if (buffer_length(&s->client.out) == 0 && s->state == SESSION_HEAD)
            buffer_shrink(&s->client.out);
    }
    if (s->upstream.fd >= 0 && buffer_length(&s->upstream.out) > 0 &&
        s->state != SESSION_CONNECTING) {
        r = endpoint_flush(&s->upstream);
        /* An error is progress too: exchange.c must get a pass to judge it
         * (the socket will not wake anyone up again). What could not be
         * written never will be. */
        if (r == ENDPOINT_ERROR)
            buffer_consume(&s->upstream.out, buffer_length(&s->upstream.out));
        if (r == ENDPOINT_PROGRESS || r == ENDPOINT_ERROR) {
            s->last_activity = ev_now(s->proxy->loop);
            progress = 1;
        }
        /* A write error upstream is left for exchange.c to judge: the
         * upstream may still have sent a response worth relaying. */
    }
    return progress;
}

/* When the current state's timeout expires, as an absolute time. */
static ev_tstamp deadline(const struct session *s)
{
    const struct config *cfg = s->proxy->cfg;

    switch (s->state) {
    case SESSION_HEAD: {
        if (s->client.handshaking) /* an intercepted tunnel's TLS handshake */
            return s->last_activity + cfg->connect_timeout;
        /* Idle keep-alive, or waiting for the client to read its answers. */
        ev_tstamp d = s->head_started == 0 || session_output_blocked(s)
                          ? s->last_activity + cfg->idle_timeout
                          : s->head_started + cfg->header_timeout;
        /* A kept upstream connection lives by the pool's rule: closed once
         * idle for min(--idle-timeout, 15 s) since its last response. */
        if (s->upstream_idle && s->upstream_idle_since + s->proxy->pool.idle_timeout < d)
            d = s->upstream_idle_since + s->proxy->pool.idle_timeout;
        return d;
    }
    case SESSION_HOOK:
        /* A hook's CPU time is bounded by its budget; a proxy.sleep lasts
         * as long as the script asked. */
        return s->last_activity + 1e9;
    case SESSION_RESOLVING:
        return s->x.connect_started + cfg->connect_timeout;
    case SESSION_CONNECTING:
        return upstream_attempt_deadline(s, s->x.connect_started + cfg->connect_timeout);
    case SESSION_DRAINING:
        /* The last bytes of our answer still going out: as long as the
         * client keeps reading them (--idle-timeout between writes). A
         * slow reader of a large body must not lose its end to the
         * linger's 2 s, which count once they are out. drain_started is
         * the last write (flush_both), not the last read: a client that
         * sends a byte now and then and reads nothing is not kept. */
        if (buffer_length(&s->client.out) > 0 || s->upstream.piped > 0)
            return s->drain_started + cfg->idle_timeout;
        return s->drain_started + DRAIN_TIME;
    case SESSION_EXCHANGE:
        /* A response head that has begun must be whole within the timeout
         * of its first byte, as a request head within --header-timeout: a
         * byte now and then would hold the exchange for ever. */
        if (s->x.res_state == RESPONSE_WAIT_HEAD && buffer_length(&s->upstream.in) > 0)
            return s->x.res_head_started + cfg->idle_timeout;
        return s->last_activity + cfg->idle_timeout;
    default:
        return s->last_activity + cfg->idle_timeout;
    }
}

/* Whether an exchange that timed out waiting for its response was waiting
 * on its client: the request body is not all in, and nothing the client
 * sent waits to go up (a hook, the parent's tunnel, the upstream's
 * reading), and the upstream did not stop taking it (a write failed: the
 * body is no longer read, so the upstream is the one that failed). The
 * upstream may well be waiting for that body itself. */
static int client_stalled_in_body(const struct session *s)
{
    const struct exchange *x = &s->x;
    return !x->req_body_done && !x->hook.pending && !x->parent_tunnel && !s->upstream.failed &&
           buffer_length(&s->upstream.out) == 0;
}

static void arm_timer(struct session *s)
{
    struct ev_loop *loop = s->proxy->loop;
    ev_tstamp now = ev_now(loop), d = deadline(s);

    s->armed_state = s->state;
    s->rearm_timer = 0;
    /* A timer already due no later than the new deadline is left alone:
     * when it fires, on_timer finds the deadline moved and waits for the
     * rest ("be smart about timeouts"). Only an earlier deadline moves it,
     * so a keep-alive exchange, whose deadlines only move later, touches
     * the timer heap about once per idle timeout instead of twice. */
    if (ev_is_active(&s->timer) && now + ev_timer_remaining(loop, &s->timer) <= d)
        return;
    ev_tstamp wait = d - now;
    s->timer.repeat = wait > 0.001 ? wait : 0.001;
    ev_timer_again(loop, &s->timer);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct session *s = w->data;
    ev_tstamp left = deadline(s) - ev_now(loop);
    (void)revents;

    if (left > 0.0005) {
        /* Activity moved the deadline since the timer was set: wait for the
         * rest (libev's "be smart about timeouts" pattern). */
        w->repeat = left;
        ev_timer_again(loop, w);
        return;
    }
    if (s->upstream_idle &&
        ev_now(loop) >= s->upstream_idle_since + s->proxy->pool.idle_timeout - 0.0005) {
        drop_idle_upstream(s); /* its time is up; the client may stay */
        s->rearm_timer = 1;
        end_event(s);
        return;
    }
    switch (s->state) {
    case SESSION_HOOK:
        break;
    case SESSION_HEAD:
        if (s->head_started == 0 || buffer_length(&s->client.in) == 0 || session_output_blocked(s))
            session_close(s, "idle timeout"); /* idle, or not reading: quietly */
        else
            session_fail(s, 408, "the request head was not received in time");
        break;
    case SESSION_RESOLVING:
        stats_add(STAT_UPSTREAM_TIMEOUTS, 1);
        session_fail(s, 504, UPSTREAM_LOOKUP_TIMED_OUT);
        break;
    case SESSION_CONNECTING:
        if (ev_now(loop) < s->x.connect_started + s->proxy->cfg->connect_timeout - 0.0005) {
            /* Only the address being tried had its time: on to the next
             * (in the same state, so the timer is armed again here). */
            s->rearm_timer = 1;
            session_step(s, upstream_connect_next(s));
            break;
        }
        stats_add(STAT_UPSTREAM_TIMEOUTS, 1);
        session_fail(s, 504, "connecting to the upstream timed out");
        break;
    case SESSION_EXCHANGE:
        if (s->x.res_state == RESPONSE_WAIT_HEAD && client_stalled_in_body(s)) {
            exchange_no_keep(&s->x, "the request body was not all read");
            session_fail(s, 408, "the client stopped sending its request body");
        } else if (s->x.res_state == RESPONSE_WAIT_HEAD) {
            stats_add(STAT_UPSTREAM_TIMEOUTS, 1);
            session_fail(s, 504, "the upstream did not respond in time");
        } else {
            session_step(s, exchange_response_stalled(s));
        }
        break;
    case SESSION_TUNNEL:
        s->x.error = "the tunnel was idle too long";
        tunnel_abort_if_cut(s);
        session_close(s, "the tunnel was idle too long");
        session_end_exchange(s);
        break;
    case SESSION_DRAINING:
    case SESSION_CLOSED:
        session_close(s, "drain time is up");
        break;
    }
    end_event(s);
}

/*
 * Whether the client of a request whose hook waits is gone: its socket
 * failed, or it closed (EOF) having sent nothing past this request, so no
 * request of its own is left to answer. Bytes past this request's body
 * are a pipelined request, which is still answered after a half-close.
 *
 * A FIN alone cannot tell a client that closed from one that only shut
 * down its sending half after a complete request (legitimate HTTP/1.1,
 * though few clients do it): both read as EOF, and only a write would
 * tell. Like nginx (proxy_ignore_client_abort off: recv() returning 0
 * ends the request, 499) and like this proxy's credentials check, an EOF
 * is taken as the client going away while the request has not left yet:
 * nothing is sent upstream for a client that may never read the answer.
 * Once the request is on its way, a half-close is fine (the answer is
 * still sent).
 */
static int client_gone(const struct session *s)
{
    const struct exchange *x = &s->x;
    size_t buffered = buffer_length(&s->client.in);

    if (s->client.failed)
        return 1;
    if (!s->client.read_eof)
        return 0;
    switch (x->req_body.kind) {
    case HTTP_BODY_NONE:
        return buffered == 0;
    case HTTP_BODY_LENGTH:
        return buffered <= x->req_body.remaining;
    default:
        /* chunked: where its body ends is not known before it is read;
         * what came is taken for the body (a request pipelined behind
         * one and then a half-close is rare enough). */
        return 1;
    }
}

/* Runs the state machine as far as it can go and sets the watchers; never
 * frees (end_event does). */
static void session_advance(struct session *s)
{
    int pass;

    /* Each pass moves the state machine one step; it stops when a pass
     * changes nothing, or after a slice of passes: then the rest waits for
     * the next loop iteration (on_resume), so one client with a thousand
     * pipelined requests does not keep every other client waiting. */
    for (pass = 0; pass < ADVANCE_SLICE; pass++) {
        int progress = 0;

        switch (s->state) {
        case SESSION_HEAD:
            progress = parse_request_head(s);
            break;
        case SESSION_HOOK: /* runs the request hooks just moved here for, else
                            * waits for a sleeping hook (on_hook_wakeup) or a
                            * credentials check (on_auth_done) */
            if (s->x.auth_job && s->client.read_eof) {
                /* Like nginx with a client that closes while it waits: no
                 * answer will be read, so the check (a bcrypt's worth of a
                 * shared pool) is dropped rather than done. */
                session_close(s, "the client closed while its credentials were checked");
                progress = 1;
                break;
            }
            progress = session_step(s, exchange_run_hooks(s));
            if (s->state == SESSION_HOOK && s->x.hook.pending && client_gone(s)) {
                /* on_request or before_connect waits (proxy.sleep, a call
                 * out) for a client that went away: the exchange ends now
                 * (its hook is cancelled, on_done runs) rather than when
                 * the hook wakes and sends the request for nobody. */
                s->x.error = "the client went away while a script waited";
                exchange_no_keep(&s->x, "the client went away");
                /* Closed first, so the exchange's end goes nowhere but closed. */
                session_close(s, "the client went away while a request hook waited");
                session_end_exchange(s);
                progress = 1;
            }
            break;
        case SESSION_RESOLVING: /* for the resolver (on_dns_answer) */
        case SESSION_CONNECTING: /* for the connect (on_upstream_io) */
            if (client_gone(s)) {
                /* Nothing has gone up yet: the lookup or the connect is
                 * dropped now (its descriptors with it), as for a waiting
                 * hook, rather than finished to send the request for
                 * nobody, or held until --connect-timeout. */
                s->x.error = "the client went away while the upstream connection was made";
                exchange_no_keep(&s->x, "the client went away");
                session_close(s, "the client went away while the upstream connection was made");
                session_end_exchange(s);
                progress = 1;
            }
            break;
        case SESSION_EXCHANGE:
            progress = session_step(s, exchange_pump(s));
            break;
        case SESSION_TUNNEL:
            progress = session_step(s, tunnel_pump(s));
            break;
        case SESSION_DRAINING:
            progress = drain(s);
            break;
        case SESSION_CLOSED:
            return;
        }
        if (s->state == SESSION_CLOSED)
            return;
        progress |= flush_both(s);
        if (!progress || s->yielding)
            break;
    }
    if (s->state == SESSION_CLOSED)
        return;
    if (s->state == SESSION_TUNNEL && !s->x.tunnel_counted) {
        s->x.tunnel_counted = 1;
        stats_add(STAT_TUNNELS_OPEN, 1);
    }
    if (pass == ADVANCE_SLICE || s->yielding) {
        s->yielding = false;
        ev_idle_start(s->proxy->loop, &s->resume);
    }
    if (s->tunnel && s->tunnel->held_log && !s->client.handshaking && !s->client.failed)
        session_log_handshake_over(s, NULL); /* the client took our certificate */
    /* Every event ends here: the session's place among the idle clients
     * is kept right with what it is now. */
    session_idle_note(s);
    session_watch(s);
    if (s->rearm_timer || s->state != s->armed_state)
        arm_timer(s);
}

/* ---- event entry points ------------------------------------------------
 *
 * Every way the event loop calls into a session. Each does the work its
 * event allows, then ends with end_event(); nothing else frees a session.
 *
 *   on_client_io     the client socket is readable or writable  (ev_io)
 *   on_upstream_io   the upstream socket is readable or writable, or a
 *                    non-blocking connect() finished             (ev_io)
 *   on_timer         the current state's deadline passed        (ev_timer)
 *   on_resume        the last state machine slice left work     (ev_idle)
 *   on_dns_answer    the resolver answered                      (dns.c)
 *   on_hook_wakeup   a hook's proxy.sleep ended and its phase finished
 *                                                               (hooks_run.c)
 *   on_auth_done     the credentials' check finished            (auth.c)
 *   session_stop     SIGTERM: close if idle                     (proxy.c)
 *   session_reclaim  a new client takes this idle one's slot    (proxy.c)
 *
 * on_timer, session_stop and session_reclaim are above, next to the
 * deadlines and the closings they belong to.
 */

/* The end of every event: run the state machine, then free the session if
 * it closed. Called last: <s> may be gone when it returns. */
static void end_event(struct session *s)
{
    session_advance(s);
    if (s->state == SESSION_CLOSED)
        session_free(s);
}

/* The last slice of work ended with more to do (see session_advance). */
static void on_resume(struct ev_loop *loop, ev_idle *w, int revents)
{
    struct session *s = w->data;
    (void)revents;
    ev_idle_stop(loop, w);
    end_event(s);
}

static void on_dns_answer(void *arg, enum dns_status status, const struct addr_list *addrs)
{
    struct session *s = arg;
    session_step(s, upstream_dns_answer(s, status, addrs));
    end_event(s);
}

static void on_auth_done(void *arg, enum auth_result verdict, const char *user)
{
    struct session *s = arg;
    s->last_activity = ev_now(s->proxy->loop);
    session_step(s, exchange_auth_done(s, verdict, user));
    end_event(s);
}

static void on_hook_wakeup(struct session *s, enum hooks_result r)
{
    s->last_activity = ev_now(s->proxy->loop);
    session_step(s, exchange_hooks_woke(s, r));
    end_event(s);
}

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct session *s = w->data;
    (void)loop;

    for (int round = 0; (revents & EV_READ) && round < IO_ROUNDS; round++) {
        size_t limit = s->state == SESSION_HEAD ? s->proxy->cfg->max_header_bytes + 1
                                                : session_client_read_limit(s);
        enum endpoint_io r = session_read(&s->client, limit);
        if (r == ENDPOINT_PROGRESS) {
            s->last_activity = ev_now(loop);
            if (s->state == SESSION_DRAINING) {
                buffer_consume(&s->client.in, buffer_length(&s->client.in));
                s->client_done = 0; /* it sends more after all */
            }
        } else if (r == ENDPOINT_ERROR && s->state != SESSION_DRAINING &&
                   s->state != SESSION_TUNNEL) {
            /* A reset: nothing more can reach this client. (In a tunnel
             * it is tunnel_pump's to act on: what the client sent before
             * it goes up, then the upstream is reset too.) */
            s->x.error = s->x.error ? s->x.error : "the client reset the connection";
            exchange_no_keep(&s->x, "the client reset the connection");
            if (s->state == SESSION_TUNNEL && !s->x.tunnel_closer)
                s->x.tunnel_closer = "the client (reset)";
            /* Closed first, so the exchange's end goes nowhere but closed. */
            session_close(s, "the client reset the connection");
            if (s->x.active)
                session_end_exchange(s);
        }
        /* Only an upload or a tunnel is worth another round. */
        if (r != ENDPOINT_PROGRESS ||
            !((s->state == SESSION_EXCHANGE && !s->x.req_body_done) ||
              s->state == SESSION_TUNNEL))
            break;
        session_advance(s);
        if (s->state == SESSION_CLOSED || buffer_length(&s->client.in) > 0 ||
            s->client.piped > 0)
            break;
    }
    end_event(s);
}

static void on_upstream_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct session *s = w->data;

    if (s->upstream_idle) {
        /* The kept connection closed, or spoke out of turn: unusable. */
        drop_idle_upstream(s);
    } else if (s->state == SESSION_CONNECTING) {
        session_step(s, upstream_connect_done(s));
    } else if (revents & EV_READ) {
        /* A large body: read, relay and write a few times per wakeup
         * rather than once per trip through the event loop. */
        for (int round = 0; round < IO_ROUNDS; round++) {
            size_t had = buffer_length(&s->upstream.in);
            if (session_read(&s->upstream, session_upstream_read_limit(s)) != ENDPOINT_PROGRESS)
                break;
            s->last_activity = ev_now(loop);
            if (had == 0 && s->x.res_state == RESPONSE_WAIT_HEAD)
                s->x.res_head_started = s->last_activity; /* see deadline */
            session_advance(s);
            /* Not relaying on this socket any more (a pipelined request
             * may already be connecting on a new one, whose refusal a
             * read here would take for itself): wait for its own events.
             * A response that became a tunnel (101) goes on. */
            if ((s->state != SESSION_EXCHANGE && s->state != SESSION_TUNNEL) ||
                s->upstream.fd < 0 || s->upstream_idle || buffer_length(&s->upstream.in) > 0 ||
                s->upstream.piped > 0)
                break; /* done, or the client side is full: wait for it */
        }
    }
    end_event(s);
}
