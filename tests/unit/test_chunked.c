/*
 * test_chunked.c - unit tests for the streaming chunked decoder.
 *
 * The driver plays the relay: it keeps the bytes the decoder did not
 * consume, appends the next piece of input, and calls again. Every call sees
 * a guarded copy of the pending bytes, so a read past them faults. Each body
 * is fed whole, one byte at a time and in odd-sized pieces; all three must
 * give the same data, trailers and verdict.
 */
#include <stdint.h>
#include <stdlib.h>

#include "chunked.h"
#include "tap.h"

#define MAX_INPUT 65536

static void release(const char *p, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t span = (len + page - 1) / page * page + page;
    uintptr_t end = (uintptr_t)p + len + page;
    munmap((void *)(end - span), span);
}

struct run {
    enum chunked_result result; /* DONE, ERROR, or NEED_MORE if input ran out */
    enum http_error err;
    char data[MAX_INPUT];
    size_t data_len;
    char trailers[MAX_INPUT];
    size_t trailers_len;
    size_t consumed; /* bytes of the input consumed in total */
    size_t spans;    /* DATA results */
    int views_ok;    /* every span lay within the consumed bytes */
};

static void run_decoder(const char *in, size_t len, size_t step, struct run *r)
{
    static char pending[MAX_INPUT];
    struct chunked_decoder d;
    size_t have = 0, fed = 0;

    chunked_init(&d);
    r->result = CHUNKED_RESULT_NEED_MORE;
    r->err = HTTP_ERR_NONE;
    r->data_len = r->trailers_len = r->consumed = r->spans = 0;
    r->views_ok = 1;

    for (;;) {
        size_t n = len - fed < step ? len - fed : step;
        memcpy(pending + have, in + fed, n);
        have += n;
        fed += n;

        for (;;) {
            const char *copy = guarded_copy(pending, have);
            size_t consumed = 12345, data_len = 12345;
            const char *data = copy;
            enum http_error err = HTTP_ERR_VERSION;
            enum chunked_result res = chunked_decode(&d, copy, have, &consumed, &data,
                                                     &data_len, &err);
            if (consumed > have)
                r->views_ok = 0;
            if (res == CHUNKED_RESULT_DATA || res == CHUNKED_RESULT_DONE) {
                if (data == NULL || data < copy || data + data_len > copy + consumed ||
                    (res == CHUNKED_RESULT_DATA && data_len == 0))
                    r->views_ok = 0;
                else if (res == CHUNKED_RESULT_DATA) {
                    memcpy(r->data + r->data_len, data, data_len);
                    r->data_len += data_len;
                    r->spans++;
                } else {
                    memcpy(r->trailers, data, data_len);
                    r->trailers_len = data_len;
                }
            }
            if (res != CHUNKED_RESULT_ERROR && err != HTTP_ERR_NONE)
                r->views_ok = 0;
            release(copy, have);
            if (consumed <= have) {
                memmove(pending, pending + consumed, have - consumed);
                have -= consumed;
                r->consumed += consumed;
            }
            if (res == CHUNKED_RESULT_DATA)
                continue;
            if (res == CHUNKED_RESULT_DONE || res == CHUNKED_RESULT_ERROR) {
                r->result = res;
                r->err = err;
                return;
            }
            break;
        }
        if (fed == len)
            return;
    }
}

static struct run whole, piece;

static int same_run(const struct run *a, const struct run *b)
{
    return a->result == b->result && a->err == b->err && a->data_len == b->data_len &&
           memcmp(a->data, b->data, a->data_len) == 0 && a->trailers_len == b->trailers_len &&
           memcmp(a->trailers, b->trailers, a->trailers_len) == 0 &&
           (a->result == CHUNKED_RESULT_ERROR || a->consumed == b->consumed) && b->views_ok;
}

/* Decodes <in> whole and in pieces of 1, 2, 3 and 7 (or 97 and 1000 for long
 * inputs); checks they agree. Leaves the whole run in <whole>. */
static void decode_every_way(const char *in, size_t len, const char *name)
{
    static const size_t small_steps[] = {1, 2, 3, 7};
    static const size_t large_steps[] = {97, 1000};
    const size_t *steps = len < 2000 ? small_steps : large_steps;
    size_t nsteps = len < 2000 ? 4 : 2;

    run_decoder(in, len, len ? len : 1, &whole);
    ok(whole.views_ok, "%s: views within consumed bytes", name);
    int agree = 1;
    for (size_t i = 0; i < nsteps; i++) {
        run_decoder(in, len, steps[i], &piece);
        if (!same_run(&whole, &piece)) {
            printf("#   step %zu: result %d err %d data %zu trailers %zu consumed %zu\n",
                   steps[i], (int)piece.result, (int)piece.err, piece.data_len,
                   piece.trailers_len, piece.consumed);
            agree = 0;
        }
    }
    ok(agree, "%s: same result in any split", name);
}

#define T(text) text, sizeof(text) - 1

struct accept_case {
    const char *in;
    size_t len;
    const char *data;
    size_t data_len;
    const char *trailers;
    size_t rest; /* bytes after the body, left unconsumed */
    const char *name;
};

static const struct accept_case accepts[] = {
    {T("5\r\nhello\r\n0\r\n\r\n"), T("hello"), "", 0, "one chunk"},
    {T("0\r\n\r\n"), T(""), "", 0, "empty body"},
    {T("A\r\n0123456789\r\na\r\nabcdefghij\r\n1F\r\n0123456789012345678901234567890\r\n"
       "0\r\n\r\n"),
     T("0123456789abcdefghij0123456789012345678901234567890"), "", 0, "hex sizes in any case"},
    {T("0005\r\nhello\r\n000\r\n\r\n"), T("hello"), "", 0, "leading zeros"},
    {T("0000000000000005\r\nhello\r\n0000000000000000\r\n\r\n"), T("hello"), "", 0,
     "16 hex digits"},
    {T("4\r\n\r\n\r\n\r\n0\r\n\r\n"), T("\r\n\r\n"), "", 0, "CRLF inside chunk data"},
    {T("3\r\n\x00\xff\x7f\r\n0\r\n\r\n"), T("\x00\xff\x7f"), "", 0, "binary chunk data"},
    {T("5;name=value\r\nhello\r\n0\r\n\r\n"), T("hello"), "", 0, "extension with a value"},
    {T("5;a\r\nhello\r\n0;last\r\n\r\n"), T("hello"), "", 0, "extensions without values"},
    {T("5 ; a = b ;\tc\t=\td ;e\r\nhello\r\n0\r\n\r\n"), T("hello"), "", 0,
     "BWS around ';' and '='"},
    {T("1 ;ext\r\nx\r\n0\r\n\r\n"), T("x"), "", 0, "\"1 ;ext\" (BWS before ';')"},
    {T("5;a=\"q\\\"uo;ted, x\"\r\nhello\r\n0\r\n\r\n"), T("hello"), "", 0,
     "quoted-string extension with escapes"},
    {T("5;a=\"\"\r\nhello\r\n0\r\n\r\n"), T("hello"), "", 0, "empty quoted-string"},
    {T("5;a=\"caf\xc3\xa9\\\t\"\r\nhello\r\n0\r\n\r\n"), T("hello"), "", 0,
     "obs-text and escaped HTAB in a quoted-string"},
    {T("5;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~\r\nhello\r\n0\r\n\r\n"), T("hello"), "", 0,
     "every tchar in an extension"},
    {T("5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\n\r\n"), T("hello"), "X-Sum: abc\r\nY:\r\n", 0,
     "trailers"},
    {T("0\r\nExpires:  Wed, 21 Oct 2015 07:28:00 GMT \r\n\r\n"), T(""),
     "Expires:  Wed, 21 Oct 2015 07:28:00 GMT \r\n", 0, "trailer kept as sent"},
    {T("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n"), T("hello"), "", 18,
     "bytes after the body are left"},
    {T("2\r\nhi\r\n0\r\n\r\n0\r\n\r\n"), T("hi"), "", 5, "a second body is not read"},
};

static void test_accepts(void)
{
    for (size_t i = 0; i < sizeof(accepts) / sizeof(accepts[0]); i++) {
        const struct accept_case *c = &accepts[i];
        decode_every_way(c->in, c->len, c->name);
        is_int(whole.result, CHUNKED_RESULT_DONE, c->name);
        ok(whole.data_len == c->data_len && memcmp(whole.data, c->data, c->data_len) == 0,
           "%s: data", c->name);
        is_str(whole.trailers, whole.trailers_len, c->trailers, "trailers");
        is_int(whole.consumed, c->len - c->rest, "consumed up to the body's end");
    }
}

struct reject_case {
    const char *in;
    size_t len;
    enum http_error err;
    const char *name;
};

static const struct reject_case rejects[] = {
    {T("fffffffffffffffff\r\n"), HTTP_ERR_CHUNK_SIZE, "17 hex digits"},
    {T("00000000000000005\r\n"), HTTP_ERR_CHUNK_SIZE, "17 digits of which 16 zeros"},
    {T("ffffffffffffffff\r\n"), HTTP_ERR_CHUNK_SIZE, "16 digits above the maximum"},
    {T("4000000000000001\r\n"), HTTP_ERR_CHUNK_SIZE, "HTTP_MAX_BODY_LENGTH + 1"},
    {T("10000000000000000\r\n"), HTTP_ERR_CHUNK_SIZE, "2^64 (wraps to 0)"},
    {T("0x10\r\n"), HTTP_ERR_CHUNK_SIZE, "0x prefix"},
    {T("+5\r\nhello\r\n"), HTTP_ERR_CHUNK_SIZE, "plus sign"},
    {T("-5\r\nhello\r\n"), HTTP_ERR_CHUNK_SIZE, "minus sign"},
    {T("\r\n"), HTTP_ERR_CHUNK_SIZE, "empty size line"},
    {T(" 5\r\nhello\r\n"), HTTP_ERR_CHUNK_SIZE, "space before the size"},
    {T("\t5\r\nhello\r\n"), HTTP_ERR_CHUNK_SIZE, "tab before the size"},
    {T("5x\r\nhello\r\n"), HTTP_ERR_CHUNK_SIZE, "junk after the size"},
    {T("g\r\n"), HTTP_ERR_CHUNK_SIZE, "non-hex size"},
    {T("5\x00\r\nhello\r\n"), HTTP_ERR_CHUNK_SIZE, "NUL after the size"},
    {T("\x00"), HTTP_ERR_CHUNK_SIZE, "NUL instead of a size"},
    {T(";a\r\n"), HTTP_ERR_CHUNK_SIZE, "extension without a size"},
    {T("5,5\r\n"), HTTP_ERR_CHUNK_SIZE, "comma in the size"},
    {T("5\nhello\r\n0\r\n\r\n"), HTTP_ERR_CHUNK_FRAMING, "bare LF after the size"},
    {T("5\rhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "bare CR after the size"},
    {T("5 \r\nhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "space before CRLF"},
    {T("5\t\r\nhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "tab before CRLF"},
    {T("5 5\r\nhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "two sizes"},
    {T("5;\r\nhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "empty extension"},
    {T("5;;a\r\nhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "';;'"},
    {T("5;=x\r\nhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "extension without a name"},
    {T("5;a=\r\nhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "'=' without a value"},
    {T("5;a==b\r\nhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "'=='"},
    {T("5;a b\r\nhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "space inside an extension"},
    {T("5;a=b c\r\nhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "space inside an extension value"},
    {T("5;a \r\nhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "space after an extension"},
    {T("5;a=b \r\nhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "space after an extension value"},
    {T("5;a\x00\r\nhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "NUL in an extension"},
    {T("5;a\nhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "bare LF after an extension"},
    {T("5;a=(b)\r\nhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "non-token extension value"},
    {T("5;a=\"x\r\nhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "unterminated quoted-string"},
    {T("5;a=\"x\x00\"\r\nhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "NUL in a quoted-string"},
    {T("5;a=\"x\\\x01\"\r\nhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "escaped control byte"},
    {T("5;a=\"x\"y\r\nhello\r\n"), HTTP_ERR_CHUNK_FRAMING, "junk after a quoted-string"},
    {T("5\r\nhelloX\r\n0\r\n\r\n"), HTTP_ERR_CHUNK_FRAMING, "data longer than the size"},
    {T("5\r\nhello\n0\r\n\r\n"), HTTP_ERR_CHUNK_FRAMING, "bare LF after the data"},
    {T("5\r\nhello\r0\r\n\r\n"), HTTP_ERR_CHUNK_FRAMING, "bare CR after the data"},
    {T("5\r\nhello0\r\n\r\n"), HTTP_ERR_CHUNK_FRAMING, "no CRLF after the data"},
    {T("5\r\nhel\r\n0\r\n\r\n"), HTTP_ERR_CHUNK_FRAMING, "data shorter than the size"},
    {T("0\r\nX: a\r\n b\r\n\r\n"), HTTP_ERR_TRAILER, "obs-fold in a trailer"},
    {T("0\r\n X: a\r\n\r\n"), HTTP_ERR_TRAILER, "trailer starting with a space"},
    {T("0\r\nX : a\r\n\r\n"), HTTP_ERR_TRAILER, "space before a trailer's colon"},
    {T("0\r\nX: a\x00\r\n\r\n"), HTTP_ERR_TRAILER, "NUL in a trailer value"},
    {T("0\r\nX: a\x7f\r\n\r\n"), HTTP_ERR_TRAILER, "DEL in a trailer value"},
    {T("0\r\nX: a\n\r\n"), HTTP_ERR_TRAILER, "bare LF after a trailer"},
    {T("0\r\nX: a\rb\r\n\r\n"), HTTP_ERR_TRAILER, "bare CR in a trailer"},
    {T("0\r\n\n"), HTTP_ERR_TRAILER, "bare LF as the final line"},
    {T("0\r\n\r\r\n"), HTTP_ERR_TRAILER, "CR CR LF as the final line"},
    {T("0\r\nnocolon\r\n\r\n"), HTTP_ERR_TRAILER, "trailer without a colon"},
    {T("0\r\n: a\r\n\r\n"), HTTP_ERR_TRAILER, "trailer without a name"},
    {T("0\r\nhello\r\n"), HTTP_ERR_TRAILER, "data after the last chunk"},
};

static void test_rejects(void)
{
    for (size_t i = 0; i < sizeof(rejects) / sizeof(rejects[0]); i++) {
        const struct reject_case *c = &rejects[i];
        decode_every_way(c->in, c->len, c->name);
        if (!ok(whole.result == CHUNKED_RESULT_ERROR && whole.err == c->err, "reject: %s",
                c->name))
            printf("#   got result %d err %d (%s)\n", (int)whole.result, (int)whole.err,
                   http_error_text(whole.err));
    }
}

/* An error is detected as soon as the bytes break a rule, without waiting
 * for the line to end. */
static void test_early_errors(void)
{
    static const struct reject_case early[] = {
        {T("fffffffffffffffff"), HTTP_ERR_CHUNK_SIZE, "17th digit"},
        {T("5x"), HTTP_ERR_CHUNK_SIZE, "junk after the size"},
        {T("5;a\x01"), HTTP_ERR_CHUNK_FRAMING, "control byte in an extension"},
        {T("5\r\nhelloXY"), HTTP_ERR_CHUNK_FRAMING, "missing CRLF after the data"},
        {T("0\r\nX : "), HTTP_ERR_TRAILER, "space before a trailer's colon"},
    };
    for (size_t i = 0; i < sizeof(early) / sizeof(early[0]); i++) {
        run_decoder(early[i].in, early[i].len, early[i].len, &whole);
        ok(whole.result == CHUNKED_RESULT_ERROR && whole.err == early[i].err,
           "early reject: %s", early[i].name);
    }
}

/* Step by step through one body, checking what each call consumes. */
static void test_consumed(void)
{
    struct chunked_decoder d;
    size_t consumed, data_len;
    const char *data;
    enum http_error err;
    enum chunked_result res;
    const char *in;

    chunked_init(&d);
    in = guarded_copy("5\r", 2);
    res = chunked_decode(&d, in, 2, &consumed, &data, &data_len, &err);
    ok(res == CHUNKED_RESULT_NEED_MORE && consumed == 0, "partial size line: nothing consumed");
    ok(data == NULL && data_len == 0, "NEED_MORE reports no data");

    in = guarded_copy("5\r\n", 3);
    res = chunked_decode(&d, in, 3, &consumed, &data, &data_len, &err);
    ok(res == CHUNKED_RESULT_NEED_MORE && consumed == 3, "size line alone is consumed");
    is_int(d.state, CHUNKED_DATA, "state: data");
    is_int(d.remaining, 5, "remaining: 5");

    in = guarded_copy("hel", 3);
    res = chunked_decode(&d, in, 3, &consumed, &data, &data_len, &err);
    ok(res == CHUNKED_RESULT_DATA && consumed == 3 && data == in && data_len == 3,
       "a span shorter than the chunk");
    is_int(d.remaining, 2, "remaining: 2");

    in = guarded_copy("lo\r", 3);
    res = chunked_decode(&d, in, 3, &consumed, &data, &data_len, &err);
    ok(res == CHUNKED_RESULT_DATA && consumed == 2 && data_len == 2, "the rest of the chunk");
    is_int(d.state, CHUNKED_DATA_CRLF, "state: CRLF after data");

    in = guarded_copy("\r", 1);
    res = chunked_decode(&d, in, 1, &consumed, &data, &data_len, &err);
    ok(res == CHUNKED_RESULT_NEED_MORE && consumed == 0, "CR alone: nothing consumed");

    in = guarded_copy("\r\n0\r\n", 5);
    res = chunked_decode(&d, in, 5, &consumed, &data, &data_len, &err);
    ok(res == CHUNKED_RESULT_NEED_MORE && consumed == 5, "CRLF and last-chunk line consumed");
    is_int(d.state, CHUNKED_TRAILERS, "state: trailers");

    in = guarded_copy("A: b\r\n", 6);
    res = chunked_decode(&d, in, 6, &consumed, &data, &data_len, &err);
    ok(res == CHUNKED_RESULT_NEED_MORE && consumed == 0, "trailer section kept until complete");

    in = guarded_copy("A: b\r\n\r\nNEXT", 12);
    res = chunked_decode(&d, in, 12, &consumed, &data, &data_len, &err);
    ok(res == CHUNKED_RESULT_DONE && consumed == 8, "DONE consumes the trailer section");
    is_str(data, data_len, "A: b\r\n", "trailers without the final CRLF");
    is_int(d.state, CHUNKED_FINISHED, "state: finished");

    in = guarded_copy("NEXT", 4);
    res = chunked_decode(&d, in, 4, &consumed, &data, &data_len, &err);
    ok(res == CHUNKED_RESULT_DONE && consumed == 0 && data_len == 0,
       "after the end: DONE, nothing consumed");

    /* an error sticks */
    chunked_init(&d);
    in = guarded_copy("zz", 2);
    res = chunked_decode(&d, in, 2, &consumed, &data, &data_len, &err);
    ok(res == CHUNKED_RESULT_ERROR && err == HTTP_ERR_CHUNK_SIZE, "bad size fails");
    is_int(d.state, CHUNKED_FAILED, "state: failed");
    in = guarded_copy("5\r\nhello\r\n", 10);
    res = chunked_decode(&d, in, 10, &consumed, &data, &data_len, &err);
    ok(res == CHUNKED_RESULT_ERROR && err != HTTP_ERR_NONE, "a failed decoder stays failed");

    /* the largest chunk size is accepted and counted down exactly */
    chunked_init(&d);
    in = guarded_copy("4000000000000000\r\nabc", 21);
    res = chunked_decode(&d, in, 21, &consumed, &data, &data_len, &err);
    ok(res == CHUNKED_RESULT_DATA && consumed == 21 && data_len == 3,
       "size HTTP_MAX_BODY_LENGTH accepted");
    ok(d.remaining == HTTP_MAX_BODY_LENGTH - 3, "remaining counts down from 2^62");

    /* zero-length input */
    chunked_init(&d);
    in = guarded_copy("", 0);
    res = chunked_decode(&d, in, 0, &consumed, &data, &data_len, &err);
    ok(res == CHUNKED_RESULT_NEED_MORE && consumed == 0, "empty input: need more");
    res = chunked_decode(&d, NULL, 0, &consumed, &data, &data_len, &err);
    ok(res == CHUNKED_RESULT_NEED_MORE && consumed == 0, "NULL input of length 0: need more");
}

/* One size line of <len> bytes (with its CRLF), made long by an extension:
 * "1;" "aaaa..." "\r\n". */
static size_t long_size_line(char *out, size_t len)
{
    out[0] = '1';
    out[1] = ';';
    memset(out + 2, 'a', len - 4);
    memcpy(out + len - 2, "\r\n", 2);
    memcpy(out + len, "x\r\n0\r\n\r\n", 8);
    return len + 8;
}

/* A trailer section of <len> bytes including its final CRLF, after "0\r\n". */
static size_t long_trailers(char *out, size_t len)
{
    memcpy(out, "0\r\nX: ", 6);
    memset(out + 6, 'v', len - 7);
    memcpy(out + 3 + len - 4, "\r\n\r\n", 4);
    return 3 + len;
}

static void test_limits(void)
{
    static char buf[MAX_INPUT];
    size_t n;

    n = long_size_line(buf, CHUNKED_MAX_LINE);
    decode_every_way(buf, n, "size line of CHUNKED_MAX_LINE bytes");
    ok(whole.result == CHUNKED_RESULT_DONE && whole.data_len == 1, "... accepted");

    n = long_size_line(buf, CHUNKED_MAX_LINE + 1);
    decode_every_way(buf, n, "size line one byte too long");
    ok(whole.result == CHUNKED_RESULT_ERROR && whole.err == HTTP_ERR_CHUNK_SIZE, "... refused");

    memset(buf, 'a', 20000);
    memcpy(buf, "1;", 2);
    decode_every_way(buf, 20000, "endless extension");
    ok(whole.result == CHUNKED_RESULT_ERROR && whole.err == HTTP_ERR_CHUNK_SIZE,
       "... refused without a line end");

    memset(buf, ' ', 20000);
    memcpy(buf, "1", 1);
    decode_every_way(buf, 20000, "endless whitespace after the size");
    ok(whole.result == CHUNKED_RESULT_ERROR && whole.err == HTTP_ERR_CHUNK_SIZE,
       "... refused without a line end");

    memset(buf, '0', 20000);
    decode_every_way(buf, 20000, "endless zeros");
    ok(whole.result == CHUNKED_RESULT_ERROR && whole.err == HTTP_ERR_CHUNK_SIZE,
       "... refused at the 17th digit");

    n = long_trailers(buf, CHUNKED_MAX_TRAILER);
    decode_every_way(buf, n, "trailer section of CHUNKED_MAX_TRAILER bytes");
    ok(whole.result == CHUNKED_RESULT_DONE && whole.trailers_len == CHUNKED_MAX_TRAILER - 2,
       "... accepted");

    n = long_trailers(buf, CHUNKED_MAX_TRAILER + 1);
    decode_every_way(buf, n, "trailer section one byte too long");
    ok(whole.result == CHUNKED_RESULT_ERROR && whole.err == HTTP_ERR_TRAILER, "... refused");

    n = 3;
    memcpy(buf, "0\r\n", 3);
    while (n + 8 < 40000) {
        memcpy(buf + n, "A: b\r\n", 6);
        n += 6;
    }
    decode_every_way(buf, n, "endless trailer fields");
    ok(whole.result == CHUNKED_RESULT_ERROR && whole.err == HTTP_ERR_TRAILER,
       "... refused without an end");
}

/* Many chunks of every size from 1 to 300, fed in pieces. */
static void test_many_chunks(void)
{
    static char in[MAX_INPUT];
    static char want[MAX_INPUT];
    size_t n = 0, w = 0;
    for (int size = 1; size <= 300; size += 7) {
        if (size % 2)
            n += (size_t)snprintf(in + n, sizeof(in) - n, "%x\r\n", size);
        else
            n += (size_t)snprintf(in + n, sizeof(in) - n, "%X;i=%d\r\n", size, size);
        for (int k = 0; k < size; k++) {
            in[n++] = (char)(k * 31 + size);
            want[w++] = (char)(k * 31 + size);
        }
        memcpy(in + n, "\r\n", 2);
        n += 2;
    }
    memcpy(in + n, "0\r\nDigest: x\r\n\r\n", 17);
    n += 17;
    decode_every_way(in, n, "43 chunks of growing size");
    ok(whole.result == CHUNKED_RESULT_DONE && whole.data_len == w &&
           memcmp(whole.data, want, w) == 0,
       "all chunk data decoded in order");
    is_str(whole.trailers, whole.trailers_len, "Digest: x\r\n", "trailer after many chunks");

    run_decoder(in, n, 1, &piece);
    ok(piece.spans == w, "one byte at a time: one span per data byte (%zu)", piece.spans);
}

/* The trailer fields passed on: none that framing, routing, credentials,
 * caching or content processing depend on; any case; whole names only. */
static void test_trailer_allowed(void)
{
    static const char *const dropped[] = {
        "Content-Length", "content-length", "TRANSFER-ENCODING", "Trailer", "TE", "Connection",
        "Keep-Alive", "Proxy-Connection", "Upgrade", "Host", "hOsT", "Cache-Control", "Expect",
        "Max-Forwards", "Pragma", "Range", "If-Match", "if-none-match", "If-Modified-Since",
        "If-Unmodified-Since", "If-Range", "If-", "Authorization", "Proxy-Authorization",
        "WWW-Authenticate", "Proxy-Authenticate", "Authentication-Info",
        "Proxy-Authentication-Info", "Cookie", "Set-Cookie", "Age", "Date", "Expires",
        "Location", "Retry-After", "Vary", "Warning", "Content-Encoding", "Content-Type",
        "Content-Range", "Content-Location", "Content-Disposition",
    };
    static const char *const kept[] = {
        "X-Checksum", "Server-Timing", "Content-Digest", "Digest", "grpc-status", "ETag",
        "Hostname", "X-Host", "Content-Lengthy", "Content-Lengt", "Dates", "If", "Iff-X",
        "Content-Language", "Via",
    };
    for (size_t i = 0; i < sizeof dropped / sizeof dropped[0]; i++)
        ok(!chunked_trailer_allowed(dropped[i], strlen(dropped[i])), "trailer %s is dropped",
           dropped[i]);
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        ok(chunked_trailer_allowed(kept[i], strlen(kept[i])), "trailer %s is kept", kept[i]);
    /* A view, not a string: the length decides, not a NUL. */
    ok(!chunked_trailer_allowed("Host: x", 4), "a name given as a view of a line");
    ok(chunked_trailer_allowed("Hos", 3), "a prefix of a dropped name is kept");
}

int main(void)
{
    test_trailer_allowed();
    test_accepts();
    test_rejects();
    test_early_errors();
    test_consumed();
    test_limits();
    test_many_chunks();
    return tap_done();
}
