/*
 * session_log.c - what the end of an exchange writes: the access log line,
 * the counters, the -v line (one per exchange) or the error line, and
 * --trace's summary of how the body moved and why the connection is kept
 * or not. session.c decides; this file only reports.
 */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access_log.h"
#include "log.h"
#include "stats.h"
#include "trace.h"

/* A request field's value for the log, or NULL. */
static const char *request_field(const struct exchange *x, const char *name, size_t *len)
{
    int i = headers_find(&x->req_headers, name, strlen(name), 0);
    *len = 0;
    return i < 0 ? NULL : headers_value(&x->req_headers, (size_t)i, len);
}

/* An intercepted CONNECT's line, held while the client's TLS handshake
 * runs: the 200 went out at once, but whether the client took the
 * proxy's certificate is known only after it, and a line "CONNECT ... 200"
 * for a client that then refused it (it does not trust the CA, or pins
 * certificates) would tell the operator that all went well. The entry's
 * strings are copied into <text>: the exchange they came from is gone. */
struct access_held {
    struct access_entry e;
    double started;
    char text[];
};

/* Copies <len> bytes of <src> to *<at> (NUL-terminated): its new place. */
static const char *held_copy(char **at, const char *src, size_t len)
{
    char *dst = *at;
    if (!src)
        return NULL;
    memcpy(dst, src, len);
    dst[len] = '\0';
    *at += len + 1;
    return dst;
}

static size_t held_len(const char *s) { return s ? strlen(s) + 1 : 0; }

/* Holds <e> in the session's tunnel; 0, or -1 (out of memory: written
 * now instead). */
static int hold_line(struct session *s, const struct access_entry *e, double started)
{
    size_t size = held_len(e->client_ip) + e->method_len + 1 + e->target_len + 1 +
                  held_len(e->user) + e->referer_len + 1 + e->user_agent_len + 1 +
                  held_len(e->upstream) + held_len(e->upstream_addr);
    struct access_held *held = malloc(sizeof *held + size);
    char *at;

    if (!held)
        return -1;
    held->e = *e;
    held->started = started;
    at = held->text;
    held->e.client_ip = held_copy(&at, e->client_ip, held_len(e->client_ip) - 1);
    held->e.method = held_copy(&at, e->method, e->method_len);
    held->e.target = held_copy(&at, e->target, e->target_len);
    held->e.user = held_copy(&at, e->user, held_len(e->user) - 1);
    held->e.referer = held_copy(&at, e->referer, e->referer_len);
    held->e.user_agent = held_copy(&at, e->user_agent, e->user_agent_len);
    held->e.upstream = held_copy(&at, e->upstream, held_len(e->upstream) - 1);
    held->e.upstream_addr = held_copy(&at, e->upstream_addr, held_len(e->upstream_addr) - 1);
    s->tunnel->held_log = held;
    return 0;
}

void session_log_handshake_over(struct session *s, const char *error)
{
    struct access_held *held = s->tunnel ? s->tunnel->held_log : NULL;

    if (!held)
        return;
    s->tunnel->held_log = NULL;
    held->e.error = error;
    held->e.duration_ms = (ev_now(s->proxy->loop) - held->started) * 1000.0;
    access_log_write(s->proxy->access_log, &held->e);
    free(held);
}

/* Writes the access log line for the exchange that just ended. */
void session_log_exchange(struct session *s)
{
    struct exchange *x = &s->x;
    struct access_log *log = s->proxy->access_log;
    char upstream[300], peer[80];
    struct access_entry e = {
        .client_ip = s->client_ip,
        .method = x->method,
        .method_len = x->method ? x->method_len : 0,
        .target = x->target,
        .target_len = x->target_len,
        .version_minor = x->minor,
        .status = x->status,
        .bytes = x->res_filter ? x->res_filtered_bytes : x->res_bytes,
        .duration_ms = (ev_now(s->proxy->loop) - x->started) * 1000.0,
        .user = x->user,
        .error = x->error,
    };
    if (x->looped_back && x->target) {
        /* See upstream.c's refuse_loop: a query sent to this proxy's own
         * addresses may hold the admin token. */
        const char *query = memchr(x->target, '?', x->target_len);
        if (query)
            e.target_len = (size_t)(query - x->target);
    }
    if (access_log_wants_details(log) && x->active) {
        e.referer = request_field(x, "Referer", &e.referer_len);
        e.user_agent = request_field(x, "User-Agent", &e.user_agent_len);
        if (x->host[0]) {
            snprintf(upstream, sizeof upstream, "%s:%u", x->host, x->port);
            e.upstream = upstream;
        }
        if (s->upstream.fd >= 0 && proxy_peer_address(s->upstream.fd, peer, sizeof peer) == 0)
            e.upstream_addr = peer;
    }
    /* An intercepted CONNECT whose client is still in its TLS handshake:
     * the line waits for the handshake's end (session_log_handshake_over). */
    if (!(log && x->is_connect && s->intercepted && s->client.handshaking && s->tunnel &&
          !s->tunnel->held_log && hold_line(s, &e, x->started) == 0))
        access_log_write(log, &e);
    if (x->active || x->status) {
        stats_request(x->method, e.method_len, x->status);
        stats_add(STAT_BYTES_IN, (int64_t)x->req_bytes);
        stats_add(STAT_BYTES_OUT, (int64_t)e.bytes);
    }
    if (x->tunnel_counted)
        stats_add(STAT_TUNNELS_OPEN, -1);
    if (!x->error) {
        /* -v: one line per exchange (--trace has every step); without it,
         * not even its arguments are gathered. */
        if (log_wants(LOG_DEBUG))
            log_debug("c%llu #%llu %s %.*s %.*s -> %d, %llu bytes, %.1f ms",
                      (unsigned long long)s->id, (unsigned long long)x->id, s->client_ip,
                      (int)e.method_len, x->method ? x->method : "",
                      (int)(e.target_len > 200 ? 200 : e.target_len), x->target ? x->target : "",
                      x->status, (unsigned long long)e.bytes, e.duration_ms);
    } else {
        log_info("c%llu #%llu %s %.*s %.*s -> %d (%s)", (unsigned long long)s->id,
                 (unsigned long long)x->id, s->client_ip,
                 (int)e.method_len, x->method ? x->method : "",
                 (int)(e.target_len > 200 ? 200 : e.target_len), x->target ? x->target : "",
                 x->status, x->error);
    }
}

/* --trace: how the body or the tunnel moved, and the keep-alive decision
 * with its reason. */
void session_trace_end(struct session *s, int keep, const char *file, const char *func)
{
    struct exchange *x = &s->x;

    if (x->tunneled)
        trace_step(s, file, func, "tunnel over: %llu bytes client -> upstream (%llu by swapping "
                   "buffers, %llu copied, %llu spliced), %llu bytes upstream -> client (%llu by "
                   "swapping buffers, %llu copied, %llu spliced); first to close: %s",
                   (unsigned long long)x->req_bytes, (unsigned long long)x->tunnel_up.swapped,
                   (unsigned long long)x->tunnel_up.copied,
                   (unsigned long long)x->tunnel_up.spliced, (unsigned long long)x->res_bytes,
                   (unsigned long long)x->tunnel_down.swapped,
                   (unsigned long long)x->tunnel_down.copied,
                   (unsigned long long)x->tunnel_down.spliced,
                   x->tunnel_closer ? x->tunnel_closer : "neither (ended by the proxy)");
    else if (x->response_started && x->res_state == RESPONSE_WAIT_HEAD)
        trace_step(s, file, func, "the proxy's own response (no upstream answer): %llu "
                                      "body bytes", (unsigned long long)x->res_bytes);
    else if (x->response_started)
        /* Each count is kept where the bytes moved: body_pump (swapped,
         * copied, handed to a filter) and the splice relay (response.c). */
        trace_step(s, file, func, "response body: %llu bytes to the client (%s in, %s out): "
                   "%llu by swapping buffers, %llu spliced in the kernel, %llu copied, %llu "
                   "through %s; request body: %llu bytes (%llu by swapping buffers, %llu "
                   "copied, %llu through %s)",
                   (unsigned long long)(x->res_filter ? x->res_filtered_bytes : x->res_bytes),
                   body_kind_name(x->res_framing.kind),
                   body_kind_name(x->res_out_kind), (unsigned long long)x->res_body.swapped,
                   (unsigned long long)x->res_spliced, (unsigned long long)x->res_body.copied,
                   (unsigned long long)x->res_body.filtered,
                   x->res_filter ? "on_response_chunk" : "the flow capture",
                   (unsigned long long)x->req_bytes, (unsigned long long)x->req_body.swapped,
                   (unsigned long long)x->req_body.copied,
                   (unsigned long long)x->req_body.filtered,
                   x->req_filter ? "on_request_chunk" : "the flow capture");
    if (keep)
        trace_step(s, file, func, "keep-alive: yes (%s)",
                   x->minor >= 1 ? "HTTP/1.1, no Connection: close"
                                 : "HTTP/1.0 asked for it");
    else
        /* Every place that ends the connection names its reason
         * (exchange_no_keep); the proxy stopping overrides a yes. */
        trace_step(s, file, func, "keep-alive: no, %s",
                   x->keep_alive             ? "the proxy is stopping"
                   : x->tunneled             ? "a tunnel ends its connection"
                   : x->no_keep_why          ? x->no_keep_why
                                             : "no reason was recorded");
}
