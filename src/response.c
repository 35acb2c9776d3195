/*
 * response.c - the response side of an exchange (SESSION_EXCHANGE): the
 * upstream's head parsed by the same strict rules as a request, interim
 * (1xx) answers, a 101 turning into a tunnel, on_response, our head for the
 * client, and the body relayed down, re-framed, swapped, spliced or
 * dropped. exchange.c owns the request side and calls in through
 * response.h. Like exchange.c, every step returns what it came to (enum
 * exchange_step) and session.c acts on it.
 */
#include "response.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exchange.h"
#include "flows.h"
#include "hooks.h"
#include "log.h"
#include "message.h"
#include "session.h"
#include "stats.h"
#include "trace.h"
#include "upstream.h"

/* Interim (1xx) responses relayed per exchange. A server sends one or two
 * (100 Continue, 103 Early Hints, now and then 102 Processing); an endless
 * stream of them would keep an exchange alive past every timeout, since
 * each one is activity. Past the cap the exchange ends with a 502. */
#define EXCHANGE_MAX_INTERIM 100

/* Fails the exchange with 502 naming the parser's complaint. */
static enum exchange_step fail_bad_response(struct exchange *x, enum http_error err)
{
    return exchange_fail(x, 502,
                         exchange_cause(x, "the upstream sent an invalid response",
                                        "the upstream sent an invalid response (%s)",
                                        http_error_text(err)));
}

/* 101 to an upgrade request: forward it and become a tunnel. */
static enum exchange_step switch_protocols(struct session *s, const struct http_head *head,
                                           size_t head_len)
{
    struct exchange *x = &s->x;
    size_t before = buffer_length(&s->client.out);

    flows_record_part(x->flow, FLOW_PART_RES_IN, buffer_peek(&s->upstream.in), head_len);
    if (message_import_response(head, 0, 1, &x->res_headers) != 0 ||
        message_write_response(&s->client.out, 101, head->reason, head->reason_len,
                               &x->res_headers, HTTP_BODY_NONE, 0, 0, x->minor, 1) != 0)
        return exchange_fail(x, 502, "the upstream's 101 response could not be rewritten");
    flows_record_flag(x->flow, FLOW_F_TUNNEL);
    flows_record_appended(x->flow, FLOW_PART_RES_OUT, buffer_peek(&s->client.out),
                          buffer_length(&s->client.out), before);
    buffer_consume(&s->upstream.in, head_len);
    x->status = 101;
    x->response_started = 1;
    x->req_body_done = 1;
    return exchange_move(x, SESSION_TUNNEL, "101 Switching Protocols");
}

static int is_head(const char *method, size_t len)
{
    return len == 4 && memcmp(method, "HEAD", 4) == 0;
}

/* The Content-Length of an answer to HEAD or of a 304, which frames
 * nothing, so the framing rules never checked it: passed on only when it
 * is one valid value beside no Transfer-Encoding. 0 with *<length> set,
 * or -1 (it is dropped then: a client would refuse it, or guess). */
static int bodiless_length(const struct http_head *head, uint64_t *length)
{
    int cl = http_find_id(head, HTTP_FIELD_CONTENT_LENGTH, 0);

    if (cl < 0 || http_find_id(head, HTTP_FIELD_CONTENT_LENGTH, (size_t)cl + 1) >= 0 ||
        http_find_id(head, HTTP_FIELD_TRANSFER_ENCODING, 0) >= 0)
        return -1;
    return http_parse_content_length(head->fields[cl].value, head->fields[cl].value_len, length);
}

/* Forwards an interim (1xx) response; the final one is still to come. */
static enum exchange_step forward_interim(struct session *s, const struct http_head *head,
                                          size_t head_len)
{
    struct exchange *x = &s->x;
    struct headers fields;

    /* HTTP/1.0 clients do not know 1xx (RFC 9110 15.2): drop it for them. */
    if (x->minor >= 1) {
        headers_init(&fields);
        if (message_import_response(head, 0, 0, &fields) != 0 ||
            message_write_response(&s->client.out, head->status, head->reason,
                                   head->reason_len, &fields, HTTP_BODY_NONE, 0, 1, 1, 0)) {
            headers_free(&fields);
            return exchange_fail(x, 502, "the upstream's interim response could not be "
                                         "rewritten");
        }
        headers_free(&fields);
    }
    buffer_consume(&s->upstream.in, head_len);
    return STEP_PROGRESS;
}

static enum exchange_step send_response_head(struct session *s, const struct http_head *head);

/* Whether the client gets an empty body the upstream did not send: a GET
 * a script sent as HEAD, so the answer frames none. Its head goes out
 * through the edited path (settle_edited_head), which drops the
 * Content-Encoding of a body the client does not get: an empty body has
 * no gzip form, and the client's decoder would fail on it. */
static int makes_empty_body(const struct exchange *x, const struct http_framing *framing)
{
    return framing->kind == HTTP_BODY_NONE && !is_head(x->method, x->method_len) &&
           x->status != 204 && x->status != 304;
}

/* Keeps the reason phrase (bounded) for the head we send. */
static void keep_reason(struct exchange *x, const struct http_head *head)
{
    size_t len = head->reason_len < sizeof x->res_reason - 1 ? head->reason_len
                                                              : sizeof x->res_reason - 1;
    memcpy(x->res_reason, head->reason, len);
    x->res_reason[len] = '\0';
}

/* The parent's answer to our CONNECT: 2xx opens the tunnel (and we say
 * 200 to the client); anything else fails it, naming the parent. An
 * interim answer (1xx other than 101) comes before the real one, as to
 * any request (RFC 9110 15.2): it is skipped, and the answer awaited. */
static enum exchange_step parent_tunnel_answer(struct session *s, const struct http_head *head,
                                               size_t head_len)
{
    struct exchange *x = &s->x;

    if (head->status >= 100 && head->status <= 199 && head->status != 101) {
        if (++x->interim_count > EXCHANGE_MAX_INTERIM)
            return exchange_fail(x, 502, "the parent proxy sent too many interim (1xx) "
                                         "answers to the CONNECT");
        buffer_consume(&s->upstream.in, head_len);
        return STEP_PROGRESS;
    }
    x->parent_tunnel = 0;
    if (head->status < 200 || head->status > 299) {
        return exchange_fail(
            x, 502,
            exchange_cause(x, "the parent proxy refused the CONNECT",
                           "the parent proxy answered the CONNECT with %d%s", head->status,
                           head->status != 407      ? ""
                           : x->parent_auth_sent ? ": it refused our credentials"
                                                 : ": it wants credentials, and none are "
                                                   "given for it"));
    }
    buffer_consume(&s->upstream.in, head_len);
    if (!x->is_connect) {
        /* https through the parent: now TLS with the origin, inside. We
         * speak first there (the ClientHello), so nothing can have come
         * from the origin yet: bytes after the 200 are the parent's, or
         * whoever sits on the plain path to it, and left in the buffer
         * they would be read as the start of the origin's answer, ahead
         * of everything TLS vouches for. */
        if (buffer_length(&s->upstream.in) > 0)
            return exchange_fail(x, 502,
                                 exchange_cause(x, "the parent proxy sent bytes after its 200",
                                                "the parent proxy sent %zu bytes after its 200 "
                                                "to the CONNECT, before TLS with the origin",
                                                buffer_length(&s->upstream.in)));
        x->parent_connected = 1;
        return upstream_begin_forwarding(s);
    }
    /* Recorded as a direct tunnel is (upstream.c): the viewer shows it as
     * one, with the answer the client had, and replay refuses it. */
    size_t before = buffer_length(&s->client.out);
    if (buffer_append_str(&s->client.out, "HTTP/1.1 200 Connection Established\r\n\r\n"))
        return exchange_fail(x, 502, "out of memory");
    flows_record_flag(x->flow, FLOW_F_TUNNEL);
    flows_record_appended(x->flow, FLOW_PART_RES_OUT, buffer_peek(&s->client.out),
                          buffer_length(&s->client.out), before);
    x->status = 200;
    x->response_started = 1;
    return exchange_move(x, SESSION_TUNNEL, "the parent opened the tunnel");
}

/* RESPONSE_WAIT_HEAD: parse the response head and send ours. */
enum exchange_step response_parse_head(struct session *s)
{
    struct exchange *x = &s->x;
    struct http_head head;
    struct http_framing framing;
    enum http_error err = HTTP_ERR_NONE;
    size_t len = buffer_length(&s->upstream.in);
    ssize_t n;
    enum hooks_result r;

    if (len == 0) {
        if (!s->upstream.read_eof)
            return STEP_WAIT;
        if (upstream_may_retry(s))
            return upstream_retry_fresh(s);
        /* A copy: the endpoint's error text goes with its TLS state when
         * the upstream is detached, before the exchange is recorded. */
        return exchange_fail(x, 502, s->upstream.error
                                         ? exchange_cause(x, "the TLS connection with the "
                                                             "upstream failed",
                                                          "%s", s->upstream.error)
                                     : s->upstream.failed
                                         ? "the upstream reset the connection before responding"
                                         : "the upstream closed the connection before responding");
    }
    head.field_limit = 4 * (size_t)s->proxy->cfg->max_header_fields;
    n = http_parse_response(buffer_peek(&s->upstream.in), len, &head, &err);
    if (n == -2) {
        if (len >= s->proxy->cfg->max_header_bytes)
            return exchange_fail(x, 502, "the upstream's response head is too large");
        if (s->upstream.read_eof)
            return exchange_fail(x, 502,
                                 "the upstream closed the connection inside the response head");
        return STEP_WAIT;
    }
    if (n == -1)
        return fail_bad_response(x, err);
    /* The cap holds whatever the reads that brought the head: one that
     * came whole in a single read is no smaller for it. */
    if ((size_t)n > s->proxy->cfg->max_header_bytes)
        return exchange_fail(x, 502, "the upstream's response head is too large");
    if (x->parent_tunnel)
        return parent_tunnel_answer(s, &head, (size_t)n);
    /* Over TLS with the origin, through the parent's tunnel, the answer is
     * the origin's: the parent cannot speak there. */
    if (x->parent && head.status == 407 && !endpoint_is_tls(&s->upstream))
        return exchange_fail(
            x, 502,
            x->parent_auth_sent ? "the parent proxy refused our credentials with 407"
            : x->fwd_method_len == 5 && memcmp(x->fwd_method, "TRACE", 5) == 0
                ? "the parent proxy wants credentials (407), which a TRACE does not carry"
                : "the parent proxy wants credentials (407), and none are given for it");
    if (head.status < 200) {
        /* A server reads a request's content before switching (RFC 9110
         * 7.8). Switched with part of it still to come, the rest would go
         * through the tunnel as it came, after the part the proxy framed
         * anew (chunked, or through a chunk hook): a stream that is
         * neither the body nor what the client sent. */
        if (head.status == 101 && x->is_upgrade && !x->req_body_done)
            return exchange_fail(x, 502, "the upstream switched protocols before the request "
                                         "body was sent");
        if (head.status == 101 && x->is_upgrade)
            return switch_protocols(s, &head, (size_t)n);
        if (head.status == 101)
            return exchange_fail(x, 502, "the upstream switched protocols without being asked");
        if (++x->interim_count > EXCHANGE_MAX_INTERIM)
            return exchange_fail(x, 502, "the upstream sent too many interim (1xx) responses");
        return forward_interim(s, &head, (size_t)n);
    }
    /* The upstream answers the method it was sent, not the client's. */
    if (http_response_framing(&head, x->fwd_method, x->fwd_method_len, &framing, &err) != 0)
        return fail_bad_response(x, err);
    x->status = x->upstream_status = head.status;
    TRACE(s, "response head complete: %zd bytes, HTTP/1.%d %d, body framing in: %s%s", n,
          head.version_minor, head.status, body_kind_name(framing.kind),
          framing.kind == HTTP_BODY_LENGTH ? " (Content-Length)" : "");
    flows_record_part(x->flow, FLOW_PART_RES_IN, buffer_peek(&s->upstream.in), (size_t)n);
    flows_record_time(x->flow, FLOW_T_HEAD, ev_now(s->proxy->loop));
    keep_reason(x, &head);
    x->res_framing = framing;
    x->upstream_reusable = head.version_minor >= 1 && framing.kind != HTTP_BODY_CLOSE &&
                           !http_has_token_id(&head, HTTP_FIELD_CONNECTION, "close");
    /* Content-Length passes on where it describes a body the client does
     * not get: the answer to its HEAD, or a 304. */
    x->res_keep_length = (is_head(x->method, x->method_len) || head.status == 304) &&
                         bodiless_length(&head, &x->res_kept_length) == 0;
    body_reader_init(&x->res_body, &framing);
    if (!hooks_wants(s, HOOK_ON_RESPONSE) && !hooks_wants(s, HOOK_ON_RESPONSE_CHUNK) &&
        !makes_empty_body(x, &framing)) {
        /* Nothing will edit it: write it out from the views, one copy.
         * The views die with the consume, so that comes after. */
        enum exchange_step step = send_response_head(s, &head);
        buffer_consume(&s->upstream.in, (size_t)n);
        return step;
    }
    if (message_import_response(&head, x->res_keep_length, 0, &x->res_headers) != 0)
        return exchange_fail(x, 502, "the upstream's response head could not be rewritten");
    buffer_consume(&s->upstream.in, (size_t)n);
    if (!hooks_wants(s, HOOK_ON_RESPONSE) && !hooks_wants(s, HOOK_ON_RESPONSE_CHUNK))
        return send_response_head(s, NULL); /* makes_empty_body: settled there */
    exchange_record_before_hooks(s, 1);
    if (!hooks_wants(s, HOOK_ON_RESPONSE)) {
        /* Only the chunk hooks: the head may lose its Content-Encoding,
         * and tx.res is theirs on a first look. */
        hooks_response_on_look(s);
        return send_response_head(s, NULL);
    }
    if (hooks_prepare_response(s) != 0)
        return exchange_fail(x, 500, "a script failed while handling this response");
    x->res_state = RESPONSE_HOOK;
    x->hook.phase = HOOK_ON_RESPONSE;
    r = hooks_run(s, HOOK_ON_RESPONSE);
    if (r == HOOKS_PENDING)
        return STEP_PROGRESS; /* exchange_hooks_woke goes on */
    return response_after_hooks(s, r);
}

/* Decides what body the client gets, from its own method and the final
 * status, and how the upstream's body (framed by the method sent) becomes
 * it:
 *
 *   client gets no body (HEAD, 204, 205,  upstream body read and dropped
 *     304)
 *   upstream sent none, client expects one  "Content-Length: 0"
 *   a length, passed unchanged             the same length
 *   chunked, until-close, or reshaped      chunked (HTTP/1.1 clients, so
 *     by on_response_chunk                 the connection survives) or
 *                                          until-close (HTTP/1.0)
 */
static void plan_response_body(struct session *s)
{
    struct exchange *x = &s->x;
    enum http_body_kind in = x->res_framing.kind;
    int head = is_head(x->method, x->method_len);
    /* A 205 has no content (RFC 9110 15.3.6), like a 204 or 304, but
     * unlike them it is framed as any response (RFC 9112 6.3): without a
     * length, the client would read until the connection closes. */
    int reset = x->status == 205 && !head;
    int client_body = !head && x->status != 204 && x->status != 304 && !reset;

    x->res_filter = client_body && in != HTTP_BODY_NONE && hooks_filters_response(s);
    x->res_discard = !client_body && in != HTTP_BODY_NONE;
    x->res_out_length = x->res_framing.length;
    if (reset) {
        x->res_out_kind = HTTP_BODY_LENGTH;
        x->res_out_length = 0;
    } else if (!client_body) {
        x->res_out_kind = HTTP_BODY_NONE;
    } else if (in == HTTP_BODY_NONE) {
        x->res_out_kind = HTTP_BODY_LENGTH;
        x->res_out_length = 0;
    } else if (in == HTTP_BODY_CHUNKED || in == HTTP_BODY_CLOSE ||
               (in == HTTP_BODY_LENGTH && x->res_filter)) {
        x->res_out_kind = x->minor >= 1 ? HTTP_BODY_CHUNKED : HTTP_BODY_CLOSE;
        if (x->res_out_kind == HTTP_BODY_CLOSE)
            exchange_no_keep(x, "the body for this HTTP/1.0 client is close-delimited: it "
                                "ends when the connection does");
    } else {
        x->res_out_kind = in;
    }
}

/* After on_response: the fields a script left must agree with the framing
 * the proxy chose. Our own framing field is the only Content-Length when
 * the client gets a body; a 204 carries none at all (RFC 9110 8.6); a
 * reason phrase the script did not set follows a changed status. */
static void settle_edited_head(struct exchange *x)
{
    if (x->res_out_kind != HTTP_BODY_NONE || x->status == 204)
        headers_remove(&x->res_headers, "Content-Length", 14);
    /* The upstream sent no body (a 304 or 204 a script turned into a
     * status with content) and the proxy sends an empty one: no coding
     * was applied to it, and none has an empty form (a gzip stream has a
     * header and a trailer), so a Content-Encoding the 304 repeated from
     * the 200 it stood for would make the client's decoder fail on it
     * (RFC 9110 8.4: the field names codings applied to the content). */
    if (x->res_framing.kind == HTTP_BODY_NONE && x->res_out_kind == HTTP_BODY_LENGTH &&
        x->res_out_length == 0)
        headers_remove(&x->res_headers, "Content-Encoding", 16);
    if (x->status != x->upstream_status && !x->res_reason_set) {
        const char *reason = message_reason(x->status);
        size_t len = strlen(reason);
        memcpy(x->res_reason, reason, len + 1 < sizeof x->res_reason ? len + 1 : 1);
    }
}

/* Whether the client gets no body where a GET would get one: the answer
 * to its HEAD, or a 304, which stands for the 200 the client holds. Their
 * fields are those that body would come with (RFC 9110 9.3.2, 15.4.5). */
static int stands_for_body(const struct exchange *x)
{
    if (x->status == 304)
        return 1;
    return is_head(x->method, x->method_len) && x->status != 204 && x->status != 205;
}

/* Whether the request's If-None-Match names <etag> (a strong tag) weak:
 * the client holds the tag as hooks_head_decoded left it. */
static int asked_for_weak(const struct exchange *x, const char *etag, size_t len)
{
    for (ssize_t i = headers_find(&x->req_headers, "If-None-Match", 13, 0); i >= 0;
         i = headers_find(&x->req_headers, "If-None-Match", 13, (size_t)i + 1)) {
        size_t vlen;
        const char *v = headers_value(&x->req_headers, (size_t)i, &vlen);
        for (size_t at = 0; at + 2 + len <= vlen; at++)
            if (memcmp(v + at, "W/", 2) == 0 && memcmp(v + at + 2, etag, len) == 0)
                return 1;
    }
    return 0;
}

/* The GET's answer has its body decoded for the chunk hooks: it goes out
 * without Content-Encoding, and without Content-Length (chunked, or until
 * the close: the decoded length is known only at the end). The answer to
 * a HEAD, and a 304, lose both too, though nothing is decoded: a client
 * would otherwise learn a coding and a length its GET does not get, and
 * a cache that takes a 304's fields into the response it holds (RFC 9111
 * 4.3.4) would label the decoded text gzip. */
static void settle_bodiless_head(struct session *s)
{
    struct exchange *x = &s->x;

    if (stands_for_body(x) && hooks_response_decodes(s, &x->res_headers)) {
        TRACE(s, "%s: no Content-Encoding, no Content-Length, as its GET's decoded body has none",
              x->status == 304 ? "a 304" : "the answer to a HEAD");
        hooks_head_decoded(&x->res_headers);
        headers_remove(&x->res_headers, "Content-Length", 14);
        x->res_keep_length = 0;
        return;
    }
    /* A 304 need not repeat Content-Encoding (origins often leave it
     * out), so it may not show that the client's copy came decoded. If
     * the client revalidates with the weak tag the decoded copy got, the
     * strong one in the 304 would replace it in its cache: keep it weak. */
    if (x->status == 304 && hooks_filters_response(s) && !x->hook.res_decode_off) {
        ssize_t at = headers_find(&x->res_headers, "ETag", 4, 0);
        size_t len;
        const char *etag = at >= 0 ? headers_value(&x->res_headers, (size_t)at, &len) : NULL;
        if (etag && len > 0 && etag[0] == '"' && asked_for_weak(x, etag, len))
            hooks_head_decoded(&x->res_headers);
    }
}

/* body_direct's send: a large piece from a chunk hook goes to the client
 * without passing through its output buffer. */
static size_t send_to_client(void *arg, const struct iovec *iov, int iovcnt)
{
    struct session *s = arg;
    size_t n = endpoint_write_now(&s->client, iov, iovcnt);
    if (n > 0)
        s->last_activity = ev_now(s->proxy->loop);
    return n;
}

/* Writes the response head for the client. The fields come from <head>'s
 * views when given (nothing edited them), else from x->res_headers (after
 * on_response). STEP_PROGRESS, or STEP_FAIL. */
static enum exchange_step send_response_head(struct session *s, const struct http_head *head)
{
    struct exchange *x = &s->x;
    size_t before = buffer_length(&s->client.out);

    plan_response_body(s);
    /* An answer before the request body was all read (a 417 to an
     * Expect, an early 413): the body goes on up while it is relayed, and
     * what is left of it once the answer is complete is read and dropped
     * (exchange.c, answered_early) when it can be. When it cannot, the
     * connection ends unless the body happens to finish first: say so
     * now, in this head (RFC 9110 10.1.1), rather than close without a
     * word after it. */
    if (!x->req_body_done && !exchange_request_body_droppable(s))
        exchange_no_keep(x, "the response began before the request body was all read");
    if (!head) {
        settle_edited_head(x);
        settle_bodiless_head(s);
    }
    if (x->res_filter && hooks_prepare_response_body(s, &x->res_headers) != 0)
        return exchange_fail(x, 502, "out of memory");
    if (x->res_filter) {
        x->hook.direct = (struct body_direct){&s->client.out, send_to_client, s};
        x->res_body.batch = &x->res_batch;
    }
    if ((head ? message_write_response_from(&s->client.out, head, x->res_keep_length,
                                            x->res_out_kind, x->res_out_length,
                                            x->keep_alive, x->minor)
              : message_write_response(&s->client.out, x->status, x->res_reason,
                                       strlen(x->res_reason), &x->res_headers, x->res_out_kind,
                                       x->res_out_length, x->keep_alive, x->minor, 0)) != 0)
        return exchange_fail(x, 502, "the upstream's response head could not be rewritten");
    flows_record_appended(x->flow, FLOW_PART_RES_OUT, buffer_peek(&s->client.out),
                          buffer_length(&s->client.out), before);
    TRACE(s, "response head queued for the client: %zu bytes, %d, body framing out: %s%s%s",
          buffer_length(&s->client.out) - before, x->status, body_kind_name(x->res_out_kind),
          head ? " (written from the parser's views)" : " (rewritten after on_response)",
          x->res_filter ? "; body through on_response_chunk" : "");
    x->response_started = 1;
    x->res_state = RESPONSE_BODY;
    return STEP_PROGRESS;
}

/* Acts on what on_response decided (RESPONSE_HOOK ends here). */
enum exchange_step response_after_hooks(struct session *s, enum hooks_result r)
{
    if (r == HOOKS_FAILED)
        return exchange_fail(&s->x, 500, "a script failed while handling this response");
    if (r == HOOKS_RESPOND)
        return exchange_respond_locally(s);
    if (hooks_read_response(s) != 0)
        return exchange_fail(&s->x, 500, "a script failed while handling this response");
    return send_response_head(s, NULL);
}

/* --trace: the response's chunk hooks, timed and counted around
 * hooks_body_filter (only when tracing; see response_relay_body). */
static int trace_response_chunk(void *arg, const char *data, size_t len, int eof,
                                struct buffer *out, enum http_body_kind out_kind)
{
    struct session *s = arg;
    uint64_t before = s->x.res_filtered_bytes;
    double started = ev_time();
    int rc = hooks_body_filter(arg, data, len, eof, out, out_kind);
    exchange_trace_chunk(s, __FILE__, __func__, 1, len, eof, &s->x.res_filtered_bytes, before, rc,
                         started);
    return rc;
}

/* Bodies at least this long that pass through unchanged go through a
 * splice pipe; shorter ones are not worth the pipe's two descriptors. */
#define SPLICE_MIN_BODY (256 * 1024)

/* Whether the rest of the response body can bypass user space: passed on
 * unchanged (no script, same framing), and nothing buffered on either side
 * that must go first. */
static int can_splice_response(struct session *s)
{
    struct exchange *x = &s->x;
    enum http_body_kind kind = x->res_framing.kind;
    return !x->res_filter && x->res_out_kind == kind && !s->upstream.read_eof &&
           (kind == HTTP_BODY_CLOSE ||
            (kind == HTTP_BODY_LENGTH && x->res_body.remaining >= SPLICE_MIN_BODY)) &&
           buffer_length(&s->upstream.in) == 0 && buffer_length(&s->client.out) == 0 &&
           endpoint_can_splice(&s->upstream, &s->client) && !flows_wants_body(x->flow, 1);
}

/* RESPONSE_BODY through the splice pipe: upstream socket to pipe happens
 * in the read callback; here the pipe drains into the client socket. */
static enum exchange_step relay_spliced_response(struct session *s)
{
    struct exchange *x = &s->x;
    struct endpoint *u = &s->upstream;
    size_t n = 0;
    int progress = 0;

    if (u->piped > 0) {
        if (endpoint_splice_write(u, &s->client, &n) == ENDPOINT_ERROR) {
            x->error = "the client went away";
            exchange_no_keep(x, "the client went away");
            return exchange_close_connection(x, x->error);
        }
        if (n > 0) {
            x->res_bytes += n;
            x->res_spliced += n;
            s->last_activity = ev_now(s->proxy->loop);
            progress = 1;
        }
    }
    if (u->piped > 0)
        return progress ? STEP_PROGRESS : STEP_WAIT;
    if (x->res_framing.kind == HTTP_BODY_LENGTH && u->splice_limit == 0) {
        endpoint_splice_stop(u);
        x->res_body.remaining = 0;
        x->res_state = RESPONSE_DONE;
        return STEP_PROGRESS;
    }
    if (u->read_eof) {
        if (x->res_framing.kind != HTTP_BODY_CLOSE || u->failed)
            return exchange_fail(x, 502, "the upstream closed the connection in the middle of "
                                         "the body");
        endpoint_splice_stop(u);
        x->res_state = RESPONSE_DONE;
        return STEP_PROGRESS;
    }
    return progress ? STEP_PROGRESS : STEP_WAIT;
}

/* Reading a body only to drop it is worth it to keep the upstream
 * connection for reuse while the body is short; past this, or when only
 * the upstream closing would end it, the connection is closed instead. */
#define DISCARD_MAX (1024 * 1024)

/* RESPONSE_BODY when the client gets no body: read the upstream's body by
 * its framing and drop it. The response is complete for the client already;
 * this only decides whether the upstream connection can be reused. */
static enum exchange_step discard_response_body(struct session *s)
{
    struct exchange *x = &s->x;
    enum http_error err = HTTP_ERR_NONE;
    struct buffer sink;
    uint64_t dropped = 0;
    enum body_pump_result r;

    if (x->res_framing.kind == HTTP_BODY_CLOSE ||
        (x->res_framing.kind == HTTP_BODY_LENGTH && x->res_body.remaining > DISCARD_MAX) ||
        x->res_discarded > DISCARD_MAX) {
        x->upstream_reusable = 0;
        x->res_state = RESPONSE_DONE;
        return STEP_PROGRESS;
    }
    buffer_init(&sink);
    r = body_pump(&x->res_body, &s->upstream.in, s->upstream.read_eof, &sink,
                  ENDPOINT_OUT_LIMIT, HTTP_BODY_NONE, NULL, NULL, &dropped, &err);
    buffer_free(&sink);
    x->res_discarded += dropped;
    switch (r) {
    case BODY_PUMP_IDLE:
        return STEP_WAIT;
    case BODY_PUMP_PROGRESS:
        return STEP_PROGRESS;
    case BODY_PUMP_DONE:
        break;
    default:
        /* The client has its whole answer; only the upstream is broken. */
        x->upstream_reusable = 0;
        break;
    }
    x->res_state = RESPONSE_DONE;
    return STEP_PROGRESS;
}

/* The response body's filter failed: a bad compressed body ends it like a
 * framing error, anything else is the script's. */
static enum exchange_step body_filter_failed(struct session *s)
{
    struct exchange *x = &s->x;
    if (x->hook.body_error == HOOKS_BODY_CORRUPT || x->hook.body_error == HOOKS_BODY_BOMB)
        return exchange_fail(x, 502, x->error);
    return exchange_fail(x, 500, "a script failed while handling the response body");
}

/* Whether the client's output buffer is full: what comes next waits for
 * it to drain. */
static int client_output_full(const struct session *s)
{
    return buffer_length(&s->client.out) >= ENDPOINT_OUT_LIMIT;
}

/* Where a decoded piece that stopped part-way goes on from: a hook that
 * waits wakes the exchange; a full client buffer, its drain; otherwise
 * the loop's next turn, after other clients. */
static enum exchange_step after_decoding_stopped(struct session *s)
{
    if (s->x.hook.pending || !hooks_decoding(&s->x.hook))
        return STEP_PROGRESS;
    return client_output_full(s) ? STEP_WAIT : STEP_YIELD;
}

/* Goes on with a decoded piece (see hooks_decode_resume); its text goes
 * through the flow capture, when one records the body, as the relay's
 * pieces do. STEP_PROGRESS when the piece is done. */
static enum exchange_step resume_decoding(struct session *s)
{
    struct exchange *x = &s->x;
    int rc;

    if (client_output_full(s))
        return STEP_WAIT;
    rc = hooks_decode_resume(s);
    if (flows_tap_resume(x->flow, 1, &s->client.out, x->res_out_kind) != 0)
        return exchange_fail(x, 502, "out of memory");
    if (rc < 0)
        return body_filter_failed(s);
    return rc > 0 ? after_decoding_stopped(s) : STEP_PROGRESS;
}

/* RESPONSE_BODY: move the body down, re-framed. */
enum exchange_step response_relay_body(struct session *s)
{
    struct exchange *x = &s->x;
    enum http_error err = HTTP_ERR_NONE;

    if (x->res_discard)
        return discard_response_body(s);
    if (x->hook.pending)
        return STEP_WAIT; /* a chunk hook waits: the body with it */
    if (hooks_decoding(&x->hook)) {
        /* A piece's decoded text is not all out yet: it goes first. */
        enum exchange_step step = resume_decoding(s);
        if (step != STEP_PROGRESS || hooks_decoding(&x->hook))
            return step;
    }
    if (endpoint_splicing(&s->upstream))
        return relay_spliced_response(s);
    if (can_splice_response(s) &&
        endpoint_splice_start(&s->upstream, x->res_framing.kind == HTTP_BODY_LENGTH
                                                ? x->res_body.remaining
                                                : UINT64_MAX) == 0)
        return STEP_PROGRESS;

    /* A body that only the connection's end delimits is whole when that
     * end is the upstream's doing. Over TLS only its close_notify says
     * so: a bare EOF may be an attacker cutting the stream (RFC 9112
     * 9.8). The bytes that came still go on; the end does not. Once they
     * are out, the exchange fails, and the client sees the body cut
     * short (no last chunk, or a close it cannot tell from the end of an
     * HTTP/1.0 body) rather than an end that nobody vouched for. */
    int upstream_ended = s->upstream.read_eof;
    if (upstream_ended && x->res_framing.kind == HTTP_BODY_CLOSE &&
        s->upstream.tls_eof_unclean) {
        if (buffer_length(&s->upstream.in) == 0)
            return exchange_fail(x, 502, "the upstream's TLS connection ended without "
                                         "close_notify: the body may be cut short");
        upstream_ended = 0;
    }
    body_filter *filter = !x->res_filter ? NULL
                          : trace_enabled ? trace_response_chunk
                                          : hooks_body_filter;
    void *filter_arg = s;
    flows_tap(x->flow, 1, &filter, &filter_arg);
    switch (body_pump(&x->res_body, &s->upstream.in, upstream_ended, &s->client.out,
                      ENDPOINT_OUT_LIMIT, x->res_out_kind, filter, filter_arg, &x->res_bytes,
                      &err)) {
    case BODY_PUMP_IDLE:
        return STEP_WAIT;
    case BODY_PUMP_PROGRESS:
        return STEP_PROGRESS;
    case BODY_PUMP_DONE:
        x->res_state = RESPONSE_DONE;
        return STEP_PROGRESS;
    case BODY_PUMP_INVALID:
        return exchange_fail(x, 502, "the upstream sent an invalid chunked body");
    case BODY_PUMP_TRUNCATED:
        return exchange_fail(x, 502, "the upstream closed the connection in the middle of the "
                                     "body");
    case BODY_PUMP_PAUSED:
        /* A chunk hook waits (exchange_hooks_woke carries on), or the
         * piece's decoded text is not all made yet. */
        return after_decoding_stopped(s);
    case BODY_PUMP_FILTER_FAILED:
        return body_filter_failed(s);
    }
    return STEP_WAIT;
}
