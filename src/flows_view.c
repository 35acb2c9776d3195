/*
 * flows_view.c - a stored flow as people see it (see flows_view.h); its
 * HAR entry is flows_har.c's.
 */
#include "flows_view.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "json_out.h"
#include "message.h"
#include "ws_inflate.h"

ssize_t flows_parse_head(const char *data, size_t len, int response, struct http_head *head)
{
    enum http_error err;
    if (len == 0)
        return -1;
    head->field_limit = HTTP_FIELDS_CAPACITY; /* it crossed once: show all of it */
    return response ? http_parse_response(data, len, head, &err)
                    : http_parse_request(data, len, head, &err);
}

int flows_head_field(const char *data, size_t len, int response, const char *name,
                     const char **value, size_t *value_len)
{
    struct http_head head;
    int i;
    if (flows_parse_head(data, len, response, &head) <= 0 ||
        (i = http_find_field(&head, name, 0)) < 0) {
        *value = "";
        *value_len = 0;
        return -1;
    }
    *value = head.fields[i].value;
    *value_len = head.fields[i].value_len;
    return 0;
}

/* The fields of a head, after its start line, up to the blank line. */
static void header_block(const char *data, size_t len, const char **out, size_t *out_len)
{
    const char *eol = memchr(data, '\n', len);
    *out = "";
    *out_len = 0;
    if (!eol)
        return;
    *out = eol + 1;
    *out_len = len - (size_t)(eol + 1 - data);
}

/* Fields that the proxy itself decides (framing, connection): a hook
 * changing the body changes them without anyone editing a header. */
static int framing_field(const struct http_field *f)
{
    return http_token_eq(f->name, f->name_len, "Content-Length") ||
           http_token_eq(f->name, f->name_len, "Transfer-Encoding") ||
           http_token_eq(f->name, f->name_len, "Connection") ||
           http_token_eq(f->name, f->name_len, "Keep-Alive");
}

static int field_in(const struct http_head *h, const struct http_field *f, int match_value)
{
    for (size_t i = 0; i < h->field_count; i++) {
        const struct http_field *g = &h->fields[i];
        if (g->name_len == f->name_len && strncasecmp(g->name, f->name, f->name_len) == 0 &&
            (!match_value ||
             (g->value_len == f->value_len && memcmp(g->value, f->value, f->value_len) == 0)))
            return 1;
    }
    return 0;
}

/*
 * Compares a head before the hooks with the head that went out. With <b>
 * NULL, only answers whether they differ; else writes the differences as
 * JSON strings (with a leading comma after the first, per *<first>).
 */
static int diff_heads(const struct flow_info *fi, int response, struct buffer *b, int *first)
{
    enum flow_part pre = response ? FLOW_PART_RES_PRE : FLOW_PART_REQ_PRE;
    enum flow_part out = response ? FLOW_PART_RES_OUT : FLOW_PART_REQ_OUT;
    static struct http_head before, after; /* large: not on the stack */
    const char *side = response ? "response" : "request";
    int changed = 0;
    char line[200];

    if (!fi->has[pre] || !fi->has[out] ||
        flows_parse_head(fi->part[pre], fi->len[pre], response, &before) <= 0 ||
        flows_parse_head(fi->part[out], fi->len[out], response, &after) <= 0)
        return 0;
#define NOTE(...)                                                                         \
    do {                                                                                  \
        changed = 1;                                                                      \
        if (!b)                                                                           \
            return 1;                                                                     \
        snprintf(line, sizeof line, __VA_ARGS__);                                         \
        if (!*first)                                                                      \
            buffer_append(b, ",", 1);                                                     \
        *first = 0;                                                                       \
        json_cstring(b, line);                                                            \
    } while (0)
    if (response ? before.status != after.status
                 : (before.method_len != after.method_len ||
                    memcmp(before.method, after.method, before.method_len) != 0 ||
                    before.target_len != after.target_len ||
                    memcmp(before.target, after.target, before.target_len) != 0))
        NOTE("%s", response ? "response status changed" : "request line changed");
    for (size_t i = 0; i < before.field_count; i++) {
        const struct http_field *f = &before.fields[i];
        if (framing_field(f) || field_in(&after, f, 1))
            continue;
        if (field_in(&after, f, 0))
            NOTE("%s header %.*s changed", side, (int)(f->name_len > 80 ? 80 : f->name_len),
                 f->name);
        else
            NOTE("%s header %.*s removed", side, (int)(f->name_len > 80 ? 80 : f->name_len),
                 f->name);
    }
    for (size_t i = 0; i < after.field_count; i++) {
        const struct http_field *f = &after.fields[i];
        if (!framing_field(f) && !field_in(&before, f, 0))
            NOTE("%s header %.*s added", side, (int)(f->name_len > 80 ? 80 : f->name_len),
                 f->name);
    }
#undef NOTE
    return changed;
}

void flow_info_load(struct flow_info *fi, const char *rec)
{
    size_t pos = 0, len;
    enum flow_part part;
    const char *data;
    ssize_t n;

    memset(fi, 0, sizeof *fi);
    fi->rec = rec;
    flow_record_header(rec, &fi->h);
    for (int i = 0; i < FLOW_PART_COUNT; i++)
        fi->part[i] = "";
    while (flow_record_next(rec, &pos, &part, &data, &len)) {
        if (!fi->has[part]) {
            fi->has[part] = 1;
            fi->part[part] = data;
            fi->len[part] = len;
        }
    }
    fi->method = fi->url = fi->host = "";
    n = flows_parse_head(fi->part[FLOW_PART_REQ_IN], fi->len[FLOW_PART_REQ_IN], 0, &fi->req);
    if (n > 0) {
        fi->req_ok = 1;
        fi->req_head_len = (size_t)n;
        fi->method = fi->req.method;
        fi->method_len = fi->req.method_len;
        fi->url = fi->req.target;
        fi->url_len = fi->req.target_len;
        if (fi->has[FLOW_PART_URL]) { /* decrypted https: the head has the path only */
            fi->url = fi->part[FLOW_PART_URL];
            fi->url_len = fi->len[FLOW_PART_URL];
        }
        /* The host: the authority of an absolute URL, or a CONNECT target. */
        const char *h = fi->url, *end = fi->url + fi->url_len;
        const char *scheme = memchr(h, ':', fi->url_len);
        if (scheme && end - scheme > 3 && scheme[1] == '/' && scheme[2] == '/')
            h = scheme + 3;
        const char *stop = h;
        while (stop < end && *stop != '/' && *stop != '?' && *stop != '#')
            stop++;
        fi->host = h;
        fi->host_len = (size_t)(stop - h);
        if (fi->host_len > 0 && h[0] == '[') {
            const char *close = memchr(h, ']', fi->host_len);
            if (close) {
                fi->host = h + 1;
                fi->host_len = (size_t)(close - h - 1);
            }
        } else {
            const char *colon = memchr(h, ':', fi->host_len);
            if (colon)
                fi->host_len = (size_t)(colon - h);
        }
    }
    if (!fi->req_ok) {
        /* A head the proxy refused: its first line, as far as it went. */
        const char *raw = fi->part[FLOW_PART_REQ_IN];
        size_t end = 0;
        while (end < fi->len[FLOW_PART_REQ_IN] && end < 200 && raw[end] != '\r' &&
               raw[end] != '\n')
            end++;
        fi->url = raw;
        fi->url_len = end;
    }
    if (fi->has[FLOW_PART_RES_BODY]) {
        fi->res_body = fi->part[FLOW_PART_RES_BODY];
        fi->res_body_len = fi->len[FLOW_PART_RES_BODY];
    } else {
        /* A response the proxy or a script made: its body came with the head. */
        struct http_head head;
        n = flows_parse_head(fi->part[FLOW_PART_RES_OUT], fi->len[FLOW_PART_RES_OUT], 1, &head);
        fi->res_body = "";
        if (n > 0) {
            fi->res_body = fi->part[FLOW_PART_RES_OUT] + n;
            fi->res_body_len = fi->len[FLOW_PART_RES_OUT] - (size_t)n;
        }
    }
    fi->modified = (fi->h.flags & (FLOW_F_LOCAL | FLOW_F_BODY_CHANGED)) != 0 ||
                   diff_heads(fi, 0, NULL, NULL) || diff_heads(fi, 1, NULL, NULL);
}

void flow_info_view(const struct flow_info *fi, struct flow_view *v)
{
    memset(v, 0, sizeof *v);
    v->method = fi->method;
    v->method_len = fi->method_len;
    v->url = fi->url;
    v->url_len = fi->url_len;
    v->host = fi->host;
    v->host_len = fi->host_len;
    v->status = fi->h.status;
    header_block(fi->part[FLOW_PART_REQ_IN], fi->len[FLOW_PART_REQ_IN], &v->req_headers[0],
                 &v->req_headers_len[0]);
    header_block(fi->part[FLOW_PART_REQ_OUT], fi->len[FLOW_PART_REQ_OUT], &v->req_headers[1],
                 &v->req_headers_len[1]);
    header_block(fi->part[FLOW_PART_RES_IN], fi->len[FLOW_PART_RES_IN], &v->res_headers[0],
                 &v->res_headers_len[0]);
    header_block(fi->part[FLOW_PART_RES_OUT], fi->len[FLOW_PART_RES_OUT], &v->res_headers[1],
                 &v->res_headers_len[1]);
    v->req_body = fi->part[FLOW_PART_REQ_BODY];
    v->req_body_len = fi->len[FLOW_PART_REQ_BODY];
    v->res_body = fi->res_body;
    v->res_body_len = fi->res_body_len;
    flows_head_field(fi->part[FLOW_PART_REQ_IN], fi->len[FLOW_PART_REQ_IN], 0, "Content-Type",
                     &v->req_type, &v->req_type_len);
    flows_head_field(fi->part[FLOW_PART_RES_OUT], fi->len[FLOW_PART_RES_OUT], 1, "Content-Type",
                     &v->res_type, &v->res_type_len);
    v->error = fi->has[FLOW_PART_ERROR];
    v->modified = fi->modified;
}

/* ---- JSON -------------------------------------------------------------- */

void flows_json_time(struct buffer *b, double t)
{
    time_t sec = (time_t)t;
    struct tm tm;
    char text[40];
    int ms = (int)((t - (double)sec) * 1000.0);
    gmtime_r(&sec, &tm);
    strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
    buffer_printf(b, "\"%s.%03dZ\"", text, ms < 0 ? 0 : ms > 999 ? 999 : ms);
}

static double ms_between(double a, double b)
{
    return a > 0 && b > 0 && b >= a ? round((b - a) * 1e6) / 1e3 : -1;
}

/* The HAR phases from the record's marks. A phase that did not happen
 * is -1 (optional ones) or 0 (send, wait and receive, which HAR needs). */
void flow_timings_get(const struct flow_info *fi, struct flow_timings *t)
{
    const double *m = fi->h.marks;
    double s = fi->h.started, e = fi->h.ended;
    /* Answered before the request body was all in: the rest of the body
     * was read and dropped, which is no phase of this exchange's (HAR
     * "receive" is the answer's), though its record ends after it. */
    if (m[FLOW_T_ANSWERED] > 0 && m[FLOW_T_ANSWERED] < e)
        e = m[FLOW_T_ANSWERED];
    double conn_end = m[FLOW_T_TLS] > 0 ? m[FLOW_T_TLS] : m[FLOW_T_CONNECT];
    /* Until the upstream is looked for, the request is the hooks' (a
     * script's proxy.sleep, a call out): "blocked", not the lookup's. */
    t->blocked = m[FLOW_T_UPSTREAM] > 0 && m[FLOW_T_DNS] > 0 ? ms_between(s, m[FLOW_T_UPSTREAM])
                                                              : -1;
    t->dns = ms_between(t->blocked >= 0 ? m[FLOW_T_UPSTREAM] : s, m[FLOW_T_DNS]);
    t->connect = ms_between(m[FLOW_T_DNS], m[FLOW_T_CONNECT]);
    t->tls = ms_between(m[FLOW_T_CONNECT], m[FLOW_T_TLS]);
    t->send = ms_between(conn_end, m[FLOW_T_SENT]);
    t->wait = ms_between(m[FLOW_T_SENT] > 0 ? m[FLOW_T_SENT] : conn_end, m[FLOW_T_HEAD]);
    t->receive = ms_between(m[FLOW_T_HEAD] > 0 ? m[FLOW_T_HEAD] : conn_end, e);
    if (t->send < 0)
        t->send = 0;
    if (t->wait < 0)
        t->wait = 0;
    if (t->receive < 0)
        t->receive = 0;
    if (m[FLOW_T_CONNECT] == 0) {
        /* Answered before connecting (by a script, or an error): the rest
         * of it is ours, from the last phase that did happen. */
        double from = m[FLOW_T_DNS] > 0 ? m[FLOW_T_DNS] : s;
        t->receive = ms_between(from, e) < 0 ? 0 : ms_between(from, e);
    }
    /* A kept connection: there was no lookup, connect or handshake, which
     * HAR writes as -1 ("does not apply"), not as a phase of 0 ms. The
     * time until the connection was taken (hooks, a script's sleep) is
     * "blocked" then, so that the phases still add up to the whole. */
    if (fi->h.flags & FLOW_F_REUSED) {
        t->blocked = ms_between(s, m[FLOW_T_CONNECT]);
        t->dns = t->connect = t->tls = -1;
    }
}

/* A phase under the name one output gives it. The flow JSON and HAR name
 * and order the phases differently (HAR calls TLS "ssl" and puts it last),
 * so each has its own list; the values are the same. */
struct timing_name {
    const char *name;
    size_t field; /* offsetof(struct flow_timings, ...) */
};

#define PHASE(name, field) {name, offsetof(struct flow_timings, field)}

static const struct timing_name flow_timing_names[] = {
    PHASE("blocked", blocked), PHASE("dns", dns), PHASE("connect", connect), PHASE("tls", tls),
    PHASE("send", send), PHASE("wait", wait), PHASE("receive", receive), {NULL, 0},
};

static const struct timing_name har_timing_names[] = {
    PHASE("blocked", blocked), PHASE("dns", dns), PHASE("connect", connect),
    PHASE("send", send), PHASE("wait", wait), PHASE("receive", receive),
    PHASE("ssl", tls), {NULL, 0},
};

#undef PHASE

void flow_timings_json(struct buffer *b, const struct flow_timings *t, int har)
{
    const struct timing_name *names = har ? har_timing_names : flow_timing_names;
    for (const struct timing_name *n = names; n->name; n++) {
        buffer_printf(b, "%s\"%s\":", n == names ? "{" : ",", n->name);
        json_number(b, *(const double *)((const char *)t + n->field));
    }
    buffer_append(b, "}", 1);
}

static double duration_ms(const struct flow_info *fi)
{
    double d = ms_between(fi->h.started, fi->h.ended);
    return d < 0 ? 0 : d;
}

/* The list's fields, without the braces around them. */
static void summary_fields(struct buffer *b, const struct flow_info *fi)
{
    const char *ctype;
    size_t ctype_len;

    buffer_printf(b, "\"id\":%llu,\"started\":", (unsigned long long)fi->h.id);
    flows_json_time(b, fi->h.started);
    json_key(b, "method", 0);
    json_string(b, fi->method, fi->method_len);
    json_key(b, "url", 0);
    json_string(b, fi->url, fi->url_len);
    json_key(b, "host", 0);
    json_string(b, fi->host, fi->host_len);
    buffer_printf(b, ",\"status\":%d,\"req_bytes\":%llu,\"res_bytes\":%llu,\"duration_ms\":",
                  fi->h.status, (unsigned long long)fi->h.req_bytes,
                  (unsigned long long)fi->h.res_bytes);
    json_number(b, duration_ms(fi));
    json_key(b, "client", 0);
    json_string(b, fi->part[FLOW_PART_CLIENT], fi->len[FLOW_PART_CLIENT]);
    json_key(b, "error", 0);
    if (fi->has[FLOW_PART_ERROR])
        json_string(b, fi->part[FLOW_PART_ERROR], fi->len[FLOW_PART_ERROR]);
    else
        buffer_append_str(b, "null");
    buffer_printf(b, ",\"modified\":%s", fi->modified ? "true" : "false");
    flows_head_field(fi->part[FLOW_PART_RES_OUT], fi->len[FLOW_PART_RES_OUT], 1, "Content-Type",
                     &ctype, &ctype_len);
    json_key(b, "content_type", 0);
    json_string(b, ctype, ctype_len);
    buffer_printf(b, ",\"tunnel\":%s,\"websocket\":%s,\"running\":%s",
                  fi->h.flags & FLOW_F_TUNNEL ? "true" : "false",
                  fi->h.flags & FLOW_F_WEBSOCKET ? "true" : "false",
                  fi->h.flags & FLOW_F_STARTED ? "true" : "false");
}

void flows_json_summary(struct buffer *b, const struct flow_info *fi)
{
    buffer_append(b, "{", 1);
    summary_fields(b, fi);
    buffer_append(b, "}", 1);
}

/* What a WebSocket message is, in the viewer's words. */
static const char *ws_kind(unsigned opcode)
{
    switch (opcode) {
    case WS_TEXT: return "text";
    case WS_BINARY: return "binary";
    case WS_CLOSE: return "close";
    case WS_PING: return "ping";
    case WS_PONG: return "pong";
    default: return "reserved"; /* the parser keeps what the peers sent */
    }
}

/* {"line": "...", "headers": [[name, value], ...]} for one head, or null. */
static void json_head(struct buffer *b, const struct flow_info *fi, enum flow_part part,
                      int response)
{
    struct http_head head;
    ssize_t n = fi->has[part] ? flows_parse_head(fi->part[part], fi->len[part], response, &head)
                              : -1;
    if (n <= 0) {
        buffer_append_str(b, "null");
        return;
    }
    const char *eol = memchr(fi->part[part], '\r', fi->len[part]);
    buffer_append_str(b, "{\"line\":");
    json_string(b, fi->part[part], eol ? (size_t)(eol - fi->part[part]) : 0);
    if (response)
        buffer_printf(b, ",\"status\":%d", head.status);
    buffer_append_str(b, ",\"headers\":[");
    for (size_t i = 0; i < head.field_count; i++) {
        buffer_append_str(b, i ? ",[" : "[");
        json_string(b, head.fields[i].name, head.fields[i].name_len);
        buffer_append(b, ",", 1);
        json_string(b, head.fields[i].value, head.fields[i].value_len);
        buffer_append(b, "]", 1);
    }
    buffer_append_str(b, "]}");
}

static void json_body_info(struct buffer *b, uint64_t seen, size_t kept, int truncated,
                           int changed)
{
    buffer_printf(b, "{\"size\":%llu,\"kept\":%zu,\"truncated\":%s,\"changed\":%s}",
                  (unsigned long long)seen, kept, truncated ? "true" : "false",
                  changed ? "true" : "false");
}

/* ,"changed":[...] from <len> bytes of changes, one a line. */
static void json_changes(struct buffer *b, const char *ch, size_t len)
{
    json_key(b, "changed", 0);
    buffer_append(b, "[", 1);
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(ch + i, '\n', len - i);
        size_t l = nl ? (size_t)(nl - (ch + i)) : len - i;
        if (i > 0)
            buffer_append(b, ",", 1);
        json_string(b, ch + i, l);
        i += l + 1;
    }
    buffer_append(b, "]", 1);
}

/* Writes, comma-separated, one {"script": ..., <key>: ...} object per record
 * part of kind <want>: each such part holds the script's name, a NUL, then
 * the text (the hook's name, or a line the script logged). A hook's name
 * may be followed by a NUL and what that call changed, one change a line:
 * that becomes "changed": [...]. */
static void json_script_pairs(struct buffer *b, const char *rec, enum flow_part want,
                              const char *key)
{
    size_t pos = 0, len;
    enum flow_part part;
    const char *data;
    int first = 1;

    while (flow_record_next(rec, &pos, &part, &data, &len)) {
        if (part != want)
            continue;
        size_t sl = strnlen(data, len);
        const char *text = data + (sl < len ? sl + 1 : len);
        size_t rest = sl < len ? len - sl - 1 : 0;
        size_t tl = want == FLOW_PART_HOOK ? strnlen(text, rest) : rest;
        buffer_append_str(b, first ? "{\"script\":" : ",{\"script\":");
        json_string(b, data, sl);
        json_key(b, key, 0);
        json_string(b, text, tl);
        if (want == FLOW_PART_HOOK)
            json_changes(b, text + (tl < rest ? tl + 1 : rest), tl < rest ? rest - tl - 1 : 0);
        buffer_append(b, "}", 1);
        first = 0;
    }
}

/* One WebSocket message of the record (its header <wh>, its payload as
 * kept), with the permessage-deflate state of its direction. */
static void json_ws_message(struct buffer *b, const struct flow_ws_header *wh,
                            const char *payload, size_t plen, struct ws_inflate *inflate,
                            struct buffer *text)
{
    const char *why = NULL;

    buffer_printf(b, "{\"type\":\"%s\",\"time\":", wh->to_upstream ? "send" : "receive");
    json_number(b, wh->t);
    buffer_printf(b, ",\"opcode\":%u,\"kind\":\"%s\",\"length\":%llu,\"truncated\":%s",
                  wh->opcode, ws_kind(wh->opcode), (unsigned long long)wh->length,
                  wh->truncated ? "true" : "false");
    if (wh->compressed) {
        /* The text as the peer's application sent it, not the deflate
         * data on the wire: decoded in order with the messages before. */
        struct ws_inflate_msg m;
        buffer_consume(text, buffer_length(text));
        ws_inflate_msg_init(&m, payload, plen, !wh->truncated);
        if (ws_inflate_run(inflate, &m, text, SIZE_MAX) == WS_INFLATE_DONE) {
            payload = buffer_peek(text);
            plen = buffer_length(text);
        } else {
            why = inflate->why;
        }
        buffer_append_str(b, ",\"compressed\":true");
        if (why) {
            buffer_append_str(b, ",\"decode_error\":");
            json_cstring(b, why);
        }
    }
    if (wh->opcode == WS_CLOSE && plen >= 2) { /* RFC 6455 5.5.1: a code, then a reason */
        const unsigned char *code = (const unsigned char *)payload;
        buffer_printf(b, ",\"close_code\":%u", (unsigned)(code[0] << 8 | code[1]));
        payload += 2;
        plen -= 2;
    }
    /* Text cut at the capture's budget may end inside a character: what
     * comes before it is still text. */
    if (wh->opcode != WS_BINARY && wh->truncated && !why)
        plen = json_utf8_uncut_length(payload, plen);
    buffer_append_str(b, ",\"data\":");
    if (wh->opcode == WS_BINARY || why || !json_utf8_valid(payload, plen)) {
        json_base64(b, payload, plen);
        buffer_append_str(b, ",\"encoding\":\"base64\"");
    } else {
        json_string(b, payload, plen);
    }
    buffer_append(b, "}", 1);
}

/* The WebSocket messages of a flow, in the order they went. */
static void json_ws_messages(struct buffer *b, const struct flow_info *fi)
{
    struct ws_inflate inflate[2] = {{0}, {0}}; /* to the upstream, to the client */
    struct buffer text;
    enum flow_part part;
    const char *data;
    size_t len, pos = 0;
    int first = 1;

    buffer_init(&text);
    while (flow_record_next(fi->rec, &pos, &part, &data, &len)) {
        struct flow_ws_header wh;
        if (part != FLOW_PART_WS || len < sizeof wh)
            continue;
        memcpy(&wh, data, sizeof wh);
        if (!first)
            buffer_append(b, ",", 1);
        json_ws_message(b, &wh, data + sizeof wh, len - sizeof wh,
                        &inflate[wh.to_upstream ? 0 : 1], &text);
        first = 0;
    }
    ws_inflate_free(&inflate[0]);
    ws_inflate_free(&inflate[1]);
    buffer_free(&text);
}

void flows_json_detail(struct buffer *b, const struct flow_info *fi)
{
    struct flow_timings t;
    int first;

    buffer_append(b, "{", 1);
    summary_fields(b, fi);
    json_key(b, "ended", 0);
    flows_json_time(b, fi->h.ended > 0 ? fi->h.ended : fi->h.started);
    flow_timings_get(fi, &t);
    buffer_append_str(b, ",\"timings\":");
    flow_timings_json(b, &t, 0);
    buffer_append_str(b, ",\"request\":{\"received\":");
    json_head(b, fi, FLOW_PART_REQ_IN, 0);
    buffer_append_str(b, ",\"before_hooks\":");
    json_head(b, fi, FLOW_PART_REQ_PRE, 0);
    buffer_append_str(b, ",\"forwarded\":");
    json_head(b, fi, FLOW_PART_REQ_OUT, 0);
    buffer_append_str(b, ",\"body\":");
    json_body_info(b, fi->h.req_body_seen > fi->len[FLOW_PART_REQ_BODY] ? fi->h.req_body_seen
                                                                        : fi->len[FLOW_PART_REQ_BODY],
                   fi->len[FLOW_PART_REQ_BODY], (fi->h.flags & FLOW_F_REQ_TRUNCATED) != 0,
                   fi->has[FLOW_PART_REQ_BODY_IN]);
    buffer_append_str(b, "},\"response\":{\"received\":");
    json_head(b, fi, FLOW_PART_RES_IN, 1);
    buffer_append_str(b, ",\"before_hooks\":");
    json_head(b, fi, FLOW_PART_RES_PRE, 1);
    buffer_append_str(b, ",\"sent\":");
    json_head(b, fi, FLOW_PART_RES_OUT, 1);
    buffer_append_str(b, ",\"body\":");
    json_body_info(b, fi->h.res_bytes > fi->res_body_len ? fi->h.res_bytes : fi->res_body_len,
                   fi->res_body_len, (fi->h.flags & FLOW_F_RES_TRUNCATED) != 0,
                   fi->has[FLOW_PART_RES_BODY_IN]);
    buffer_printf(b, "},\"local\":%s,\"changes\":[", fi->h.flags & FLOW_F_LOCAL ? "true" : "false");
    first = 1;
    diff_heads(fi, 0, b, &first);
    if (fi->has[FLOW_PART_REQ_BODY_IN]) {
        buffer_append_str(b, first ? "" : ",");
        json_cstring(b, "request body changed");
        first = 0;
    }
    diff_heads(fi, 1, b, &first);
    if (fi->has[FLOW_PART_RES_BODY_IN]) {
        buffer_append_str(b, first ? "" : ",");
        json_cstring(b, "response body changed");
        first = 0;
    }
    if (fi->h.flags & FLOW_F_LOCAL) {
        buffer_append_str(b, first ? "" : ",");
        json_cstring(b, "answered by a script");
    }
    buffer_append_str(b, "],\"hooks\":[");
    json_script_pairs(b, fi->rec, FLOW_PART_HOOK, "hook");
    buffer_append_str(b, "],\"logs\":[");
    json_script_pairs(b, fi->rec, FLOW_PART_LOG, "line");
    buffer_append_str(b, "],\"messages\":[");
    json_ws_messages(b, fi);
    buffer_printf(b, "],\"messages_dropped\":%s}",
                  fi->h.flags & FLOW_F_WS_DROPPED ? "true" : "false");
}
