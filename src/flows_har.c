/*
 * flows_har.c - one flow as a HAR 1.2 entry (see flows_har.h).
 */
#include "flows_har.h"

#include <stdio.h>
#include <string.h>

#include "body_decode.h"
#include "json_out.h"

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
    struct flow_timings t;
    const char *ctype, *url = fi->url;
    size_t ctype_len, url_len = fi->url_len;
    int res_ok;
    double total;
    ssize_t n;

    flow_timings_get(fi, &t);
    total = (t.dns > 0 ? t.dns : 0) + (t.connect > 0 ? t.connect : 0) +
            (t.tls > 0 ? t.tls : 0) + t.send + t.wait + t.receive;
    buffer_append_str(b, "{\"startedDateTime\":");
    flows_json_time(b, fi->h.started);
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
    n = flows_parse_head(fi->part[FLOW_PART_RES_OUT], fi->len[FLOW_PART_RES_OUT], 1, &res);
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
    flow_timings_json(b, &t, 1);
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
