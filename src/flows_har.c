/*
 * flows_har.c - one flow as a HAR 1.2 entry, a bounded step at a time
 * (see flows_har.h).
 *
 * The entry is written in the order HAR readers expect, and each body in
 * it passes through a "body text": measured first (UTF-8 or not; decoded,
 * to what size and whether at all), then written a slice per step:
 *
 *   REQUEST -> [REQ_MEASURE -> REQ_TEXT] -> RESPONSE
 *     -> [RES_DECODE] -> [RES_MEASURE] -> [RES_TEXT] -> TRAILER
 *     -> [WS_NEXT -> [WS_DECODE] -> [WS_MEASURE] -> WS_TEXT -> WS_NEXT ...]
 *     -> END
 *
 * A phase in brackets is skipped when there is nothing for it: no request
 * body; an empty response (no text at all), or one without a
 * Content-Encoding (RES_DECODE); one that decodes (RES_MEASURE: the
 * decoded text was measured while decoding); a WebSocket message sent
 * uncompressed (WS_DECODE: permessage-deflate, see ws_inflate.h); a binary
 * one, or one that did not decode (WS_MEASURE: it is always base64).
 */
#include "flows_har.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "body_decode.h"
#include "json_out.h"
#include "ws_inflate.h"

/* HAR's response text is the body as a browser shows it, decoded (Chrome
 * and Firefox export it so, and HAR readers show what they are given); a
 * decoded body past this is given as it came. */
#define HAR_DECODED_MAX ((size_t)8 << 20)
#define HAR_DECODED_MAX_TEXT "8 MiB"

/* Record parts WS_NEXT passes over in one step, looking for a message. */
#define WS_PARTS_PER_STEP 1024

/* ---- a body as text ----------------------------------------------------- */

/* One body: its bytes as kept, or decoded from a Content-Encoding. */
struct body_text {
    const char *data; /* as kept */
    size_t len;
    const char *coding; /* NULL: the bytes as they are */
    size_t coding_len;
    size_t at;              /* as they are: bytes gone through in this pass */
    struct body_decoder *bd; /* decoding: this pass's decoder */
    struct buffer made;      /* decoded, not yet looked at */
    size_t size;             /* decoded: bytes made in all */
    enum body_decode_result result; /* decoded: how measuring ended */
    char err[128];
    struct json_utf8 utf8;
    int is_utf8;             /* measured: a JSON string, else base64 */
    struct json_base64 b64;
};

static void text_init(struct body_text *t, const char *data, size_t len, const char *coding,
                      size_t coding_len)
{
    memset(t, 0, sizeof *t);
    t->data = data;
    t->len = len;
    t->coding = coding;
    t->coding_len = coding_len;
    buffer_init(&t->made);
    t->utf8 = (struct json_utf8)JSON_UTF8_INIT;
    t->b64 = (struct json_base64)JSON_BASE64_INIT;
}

static void text_free(struct body_text *t)
{
    body_decoder_free(t->bd);
    t->bd = NULL;
    buffer_free(&t->made);
}

/* Whether the measured body is given decoded: it decoded whole, within
 * the cap. */
static int text_decoded(const struct body_text *t)
{
    return t->coding && t->result == BODY_DECODE_DONE && t->size <= HAR_DECODED_MAX;
}

/* The body as kept, from the start: after a body that did not decode. */
static void text_as_kept(struct body_text *t)
{
    body_decoder_free(t->bd);
    t->bd = NULL;
    buffer_free(&t->made);
    t->coding = NULL;
    t->at = 0;
    t->utf8 = (struct json_utf8)JSON_UTF8_INIT;
}

/*
 * One step of the first pass. As kept: whether the bytes are UTF-8.
 * Decoded: whether the body decodes, to how many bytes, and whether they
 * are UTF-8, the decoded bytes dropped as they are looked at. It asks the
 * decoder for HAR_DECODE_PART at a time and stops once past the cap, as
 * the export always has, so a body that goes wrong only far past the cap
 * is "over 8 MiB" rather than corrupt, as before. 1 when measured.
 */
static int text_measure(struct body_text *t)
{
    if (!t->coding) {
        size_t n = t->len - t->at < HAR_SLICE ? t->len - t->at : HAR_SLICE;
        json_utf8_feed(&t->utf8, t->data + t->at, n);
        t->at += n;
        if (t->at < t->len)
            return 0;
        t->is_utf8 = json_utf8_end(&t->utf8);
        t->at = 0;
        return 1;
    }
    if (!t->bd) {
        t->bd = body_decoder_new(t->coding, t->coding_len, t->len, t->err, sizeof t->err);
        if (!t->bd) {
            t->result = BODY_DECODE_FAILED;
            return 1;
        }
    }
    t->result = body_decoder_run(t->bd, t->data, t->len, &t->made, HAR_DECODE_PART, t->err,
                                 sizeof t->err);
    t->size += buffer_length(&t->made);
    json_utf8_feed(&t->utf8, buffer_peek(&t->made), buffer_length(&t->made));
    buffer_consume(&t->made, buffer_length(&t->made));
    if (t->result == BODY_DECODE_MORE && t->size <= HAR_DECODED_MAX)
        return 0;
    body_decoder_free(t->bd); /* the second pass has its own */
    t->bd = NULL;
    buffer_free(&t->made);
    t->is_utf8 = json_utf8_end(&t->utf8);
    return 1;
}

static void text_put(struct body_text *t, struct buffer *out, const char *s, size_t n)
{
    if (t->is_utf8)
        json_string_part(out, s, n, 1);
    else
        json_base64_part(out, &t->b64, s, n);
}

/* One step of the second pass: a slice of the text, inside its quotes.
 * 1 when written, 0 for more, -1 when out of memory (a body that decoded
 * in the first pass decodes in the second). */
static int text_write(struct body_text *t, struct buffer *out)
{
    if (!t->coding) {
        size_t n = t->len - t->at < HAR_SLICE ? t->len - t->at : HAR_SLICE;
        text_put(t, out, t->data + t->at, n);
        t->at += n;
        if (t->at < t->len)
            return 0;
    } else {
        enum body_decode_result r;
        if (!t->bd) {
            t->bd = body_decoder_new(t->coding, t->coding_len, t->len, t->err, sizeof t->err);
            if (!t->bd)
                return -1;
        }
        r = body_decoder_run(t->bd, t->data, t->len, &t->made, HAR_SLICE, t->err,
                             sizeof t->err);
        text_put(t, out, buffer_peek(&t->made), buffer_length(&t->made));
        buffer_consume(&t->made, buffer_length(&t->made));
        if (r == BODY_DECODE_FAILED)
            return -1;
        if (r == BODY_DECODE_MORE)
            return 0;
    }
    if (!t->is_utf8)
        json_base64_end(out, &t->b64);
    text_free(t);
    return 1;
}

/* ---- the entry ---------------------------------------------------------- */

enum har_phase {
    HAR_REQUEST,     /* the entry's start, the request up to its body's text */
    HAR_REQ_MEASURE, /* the request body */
    HAR_REQ_TEXT,
    HAR_RESPONSE,    /* the request's end, the response up to its content */
    HAR_RES_DECODE,  /* an encoded response body: measured decoded */
    HAR_RES_MEASURE, /* the response body as kept */
    HAR_RES_TEXT,
    HAR_TRAILER,     /* the content's end, the rest of the response, timings */
    HAR_WS_NEXT,     /* the next WebSocket data message, up to its data */
    HAR_WS_DECODE,   /* a compressed one: its text made */
    HAR_WS_MEASURE,
    HAR_WS_TEXT,
    HAR_END,
    HAR_DONE,
};

struct har_entry {
    const struct flow_info *fi;
    enum har_phase phase;
    struct body_text text; /* the body being measured or written */
    ssize_t res_head_len;  /* <= 0: the response head did not parse */
    char comment[300];     /* why a response was not decoded */
    size_t comment_len;
    size_t ws_pos;         /* where WS_NEXT goes on in the record */
    int ws_first;
    struct flow_ws_header ws;      /* the message WS_DECODE decodes */
    struct ws_inflate_msg ws_msg;
    struct ws_inflate ws_inflate[2]; /* to the upstream, to the client */
    struct buffer ws_text;           /* its text */
};

/*
 * A request's Proxy-Authorization is left out of the export: it carries
 * the user's password for this proxy (Basic is base64, not a secret), it
 * is for the proxy alone and never went to the origin, and a HAR file is
 * made to be shared, attached to bug reports. The flow viewer, behind
 * the admin token, still shows it, and replay still sends it.
 */
static int har_hidden(const struct http_field *f)
{
    return f->name_len == 19 && strncasecmp(f->name, "Proxy-Authorization", 19) == 0;
}

static void har_headers(struct buffer *b, const struct http_head *head, int ok)
{
    int first = 1;

    buffer_append_str(b, "[");
    for (size_t i = 0; ok && i < head->field_count; i++) {
        if (har_hidden(&head->fields[i]))
            continue;
        buffer_append_str(b, first ? "{\"name\":" : ",{\"name\":");
        first = 0;
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

/* ,"text":" once the body is measured: a string or base64, both quoted. */
static void open_text(struct buffer *b)
{
    json_key(b, "text", 0);
    buffer_append(b, "\"", 1);
}

/* The closing quote, and the encoding when it was base64: <key> is
 * "encoding" in a response's content, where HAR 1.2 defines it, and
 * "_encoding" in a request's postData, where it does not (a reader that
 * knows no such field would take the base64 for the body; HAR's own
 * custom fields start with an underscore). */
static void close_text(struct buffer *b, const struct body_text *t, const char *key)
{
    buffer_append(b, "\"", 1);
    if (!t->is_utf8) {
        json_key(b, key, 0);
        buffer_append_str(b, "\"base64\"");
    }
}

/* The flow's phases as HAR 1.2 counts them. The flow JSON keeps the TLS
 * handshake apart from the TCP connect; HAR's "ssl" is part of "connect"
 * (kept so for HAR 1.1 readers), and "time" is the sum of the phases but
 * "ssl". Written as the flow JSON has them, a reader that follows the
 * spec would find a handshake longer than the connect that holds it and
 * a "time" longer than the phases it is made of. */
static void har_timings(const struct flow_info *fi, struct flow_timings *t)
{
    flow_timings_get(fi, t);
    if (t->tls >= 0)
        t->connect = (t->connect > 0 ? t->connect : 0) + t->tls;
}

static void write_request(struct har_entry *e, struct buffer *b)
{
    const struct flow_info *fi = e->fi;
    const char *ctype, *url = fi->url;
    size_t ctype_len, url_len = fi->url_len;
    struct flow_timings t;
    double total;

    har_timings(fi, &t);
    total = (t.blocked > 0 ? t.blocked : 0) + (t.dns > 0 ? t.dns : 0) +
            (t.connect > 0 ? t.connect : 0) + t.send + t.wait + t.receive;
    buffer_append_str(b, "{\"startedDateTime\":");
    flows_json_time(b, fi->h.started);
    buffer_append_str(b, ",\"time\":");
    json_number(b, total);
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
    if (!fi->has[FLOW_PART_REQ_BODY]) {
        e->phase = HAR_RESPONSE;
        return;
    }
    flows_head_field(fi->part[FLOW_PART_REQ_IN], fi->len[FLOW_PART_REQ_IN], 0, "Content-Type",
                     &ctype, &ctype_len);
    buffer_append_str(b, ",\"postData\":{\"mimeType\":");
    json_string(b, ctype, ctype_len);
    text_init(&e->text, fi->part[FLOW_PART_REQ_BODY], fi->len[FLOW_PART_REQ_BODY], NULL, 0);
    e->phase = HAR_REQ_MEASURE;
}

/* The request's end, the response's start, and its content up to the
 * body's text (or the phase that will tell what goes first). */
static void write_response(struct har_entry *e, struct buffer *b)
{
    static struct http_head res; /* large: not on the stack; used within this step */
    const struct flow_info *fi = e->fi;
    const char *ctype, *coding;
    size_t ctype_len, coding_len;
    int res_ok;

    buffer_printf(b, ",\"headersSize\":%zu,\"bodySize\":%llu}", fi->req_head_len,
                  (unsigned long long)fi->h.req_bytes);
    e->res_head_len = flows_parse_head(fi->part[FLOW_PART_RES_OUT], fi->len[FLOW_PART_RES_OUT],
                                       1, &res);
    res_ok = e->res_head_len > 0;
    buffer_printf(b, ",\"response\":{\"status\":%d,\"statusText\":", fi->h.status);
    json_string(b, res_ok ? res.reason : "", res_ok ? res.reason_len : 0);
    buffer_printf(b, ",\"httpVersion\":\"HTTP/1.%d\",\"cookies\":[],\"headers\":",
                  res_ok ? res.version_minor : 1);
    har_headers(b, &res, res_ok);
    flows_head_field(fi->part[FLOW_PART_RES_OUT], fi->len[FLOW_PART_RES_OUT], 1, "Content-Type",
                     &ctype, &ctype_len);
    buffer_append_str(b, ",\"content\":{\"mimeType\":");
    json_string(b, ctype, ctype_len);
    flows_head_field(fi->part[FLOW_PART_RES_OUT], fi->len[FLOW_PART_RES_OUT], 1,
                     "Content-Encoding", &coding, &coding_len);
    if (fi->res_body_len > 0 && coding_len > 0) {
        /* The size goes first: decoded, or as sent if it does not decode. */
        text_init(&e->text, fi->res_body, fi->res_body_len, coding, coding_len);
        e->phase = HAR_RES_DECODE;
        return;
    }
    buffer_printf(b, ",\"size\":%llu",
                  (unsigned long long)(fi->h.res_bytes > fi->res_body_len ? fi->h.res_bytes
                                                                          : fi->res_body_len));
    if (fi->res_body_len == 0) {
        e->phase = HAR_TRAILER;
        return;
    }
    text_init(&e->text, fi->res_body, fi->res_body_len, NULL, 0);
    e->phase = HAR_RES_MEASURE;
}

/* An encoded response body, measured: decoded, with its decoded size; or
 * as it came, with a comment that says why. */
static void after_decoding(struct har_entry *e, struct buffer *b)
{
    const struct flow_info *fi = e->fi;
    struct body_text *t = &e->text;
    int n;

    if (text_decoded(t)) {
        buffer_printf(b, ",\"size\":%zu", t->size);
        open_text(b);
        e->phase = HAR_RES_TEXT;
        return;
    }
    n = snprintf(e->comment, sizeof e->comment,
                 "the body as sent, with its Content-Encoding (not decoded: %s)",
                 t->result == BODY_DECODE_FAILED ? t->err
                                                 : "over " HAR_DECODED_MAX_TEXT " decoded");
    e->comment_len = n < 0 ? 0 : (size_t)n < sizeof e->comment ? (size_t)n
                                                                : sizeof e->comment - 1;
    buffer_printf(b, ",\"size\":%llu",
                  (unsigned long long)(fi->h.res_bytes > fi->res_body_len ? fi->h.res_bytes
                                                                          : fi->res_body_len));
    text_as_kept(t);
    e->phase = HAR_RES_MEASURE;
}

/* ,"comment":"..." for a body whose text is only its first <kept> bytes
 * of <size>: HAR's "size" is the whole body's, and a reader that saves
 * the text would otherwise take a cut file for the download. */
static void truncated_comment(struct buffer *b, size_t kept, unsigned long long size)
{
    char text[160];
    int n = snprintf(text, sizeof text,
                     "truncated: the text is the first %zu bytes of %llu, as much as the "
                     "capture kept",
                     kept, size > kept ? size : (unsigned long long)kept);
    json_key(b, "comment", 0);
    json_string(b, text, n < 0 ? 0 : (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
}

/* After the response's text: what the decoding saved, or why there was
 * none. */
static void after_content(struct har_entry *e, struct buffer *b)
{
    if (text_decoded(&e->text)) {
        buffer_printf(b, ",\"compression\":%lld",
                      (long long)e->text.size - (long long)e->fi->res_body_len);
    } else if (e->comment_len > 0) {
        json_key(b, "comment", 0);
        json_string(b, e->comment, e->comment_len);
    } else if (e->fi->h.flags & FLOW_F_RES_TRUNCATED) {
        truncated_comment(b, e->fi->res_body_len, e->fi->h.res_bytes);
    }
}

static void write_trailer(struct har_entry *e, struct buffer *b)
{
    const struct flow_info *fi = e->fi;
    struct flow_timings t;
    const char *loc;
    size_t loc_len;

    buffer_append_str(b, "},\"redirectURL\":");
    flows_head_field(fi->part[FLOW_PART_RES_OUT], fi->len[FLOW_PART_RES_OUT], 1, "Location",
                     &loc, &loc_len);
    json_string(b, loc, loc_len);
    buffer_printf(b, ",\"headersSize\":%lld,\"bodySize\":%llu}",
                  e->res_head_len > 0 ? (long long)e->res_head_len : -1LL,
                  (unsigned long long)fi->h.res_bytes);
    buffer_append_str(b, ",\"cache\":{},\"timings\":");
    har_timings(fi, &t);
    flow_timings_json(b, &t, 1);
    buffer_printf(b, ",\"_id\":%llu", (unsigned long long)fi->h.id);
    if (fi->has[FLOW_PART_ERROR]) {
        buffer_append_str(b, ",\"comment\":");
        json_string(b, fi->part[FLOW_PART_ERROR], fi->len[FLOW_PART_ERROR]);
    }
    if (!(fi->h.flags & FLOW_F_WEBSOCKET)) {
        e->phase = HAR_END;
        return;
    }
    /* Chrome's form: type send/receive, time in seconds, opcode, data. */
    buffer_append_str(b, ",\"_resourceType\":\"websocket\",\"_webSocketMessages\":[");
    e->ws_pos = 0;
    e->ws_first = 1;
    e->phase = HAR_WS_NEXT;
}

/* Starts writing a message's data, <data> of <len> bytes: measured first
 * when it may be text, else as base64 (<binary>). */
static void ws_text_start(struct har_entry *e, struct buffer *b, const struct flow_ws_header *wh,
                          const char *data, size_t len, int binary)
{
    /* Text cut at the capture's budget: up to its last whole character. */
    if (wh->opcode == WS_TEXT && wh->truncated && !binary)
        len = json_utf8_uncut_length(data, len);
    text_init(&e->text, data, len, NULL, 0);
    if (wh->opcode == WS_TEXT && !binary) {
        e->phase = HAR_WS_MEASURE;
        return;
    }
    /* binary: base64 whatever it holds */
    buffer_append(b, "\"", 1);
    e->phase = HAR_WS_TEXT;
}

/* Finds the next data message (Chrome lists no others) and writes it up
 * to its data; or, past the last, ends the list. */
static void write_ws_next(struct har_entry *e, struct buffer *b)
{
    enum flow_part part;
    const char *data;
    size_t len;

    for (int k = 0; k < WS_PARTS_PER_STEP; k++) {
        struct flow_ws_header wh;
        if (!flow_record_next(e->fi->rec, &e->ws_pos, &part, &data, &len)) {
            buffer_append_str(b, "]");
            e->phase = HAR_END;
            return;
        }
        if (part != FLOW_PART_WS || len < sizeof wh)
            continue;
        memcpy(&wh, data, sizeof wh);
        if (wh.opcode != WS_TEXT && wh.opcode != WS_BINARY)
            continue;
        buffer_printf(b, "%s{\"type\":\"%s\",\"time\":", e->ws_first ? "" : ",",
                      wh.to_upstream ? "send" : "receive");
        json_number(b, wh.t);
        buffer_printf(b, ",\"opcode\":%u,\"data\":", wh.opcode);
        e->ws_first = 0;
        if (wh.compressed) {
            /* The text the peer's application sent, as Chrome exports it. */
            e->ws = wh;
            buffer_consume(&e->ws_text, buffer_length(&e->ws_text));
            ws_inflate_msg_init(&e->ws_msg, data + sizeof wh, len - sizeof wh, !wh.truncated);
            e->phase = HAR_WS_DECODE;
            return;
        }
        ws_text_start(e, b, &wh, data + sizeof wh, len - sizeof wh, 0);
        return;
    }
    /* many parts that are no data message: on with them next step */
}

/* A slice of a compressed message decoded; once it is all, its text is
 * written as an uncompressed one's. One that does not decode goes as the
 * bytes it came as, in base64. */
static void write_ws_decode(struct har_entry *e, struct buffer *b)
{
    struct ws_inflate *w = &e->ws_inflate[e->ws.to_upstream ? 0 : 1];

    switch (ws_inflate_run(w, &e->ws_msg, &e->ws_text, HAR_SLICE)) {
    case WS_INFLATE_MORE:
        return;
    case WS_INFLATE_DONE:
        ws_text_start(e, b, &e->ws, buffer_peek(&e->ws_text), buffer_length(&e->ws_text), 0);
        return;
    case WS_INFLATE_FAILED:
        ws_text_start(e, b, &e->ws, e->ws_msg.data, e->ws_msg.len, 1);
        return;
    }
}

struct har_entry *har_entry_new(const struct flow_info *fi)
{
    struct har_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->fi = fi;
    e->phase = HAR_REQUEST;
    text_init(&e->text, "", 0, NULL, 0);
    buffer_init(&e->ws_text);
    return e;
}

void har_entry_free(struct har_entry *e)
{
    if (!e)
        return;
    text_free(&e->text);
    ws_inflate_free(&e->ws_inflate[0]);
    ws_inflate_free(&e->ws_inflate[1]);
    buffer_free(&e->ws_text);
    free(e);
}

enum har_step har_entry_step(struct har_entry *e, struct buffer *out)
{
    int r;

    switch (e->phase) {
    case HAR_REQUEST:
        write_request(e, out);
        break;
    case HAR_REQ_MEASURE:
        if (text_measure(&e->text)) {
            open_text(out);
            e->phase = HAR_REQ_TEXT;
        }
        break;
    case HAR_REQ_TEXT:
        if ((r = text_write(&e->text, out)) < 0)
            return HAR_STEP_FAILED;
        if (r > 0) {
            close_text(out, &e->text, "_encoding");
            if (e->fi->h.flags & FLOW_F_REQ_TRUNCATED)
                truncated_comment(out, e->fi->len[FLOW_PART_REQ_BODY], e->fi->h.req_bytes);
            buffer_append_str(out, "}"); /* postData */
            e->phase = HAR_RESPONSE;
        }
        break;
    case HAR_RESPONSE:
        write_response(e, out);
        break;
    case HAR_RES_DECODE:
        if (text_measure(&e->text))
            after_decoding(e, out);
        break;
    case HAR_RES_MEASURE:
        if (text_measure(&e->text)) {
            open_text(out);
            e->phase = HAR_RES_TEXT;
        }
        break;
    case HAR_RES_TEXT:
        if ((r = text_write(&e->text, out)) < 0)
            return HAR_STEP_FAILED;
        if (r > 0) {
            close_text(out, &e->text, "encoding");
            after_content(e, out);
            e->phase = HAR_TRAILER;
        }
        break;
    case HAR_TRAILER:
        write_trailer(e, out);
        break;
    case HAR_WS_NEXT:
        write_ws_next(e, out);
        break;
    case HAR_WS_DECODE:
        write_ws_decode(e, out);
        break;
    case HAR_WS_MEASURE:
        if (text_measure(&e->text)) {
            /* Text that is not UTF-8 goes as base64, with no encoding
             * key: Chrome's messages carry none. */
            buffer_append(out, "\"", 1);
            e->phase = HAR_WS_TEXT;
        }
        break;
    case HAR_WS_TEXT:
        if ((r = text_write(&e->text, out)) < 0)
            return HAR_STEP_FAILED;
        if (r > 0) {
            buffer_append_str(out, "\"}");
            e->phase = HAR_WS_NEXT;
        }
        break;
    case HAR_END:
        buffer_append_str(out, "}");
        e->phase = HAR_DONE;
        /* fall through */
    case HAR_DONE:
        return HAR_STEP_DONE;
    }
    return HAR_STEP_MORE;
}
