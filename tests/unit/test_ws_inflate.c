/*
 * test_ws_inflate.c - unit tests for permessage-deflate decoding.
 *
 * RFC 7692's examples (7.2.3); a long text compressed by zlib over several
 * messages with the context taken over, decoded whole and in small
 * budgets alike; a message cut at the capture's budget (its beginning
 * decodes, the next cannot); corrupt data; a bomb past the cap. Each
 * message is read from right before an unreadable page.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "tap.h"
#include "ws_inflate.h"

/* Decodes one message of <len> bytes through <w>, <budget> at a time;
 * the result, with the text in <out> (emptied first). */
static enum ws_inflate_result decode(struct ws_inflate *w, const char *data, size_t len,
                                     int whole, size_t budget, struct buffer *out)
{
    struct ws_inflate_msg m;
    enum ws_inflate_result r;
    buffer_consume(out, buffer_length(out));
    /* Right before an unreadable page: a read past the message faults. */
    ws_inflate_msg_init(&m, guarded_copy(data, len), len, whole);
    while ((r = ws_inflate_run(w, &m, out, budget)) == WS_INFLATE_MORE)
        ;
    return r;
}

static int text_is(const struct buffer *b, const char *s, size_t len)
{
    return buffer_length(b) == len && memcmp(buffer_peek(b), s, len) == 0;
}

/* <n> messages of <text> (<part> bytes each), compressed as a sender with
 * context takeover does: a sync flush each, its last 4 bytes left off. */
static size_t compress_messages(const char *text, size_t part, size_t n, char **msg, size_t *len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    for (size_t i = 0; i < n; i++) {
        size_t room = part + 1024;
        msg[i] = malloc(room);
        z.next_in = (unsigned char *)(uintptr_t)(text + i * part);
        z.avail_in = (uInt)part;
        z.next_out = (unsigned char *)msg[i];
        z.avail_out = (uInt)room;
        deflate(&z, Z_SYNC_FLUSH);
        len[i] = room - z.avail_out - 4; /* the 00 00 ff ff */
    }
    deflateEnd(&z);
    return n;
}

int main(void)
{
    struct buffer out;
    buffer_init(&out);

    /* RFC 7692 7.2.3.1, 7.2.3.2 (context taken over), 7.2.3.4 (BFINAL),
     * then a new stream after the one BFINAL ended. */
    {
        static const char hello[] = "\xf2\x48\xcd\xc9\xc9\x07\x00";
        static const char again[] = "\xf2\x00\x11\x00\x00";
        static const char final[] = "\xf3\x48\xcd\xc9\xc9\x07\x00";
        struct ws_inflate w = {0};
        ok(decode(&w, hello, 7, 1, SIZE_MAX, &out) == WS_INFLATE_DONE && text_is(&out, "Hello", 5),
           "RFC 7692 7.2.3.1: Hello");
        ok(decode(&w, again, 5, 1, SIZE_MAX, &out) == WS_INFLATE_DONE && text_is(&out, "Hello", 5),
           "7.2.3.2: Hello again, from the first one's context");
        ok(decode(&w, final, 7, 1, SIZE_MAX, &out) == WS_INFLATE_DONE && text_is(&out, "Hello", 5),
           "7.2.3.4: a block with BFINAL set");
        ok(decode(&w, hello, 7, 1, SIZE_MAX, &out) == WS_INFLATE_DONE && text_is(&out, "Hello", 5),
           "after a stream's end, the next message starts a new one");
        ok(decode(&w, "", 0, 1, SIZE_MAX, &out) == WS_INFLATE_DONE && buffer_length(&out) == 0,
           "an empty message is empty text");
        ws_inflate_free(&w);
    }

    /* A long text over three messages, whole and in budgets of 1000. */
    {
        enum { PART = 100000, N = 3 };
        char *text = malloc(PART * N), *msg[N];
        size_t len[N];
        uint32_t x = 12345;
        for (size_t i = 0; i < PART * N; i++) {
            x = x * 1103515245u + 12345u;
            text[i] = "abcdefgh ijklm\n"[(x >> 16) % 15];
        }
        compress_messages(text, PART, N, msg, len);
        int whole = 1, sliced = 1;
        struct ws_inflate w1 = {0}, w2 = {0};
        for (size_t i = 0; i < N; i++) {
            whole &= decode(&w1, msg[i], len[i], 1, SIZE_MAX, &out) == WS_INFLATE_DONE &&
                     text_is(&out, text + i * PART, PART);
            sliced &= decode(&w2, msg[i], len[i], 1, 1000, &out) == WS_INFLATE_DONE &&
                      text_is(&out, text + i * PART, PART);
        }
        ok(whole, "three messages with the context taken over decode whole");
        ok(sliced, "... and in slices of about 1000 bytes");
        ws_inflate_free(&w1);
        ws_inflate_free(&w2);

        /* The first message cut in half: its beginning, then nothing. */
        struct ws_inflate w = {0};
        enum ws_inflate_result r = decode(&w, msg[0], len[0] / 2, 0, SIZE_MAX, &out);
        ok(r == WS_INFLATE_DONE && buffer_length(&out) > 0 && buffer_length(&out) < PART &&
               memcmp(buffer_peek(&out), text, buffer_length(&out)) == 0,
           "a message cut at the budget decodes to a beginning of its text (%zu bytes)",
           buffer_length(&out));
        r = decode(&w, msg[1], len[1], 1, SIZE_MAX, &out);
        ok(r == WS_INFLATE_FAILED && w.why && strstr(w.why, "cut"),
           "the message after it is not decoded: %s", w.why ? w.why : "(no reason)");
        ws_inflate_free(&w);
        for (size_t i = 0; i < N; i++)
            free(msg[i]);
        free(text);
    }

    /* Corrupt: said so, and the next message of the direction too. */
    {
        struct ws_inflate w = {0};
        ok(decode(&w, "\xff\xff\xff", 3, 1, SIZE_MAX, &out) == WS_INFLATE_FAILED && w.why &&
               strcmp(w.why, "corrupt compressed message") == 0,
           "corrupt data is refused");
        ok(decode(&w, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7, 1, SIZE_MAX, &out) == WS_INFLATE_FAILED,
           "and so is what follows it");
        ws_inflate_free(&w);
    }

    /* A bomb: 64 MiB of zeros in a message of some 64 KiB. */
    {
        size_t big = (size_t)64 << 20;
        char *zeros = calloc(1, big), *msg[1];
        size_t len[1];
        compress_messages(zeros, big, 1, msg, len);
        struct ws_inflate w = {0};
        enum ws_inflate_result r = decode(&w, msg[0], len[0], 1, SIZE_MAX, &out);
        ok(r == WS_INFLATE_FAILED && w.why && strstr(w.why, "expands too far") &&
               buffer_length(&out) <= WS_INFLATE_MAX + 65536,
           "a bomb stops near the cap (%zu bytes made)", buffer_length(&out));
        ws_inflate_free(&w);
        free(msg[0]);
        free(zeros);
    }
    buffer_free(&out);
    return tap_done();
}
