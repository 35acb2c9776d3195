/*
 * exchange.c - forwarding one request and relaying its response.
 *
 * The tutorial's "find host and port in the URL, connect, relay until EOF",
 * done so that nothing blocks and nothing ambiguous crosses:
 *
 *   exchange_begin       check the target, copy the head, drop hop-by-hop
 *        |               fields, decide the body framing
 *   run_request_hooks    on_request, before_connect (when scripts have them)
 *        |
 *   upstream_start       (upstream.c) a kept, pooled or fresh connection;
 *        |               then the request head is queued upstream
 *   exchange_pump        request body up (re-framed), response head parsed
 *        |               and rewritten, response body down (re-framed)
 *   STEP_END             handed back to session.c (session_step): log,
 *                        keep-alive or close
 *
 * Every function here that takes a step returns what it came to (enum
 * exchange_step, exchange.h): a failure is reported, not acted on, so the
 * exchange stays whole until session.c ends it.
 *
 * Why not "relay until EOF" as the tutorial does: with keep-alive the
 * server does not close after a response, and the client sends the next
 * request on the same connection. The proxy must know where each message
 * ends (Content-Length, chunked, or EOF only when the server says so), and
 * it re-frames each body for its receiver.
 */
#include "exchange.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acl.h"
#include "hooks.h"
#include "https.h"
#include "max_forwards.h"
#include "log.h"
#include "message.h"
#include "session.h"
#include "stats.h"
#include "tls.h"
#include "trace.h"
#include "response.h"
#include "upstream.h"

enum exchange_step exchange_report_at(struct exchange *x, enum exchange_step step,
                                      enum session_state to, int status, const char *why,
                                      const char *file, const char *func)
{
    x->next.state = to;
    x->next.status = status;
    x->next.why = why;
    x->next.file = file;
    x->next.func = func;
    return step;
}

void exchange_trace_chunk(struct session *s, const char *file, const char *func, int response,
                          size_t in, int eof, const uint64_t *sent, uint64_t sent_before,
                          int rc, double started)
{
    const char *hook = response ? "on_response_chunk" : "on_request_chunk";

    if (rc > 0) {
        /* Its output comes when it is done: chunk_hook_woke says so. */
        s->x.chunk_started = started;
        s->x.chunk_sent = sent_before;
    }
    trace_step(s, file, func, "hook %s: %zu bytes in%s, %llu bytes out, %s, %.3f ms", hook, in,
               eof ? " (the body's end)" : "", (unsigned long long)(*sent - sent_before),
               rc == 0  ? "returned"
               : rc > 0 ? "waits (the body pauses until it is done)"
                        : "failed",
               (ev_time() - started) * 1000.0);
}

/* --trace: the request's chunk hooks, timed and counted around the
 * filters of hooks_body.c (only when tracing; see exchange_pump). */
static int trace_request_chunk(void *arg, const char *data, size_t len, int eof,
                               struct buffer *out, enum http_body_kind out_kind)
{
    struct session *s = arg;
    uint64_t before = s->x.hook.sent_scratch;
    double started = ev_time();
    int rc = hooks_request_filter(arg, data, len, eof, out, out_kind);
    exchange_trace_chunk(s, __FILE__, __func__, 0, len, eof, &s->x.hook.sent_scratch, before,
                         rc, started);
    return rc;
}

/* tx.req.buffer_body: the hooks run once, on the whole body, at its end. */
static int trace_request_collect(void *arg, const char *data, size_t len, int eof,
                                 struct buffer *out, enum http_body_kind out_kind)
{
    struct session *s = arg;
    uint64_t before = s->x.hook.sent_scratch;
    size_t whole = buffer_length(hooks_collected(s)) + len;
    double started = ev_time();
    int rc = hooks_request_collect(arg, data, len, eof, out, out_kind);
    if (eof || rc < 0)
        exchange_trace_chunk(s, __FILE__, __func__, 0, whole, eof, &s->x.hook.sent_scratch,
                             before, rc, started);
    return rc;
}

void exchange_no_keep(struct exchange *x, const char *why)
{
    if (x->keep_alive || !x->no_keep_why)
        x->no_keep_why = why;
    x->keep_alive = 0;
}

/* The longest failure cause an exchange formats: one named for the
 * parent proxy (session.c, session_fail_at) included. */
#define EXCHANGE_CAUSE_MAX 400

const char *exchange_cause(struct exchange *x, const char *fallback, const char *fmt, ...)
{
    va_list ap;

    if (!x->cause)
        x->cause = malloc(EXCHANGE_CAUSE_MAX);
    if (!x->cause)
        return fallback;
    va_start(ap, fmt);
    vsnprintf(x->cause, EXCHANGE_CAUSE_MAX, fmt, ap);
    va_end(ap);
    return x->cause;
}

void exchange_init(struct exchange *x)
{
    memset(x, 0, sizeof *x);
    headers_init(&x->req_headers);
    headers_init(&x->res_headers);
    x->res_state = RESPONSE_WAIT_HEAD;
}

void exchange_release(struct session *s)
{
    struct exchange *x = &s->x;
    dns_cancel(x->dns);
    x->dns = NULL;
    auth_cancel(s->proxy->auth, x->auth_job);
    x->auth_job = NULL;
    free(x->parent);
    x->parent = NULL;
    free(x->script_proxy_auth);
    x->script_proxy_auth = NULL;
    free(x->addrs);
    x->addrs = NULL;
    hooks_exchange_end(s);
    flows_record_end(x->flow, x->status, x->req_bytes,
                     x->res_filter ? x->res_filtered_bytes : x->res_bytes, x->error,
                     ev_now(s->proxy->loop));
    x->flow = NULL;
    /* The size it was taken with: method and target are set only with it. */
    buffer_block_give(x->line, x->line ? x->method_len + x->target_len + 2 : 0);
    x->line = NULL;
    free(x->fwd_line);
    x->fwd_line = NULL;
    x->method = x->target = NULL;
    headers_free(&x->req_headers);
    headers_free(&x->res_headers);
    buffer_free(&x->res_batch);
    buffer_free(&x->req_batch);
    if (x->last_hop_answer) {
        buffer_free(x->last_hop_answer);
        free(x->last_hop_answer);
        x->last_hop_answer = NULL;
    }
    x->error = NULL; /* it may point at the cause */
    free(x->cause);
    x->cause = NULL;
    free(x->user);
    x->user = NULL;
}

static enum exchange_step run_request_hooks(struct session *s, enum hook_phase phase);

/* ---- the request head ------------------------------------------------- */

/* Replaces the forwarded method and path. 0, or -1 when out of memory. */
int exchange_set_forward_line(struct exchange *x, const char *method, size_t mlen,
                              const char *path, size_t plen)
{
    char *line = malloc(mlen + plen + 2);
    if (!line)
        return -1;
    memcpy(line, method, mlen);
    line[mlen] = '\0';
    memcpy(line + mlen + 1, path, plen);
    line[mlen + 1 + plen] = '\0';
    free(x->fwd_line);
    x->fwd_line = line;
    x->fwd_method = line;
    x->fwd_method_len = mlen;
    x->fwd_path = line + mlen + 1;
    x->fwd_path_len = plen;
    return 0;
}

/* Copies the request line so the views outlive the client's buffer. Inside
 * an intercepted tunnel an origin-form target ("/path") becomes the
 * absolute https:// URL it stands for, so hooks, logs and the rest of the
 * exchange see the same kind of target as for plain http. There an
 * "OPTIONS *" asks about the tunnel's server: it becomes the server's URL
 * without a path, which goes on as "*" (x->server_wide), as it would from
 * a client of the proxy. */
static int copy_request_line(struct session *s, const struct http_head *head)
{
    struct exchange *x = &s->x;
    char prefix[300]; /* only its first <plen> bytes are read */
    size_t plen = 0, tlen = head->target_len;

    if (s->intercepted) {
        int server_wide = tlen == 1 && head->target[0] == '*' && head->method_len == 7 &&
                          memcmp(head->method, "OPTIONS", 7) == 0;
        if (server_wide || url_is_origin_form(head->target, tlen))
            plen = https_tunnel_origin(s, prefix, sizeof prefix);
        if (server_wide && plen > 0)
            tlen = 0;
    }
    /* From the buffers' cache of blocks: one is taken and given back on
     * every exchange, dozens at once under load. */
    x->line = buffer_block_take(head->method_len + plen + tlen + 2);
    if (!x->line)
        return -1;
    memcpy(x->line, head->method, head->method_len);
    x->line[head->method_len] = '\0';
    memcpy(x->line + head->method_len + 1, prefix, plen);
    memcpy(x->line + head->method_len + 1 + plen, head->target, tlen);
    x->line[head->method_len + 1 + plen + tlen] = '\0';
    x->method = x->line;
    x->method_len = head->method_len;
    x->target = x->line + head->method_len + 1;
    x->target_len = plen + tlen;
    return 0;
}

/* How many luaproxy hops a request may have passed through already (its
 * Via), and how long its Via may be: past either it is taken for a
 * forwarding loop. Proxies set as each other's parent pass a request back
 * and forth; each hop adds to Via, so this ends it (the address check in
 * upstream.c only sees a proxy that points at itself). */
#define VIA_HOPS_MAX 8
#define VIA_BYTES_MAX 1000

static int looks_like_loop(const struct http_head *head)
{
    size_t hops = 0, bytes = 0, mark = sizeof MESSAGE_VIA - 1;
    for (int i = http_find_id(head, HTTP_FIELD_VIA, 0); i >= 0;
         i = http_find_id(head, HTTP_FIELD_VIA, (size_t)i + 1)) {
        const char *v = head->fields[i].value;
        size_t len = head->fields[i].value_len;
        bytes += len;
        for (size_t at = 0; at + mark <= len; at++)
            if (memcmp(v + at, MESSAGE_VIA, mark) == 0)
                hops++;
    }
    return hops >= VIA_HOPS_MAX || bytes > VIA_BYTES_MAX;
}

/* Checks the target and fills x->url, x->host, x->port. Returns the cause
 * of a refusal (with *status), or NULL. */
static const char *check_target(struct session *s, int *status)
{
    struct exchange *x = &s->x;

    *status = 400;
    if (x->is_connect && s->intercepted)
        return "CONNECT inside an intercepted tunnel is not supported";
    if (x->is_connect) {
        if (url_parse_authority(x->target, x->target_len, &x->url) != 0)
            return "a CONNECT target must be host:port";
        if (!acl_port_allowed(&s->proxy->cfg->connect_ports, x->url.port)) {
            *status = 403;
            return "CONNECT to this port is not allowed";
        }
    } else {
        /* asterisk-form is OPTIONS's alone (RFC 9112 3.2.4); the proxy
         * answers the one sent to it before this (asks_about_proxy), and
         * one inside a tunnel is the server's URL by now. */
        if (x->target_len == 1 && x->target[0] == '*')
            return "only OPTIONS can have * as its target";
        if (url_is_origin_form(x->target, x->target_len))
            return "this is a proxy: send an absolute URL (GET http://host/path), "
                   "or CONNECT host:443 for https";
        if (url_parse_absolute(x->target, x->target_len, &x->url) != 0)
            return "malformed request target";
        /* https:// URLs arrive only from inside an intercepted tunnel;
         * a client sends them in the clear only by mistake. */
        x->upstream_tls = http_token_eq(x->url.scheme, x->url.scheme_len, "https");
        if (x->upstream_tls && !s->intercepted)
            return "use CONNECT for https: set this proxy as the HTTPS proxy too";
        if (!x->upstream_tls && !http_token_eq(x->url.scheme, x->url.scheme_len, "http"))
            return "only http:// URLs can be forwarded";
        if (s->intercepted && x->upstream_tls != endpoint_is_tls(&s->client))
            return x->upstream_tls ? "only http:// URLs can be sent inside this tunnel: its "
                                     "client speaks plain text in it"
                                   : "only https:// URLs can be sent inside an HTTPS tunnel";
    }
    if (x->url.host_len == 0 || x->url.host_len >= sizeof x->host)
        return "malformed request target";
    memcpy(x->host, x->url.host, x->url.host_len);
    x->host[x->url.host_len] = '\0';
    x->port = x->url.port;
    /* The CONNECT chose the server (and --connect-ports allowed its port):
     * a full URL inside the tunnel that names another would reach a host
     * or port the client was never let through to. */
    if (s->intercepted &&
        (x->port != s->tunnel->port || strcasecmp(x->host, s->tunnel->host) != 0)) {
        *status = 421;
        return "this tunnel leads to another server: inside it, send the path only";
    }
    return NULL;
}

static enum exchange_step hooks_or_connect(struct session *s);
static enum exchange_step answer_last_hop(struct session *s);
static enum exchange_step admit(struct session *s, const struct http_head *head,
                                size_t head_len);

/* "OPTIONS *" on a connection to the proxy asks about the proxy itself
 * (RFC 9110 9.3.7; RFC 9112 3.2.4 sends "*" to the server the connection
 * reaches). A client asks a server behind the proxy with that server's
 * URL and no path instead, which goes on as "*" (x->server_wide). Inside
 * an intercepted tunnel the client believes it talks to the server, so
 * there it is about the server (copy_request_line). */
static int asks_about_proxy(const struct session *s)
{
    const struct exchange *x = &s->x;
    return !s->intercepted && x->target_len == 1 && x->target[0] == '*' &&
           x->method_len == 7 && memcmp(x->method, "OPTIONS", 7) == 0;
}

/* The answer to a request the proxy is the last hop of (Max-Forwards: 0,
 * or OPTIONS *), made while the head is there and sent after the
 * credentials check (answer_last_hop), like any answer to this client.
 * 0, or -1 when out of memory. */
static int prepare_last_hop(struct exchange *x, const struct http_head *head)
{
    if (x->req_framing.kind != HTTP_BODY_NONE)
        exchange_no_keep(x, "the request body is never read");
    x->last_hop_answer = malloc(sizeof *x->last_hop_answer);
    if (!x->last_hop_answer)
        return -1;
    buffer_init(x->last_hop_answer);
    int len = max_forwards_answer(x->last_hop_answer, head, x->keep_alive, x->minor);
    if (len < 0)
        return -1;
    x->res_bytes = (uint64_t)len;
    return 0;
}

/* --upstream: this exchange goes through the parent unless its host is one
 * that bypasses it. before_connect may still change that. 0, or -1. */
static int choose_parent(struct session *s)
{
    const struct config *cfg = s->proxy->cfg;
    struct exchange *x = &s->x;

    if (!cfg->has_upstream ||
        parent_bypassed(cfg->upstream_bypass, cfg->upstream_bypass_count, x->host))
        return 0;
    x->parent = malloc(sizeof *x->parent);
    if (!x->parent)
        return -1;
    *x->parent = cfg->upstream;
    return 0;
}

/* Keeps <user> (not empty) as the exchange's user. 0, or -1 when out of
 * memory. */
static int keep_user(struct exchange *x, const char *user)
{
    if (!user[0])
        return 0;
    free(x->user);
    x->user = strdup(user);
    return x->user ? 0 : -1;
}

/* Not a 407: the credentials may well be right, and a browser would ask
 * its user for new ones. */
#define BUSY_CAUSE "too many credential checks waiting from this address; try again shortly"

/* With --auth-file: the verdict on the request's Proxy-Authorization, or
 * AUTH_PENDING while the pool checks it (s->events->auth_done follows).
 * *<oom>: the user could not be kept. */
static enum auth_result check_credentials(struct session *s, const struct http_head *head,
                                          int *oom)
{
    struct exchange *x = &s->x;
    struct auth *a = s->proxy->auth;
    char user[AUTH_USER_MAX];
    enum auth_result result;
    int i, fields;

    if (!a || !s->proxy->cfg->auth_file)
        return AUTH_OK;
    if (s->intercepted) {
        /* Inside an intercepted tunnel: the CONNECT carried the
         * credentials, and requests inside never do. Their check holds
         * until a reload removes the user or changes its password (or
         * brings --auth-file in after the CONNECT): then the tunnel's
         * requests are refused, and the connection closes, since only a
         * new CONNECT can carry new credentials. */
        if (!s->tunnel->auth_on || !auth_stamp_holds(a, s->tunnel->user, &s->tunnel->auth)) {
            exchange_no_keep(x, "the tunnel's credentials no longer hold (--auth-file was read "
                                "again)");
            return AUTH_DENIED;
        }
        *oom = keep_user(x, s->tunnel->user) != 0;
        return AUTH_OK;
    }
    i = http_find_id(head, HTTP_FIELD_PROXY_AUTHORIZATION, 0);
    fields = i < 0 ? 0 : 1;
    if (i >= 0 && http_find_id(head, HTTP_FIELD_PROXY_AUTHORIZATION, (size_t)i + 1) >= 0)
        fields = 2; /* two sets of credentials: which one? neither */
    result = auth_check(a, fields, i >= 0 ? head->fields[i].value : NULL,
                        i >= 0 ? head->fields[i].value_len : 0, s->client_ip, user, sizeof user,
                        s->events->auth_done, s, &x->auth_job);
    if (result == AUTH_OK)
        *oom = keep_user(x, user) != 0;
    return result;
}

enum exchange_step exchange_auth_done(struct session *s, enum auth_result verdict,
                                      const char *user)
{
    struct exchange *x = &s->x;
    x->auth_job = NULL;
    if (verdict == AUTH_BUSY)
        return exchange_fail(x, 503, BUSY_CAUSE);
    if (verdict != AUTH_OK)
        return exchange_fail(x, 407, "this proxy needs a user name and password");
    if (keep_user(x, user) != 0)
        return exchange_fail(x, 500, "out of memory");
    return x->last_hop_answer ? answer_last_hop(s) : hooks_or_connect(s);
}

/* The Host value is built for every request: by hand rather than with
 * printf, which costs more than the rest of the head's rewriting. <out>
 * has room for "[" + a host (< 256) + "]:65535" + 2 ports; returns the
 * new length. */
static int authority_put(char *out, int n, const char *text, int when)
{
    if (when) {
        size_t len = strlen(text);
        memcpy(out + n, text, len + 1);
        n += (int)len;
    }
    return n;
}

static int authority_put_port(char *out, int n, unsigned port)
{
    char digits[6];
    int d = sizeof digits;
    digits[--d] = '\0';
    do {
        digits[--d] = (char)('0' + port % 10);
        port /= 10;
    } while (port && d > 0);
    out[n++] = ':';
    return authority_put(out, n, digits + d, 1);
}

/* Appends ", <name>" to the list in <buf> while it fits. */
static void name_list_add(char *buf, size_t size, const char *name, size_t len)
{
    size_t used = strlen(buf);
    if (used + len + 3 < size)
        snprintf(buf + used, size - used, "%s%.*s", used ? ", " : "", (int)len, name);
}

/* --trace: which of the client's fields were dropped and which added, by
 * name (the copy is in x->req_headers). Only runs when tracing. */
static void trace_fields(struct session *s, const struct http_head *head, const char *func)
{
    const struct headers *out = &s->x.req_headers;
    char dropped[400] = "", added[200] = "";

    for (size_t i = 0; i < head->field_count; i++) {
        const struct http_field *f = &head->fields[i];
        if (headers_find(out, f->name, f->name_len, 0) < 0)
            name_list_add(dropped, sizeof dropped, f->name, f->name_len);
    }
    for (size_t i = 0; i < out->count; i++) {
        size_t len, j;
        const char *name = headers_name(out, i, &len);
        for (j = 0; j < head->field_count; j++)
            if (head->fields[j].name_len == len &&
                strncasecmp(head->fields[j].name, name, len) == 0)
                break;
        if (j == head->field_count)
            name_list_add(added, sizeof added, name, len);
    }
    trace_step(s, __FILE__, func, "fields: %zu in, %zu out; dropped: %s; added: %s (Host "
               "comes from the target, Via names the proxy)",
          head->field_count, out->count, dropped[0] ? dropped : "none",
          added[0] ? added : "none");
}

enum exchange_step exchange_begin(struct session *s, const struct http_head *head,
                                  size_t head_len)
{
    struct exchange *x = &s->x;
    enum http_error err;
    const char *cause;
    char authority[300];
    int status, n;

    x->active = 1;
    x->id = proxy_next_exchange_id(s->proxy);
    x->started = ev_now(s->proxy->loop);
    TRACE(s, "head complete: %zu bytes, %u fields, HTTP/1.%d: %.*s %.*s", head_len,
          (unsigned)head->field_count, head->version_minor, (int)head->method_len, head->method,
          (int)(head->target_len > 200 ? 200 : head->target_len), head->target);
    x->flow = flows_record_begin(s->proxy->flows, x->id, x->started, s->client_ip,
                                 s->client_port, buffer_peek(&s->client.in), head_len);
    x->minor = head->version_minor;
    x->keep_alive = x->minor >= 1 ? !http_has_token_id(head, HTTP_FIELD_CONNECTION, "close")
                                  : http_has_token_id(head, HTTP_FIELD_CONNECTION, "keep-alive");
    x->client_keep = x->keep_alive;
    if (!x->keep_alive)
        x->no_keep_why = x->minor >= 1 ? "the client sent Connection: close"
                                       : "HTTP/1.0 without Connection: keep-alive";
    if (copy_request_line(s, head) != 0)
        return exchange_fail(x, 500, "out of memory");
    if (s->intercepted)
        flows_record_part(x->flow, FLOW_PART_URL, x->target, x->target_len);
    if (http_request_framing(head, &x->req_framing, &err) != 0)
        return exchange_fail(x, http_error_status(err), http_error_text(err));
    x->req_had_length = http_find_id(head, HTTP_FIELD_CONTENT_LENGTH, 0) >= 0;
    x->req_expect = http_find_id(head, HTTP_FIELD_EXPECT, 0) >= 0;
    x->is_connect = x->method_len == 7 && memcmp(x->method, "CONNECT", 7) == 0;
    if (asks_about_proxy(s)) {
        TRACE(s, "OPTIONS *: asks about the proxy itself, which answers (after the "
                 "credentials check), without hooks");
        if (prepare_last_hop(x, head) != 0)
            return exchange_fail(x, 500, "out of memory");
        return admit(s, head, head_len);
    }
    cause = check_target(s, &status);
    if (!cause && (head->ids_seen & (1u << HTTP_FIELD_VIA)) && looks_like_loop(head)) {
        status = 508;
        cause = "the request has passed through luaproxy too many times (its Via): a "
                "forwarding loop between proxies?";
    }
    if (cause) {
        TRACE(s, "target refused (%d): %s", status, cause);
        return exchange_fail(x, status, cause);
    }
    TRACE(s, "target split: host %s, port %u, path %.*s%s", x->host, x->port,
          (int)(x->url.path_len > 200 ? 200 : x->url.path_len), x->url.path ? x->url.path : "",
          x->is_connect ? "(CONNECT: none)" : "");
    if (choose_parent(s) != 0)
        return exchange_fail(x, 500, "out of memory");
    if (x->is_connect && x->req_framing.kind != HTTP_BODY_NONE)
        return exchange_fail(x, 400, "a CONNECT request cannot have a body");
    /* HTTP/1.0 has no Upgrade (RFC 9110 7.8: ignored in a 1.0 request).
     * Nor is one to h2c passed on, which RFC 9113 3.1 deprecates: the
     * tunnel it would open carries HTTP/2 requests that never meet the
     * proxy's checks, the scripts or the viewer ("h2c smuggling"). Such a
     * request goes out as an ordinary one, without its Upgrade. */
    x->is_upgrade = !x->is_connect && head->version_minor >= 1 &&
                    http_has_token_id(head, HTTP_FIELD_CONNECTION, "upgrade") &&
                    http_find_id(head, HTTP_FIELD_UPGRADE, 0) >= 0 &&
                    !http_has_token_id(head, HTTP_FIELD_UPGRADE, "h2c");

    /* Host is regenerated from the target (RFC 9112 3.2.2): the port only
     * when it is not the default, IPv6 literals in brackets. */
    n = authority_put(authority, 0, "[", x->url.host_is_ipv6);
    n = authority_put(authority, n, x->host, 1);
    n = authority_put(authority, n, "]", x->url.host_is_ipv6);
    if (x->port != (x->upstream_tls ? 443 : 80))
        n = authority_put_port(authority, n, x->port);
    if (x->is_connect && x->port == 80) /* a CONNECT authority always names its port */
        n = authority_put_port(authority, n, 80);
    if (message_import_request(head, authority, (size_t)n, x->is_upgrade, &x->req_headers) != 0)
        return exchange_fail(x, 400, "the request head could not be rewritten");
    /* TRACE and OPTIONS: one hop fewer, or the proxy is the last one. */
    uint64_t hops_left;
    enum max_forwards mf = max_forwards_of(head, &hops_left);
    if (mf == MAX_FORWARDS_BAD)
        return exchange_fail(x, 400, "Max-Forwards must be one number");
    if (mf == MAX_FORWARDS_ON && max_forwards_set(&x->req_headers, hops_left) != 0)
        return exchange_fail(x, 500, "out of memory");
    if (mf == MAX_FORWARDS_HERE && prepare_last_hop(x, head) != 0)
        return exchange_fail(x, 500, "out of memory");
    if (trace_enabled)
        trace_fields(s, head, __func__);
    x->fwd_method = x->method;
    x->fwd_method_len = x->method_len;
    x->fwd_path = x->url.path;
    x->fwd_path_len = x->url.path_len;
    x->server_wide = !x->is_connect && x->url.path_len == 0 && x->method_len == 7 &&
                     memcmp(x->method, "OPTIONS", 7) == 0;
    if (!x->is_connect && (x->fwd_path_len == 0 || x->fwd_path[0] != '/')) {
        /* "http://h" and "http://h?q" name "/" and "/?q" (RFC 9110 4.2.3):
         * the path goes on in that form, as scripts and logs see it. */
        char *path = malloc(x->fwd_path_len + 1);
        int failed = !path;
        if (path) {
            path[0] = '/';
            memcpy(path + 1, x->fwd_path, x->fwd_path_len);
            failed = exchange_set_forward_line(x, x->method, x->method_len, path,
                                               x->fwd_path_len + 1) != 0;
            free(path);
        }
        if (failed)
            return exchange_fail(x, 500, "out of memory");
    }
    return admit(s, head, head_len);
}

/* The end of exchange_begin, once the request is understood: the proxy
 * credentials, checked while the head's views are valid (auth_check copies
 * what it needs; they are never forwarded, being hop-by-hop), then the
 * head's bytes go and the answer, the hooks or the connect follow. */
static enum exchange_step admit(struct session *s, const struct http_head *head,
                                size_t head_len)
{
    struct exchange *x = &s->x;
    enum auth_result auth_result;
    int user_oom = 0;
    int ca_page = !x->is_connect && https_is_ca_page(x->host);

    auth_result = ca_page ? AUTH_OK : check_credentials(s, head, &user_oom);

    /* Everything needed is copied: the head's bytes can go. */
    buffer_consume(&s->client.in, head_len);
    body_reader_init(&x->req_body, &x->req_framing);
    x->req_out_kind = x->req_framing.kind;
    x->req_body_done = x->req_framing.kind == HTTP_BODY_NONE;
    TRACE(s, "request body: %s%s; client connection: %s", body_kind_name(x->req_framing.kind),
          x->req_framing.kind == HTTP_BODY_LENGTH ? " (Content-Length)" : "",
          x->keep_alive ? "keep-alive asked" : "close asked");

    if (ca_page) /* http://luaproxy.ca/ is ours: never forwarded, no hooks */
        return https_answer_ca_page(s);
    switch (auth_result) {
    case AUTH_DENIED:
        return exchange_fail(x, 407, "this proxy needs a user name and password");
    case AUTH_BUSY:
        return exchange_fail(x, 503, BUSY_CAUSE);
    case AUTH_PENDING:
        return exchange_move(x, SESSION_HOOK, "credentials being checked");
    case AUTH_OK:
        if (user_oom)
            return exchange_fail(x, 500, "out of memory");
        break;
    }
    return x->last_hop_answer ? answer_last_hop(s) : hooks_or_connect(s);
}

/* Authenticated (or no --auth-file): a TRACE or OPTIONS that may go no
 * further gets the answer made for it, and no hooks: the proxy is its
 * last hop, so there is nothing to forward or rewrite. */
static enum exchange_step answer_last_hop(struct session *s)
{
    struct exchange *x = &s->x;
    size_t before = buffer_length(&s->client.out);

    if (before == 0)
        buffer_swap(&s->client.out, x->last_hop_answer);
    else if (buffer_append(&s->client.out, buffer_peek(x->last_hop_answer),
                           buffer_length(x->last_hop_answer)) != 0)
        return exchange_fail(x, 500, "out of memory");
    buffer_free(x->last_hop_answer); /* the struct goes with the exchange */
    flows_record_appended(x->flow, FLOW_PART_RES_OUT, buffer_peek(&s->client.out),
                          buffer_length(&s->client.out), before);
    x->status = 200;
    x->response_started = 1;
    return STEP_END;
}

/* Authenticated (or no --auth-file): the request hooks, or connect. The
 * hooks run in SESSION_HOOK: from another state this asks for the move,
 * and they start on the session's next pass (exchange_run_hooks). */
static enum exchange_step hooks_or_connect(struct session *s)
{
    struct exchange *x = &s->x;

    hooks_exchange_begin(s, s->events->hook_wakeup);
    if (hooks_wants(s, HOOK_ON_REQUEST) || hooks_wants(s, HOOK_BEFORE_CONNECT)) {
        exchange_record_before_hooks(s, 0);
        if (s->state == SESSION_HOOK) /* still there after a credentials check */
            return run_request_hooks(s, HOOK_ON_REQUEST);
        x->hooks_due = 1;
        return exchange_move(x, SESSION_HOOK, "request hooks to run");
    }
    return upstream_start(s);
}

enum exchange_step exchange_run_hooks(struct session *s)
{
    if (!s->x.hooks_due)
        return STEP_WAIT; /* for a sleeping hook or the credentials' check */
    s->x.hooks_due = 0;
    return run_request_hooks(s, HOOK_ON_REQUEST);
}

/* ---- hooks ------------------------------------------------------------ */

/* For the viewer's before/after view: the head as it would go out if no
 * hook ran, written the way the relay writes it. Only with capture on. */
void exchange_record_before_hooks(struct session *s, int response)
{
    struct exchange *x = &s->x;
    struct buffer b;

    if (!x->flow)
        return;
    buffer_init(&b);
    if (response ? message_write_response(&b, x->status, x->res_reason, strlen(x->res_reason),
                                          &x->res_headers, x->res_framing.kind,
                                          x->res_framing.length, x->keep_alive, x->minor, 0) == 0
                 : message_write_request(&b, x->fwd_method, x->fwd_method_len, x->fwd_path,
                                         x->fwd_path_len, &x->req_headers, x->req_out_kind,
                                         x->req_framing.length, x->req_had_length,
                                         x->is_upgrade) == 0)
        flows_record_part(x->flow, response ? FLOW_PART_RES_PRE : FLOW_PART_REQ_PRE,
                          buffer_peek(&b), buffer_length(&b));
    buffer_free(&b);
}

/* The most of a request body the proxy reads and drops after answering
 * it unread, to keep the connection: on a LAN that is a few milliseconds,
 * and past it a new connection costs the client less than the wait. Bytes
 * read, framing included: a chunked body of one-byte chunks, each with a
 * long extension, carries little data for what it takes to read. */
#define DISCARD_MAX (1024 * 1024)

/* Whether the rest of the request body, from where its reading stands,
 * can be read and dropped after an answer, so the connection carries the
 * client's next request instead of closing, as RFC 9112 9.6 lets a server
 * do. Only when the client wants to keep the connection, the framing says
 * where the body ends (and body_reader_init has run: before it the head
 * is still in the input, and the kind is NONE), what is left of a length
 * is within DISCARD_MAX, and the client's head had no Expect (a script
 * may have taken it off the fields since): such a client may send the
 * body or not after a final answer, so where its next request starts is
 * unknown. */
int exchange_request_body_droppable(const struct session *s)
{
    const struct exchange *x = &s->x;

    if (!x->keep_alive || x->req_body_done || x->is_connect || x->is_upgrade || x->req_expect)
        return 0;
    if (x->req_body.kind == HTTP_BODY_LENGTH)
        return x->req_body.remaining <= DISCARD_MAX;
    return x->req_body.kind == HTTP_BODY_CHUNKED;
}

/* Whether nothing of the upstream's answer has come: no head (not even
 * part of one), no interim response. */
static int nothing_answered(const struct session *s)
{
    return s->x.res_state == RESPONSE_WAIT_HEAD && s->x.interim_count == 0 &&
           buffer_length(&s->upstream.in) == 0;
}

/* The same, for an answer of the proxy's own (a script's tx:respond, a
 * 407, a 502 or 504 when the lookup or the connect failed): while nothing
 * of the request went up or is on its way, that is while the head is
 * read, the request hooks run, or the upstream connection is being made
 * (the head is queued only once it is up). And in SESSION_EXCHANGE, for
 * a 502 or 504 when the upstream failed (it closed or reset, a write to
 * it failed, it did not answer in time) before any of its answer came:
 * the body stopped going up where the upstream stopped taking it, and
 * its reading goes on from there (req_body keeps the framing's state,
 * and what waits in client.in is read once, by the dropping). Not while
 * a chunk hook holds a piece of the body, nor while the body is being
 * collected for a script (none of it went up then). */
static int can_discard_request_body(const struct session *s)
{
    switch (s->state) {
    case SESSION_HEAD:
    case SESSION_HOOK:
    case SESSION_RESOLVING:
    case SESSION_CONNECTING:
        return exchange_request_body_droppable(s);
    case SESSION_EXCHANGE:
        return !s->x.response_started && !s->x.req_discard && !s->x.hook.pending &&
               !s->x.req_collect && nothing_answered(s) && exchange_request_body_droppable(s);
    default:
        return 0;
    }
}

int exchange_discard_body(struct session *s)
{
    if (!can_discard_request_body(s))
        return 0;
    /* A lookup or a connect under way would answer later, into an
     * exchange that has moved on: given up first. */
    upstream_abandon(s);
    /* The exchange lasts until the body is in (exchange_pump): its log
     * line and on_done come after; its answer goes out meanwhile. */
    s->x.req_discard = 1;
    s->x.res_state = RESPONSE_DONE;
    flows_record_time(s->x.flow, FLOW_T_ANSWERED, ev_now(s->proxy->loop));
    return 1;
}

/* body_pump's filter while the body is dropped: sends nothing, and keeps
 * each piece for the flow viewer (<arg>, the exchange's flow, or NULL),
 * as the tap keeps a body that goes up: the flow shows what the client
 * sent, and its replay sends that body again. */
static int drop_piece(void *arg, const char *data, size_t len, int eof, struct buffer *out,
                      enum http_body_kind out_kind)
{
    (void)eof, (void)out, (void)out_kind;
    flows_record_body(arg, 0, 0, data, len);
    return 0;
}

/* Reads and drops what has come of the body of a request already answered
 * (x->req_discard: by the proxy, or early by the upstream). STEP_END once
 * it is all in (the connection is kept), or when it cannot be (it breaks
 * off, its chunked framing is invalid, or what was read of it runs past
 * DISCARD_MAX): the answer is out, so the connection only closes
 * (lingering, in DRAINING). */
static enum exchange_step discard_request_body(struct session *s)
{
    struct exchange *x = &s->x;
    enum http_error err = HTTP_ERR_NONE;
    uint64_t before = x->req_bytes;
    size_t buffered = buffer_length(&s->client.in);
    enum body_pump_result r;

    r = body_pump(&x->req_body, &s->client.in, s->client.read_eof, &s->upstream.out,
                  ENDPOINT_OUT_LIMIT, HTTP_BODY_LENGTH, drop_piece, x->flow, &x->req_bytes, &err);
    /* No overflow: each pass reads at most what the input buffer holds,
     * and the dropping stops once past DISCARD_MAX. */
    x->req_dropped += (uint32_t)(buffered - buffer_length(&s->client.in));
    switch (r) {
    case BODY_PUMP_IDLE:
        return STEP_WAIT;
    case BODY_PUMP_PROGRESS:
        if (x->req_dropped > DISCARD_MAX) {
            exchange_no_keep(x, "the request body being dropped is too long");
            return STEP_END;
        }
        return x->req_bytes > before ? STEP_PROGRESS : STEP_WAIT;
    case BODY_PUMP_DONE:
        x->req_body_done = 1;
        TRACE(s, "the request body (%llu bytes) was read and dropped: the connection is kept",
              (unsigned long long)x->req_bytes);
        return STEP_END;
    case BODY_PUMP_INVALID:
        exchange_no_keep(x, "the request body's chunked framing was invalid");
        return STEP_END;
    case BODY_PUMP_TRUNCATED:
    case BODY_PUMP_FILTER_FAILED:
    case BODY_PUMP_PAUSED:
        break;
    }
    exchange_no_keep(x, "the client closed inside the request body");
    return STEP_END;
}

/* The upstream's answer is complete and the request body is not all in
 * (an early answer: a 413, or a server that answers before it reads).
 * The upstream connection is left inside a request: closed. The rest of
 * the body is read and dropped when it can be (the answer's head said
 * keep-alive then: response.c, exchange_request_body_droppable), so the
 * client connection is kept; else the connection ends with the answer.
 * A chunk hook still at work on a piece of the body finishes it first
 * (<progress>: whether this pass moved anything). */
static enum exchange_step answered_early(struct session *s, int progress)
{
    struct exchange *x = &s->x;

    if (!exchange_request_body_droppable(s)) { /* the rest is never read */
        exchange_no_keep(x, "the response ended before the request body was read");
        return STEP_END;
    }
    if (x->hook.pending)
        return progress ? STEP_PROGRESS : STEP_WAIT;
    TRACE(s, "the answer is complete before the request body (%llu bytes sent up so far): "
             "the rest of it is read and dropped",
          (unsigned long long)x->req_bytes);
    upstream_abandon(s);
    x->req_discard = 1;
    flows_record_time(x->flow, FLOW_T_ANSWERED, ev_now(s->proxy->loop));
    return STEP_PROGRESS;
}

/* Answers with the response a hook made (tx:respond). */
enum exchange_step exchange_respond_locally(struct session *s)
{
    struct exchange *x = &s->x;
    size_t before = buffer_length(&s->client.out);
    int discard = exchange_discard_body(s);
    if (!x->req_body_done && !discard) /* the request body will never be read */
        exchange_no_keep(x, "a script answered before the request body was read");
    if (hooks_write_local_response(s, &s->client.out) != 0)
        return exchange_fail(x, 500, "a script's response could not be sent");
    flows_record_flag(x->flow, FLOW_F_LOCAL);
    flows_record_appended(x->flow, FLOW_PART_RES_OUT, buffer_peek(&s->client.out),
                          buffer_length(&s->client.out), before);
    TRACE(s, "a script answered itself (tx:respond): %d, %zu bytes queued for the client; "
             "nothing goes upstream",
          x->status, buffer_length(&s->client.out) - before);
    x->response_started = 1;
    if (discard)
        return exchange_move(x, SESSION_EXCHANGE, "a script answered: the rest of the request "
                                                  "body is read and dropped");
    return STEP_END;
}

/* --connect-ports holds for the tunnel the request hooks leave, not only
 * for the one the client asked for: a script that moved it (tx.req.port,
 * tx.upstream.port) opens no tunnel where a client could not. NULL, or
 * the cause of the 403. */
static const char *connect_port_refused(struct session *s)
{
    struct exchange *x = &s->x;

    if (!x->is_connect || acl_port_allowed(&s->proxy->cfg->connect_ports, x->port))
        return NULL;
    log_warn("c%llu #%llu a script moved a CONNECT to %s:%u, a port --connect-ports does not "
             "allow: refused (403)", (unsigned long long)s->id, (unsigned long long)x->id, x->host,
             x->port);
    return exchange_cause(x, "CONNECT to this port is not allowed",
                          "a script moved this CONNECT to port %u, which is not allowed",
                          x->port);
}

/* Acts on what the request hooks of <phase> decided: fail, answer
 * locally, run before_connect after on_request, or connect. */
static enum exchange_step after_request_hooks(struct session *s, enum hook_phase phase,
                                              enum hooks_result r)
{
    static const char failed[] = "a script failed while handling this request";
    struct exchange *x = &s->x;

    if (r == HOOKS_FAILED)
        return exchange_fail(x, 500, failed);
    if (r == HOOKS_RESPOND)
        return exchange_respond_locally(s);
    if (phase == HOOK_ON_REQUEST) {
        if (hooks_read_request(s) != 0)
            return exchange_fail(x, 500, failed);
        if (hooks_wants(s, HOOK_BEFORE_CONNECT)) {
            if (hooks_prepare_upstream(s) != 0)
                return exchange_fail(x, 500, failed);
            return run_request_hooks(s, HOOK_BEFORE_CONNECT);
        }
    } else if (hooks_read_upstream(s) != 0) {
        return exchange_fail(x, 500, failed);
    }
    const char *refused = connect_port_refused(s);
    if (refused) {
        TRACE(s, "target refused (403): %s", refused);
        return exchange_fail(x, 403, refused);
    }
    return upstream_start(s);
}

/* Runs a request phase; a hook that sleeps comes back later through
 * exchange_hooks_woke, so the result is acted on in one place either way. */
static enum exchange_step run_request_hooks(struct session *s, enum hook_phase phase)
{
    s->x.hook.phase = phase;
    enum hooks_result r = hooks_run(s, phase);
    if (r == HOOKS_PENDING)
        return STEP_WAIT;
    return after_request_hooks(s, phase, r);
}

/* A chunk hook that waited has finished its piece: its output joins the
 * body (through the flow tap when one records it), and the pump goes on
 * from session_advance. */
static enum exchange_step chunk_hook_woke(struct session *s, enum hooks_result r)
{
    struct exchange *x = &s->x;
    int response = x->hook.phase == HOOK_ON_RESPONSE_CHUNK;

    if (r == HOOKS_FAILED) {
        exchange_no_keep(x, "a body hook failed: the rest of the body is never read");
        return exchange_fail(x, 500, response
                                         ? "a script failed while handling the response body"
                                         : "a script failed while handling the request body");
    }
    if (r == HOOKS_PENDING)
        return STEP_WAIT;
    TRACE(s, "hook %s done after waiting: %llu bytes out, %.3f ms since the piece came",
          response ? "on_response_chunk" : "on_request_chunk",
          (unsigned long long)((response ? x->res_filtered_bytes : x->hook.sent_scratch) -
                               x->chunk_sent),
          (ev_time() - x->chunk_started) * 1000.0);
    if (!x->req_collect || response) {
        if (flows_tap_resume(x->flow, response, response ? &s->client.out : &s->upstream.out,
                             response ? x->res_out_kind : x->req_out_kind) != 0)
            return exchange_fail(x, 502, "out of memory");
    }
    return STEP_PROGRESS;
}

enum exchange_step exchange_hooks_woke(struct session *s, enum hooks_result r)
{
    if (hooks_is_chunk_phase(s->x.hook.phase))
        return chunk_hook_woke(s, r);
    if (s->x.hook.phase == HOOK_ON_RESPONSE)
        return response_after_hooks(s, r);
    return after_request_hooks(s, s->x.hook.phase, r);
}

enum exchange_step exchange_response_stalled(struct session *s)
{
    struct exchange *x = &s->x;

    if (x->req_discard) { /* answered; the client stopped sending the body */
        exchange_no_keep(x, "the request body being dropped stopped coming");
        return STEP_END;
    }
    if (x->res_state == RESPONSE_BODY && x->res_discard) {
        x->upstream_reusable = 0; /* it stopped inside a body: unusable */
        x->error = "the upstream stalled in a body the client does not get";
        if (!x->req_body_done)
            exchange_no_keep(x, "the request body was not all read");
        return STEP_END;
    }
    return exchange_fail(x, 502, "the upstream stalled in the middle of the response");
}

enum exchange_step exchange_pump(struct session *s)
{
    struct exchange *x = &s->x;
    enum http_error err = HTTP_ERR_NONE;
    enum exchange_step step;
    int progress = 0;

    if (x->req_discard)
        return discard_request_body(s);
    if (x->req_collect && !x->req_body_done && s->upstream.fd >= 0 &&
        (s->upstream.read_eof || s->upstream.failed || buffer_length(&s->upstream.in) > 0)) {
        /* Collecting: nothing has gone up yet (the head follows the whole
         * body), so what the upstream did is no answer to this request.
         * It gave the connection up (an idle timeout, maybe with a 408):
         * closed now, and a fresh one is made once the body is whole
         * (upstream_send_collected_request). */
        TRACE(s, "the upstream %s before the request went up (the body is being collected): "
                 "that connection is closed, a fresh one follows",
              buffer_length(&s->upstream.in) > 0 ? "spoke" : "closed the connection");
        endpoint_close(s->proxy->loop, &s->upstream);
        endpoint_open(&s->upstream, -1);
        progress = 1;
    }
    /* The request body waits while the parent opens the tunnel, and is
     * not read for an upstream that stopped taking it (below). */
    if (!x->req_body_done && !x->parent_tunnel && !x->hook.pending && !s->upstream.failed) {
        body_filter *filter = NULL;
        void *filter_arg = s;
        if (x->req_collect) {
            /* it keeps the body for the flow viewer */
            filter = trace_enabled ? trace_request_collect : hooks_request_collect;
        } else {
            if (x->req_filter)
                filter = trace_enabled ? trace_request_chunk : hooks_request_filter;
            flows_tap(x->flow, 0, &filter, &filter_arg);
        }
        switch (body_pump(&x->req_body, &s->client.in, s->client.read_eof, &s->upstream.out,
                          ENDPOINT_OUT_LIMIT, x->req_collect ? HTTP_BODY_LENGTH : x->req_out_kind,
                          filter, filter_arg, &x->req_bytes, &err)) {
        case BODY_PUMP_IDLE:
            break;
        case BODY_PUMP_PROGRESS:
            progress = 1;
            break;
        case BODY_PUMP_DONE:
            x->req_body_done = 1;
            flows_record_time(x->flow, FLOW_T_SENT, ev_now(s->proxy->loop));
            progress = 1;
            if (x->req_collect && exchange_step_is_outcome(
                                      step = upstream_send_collected_request(s)))
                return step;
            break;
        case BODY_PUMP_PAUSED:
            progress = 1; /* a chunk hook waits; exchange_hooks_woke carries on */
            break;
        case BODY_PUMP_FILTER_FAILED:
            exchange_no_keep(x, "a script failed on the request body: the rest is never read");
            if (x->hook.body_error == HOOKS_BODY_TOO_LARGE)
                return exchange_fail(x, 413,
                                     "the request body is larger than the script may collect");
            if (x->hook.body_error == HOOKS_BODY_BUSY)
                return exchange_fail(x, 503, "the proxy is collecting too many request bodies "
                                             "at once; try again shortly");
            return exchange_fail(x, 500, "a script failed while handling the request body");
        case BODY_PUMP_INVALID:
            /* What was forwarded so far is a prefix of a chunked body; the
             * upstream sees the connection close without a last chunk. */
            exchange_no_keep(x, "the request body's chunked framing was invalid");
            return exchange_fail(x, http_error_status(err), http_error_text(err));
        case BODY_PUMP_TRUNCATED:
            x->error = "the client closed the connection inside the request body";
            exchange_no_keep(x, "the client closed inside the request body");
            return exchange_close_connection(x, x->error);
        }
    }
    if (s->upstream.failed && !x->req_body_done) {
        /* The upstream stopped reading (it may have answered early, e.g.
         * 413): stop sending, but still relay whatever it answered; the
         * connection ends with that answer. Until any of it comes, the
         * body is left where its reading stopped: if the upstream ends
         * without a word, the proxy's 502 drops the rest of it and keeps
         * the connection when it can (exchange_discard_body). */
        buffer_consume(&s->upstream.out, buffer_length(&s->upstream.out));
        if (!nothing_answered(s)) {
            x->req_body_done = 1;
            exchange_no_keep(x, "the upstream stopped reading the request body");
        }
    }

    /* One hook at a time per exchange: a waiting chunk hook holds the head;
     * and no head is read before the request went up. */
    if (x->res_state == RESPONSE_WAIT_HEAD && !x->hook.pending &&
        !(x->req_collect && !x->req_body_done)) {
        step = response_parse_head(s);
        if (exchange_step_is_outcome(step))
            return step;
        progress |= step == STEP_PROGRESS;
    }
    /* RESPONSE_HOOK: a sleeping on_response; exchange_hooks_woke goes on. */
    /* Straight on to the body, so a head and the body that came with it
     * leave in one write. */
    if (x->res_state == RESPONSE_BODY) {
        step = response_relay_body(s);
        if (exchange_step_is_outcome(step))
            return step;
        progress |= step == STEP_PROGRESS;
    }
    if (x->res_state == RESPONSE_DONE && !x->req_body_done)
        return answered_early(s, progress);
    if (x->res_state == RESPONSE_DONE)
        return STEP_END;
    return progress ? STEP_PROGRESS : STEP_WAIT;
}
