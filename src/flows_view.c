/*
 * flows_view.c - a stored flow as people see it (see flows_view.h).
 */
#include "flows_view.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "body_decode.h"
#include "json_out.h"
#include "message.h"

static ssize_t parse_head(const char *data, size_t len, int response, struct http_head *head)
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
    if (parse_head(data, len, response, &head) <= 0 || (i = http_find_field(&head, name, 0)) < 0) {
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

    if (!fi->has[pre] || !fi->has[out] || parse_head(fi->part[pre], fi->len[pre], response, &before) <= 0 ||
        parse_head(fi->part[out], fi->len[out], response, &after) <= 0)
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
    n = parse_head(fi->part[FLOW_PART_REQ_IN], fi->len[FLOW_PART_REQ_IN], 0, &fi->req);
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
        n = parse_head(fi->part[FLOW_PART_RES_OUT], fi->len[FLOW_PART_RES_OUT], 1, &head);
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

static void iso_time(struct buffer *b, double t)
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

struct timings {
    double blocked, dns, connect, tls, send, wait, receive;
};

/* The HAR phases from the record's marks. A phase that did not happen
 * is -1 (optional ones) or 0 (send, wait and receive, which HAR needs). */
static void get_timings(const struct flow_info *fi, struct timings *t)
{
    const double *m = fi->h.marks;
    double s = fi->h.started, e = fi->h.ended;
    double conn_end = m[FLOW_T_TLS] > 0 ? m[FLOW_T_TLS] : m[FLOW_T_CONNECT];
    t->dns = ms_between(s, m[FLOW_T_DNS]);
    t->blocked = -1;
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
    if (m[FLOW_T_CONNECT] == 0) /* answered before connecting: all of it is ours */
        t->receive = ms_between(s, e) < 0 ? 0 : ms_between(s, e);
}

/* A phase under the name one output gives it. The flow JSON and HAR name
 * and order the phases differently (HAR calls TLS "ssl", puts it last and
 * wants "blocked"), so each has its own list; the values are the same. */
struct timing_name {
    const char *name;
    size_t field; /* offsetof(struct timings, ...) */
};

#define PHASE(name, field) {name, offsetof(struct timings, field)}

static const struct timing_name flow_timing_names[] = {
    PHASE("dns", dns), PHASE("connect", connect), PHASE("tls", tls),
    PHASE("send", send), PHASE("wait", wait), PHASE("receive", receive), {NULL, 0},
};

static const struct timing_name har_timing_names[] = {
    PHASE("blocked", blocked), PHASE("dns", dns), PHASE("connect", connect),
    PHASE("send", send), PHASE("wait", wait), PHASE("receive", receive),
    PHASE("ssl", tls), {NULL, 0},
};

#undef PHASE

/* Writes <t> as a JSON object of the phases in <names> (up to the NULL
 * name), in their order. */
static void timings_object(struct buffer *b, const struct timings *t,
                           const struct timing_name *names)
{
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
    iso_time(b, fi->h.started);
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

/* {"line": "...", "headers": [[name, value], ...]} for one head, or null. */
static void json_head(struct buffer *b, const struct flow_info *fi, enum flow_part part,
                      int response)
{
    struct http_head head;
    ssize_t n = fi->has[part] ? parse_head(fi->part[part], fi->len[part], response, &head) : -1;
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

void flows_json_detail(struct buffer *b, const struct flow_info *fi)
{
    struct timings t;
    size_t pos = 0, len;
    enum flow_part part;
    const char *data;
    int first;

    buffer_append(b, "{", 1);
    summary_fields(b, fi);
    json_key(b, "ended", 0);
    iso_time(b, fi->h.ended > 0 ? fi->h.ended : fi->h.started);
    get_timings(fi, &t);
    buffer_append_str(b, ",\"timings\":");
    timings_object(b, &t, flow_timing_names);
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
    first = 1;
    pos = 0;
    while (flow_record_next(fi->rec, &pos, &part, &data, &len)) {
        struct flow_ws_header wh;
        if (part != FLOW_PART_WS || len < sizeof wh)
            continue;
        memcpy(&wh, data, sizeof wh);
        const char *payload = data + sizeof wh;
        size_t plen = len - sizeof wh;
        buffer_printf(b, "%s{\"type\":\"%s\",\"time\":", first ? "" : ",",
                      wh.to_upstream ? "send" : "receive");
        json_number(b, wh.t);
        buffer_printf(b, ",\"opcode\":%u,\"length\":%llu,\"truncated\":%s,\"data\":", wh.opcode,
                      (unsigned long long)wh.length, wh.truncated ? "true" : "false");
        if (wh.opcode == 2 || !json_utf8_valid(payload, plen)) {
            json_base64(b, payload, plen);
            buffer_append_str(b, ",\"encoding\":\"base64\"");
        } else {
            json_string(b, payload, plen);
        }
        buffer_append(b, "}", 1);
        first = 0;
    }
    buffer_printf(b, "],\"messages_dropped\":%s}",
                  fi->h.flags & FLOW_F_WS_DROPPED ? "true" : "false");
}

/* ---- HAR --------------------------------------------------------------- */

static void har_headers(struct buffer *b, const struct http_head *head, int ok)
{
    buffer_append_str(b, "[");
    for (size_t i = 0; ok && i < head->field_count; i++) {
        buffer_append_str(b, i ? ",{\"name\":" : "{\"name\":");
        json_string(b, head->fields[i].name, head->fields[i].name_len);
        json_key(b, "value", 0);
        json_string(b, head->fields[i].value, head->fields[i].value_len);
        buffer_append(b, "}", 1);
    }
    buffer_append_str(b, "]");
}

/* name=value pairs of a URL's query, as HAR lists them (not decoded). */
static void har_query(struct buffer *b, const char *url, size_t len)
{
    const char *q = memchr(url, '?', len), *end = url + len;
    int first = 1;
    buffer_append_str(b, "[");
    if (q) {
        q++;
        const char *hash = memchr(q, '#', (size_t)(end - q));
        if (hash)
            end = hash;
        while (q < end) {
            const char *amp = memchr(q, '&', (size_t)(end - q));
            const char *stop = amp ? amp : end;
            const char *eq = memchr(q, '=', (size_t)(stop - q));
            if (stop > q) {
                buffer_append_str(b, first ? "{\"name\":" : ",{\"name\":");
                json_string(b, q, (size_t)((eq ? eq : stop) - q));
                json_key(b, "value", 0);
                json_string(b, eq ? eq + 1 : stop, eq ? (size_t)(stop - eq - 1) : 0);
                buffer_append(b, "}", 1);
                first = 0;
            }
            q = stop + 1;
        }
    }
    buffer_append_str(b, "]");
}

static void har_text(struct buffer *b, const char *data, size_t len)
{
    if (json_utf8_valid(data, len)) {
        json_key(b, "text", 0);
        json_string(b, data, len);
    } else {
        json_key(b, "text", 0);
        json_base64(b, data, len);
        buffer_append_str(b, ",\"encoding\":\"base64\"");
    }
}

/* HAR's response text is the body as a browser shows it, decoded (Chrome
 * and Firefox export it so, and HAR readers show what they are given); a
 * decoded body past this is given as it came. */
#define HAR_DECODED_MAX ((size_t)8 << 20)
#define HAR_DECODED_MAX_TEXT "8 MiB"

/* The response's "content" after its mimeType: size, text and, for an
 * encoded body, "compression" (the bytes the coding saved), or the body as
 * it came with a "comment" saying why it was not decoded. */
static void har_content(struct buffer *b, const struct flow_info *fi)
{
    unsigned long long sent = fi->h.res_bytes > fi->res_body_len ? fi->h.res_bytes
                                                                 : fi->res_body_len;
    const char *coding;
    size_t coding_len;
    char err[128] = "";
    struct buffer decoded;
    struct body_decoder *bd = NULL;
    enum body_decode_result r = BODY_DECODE_FAILED;

    flows_head_field(fi->part[FLOW_PART_RES_OUT], fi->len[FLOW_PART_RES_OUT], 1,
                     "Content-Encoding", &coding, &coding_len);
    if (fi->res_body_len == 0 || coding_len == 0) {
        buffer_printf(b, ",\"size\":%llu", sent);
        if (fi->res_body_len > 0)
            har_text(b, fi->res_body, fi->res_body_len);
        return;
    }
    buffer_init(&decoded);
    bd = body_decoder_new(coding, coding_len, fi->res_body_len, err, sizeof err);
    if (bd) {
        do
            r = body_decoder_run(bd, fi->res_body, fi->res_body_len, &decoded, 256 << 10, err,
                                 sizeof err);
        while (r == BODY_DECODE_MORE && buffer_length(&decoded) <= HAR_DECODED_MAX);
        body_decoder_free(bd);
    }
    if (r == BODY_DECODE_DONE && buffer_length(&decoded) <= HAR_DECODED_MAX) {
        buffer_printf(b, ",\"size\":%zu", buffer_length(&decoded));
        har_text(b, buffer_peek(&decoded), buffer_length(&decoded));
        buffer_printf(b, ",\"compression\":%lld",
                      (long long)buffer_length(&decoded) - (long long)fi->res_body_len);
    } else {
        char comment[300];
        int n = snprintf(comment, sizeof comment,
                         "the body as sent, with its Content-Encoding (not decoded: %s)",
                         r == BODY_DECODE_FAILED ? err : "over " HAR_DECODED_MAX_TEXT " decoded");
        buffer_printf(b, ",\"size\":%llu", sent);
        har_text(b, fi->res_body, fi->res_body_len);
        json_key(b, "comment", 0);
        json_string(b, comment, n < 0 ? 0 : (size_t)n < sizeof comment ? (size_t)n
                                                                        : sizeof comment - 1);
    }
    buffer_free(&decoded);
}

void flows_har_entry(struct buffer *b, const struct flow_info *fi)
{
    static struct http_head res; /* large: not on the stack */
    struct timings t;
    const char *ctype, *url = fi->url;
    size_t ctype_len, url_len = fi->url_len;
    int res_ok;
    double total;
    ssize_t n;

    get_timings(fi, &t);
    total = (t.dns > 0 ? t.dns : 0) + (t.connect > 0 ? t.connect : 0) +
            (t.tls > 0 ? t.tls : 0) + t.send + t.wait + t.receive;
    buffer_append_str(b, "{\"startedDateTime\":");
    iso_time(b, fi->h.started);
    buffer_append_str(b, ",\"time\":");
    json_number(b, total);
    /* request */
    buffer_append_str(b, ",\"request\":{\"method\":");
    json_string(b, fi->method, fi->method_len);
    buffer_append_str(b, ",\"url\":");
    if (memmem(url, url_len, "://", 3)) {
        json_string(b, url, url_len);
    } else {
        /* CONNECT host:port: HAR wants a URL */
        struct buffer u;
        buffer_init(&u);
        buffer_append_str(&u, "https://");
        buffer_append(&u, url, url_len);
        buffer_append(&u, "/", 1);
        json_string(b, buffer_peek(&u), buffer_length(&u));
        buffer_free(&u);
    }
    buffer_printf(b, ",\"httpVersion\":\"HTTP/1.%d\",\"cookies\":[],\"headers\":",
                  fi->req_ok ? fi->req.version_minor : 1);
    har_headers(b, &fi->req, fi->req_ok);
    buffer_append_str(b, ",\"queryString\":");
    har_query(b, url, url_len);
    if (fi->has[FLOW_PART_REQ_BODY]) {
        flows_head_field(fi->part[FLOW_PART_REQ_IN], fi->len[FLOW_PART_REQ_IN], 0,
                         "Content-Type", &ctype, &ctype_len);
        buffer_append_str(b, ",\"postData\":{\"mimeType\":");
        json_string(b, ctype, ctype_len);
        har_text(b, fi->part[FLOW_PART_REQ_BODY], fi->len[FLOW_PART_REQ_BODY]);
        buffer_append_str(b, "}");
    }
    buffer_printf(b, ",\"headersSize\":%zu,\"bodySize\":%llu}", fi->req_head_len,
                  (unsigned long long)fi->h.req_bytes);
    /* response, as the client got it */
    n = parse_head(fi->part[FLOW_PART_RES_OUT], fi->len[FLOW_PART_RES_OUT], 1, &res);
    res_ok = n > 0;
    buffer_printf(b, ",\"response\":{\"status\":%d,\"statusText\":", fi->h.status);
    json_string(b, res_ok ? res.reason : "", res_ok ? res.reason_len : 0);
    buffer_printf(b, ",\"httpVersion\":\"HTTP/1.%d\",\"cookies\":[],\"headers\":",
                  res_ok ? res.version_minor : 1);
    har_headers(b, &res, res_ok);
    flows_head_field(fi->part[FLOW_PART_RES_OUT], fi->len[FLOW_PART_RES_OUT], 1, "Content-Type",
                     &ctype, &ctype_len);
    buffer_append_str(b, ",\"content\":{\"mimeType\":");
    json_string(b, ctype, ctype_len);
    har_content(b, fi);
    buffer_append_str(b, "},\"redirectURL\":");
    {
        const char *loc;
        size_t loc_len;
        flows_head_field(fi->part[FLOW_PART_RES_OUT], fi->len[FLOW_PART_RES_OUT], 1, "Location",
                         &loc, &loc_len);
        json_string(b, loc, loc_len);
    }
    buffer_printf(b, ",\"headersSize\":%lld,\"bodySize\":%llu}",
                  res_ok ? (long long)n : -1LL, (unsigned long long)fi->h.res_bytes);
    buffer_append_str(b, ",\"cache\":{},\"timings\":");
    timings_object(b, &t, har_timing_names);
    buffer_printf(b, ",\"_id\":%llu", (unsigned long long)fi->h.id);
    if (fi->has[FLOW_PART_ERROR]) {
        buffer_append_str(b, ",\"comment\":");
        json_string(b, fi->part[FLOW_PART_ERROR], fi->len[FLOW_PART_ERROR]);
    }
    if (fi->h.flags & FLOW_F_WEBSOCKET) {
        /* Chrome's form: type send/receive, time in seconds, opcode, data. */
        size_t pos = 0, len;
        enum flow_part part;
        const char *data;
        int first = 1;
        buffer_append_str(b, ",\"_resourceType\":\"websocket\",\"_webSocketMessages\":[");
        while (flow_record_next(fi->rec, &pos, &part, &data, &len)) {
            struct flow_ws_header wh;
            if (part != FLOW_PART_WS || len < sizeof wh)
                continue;
            memcpy(&wh, data, sizeof wh);
            if (wh.opcode != 1 && wh.opcode != 2)
                continue; /* Chrome lists data messages only */
            buffer_printf(b, "%s{\"type\":\"%s\",\"time\":", first ? "" : ",",
                          wh.to_upstream ? "send" : "receive");
            json_number(b, wh.t);
            buffer_printf(b, ",\"opcode\":%u,\"data\":", wh.opcode);
            if (wh.opcode == 1 && json_utf8_valid(data + sizeof wh, len - sizeof wh))
                json_string(b, data + sizeof wh, len - sizeof wh);
            else
                json_base64(b, data + sizeof wh, len - sizeof wh);
            buffer_append(b, "}", 1);
            first = 0;
        }
        buffer_append_str(b, "]");
    }
    buffer_append_str(b, "}");
}
