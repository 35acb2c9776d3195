/*
 * test_flows_har.c - unit tests for the HAR entry of one flow.
 *
 * Flows with bodies small and large, text and binary, compressed (decoded,
 * over the decoded cap, corrupt, of an unknown coding, stacked) and a
 * WebSocket flow are written as HAR entries a step at a time, and each
 * entry is compared with the one the export wrote when it wrote an entry
 * whole: by its length and its SHA-256, kept in test_flows_har.expect.
 * The bodies are made from a fixed seed, so they are the same on every
 * run. No step writes more than about a slice.
 */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>

#include "flow_record.h"
#include "flows_har.h"
#include "flows_view.h"
#include "tap.h"

/* ---- records ----------------------------------------------------------- */

static struct buffer rec;

static void rec_begin(uint64_t id, int status, uint32_t flags)
{
    struct flow_header h;
    memset(&h, 0, sizeof h);
    h.magic = FLOW_MAGIC;
    h.id = id;
    h.started = 1700000000.125 + (double)id;
    h.ended = h.started + 0.5;
    h.marks[FLOW_T_DNS] = h.started + 0.01;
    h.marks[FLOW_T_CONNECT] = h.started + 0.02;
    h.marks[FLOW_T_SENT] = h.started + 0.03;
    h.marks[FLOW_T_HEAD] = h.started + 0.25;
    h.status = status;
    h.flags = flags;
    buffer_consume(&rec, buffer_length(&rec));
    buffer_append(&rec, &h, sizeof h);
}

static void rec_part(enum flow_part part, const void *data, size_t len)
{
    uint32_t n = (uint32_t)len;
    unsigned char p = (unsigned char)part;
    buffer_append(&rec, &p, 1);
    buffer_append(&rec, &n, 4);
    buffer_append(&rec, data, len);
}

static void rec_str(enum flow_part part, const char *s)
{
    rec_part(part, s, strlen(s));
}

/* Ends the record: the sizes the header holds. */
static const char *rec_end(uint64_t req_bytes, uint64_t res_bytes)
{
    struct flow_header h;
    struct buffer done;
    memcpy(&h, buffer_peek(&rec), sizeof h);
    h.len = (uint32_t)buffer_length(&rec);
    h.req_bytes = req_bytes;
    h.res_bytes = res_bytes;
    buffer_init(&done);
    buffer_append(&done, &h, sizeof h);
    buffer_append(&done, buffer_peek(&rec) + sizeof h, buffer_length(&rec) - sizeof h);
    buffer_swap(&rec, &done);
    buffer_free(&done);
    return buffer_peek(&rec);
}

static void ws_message(int to_upstream, uint8_t opcode, const char *data, size_t len)
{
    struct flow_ws_header wh;
    struct buffer b;
    memset(&wh, 0, sizeof wh);
    wh.t = 1700000100.5;
    wh.length = len;
    wh.to_upstream = (uint8_t)to_upstream;
    wh.opcode = opcode;
    buffer_init(&b);
    buffer_append(&b, &wh, sizeof wh);
    buffer_append(&b, data, len);
    rec_part(FLOW_PART_WS, buffer_peek(&b), buffer_length(&b));
    buffer_free(&b);
}

/* ---- bodies ------------------------------------------------------------ */

static uint64_t seed = 88172645463325252ull;

static uint64_t next_random(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

/* <len> bytes of text: words, JSON's special characters, control bytes
 * and UTF-8 of every length, so that a slice may end inside any of them. */
static char *make_text(size_t len)
{
    static const char *const pieces[] = {
        "the ", "proxy ", "\"quoted\" ", "back\\slash ", "line\n", "tab\t", "\x01\x1f\x7f",
        "caf\xc3\xa9 ", "\xe2\x82\xac ", "\xf0\x9f\x98\x80 ", "</script> ", "\r\n",
    };
    char *s = malloc(len);
    size_t at = 0;
    while (at < len) {
        const char *p = pieces[next_random() % (sizeof pieces / sizeof pieces[0])];
        size_t n = strlen(p);
        if (n > len - at)
            p = "abcdefgh", n = len - at; /* ASCII to the end, so it stays valid */
        memcpy(s + at, p, n);
        at += n;
    }
    return s;
}

static char *make_binary(size_t len)
{
    char *s = malloc(len);
    for (size_t i = 0; i < len; i++)
        s[i] = (char)(next_random() >> 32);
    return s;
}

static void gzip_into(struct buffer *out, const char *in, size_t len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    size_t room = deflateBound(&z, (uLong)len);
    unsigned char *dst = (unsigned char *)buffer_reserve(out, room);
    z.next_in = (unsigned char *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = dst;
    z.avail_out = (uInt)room;
    deflate(&z, Z_FINISH);
    buffer_commit(out, room - z.avail_out);
    deflateEnd(&z);
}

static void zstd_into(struct buffer *out, const char *in, size_t len)
{
    size_t room = ZSTD_compressBound(len);
    char *dst = buffer_reserve(out, room);
    buffer_commit(out, ZSTD_compress(dst, room, in, len, 3));
}

/* ---- flows ------------------------------------------------------------- */

/* A response with <coding> (NULL: none) and <body> as kept. */
static const char *exchange(uint64_t id, const char *coding, const char *type, const char *body,
                            size_t len, uint64_t res_bytes)
{
    char head[512];
    static const char req[] = "GET http://example.test/page?a=1&b=two&flag HTTP/1.1\r\n"
                              "Host: example.test\r\nAccept-Encoding: gzip, br, zstd\r\n\r\n";
    rec_begin(id, 200, 0);
    rec_str(FLOW_PART_CLIENT, "127.0.0.1:40000");
    rec_str(FLOW_PART_REQ_IN, req);
    rec_str(FLOW_PART_REQ_OUT, req);
    snprintf(head, sizeof head,
             "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n%s%s%sContent-Length: %zu\r\n\r\n",
             type, coding ? "Content-Encoding: " : "", coding ? coding : "", coding ? "\r\n" : "",
             len);
    rec_str(FLOW_PART_RES_IN, head);
    rec_str(FLOW_PART_RES_OUT, head);
    rec_part(FLOW_PART_RES_BODY, body, len);
    return rec_end(0, res_bytes ? res_bytes : len);
}

static const char *gzip_exchange(uint64_t id, const char *coding, const char *text, size_t len)
{
    struct buffer z;
    const char *r;
    buffer_init(&z);
    gzip_into(&z, text, len);
    r = exchange(id, coding, "text/plain", buffer_peek(&z), buffer_length(&z), 0);
    buffer_free(&z);
    return r;
}

/* ---- writing and comparing -------------------------------------------- */

static struct flow_info info;
static size_t most_per_step; /* the most one step wrote, over every case */
static int steps_checked, more_steps_than_slices = 1;

/* Writes the entry of <record> step by step, as the export does, and
 * checks that no step wrote more than its bound. */
static void write_entry(struct buffer *out, const char *record)
{
    struct har_entry *e;
    enum har_step r;
    size_t steps = 0, body = 0;

    flow_info_load(&info, record);
    e = har_entry_new(&info);
    do {
        size_t before = buffer_length(out);
        r = har_entry_step(e, out);
        if (buffer_length(out) - before > most_per_step)
            most_per_step = buffer_length(out) - before;
        steps++;
    } while (r == HAR_STEP_MORE);
    har_entry_free(e);
    ok(r == HAR_STEP_DONE, "the entry is done");
    /* A body is gone through in slices: at least as many steps. */
    body = info.len[FLOW_PART_REQ_BODY] + info.res_body_len;
    if (steps < body / HAR_SLICE)
        more_steps_than_slices = 0;
    steps_checked++;
}

struct expect {
    const char *name;
    size_t len;
    const char *sha256;
};

/* What the export wrote before (see the file's comment). */
static const struct expect expected[] = {
#include "test_flows_har.expect"
};

static int case_number;

static void check(const char *name, const char *record)
{
    struct buffer out;
    unsigned char md[32];
    char hex[65];
    unsigned int md_len = 0;
    static const struct expect none = {"", 0, ""};
    size_t count = sizeof expected / sizeof expected[0];
    const struct expect *e = (size_t)case_number < count ? &expected[case_number] : &none;

    case_number++;

    buffer_init(&out);
    /* Right before an unreadable page: reading past the record faults. */
    write_entry(&out, guarded_copy(record, buffer_length(&rec)));
    EVP_Digest(buffer_peek(&out), buffer_length(&out), md, &md_len, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    /* HAR_EXPECT_PRINT=1 prints the table, for a change meant to alter
     * the entries. */
    if (getenv("HAR_EXPECT_PRINT"))
        fprintf(stderr, "    {\"%s\", %zu, \"%s\"},\n", name, buffer_length(&out), hex);
    ok(strcmp(e->name, name) == 0 && e->len == buffer_length(&out) && strcmp(e->sha256, hex) == 0,
       "%s: the entry as before (%zu bytes)", name, buffer_length(&out));
    buffer_free(&out);
}

int main(void)
{
    struct buffer b;
    char *text, *bin;

    buffer_init(&rec);
    buffer_init(&b);

    rec_begin(1, 200, 0);
    rec_str(FLOW_PART_CLIENT, "127.0.0.1:40000");
    rec_str(FLOW_PART_REQ_IN,
            "GET http://example.test/a?x=1&y HTTP/1.1\r\nHost: example.test\r\n\r\n");
    rec_str(FLOW_PART_RES_OUT, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 6\r\nLocation: /b\r\n\r\n");
    rec_str(FLOW_PART_RES_BODY, "hello\n");
    check("small", rec_end(0, 6));

    rec_begin(2, 201, 0);
    rec_str(FLOW_PART_CLIENT, "127.0.0.1:40001");
    rec_str(FLOW_PART_REQ_IN, "POST http://example.test/form HTTP/1.1\r\nHost: example.test\r\n"
                              "Content-Type: application/x-www-form-urlencoded\r\n"
                              "Content-Length: 17\r\n\r\n");
    rec_str(FLOW_PART_REQ_BODY, "name=ada&lang=lua");
    rec_str(FLOW_PART_RES_OUT, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                               "Content-Length: 11\r\n\r\n");
    rec_str(FLOW_PART_RES_BODY, "{\"ok\":true}");
    check("form", rec_end(17, 11));

    text = make_text((3 << 20) + 1);
    check("large text", exchange(3, NULL, "text/plain; charset=utf-8", text, (3 << 20) + 1, 0));
    free(text);

    bin = make_binary((3 << 20) + 2);
    rec_begin(4, 200, FLOW_F_REQ_TRUNCATED);
    rec_str(FLOW_PART_CLIENT, "[::1]:40002");
    rec_str(FLOW_PART_REQ_IN, "PUT http://example.test/blob HTTP/1.1\r\nHost: example.test\r\n"
                              "Content-Type: application/octet-stream\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n");
    rec_part(FLOW_PART_REQ_BODY, bin, (1 << 20) + 1);
    rec_str(FLOW_PART_RES_OUT, "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n\r\n");
    rec_part(FLOW_PART_RES_BODY, bin + 7, (3 << 20) - 5);
    check("large binary", rec_end((2 << 20) + 9, (3 << 20) - 5));
    free(bin);

    /* Decoded: text just under the cap, and binary. */
    text = make_text((8 << 20) - 1000);
    check("gzip text", gzip_exchange(5, "gzip", text, (8 << 20) - 1000));
    free(text);
    bin = make_binary((1 << 20) + 1);
    check("gzip binary", gzip_exchange(6, "x-gzip", bin, (1 << 20) + 1));
    free(bin);

    /* Over the cap decoded: the body as it came, with a comment. */
    text = make_text(9 << 20);
    check("gzip over the cap", gzip_exchange(7, "gzip", text, 9 << 20));

    /* Cut short: not decoded, with the decoder's reason. */
    buffer_consume(&b, buffer_length(&b));
    gzip_into(&b, text, 1 << 20);
    check("gzip truncated", exchange(8, "gzip", "text/plain", buffer_peek(&b),
                                     buffer_length(&b) / 2, buffer_length(&b)));

    /* zstd, and two codings stacked. */
    buffer_consume(&b, buffer_length(&b));
    zstd_into(&b, text, 2 << 20);
    check("zstd text", exchange(9, "zstd", "text/html", buffer_peek(&b), buffer_length(&b), 0));
    buffer_consume(&b, buffer_length(&b));
    gzip_into(&b, text, 300000);
    check("gzip, gzip", gzip_exchange(10, "gzip, gzip", buffer_peek(&b), buffer_length(&b)));
    free(text);

    bin = make_binary(100000);
    check("br corrupt", exchange(11, "br", "text/css", bin, 100000, 0));
    check("unknown coding", exchange(12, "compress", "text/plain", bin, 70001, 0));
    check("empty gzip", exchange(13, "gzip", "text/plain", "", 0, 0));

    /* A WebSocket flow: text, binary, a long text, bad UTF-8, a ping. */
    rec_begin(14, 101, FLOW_F_TUNNEL | FLOW_F_WEBSOCKET);
    rec_str(FLOW_PART_CLIENT, "127.0.0.1:40003");
    rec_str(FLOW_PART_REQ_IN, "GET http://example.test/ws HTTP/1.1\r\nHost: example.test\r\n"
                              "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    rec_str(FLOW_PART_RES_OUT, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\n\r\n");
    ws_message(1, 1, "hello \"there\"", 13);
    ws_message(0, 2, bin, 1000);
    text = make_text(300001);
    ws_message(0, 1, text, 300001);
    free(text);
    ws_message(1, 1, "bad \xc3 utf-8", 11);
    ws_message(1, 9, "ping", 4);
    ws_message(0, 2, bin + 5, 99995);
    check("websocket", rec_end(0, 0));
    free(bin);

    /* A CONNECT that failed: a URL made up, and the error as a comment. */
    rec_begin(15, 502, FLOW_F_TUNNEL);
    rec_str(FLOW_PART_CLIENT, "127.0.0.1:40004");
    rec_str(FLOW_PART_REQ_IN,
            "CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n");
    rec_str(FLOW_PART_RES_OUT, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 9\r\n\r\nrefused\r\n");
    rec_str(FLOW_PART_ERROR, "connect: connection refused");
    check("connect error", rec_end(0, 9));

    is_int(case_number, sizeof expected / sizeof expected[0], "every case checked");
    /* A step writes a head part, or one slice of a body: at most 6 bytes
     * for each byte looked at ("\u00XX"), and a head's fields. */
    ok(most_per_step <= 6 * HAR_SLICE + 64 * 1024, "no step wrote more than a slice's worth (%zu)",
       most_per_step);
    ok(more_steps_than_slices && steps_checked == case_number,
       "bodies were written in a step per slice at least");
    buffer_free(&b);
    buffer_free(&rec);
    return tap_done();
}
