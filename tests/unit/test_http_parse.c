/*
 * test_http_parse.c - unit tests for the strict HTTP/1.x head parser and the
 * framing rules. Every input is parsed from a guarded copy, so a read past
 * the end faults; every input is also parsed in all its prefixes, which must
 * give "incomplete" or the same answer as the whole.
 */
#include <stdint.h>

#include "http_parse.h"
#include "url.h"
#include "tap.h"

typedef ssize_t (*parse_fn)(const char *, size_t, struct http_head *, enum http_error *);

static struct http_head head; /* large: kept out of the stack */

/* Unmaps a guarded_copy() of <len> bytes at <p>, so that tests parsing
 * thousands of prefixes do not run out of mappings. */
static void release(const char *p, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t span = (len + page - 1) / page * page + page;
    uintptr_t end = (uintptr_t)p + len + page;
    munmap((void *)(end - span), span);
}

/* Parses <s>[0, <len>) from a guarded copy that stays mapped (the head's
 * views point into it). */
static ssize_t parse_whole(parse_fn fn, const char *s, size_t len, enum http_error *err)
{
    const char *copy = guarded_copy(s, len);
    return fn(copy, len, &head, err);
}

/* <prefix>, <len> bytes of <middle> and <suffix>, written into <out>;
 * their length. Builds the heads the byte-at-every-offset tests parse. */
static size_t join3(char *out, const char *prefix, const char *middle, size_t len,
                    const char *suffix)
{
    size_t n = strlen(prefix), m = strlen(suffix);
    memcpy(out, prefix, n);
    memcpy(out + n, middle, len);
    memcpy(out + n + len, suffix, m);
    return n + len + m;
}

/* Every proper prefix of <s> gives -2, or -1 with <want> (and once -1,
 * every longer prefix too). With want == HTTP_ERR_NONE only -2 is allowed. */
static int prefixes_consistent(parse_fn fn, const char *s, size_t len, enum http_error want)
{
    static struct http_head scratch;
    int failed_before = 0;
    for (size_t n = 0; n < len; n++) {
        enum http_error err = HTTP_ERR_NONE;
        const char *copy = guarded_copy(s, n);
        ssize_t r = fn(copy, n, &scratch, &err);
        release(copy, n);
        if (r == -2 && !failed_before)
            continue;
        if (r == -1 && want != HTTP_ERR_NONE && err == want) {
            failed_before = 1;
            continue;
        }
        printf("#   prefix %zu: got %zd err %d\n", n, r, (int)err);
        return 0;
    }
    return 1;
}

#define T(text) text, sizeof(text) - 1

struct reject {
    const char *text;
    size_t len;
    enum http_error err;
    const char *name;
};

static void expect_reject(parse_fn fn, const struct reject *c)
{
    enum http_error err = HTTP_ERR_NONE;
    ssize_t r = parse_whole(fn, c->text, c->len, &err);
    if (!ok(r == -1 && err == c->err, "reject: %s", c->name))
        printf("#   got %zd err %d (%s), want err %d\n", r, (int)err, http_error_text(err),
               (int)c->err);
    ok(prefixes_consistent(fn, c->text, c->len, c->err), "reject in any split: %s", c->name);
}

static void expect_accept(parse_fn fn, const char *s, size_t len, size_t head_len,
                          const char *name)
{
    enum http_error err = HTTP_ERR_NONE;
    ssize_t r = parse_whole(fn, s, len, &err);
    if (!ok(r == (ssize_t)head_len && err == HTTP_ERR_NONE, "accept: %s", name))
        printf("#   got %zd err %d (%s), want %zu\n", r, (int)err, http_error_text(err),
               head_len);
    ok(prefixes_consistent(fn, s, head_len, HTTP_ERR_NONE), "incomplete in every prefix: %s",
       name);
}

/* ---- request line ---- */

static void test_request_ok(void)
{
    enum http_error err;
    const char *s = "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n";
    ssize_t r = parse_whole(http_parse_request, s, strlen(s), &err);
    is_int(r, strlen(s), "simple request: whole length");
    is_str(head.method, head.method_len, "GET", "method");
    is_str(head.target, head.target_len, "/index.html?q=1", "target");
    is_int(head.version_minor, 1, "minor 1");
    is_int(head.field_count, 1, "one field");
    is_str(head.fields[0].name, head.fields[0].name_len, "Host", "field name");
    is_str(head.fields[0].value, head.fields[0].value_len, "example.com", "field value");
    is_int(head.status, 0, "no status in a request");
    ok(prefixes_consistent(http_parse_request, s, strlen(s), HTTP_ERR_NONE),
       "simple request: every prefix incomplete");

    s = "GET / HTTP/1.0\r\n\r\nBODY";
    r = parse_whole(http_parse_request, s, strlen(s), &err);
    is_int(r, strlen(s) - 4, "head length excludes following bytes");
    is_int(head.version_minor, 0, "HTTP/1.0 gives minor 0");
    is_int(head.field_count, 0, "no fields");

    s = "GET / HTTP/1.9\r\nHost: a\r\n\r\n";
    r = parse_whole(http_parse_request, s, strlen(s), &err);
    is_int(r, strlen(s), "HTTP/1.9 accepted");
    is_int(head.version_minor, 1, "a higher minor reads as 1");

    s = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    r = parse_whole(http_parse_request, s, strlen(s), &err);
    is_int(r, strlen(s), "CONNECT authority-form");
    is_str(head.target, head.target_len, "example.com:443", "authority target");

    s = "GET http://example.com:8080/a/b?c=d&e=%20 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n";
    r = parse_whole(http_parse_request, s, strlen(s), &err);
    is_int(r, strlen(s), "absolute-form");
    is_str(head.target, head.target_len, "http://example.com:8080/a/b?c=d&e=%20",
           "absolute target");

    s = "M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n";
    r = parse_whole(http_parse_request, s, strlen(s), &err);
    is_int(r, strlen(s), "token method with '-' and '*' target");
    is_str(head.method, head.method_len, "M-SEARCH", "M-SEARCH method");

    s = "get / HTTP/1.1\r\nHost: a\r\n\r\n";
    r = parse_whole(http_parse_request, s, strlen(s), &err);
    is_int(r, strlen(s), "lowercase method is a token (rejecting it is not the parser's job)");

    s = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    r = parse_whole(http_parse_request, s, strlen(s), &err);
    is_int(r, strlen(s), "leading empty lines skipped, counted in the length");
    is_str(head.method, head.method_len, "GET", "method after empty lines");

    s = "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    r = parse_whole(http_parse_request, s, strlen(s), &err);
    is_int(r, strlen(s), "8 leading empty lines accepted");

    expect_accept(http_parse_request, T("\r\nPOST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                                        "X-Empty:\r\nX-Obs: caf\xc3\xa9\r\n\r\nabc"),
                  sizeof("\r\nPOST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                         "X-Empty:\r\nX-Obs: caf\xc3\xa9\r\n\r\n") - 1,
                  "request with fields");
}

static void test_incomplete(void)
{
    enum http_error err;
    is_int(parse_whole(http_parse_request, T(""), &err), -2, "empty input is incomplete");
    is_int(http_parse_request(NULL, 0, &head, &err), -2, "NULL input of length 0: incomplete");
    is_int(http_parse_response(NULL, 0, &head, &err), -2, "NULL response of length 0");
    is_int(http_parse_fields(NULL, 0, &err), -2, "NULL field section of length 0");
    is_int(parse_whole(http_parse_request, T("\r\n"), &err), -2, "only CRLF is incomplete");
    is_int(parse_whole(http_parse_request, T("\r"), &err), -2, "only CR is incomplete");
    is_int(parse_whole(http_parse_request, T("GET / HTTP/1.1\r\nHost: a\r\n"), &err), -2,
           "head without the empty line is incomplete");
    is_int(parse_whole(http_parse_request, T("GET / HTTP/1.1\r\nHost: a\r\n\r"), &err), -2,
           "head ending in CR is incomplete");
    is_int(parse_whole(http_parse_response, T("HTTP/1.1 200"), &err), -2,
           "status line without CRLF is incomplete");
}

static const struct reject request_rejects[] = {
    {T("GET  / HTTP/1.1\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "two spaces after the method"},
    {T("GET /  HTTP/1.1\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "two spaces after the target"},
    {T(" GET / HTTP/1.1\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "leading space"},
    {T("GET / HTTP/1.1 \r\n\r\n"), HTTP_ERR_REQUEST_LINE, "trailing space"},
    {T("GET\t/ HTTP/1.1\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "tab as separator"},
    {T("GET /\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "HTTP/0.9 request line"},
    {T("GET\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "method only"},
    {T("GET \r\n\r\n"), HTTP_ERR_REQUEST_LINE, "empty target"},
    {T("GET / \r\n\r\n"), HTTP_ERR_REQUEST_LINE, "empty version"},
    {T("GET / HTTP/1\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "HTTP/1"},
    {T("GET / HTTP/1.\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "HTTP/1."},
    {T("GET / http/1.1\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "lowercase http"},
    {T("GET / HTTP/1.10\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "two-digit minor"},
    /* next to the exact "HTTP/1.1" and "HTTP/1.0" the parser compares whole */
    {T("GET / HTTP/1.00\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "HTTP/1.00"},
    {T("GET / HTTP/1.1\x00\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "NUL after HTTP/1.1"},
    {T("GET / HTTP/1.1\t\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "HTAB after HTTP/1.1"},
    {T("GET / HTTP/1.1\r\r\n\r\n"), HTTP_ERR_BARE_CR_LF, "CR CR LF after HTTP/1.1"},
    {T("GET / HTTP/1.1\n\r\n"), HTTP_ERR_BARE_CR_LF, "bare LF right after HTTP/1.1"},
    {T("GET / HTTP/1.1x\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "junk after HTTP/1.1"},
    {T("GET / Http/1.1\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "mixed-case Http"},
    {T("GET / HTTP/1,1\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "comma for the dot"},
    {T("GET / HTTP/11.1\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "two-digit major"},
    {T("GET / HTTP/1.x\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "non-digit minor"},
    {T("GET / HTTP/2.0x\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "junk after a version"},
    {T("GET / HTTPS/1.1\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "HTTPS/1.1"},
    {T("GET / HTTP/1.1 extra\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "extra word"},
    {T("GET /a b HTTP/1.1\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "space inside the target"},
    {T("GET /a\tb HTTP/1.1\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "tab inside the target"},
    {T("GET /\x7f HTTP/1.1\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "DEL in the target"},
    {T("GET /\xff HTTP/1.1\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "non-ASCII in the target"},
    {T("GET /\x00 HTTP/1.1\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "NUL in the target"},
    {T("GET /\x00"), HTTP_ERR_REQUEST_LINE, "NUL in the target before any CRLF"},
    {T("GE\x01"), HTTP_ERR_REQUEST_LINE, "control byte in the method, early"},
    {T("G(ET / HTTP/1.1\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "non-token method"},
    {T("G\xc3\x89T / HTTP/1.1\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "non-ASCII method"},
    {T("/ HTTP/1.1\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "no method"},
    {T("GET /\rHTTP/1.1\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "CR inside the request line"},
    {T("HTTP/1.1 200 OK\r\n\r\n"), HTTP_ERR_REQUEST_LINE, "a status line as a request"},
    {T("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n"), HTTP_ERR_REQUEST_LINE,
     "nine leading empty lines"},
    {T("GET / HTTP/2.0\r\n\r\n"), HTTP_ERR_VERSION, "HTTP/2.0"},
    {T("GET / HTTP/0.9\r\n\r\n"), HTTP_ERR_VERSION, "HTTP/0.9"},
    {T("GET / HTTP/3.1\r\nHost: a\r\n\r\n"), HTTP_ERR_VERSION, "HTTP/3.1"},
    {T("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), HTTP_ERR_VERSION, "HTTP/2 preface"},
    /* bare CR / LF */
    {T("GET / HTTP/1.1\nHost: a\r\n\r\n"), HTTP_ERR_BARE_CR_LF, "bare LF after the request line"},
    {T("GET / HTTP/1.1\rHost: a\r\n\r\n"), HTTP_ERR_BARE_CR_LF, "bare CR after the request line"},
    {T("GET / HTTP/1.1\r\nHost: a\n\r\n"), HTTP_ERR_BARE_CR_LF, "bare LF after a field"},
    {T("GET / HTTP/1.1\r\nHost: a\r\n\n"), HTTP_ERR_BARE_CR_LF, "bare LF as the empty line"},
    {T("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n"), HTTP_ERR_BARE_CR_LF, "CR CR LF as the empty line"},
    {T("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"), HTTP_ERR_BARE_CR_LF, "bare CR in a value"},
    {T("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), HTTP_ERR_BARE_CR_LF, "bare LF in a value"},
    {T("GET / HTTP/1.1\r\nX\nHost: a\r\n\r\n"), HTTP_ERR_BARE_CR_LF, "bare LF in a name"},
    {T("\nGET / HTTP/1.1\r\n\r\n"), HTTP_ERR_BARE_CR_LF, "leading bare LF"},
    {T("\rGET / HTTP/1.1\r\n\r\n"), HTTP_ERR_BARE_CR_LF, "leading bare CR"},
    {T("GET /\n"), HTTP_ERR_BARE_CR_LF, "bare LF in the request line"},
    {T("GET / HTTP/1.1\n\n"), HTTP_ERR_BARE_CR_LF, "LF-only head"},
    /* field names */
    {T("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), HTTP_ERR_FIELD_NAME, "space before the colon"},
    {T("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), HTTP_ERR_FIELD_NAME, "tab before the colon"},
    {T("GET / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n"), HTTP_ERR_FIELD_NAME,
     "\"Transfer-Encoding :\""},
    {T("GET / HTTP/1.1\r\n: a\r\n\r\n"), HTTP_ERR_FIELD_NAME, "empty name"},
    {T("GET / HTTP/1.1\r\nHo st: a\r\n\r\n"), HTTP_ERR_FIELD_NAME, "space inside a name"},
    {T("GET / HTTP/1.1\r\nHost\r\n\r\n"), HTTP_ERR_FIELD_NAME, "line without a colon"},
    {T("GET / HTTP/1.1\r\nHo\x00st: a\r\n\r\n"), HTTP_ERR_FIELD_NAME, "NUL in a name"},
    {T("GET / HTTP/1.1\r\nX\x7f: a\r\n\r\n"), HTTP_ERR_FIELD_NAME, "DEL in a name"},
    {T("GET / HTTP/1.1\r\n[x]: a\r\n\r\n"), HTTP_ERR_FIELD_NAME, "non-token name"},
    {T("GET / HTTP/1.1\r\nX\xc3\xa9: a\r\n\r\n"), HTTP_ERR_FIELD_NAME, "non-ASCII name"},
    {T("GET / HTTP/1.1\r\nX\rY: a\r\n\r\n"), HTTP_ERR_FIELD_NAME, "CR in a name"},
    {T("GET / HTTP/1.1\r\nX\x00"), HTTP_ERR_FIELD_NAME, "NUL in a name, early"},
    /* field values */
    {T("GET / HTTP/1.1\r\nX: a\x00" "b\r\n\r\n"), HTTP_ERR_FIELD_VALUE, "NUL in a value"},
    {T("GET / HTTP/1.1\r\nX: a\x01\r\n\r\n"), HTTP_ERR_FIELD_VALUE, "SOH in a value"},
    {T("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n"), HTTP_ERR_FIELD_VALUE, "DEL in a value"},
    {T("GET / HTTP/1.1\r\nX: \x1b[31m\r\n\r\n"), HTTP_ERR_FIELD_VALUE, "ESC in a value"},
    {T("GET / HTTP/1.1\r\nX: \x0b\r\n\r\n"), HTTP_ERR_FIELD_VALUE, "VT in a value"},
    {T("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\x00\r\n\r\n"), HTTP_ERR_FIELD_VALUE,
     "\"chunked\\0\""},
    {T("GET / HTTP/1.1\r\nX: a\x00"), HTTP_ERR_FIELD_VALUE, "NUL in a value, early"},
    /* obs-fold */
    {T("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"), HTTP_ERR_OBS_FOLD, "folded with SP"},
    {T("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"), HTTP_ERR_OBS_FOLD, "folded with HTAB"},
    {T("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), HTTP_ERR_OBS_FOLD, "space before the first field"},
    {T("GET / HTTP/1.1\r\nHost: a\r\n \r\n\r\n"), HTTP_ERR_OBS_FOLD, "whitespace-only line"},
    {T("GET / HTTP/1.1\r\nContent-Length: 0\r\n Transfer-Encoding: chunked\r\n\r\n"),
     HTTP_ERR_OBS_FOLD, "TE hidden in a folded line"},
};

static void test_request_rejects(void)
{
    for (size_t i = 0; i < sizeof(request_rejects) / sizeof(request_rejects[0]); i++)
        expect_reject(http_parse_request, &request_rejects[i]);
}

/* 100 fields fit; the 101st is refused before its line is even complete. */
static void test_too_many_fields(void)
{
    static char text[8192];
    size_t n = (size_t)snprintf(text, sizeof(text), "GET / HTTP/1.1\r\n");
    for (int i = 0; i < HTTP_MAX_FIELDS; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "X-%d: %d\r\n", i, i);
    size_t fields_end = n;
    n += (size_t)snprintf(text + n, sizeof(text) - n, "\r\n");

    enum http_error err;
    ssize_t r = parse_whole(http_parse_request, text, n, &err);
    is_int(r, n, "exactly HTTP_MAX_FIELDS fields accepted");
    is_int(head.field_count, HTTP_MAX_FIELDS, "all fields stored");
    is_str(head.fields[99].name, head.fields[99].name_len, "X-99", "last field name");
    is_str(head.fields[99].value, head.fields[99].value_len, "99", "last field value");

    n = fields_end + (size_t)snprintf(text + fields_end, sizeof(text) - fields_end,
                                      "X-100: 100\r\n\r\n");
    struct reject c = {text, n, HTTP_ERR_TOO_MANY_FIELDS, "HTTP_MAX_FIELDS + 1 fields"};
    expect_reject(http_parse_request, &c);
    c.len = fields_end + 1;
    c.name = "the 101st field refused at its first byte";
    expect_reject(http_parse_request, &c);
}

/* Names are read four bytes and values eight bytes at a time: a byte the
 * grammar refuses (or, in a value, an HTAB it keeps) must be found at
 * every offset within those steps, and a value may end at any of them. */
static void test_bytes_at_every_offset(void)
{
    static const struct {
        char byte;
        enum http_error err; /* HTTP_ERR_NONE: kept in the value */
    } in_value[] = {
        {'\0', HTTP_ERR_FIELD_VALUE}, {'\x01', HTTP_ERR_FIELD_VALUE},
        {'\x1f', HTTP_ERR_FIELD_VALUE}, {'\x7f', HTTP_ERR_FIELD_VALUE},
        {'\n', HTTP_ERR_BARE_CR_LF}, {'\r', HTTP_ERR_BARE_CR_LF},
        {'\t', HTTP_ERR_NONE}, {' ', HTTP_ERR_NONE}, {'\x80', HTTP_ERR_NONE},
        {'\xff', HTTP_ERR_NONE}, {'~', HTTP_ERR_NONE},
    };
    static const char in_name[] = {' ', '\t', '\0', '(', '\x7f', '\x80', '\n', '"'};
    char text[128], value[40];
    int all_ok = 1;

    for (size_t k = 0; k < 20; k++) {
        for (size_t i = 0; i < sizeof(in_value) / sizeof(in_value[0]); i++) {
            /* <k> bytes, the byte, and five more: the byte at offset k
             * (whitespace at offset 0 is not in the value: skipped) */
            if (k == 0 && (in_value[i].byte == ' ' || in_value[i].byte == '\t'))
                continue;
            memset(value, 'v', sizeof value);
            value[k] = in_value[i].byte;
            size_t n = join3(text, "GET / HTTP/1.1\r\nX: ", value, k + 6, "\r\n\r\n");
            enum http_error err = HTTP_ERR_NONE;
            ssize_t r = parse_whole(http_parse_request, text, n, &err);
            int good = in_value[i].err == HTTP_ERR_NONE
                           ? r == (ssize_t)n && head.fields[0].value_len == k + 6 &&
                                 memcmp(head.fields[0].value, value, k + 6) == 0
                           : r == -1 && err == in_value[i].err;
            if (!good) {
                printf("#   value byte 0x%02x at offset %zu: got %zd err %d\n",
                       (unsigned char)in_value[i].byte, k, r, (int)err);
                all_ok = 0;
            }
        }
    }
    ok(all_ok, "value bytes found at every offset");

    /* Whitespace trimmed at the end, whatever the value's length. */
    all_ok = 1;
    for (size_t k = 1; k < 20; k++) {
        memset(value, 'v', sizeof value);
        int n = snprintf(text, sizeof text, "GET / HTTP/1.1\r\nX: %.*s \t \r\n\r\n", (int)k,
                         value);
        enum http_error err = HTTP_ERR_NONE;
        ssize_t r = parse_whole(http_parse_request, text, (size_t)n, &err);
        if (r != n || head.fields[0].value_len != k) {
            printf("#   value of %zu bytes with trailing OWS: got %zd\n", k, r);
            all_ok = 0;
        }
    }
    ok(all_ok, "trailing whitespace trimmed after a value of any length");

    all_ok = 1;
    for (size_t k = 1; k < 12; k++) {
        for (size_t i = 0; i < sizeof in_name; i++) {
            char name[16];
            memset(name, 'N', sizeof name);
            name[k] = in_name[i];
            size_t n = join3(text, "GET / HTTP/1.1\r\n", name, k + 3, ": v\r\n\r\n");
            enum http_error err = HTTP_ERR_NONE;
            ssize_t r = parse_whole(http_parse_request, text, n, &err);
            enum http_error want = in_name[i] == '\n' ? HTTP_ERR_BARE_CR_LF : HTTP_ERR_FIELD_NAME;
            if (r != -1 || err != want) {
                printf("#   name byte 0x%02x at offset %zu: got %zd err %d\n",
                       (unsigned char)in_name[i], k, r, (int)err);
                all_ok = 0;
            }
        }
    }
    ok(all_ok, "name bytes refused at every offset");

    /* The target, eight bytes at a time too: only VCHAR belongs in it. */
    all_ok = 1;
    for (int c = 0; c < 256; c++) {
        for (size_t k = 0; k < 18; k++) {
            char target[32];
            memset(target, 'a', sizeof target);
            target[0] = '/';
            target[1 + k] = (char)c;
            size_t n = join3(text, "GET ", target, k + 7, " HTTP/1.1\r\nHost: a\r\n\r\n");
            enum http_error err = HTTP_ERR_NONE;
            ssize_t r = parse_whole(http_parse_request, text, n, &err);
            int vchar = c >= 0x21 && c <= 0x7e;
            int good = vchar ? r == (ssize_t)n && head.target_len == k + 7
                             : r == -1 && (err == HTTP_ERR_BARE_CR_LF) == (c == '\n');
            if (!good) {
                printf("#   target byte 0x%02x at offset %zu: got %zd err %d\n", c, k + 1, r,
                       (int)err);
                all_ok = 0;
            }
        }
    }
    ok(all_ok, "target bytes kept or refused at every offset");
}

static void test_values(void)
{
    enum http_error err;
    const char *s = "GET / HTTP/1.1\r\nA:  \t a \t b \t \r\nB:\r\nC: \t \r\nD:x\r\n"
                    "E: tab\there\r\nF: caf\xc3\xa9\r\n\r\n";
    ssize_t r = parse_whole(http_parse_request, s, strlen(s), &err);
    is_int(r, strlen(s), "values with OWS, empty values, obs-text");
    is_int(head.field_count, 6, "six fields");
    is_str(head.fields[0].value, head.fields[0].value_len, "a \t b", "OWS trimmed at both ends");
    is_str(head.fields[1].value, head.fields[1].value_len, "", "empty value");
    is_str(head.fields[2].value, head.fields[2].value_len, "", "whitespace-only value is empty");
    is_str(head.fields[3].value, head.fields[3].value_len, "x", "no space after the colon");
    is_str(head.fields[4].value, head.fields[4].value_len, "tab\there", "inner HTAB kept");
    is_str(head.fields[5].value, head.fields[5].value_len, "caf\xc3\xa9", "obs-text kept");
    is_str(head.fields[5].name, head.fields[5].name_len, "F", "one-letter name");

    s = "GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n";
    r = parse_whole(http_parse_request, s, strlen(s), &err);
    is_int(r, strlen(s), "every tchar in a name");
}

/* ---- status line ---- */

static void test_response_ok(void)
{
    enum http_error err;
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    ssize_t r = parse_whole(http_parse_response, s, strlen(s), &err);
    is_int(r, strlen(s) - 5, "response head length");
    is_int(head.status, 200, "status");
    is_str(head.reason, head.reason_len, "OK", "reason");
    is_int(head.version_minor, 1, "minor 1");
    ok(head.method == NULL && head.method_len == 0, "no method in a response");
    is_int(head.field_count, 1, "one field");

    s = "HTTP/1.0 404 Not Found\r\n\r\n";
    r = parse_whole(http_parse_response, s, strlen(s), &err);
    is_int(r, strlen(s), "HTTP/1.0 404");
    is_int(head.version_minor, 0, "minor 0");
    is_str(head.reason, head.reason_len, "Not Found", "reason with a space");

    s = "HTTP/1.1 200\r\n\r\n";
    r = parse_whole(http_parse_response, s, strlen(s), &err);
    is_int(r, strlen(s), "missing SP and reason");
    is_str(head.reason, head.reason_len, "", "reason empty");

    s = "HTTP/1.1 204 \r\n\r\n";
    r = parse_whole(http_parse_response, s, strlen(s), &err);
    is_int(r, strlen(s), "empty reason after SP");
    is_int(head.status, 204, "204");
    is_str(head.reason, head.reason_len, "", "reason empty");

    s = "HTTP/1.1 599 \tWeird \xe2\x9c\x93 reason \r\n\r\n";
    r = parse_whole(http_parse_response, s, strlen(s), &err);
    is_int(r, strlen(s), "status 599, reason with HTAB and obs-text");
    is_int(head.status, 599, "599, the highest status");
    is_str(head.reason, head.reason_len, "\tWeird \xe2\x9c\x93 reason ", "reason kept as sent");

    s = "HTTP/1.1 100 Continue\r\n\r\n";
    r = parse_whole(http_parse_response, s, strlen(s), &err);
    is_int(head.status, 100, "status 100");

    s = "HTTP/1.5 200 OK\r\n\r\n";
    r = parse_whole(http_parse_response, s, strlen(s), &err);
    is_int(head.version_minor, 1, "HTTP/1.5 reads as 1.1");

    expect_accept(http_parse_response,
                  T("HTTP/1.1 301 Moved Permanently\r\nLocation: http://a/\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
                  sizeof("HTTP/1.1 301 Moved Permanently\r\nLocation: http://a/\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n") - 1,
                  "response with fields");
    expect_accept(http_parse_response, T("HTTP/1.1 200\r\nA: b\r\n\r\n"),
                  sizeof("HTTP/1.1 200\r\nA: b\r\n\r\n") - 1, "response without reason");
}

static const struct reject response_rejects[] = {
    {T("HTTP/1.1 099 Low\r\n\r\n"), HTTP_ERR_STATUS_LINE, "status below 100"},
    {T("HTTP/1.1 000 Zero\r\n\r\n"), HTTP_ERR_STATUS_LINE, "status 000"},
    {T("HTTP/1.1 600 X\r\n\r\n"), HTTP_ERR_STATUS_CODE, "status 600"},
    {T("HTTP/1.1 999 Weird\r\n\r\n"), HTTP_ERR_STATUS_CODE, "status 999"},
    {T("HTTP/1.1 700\r\n\r\n"), HTTP_ERR_STATUS_CODE, "status 700 without a reason"},
    {T("HTTP/1.1 6"), HTTP_ERR_STATUS_CODE, "a 6 as the first digit, before the rest came"},
    {T("HTTP/1.1 2000 OK\r\n\r\n"), HTTP_ERR_STATUS_LINE, "four-digit status"},
    {T("HTTP/1.1 20 OK\r\n\r\n"), HTTP_ERR_STATUS_LINE, "two-digit status"},
    {T("HTTP/1.1 2x0 OK\r\n\r\n"), HTTP_ERR_STATUS_LINE, "non-digit status"},
    {T("HTTP/1.1 -20 OK\r\n\r\n"), HTTP_ERR_STATUS_LINE, "signed status"},
    {T("HTTP/1.1  200 OK\r\n\r\n"), HTTP_ERR_STATUS_LINE, "two spaces before the status"},
    {T("HTTP/1.1\t200 OK\r\n\r\n"), HTTP_ERR_STATUS_LINE, "tab before the status"},
    {T("HTTP/1.1 200\tOK\r\n\r\n"), HTTP_ERR_STATUS_LINE, "tab after the status"},
    {T("HTTP/1.1\r\n\r\n"), HTTP_ERR_STATUS_LINE, "no status"},
    {T("http/1.1 200 OK\r\n\r\n"), HTTP_ERR_STATUS_LINE, "lowercase http"},
    {T("HTTP/1.10 200 OK\r\n\r\n"), HTTP_ERR_STATUS_LINE, "two-digit minor"},
    {T("HTTP/1.1\x00" "200 OK\r\n\r\n"), HTTP_ERR_STATUS_LINE, "NUL after HTTP/1.1"},
    {T("HTTP/1.0\n200 OK\r\n\r\n"), HTTP_ERR_BARE_CR_LF, "bare LF after HTTP/1.0"},
    {T("HTTP/1.1200 OK\r\n\r\n"), HTTP_ERR_STATUS_LINE, "no space after HTTP/1.1"},
    {T("HTTP/1 200 OK\r\n\r\n"), HTTP_ERR_STATUS_LINE, "HTTP/1"},
    {T("HTTP/2 200\r\n\r\n"), HTTP_ERR_STATUS_LINE, "HTTP/2 without minor"},
    {T("HTTP/1.1 200 O\x00K\r\n\r\n"), HTTP_ERR_STATUS_LINE, "NUL in the reason"},
    {T("HTTP/1.1 200 O\x7fK\r\n\r\n"), HTTP_ERR_STATUS_LINE, "DEL in the reason"},
    {T("ICY 200 OK\r\n\r\n"), HTTP_ERR_STATUS_LINE, "ICY"},
    {T("\r\nHTTP/1.1 200 OK\r\n\r\n"), HTTP_ERR_STATUS_LINE, "leading empty line in a response"},
    {T("GET / HTTP/1.1\r\n\r\n"), HTTP_ERR_STATUS_LINE, "a request line as a response"},
    {T("HTTP/2.0 200 OK\r\n\r\n"), HTTP_ERR_VERSION, "HTTP/2.0 response"},
    {T("HTTP/0.9 200 OK\r\n\r\n"), HTTP_ERR_VERSION, "HTTP/0.9 response"},
    {T("HTTP/1.1 200 OK\n\r\n"), HTTP_ERR_BARE_CR_LF, "bare LF after the status line"},
    {T("HTTP/1.1 200 OK\rX\r\n\r\n"), HTTP_ERR_BARE_CR_LF, "bare CR in the reason"},
    {T("HTTP/1.1 200\n\n"), HTTP_ERR_BARE_CR_LF, "LF-only response"},
    {T("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"), HTTP_ERR_OBS_FOLD, "obs-fold in a response"},
    {T("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n"), HTTP_ERR_FIELD_NAME,
     "space before the colon in a response"},
    {T("HTTP/1.1 200 OK\r\nX: a\x00\r\n\r\n"), HTTP_ERR_FIELD_VALUE, "NUL in a response value"},
};

static void test_response_rejects(void)
{
    for (size_t i = 0; i < sizeof(response_rejects) / sizeof(response_rejects[0]); i++)
        expect_reject(http_parse_response, &response_rejects[i]);
}

/* ---- framing ---- */

/* Parses <text> (which must be a valid head) and runs the framing rule.
 * Returns the rule's result; *<err> and *<fr> are its outputs. */
static int request_framing(const char *text, struct http_framing *fr, enum http_error *err)
{
    ssize_t r = parse_whole(http_parse_request, text, strlen(text), err);
    if (r != (ssize_t)strlen(text)) {
        printf("#   head did not parse: %zd err %d\n", r, (int)*err);
        return -100;
    }
    return http_request_framing(&head, fr, err);
}

static int response_framing(const char *text, const char *method, struct http_framing *fr,
                            enum http_error *err)
{
    ssize_t r = parse_whole(http_parse_response, text, strlen(text), err);
    if (r != (ssize_t)strlen(text)) {
        printf("#   head did not parse: %zd err %d\n", r, (int)*err);
        return -100;
    }
    return http_response_framing(&head, method, method ? strlen(method) : 0, fr, err);
}

struct framing_case {
    const char *fields; /* inserted after "Host: h\r\n" */
    int rc;
    enum http_error err;
    enum http_body_kind kind;
    uint64_t length;
    const char *name;
};

static const struct framing_case request_cases[] = {
    {"", 0, HTTP_ERR_NONE, HTTP_BODY_NONE, 0, "no CL, no TE: no body"},
    {"Content-Length: 10\r\n", 0, HTTP_ERR_NONE, HTTP_BODY_LENGTH, 10, "CL 10"},
    {"content-LENGTH: 10\r\n", 0, HTTP_ERR_NONE, HTTP_BODY_LENGTH, 10, "CL name any case"},
    {"Content-Length: 0\r\n", 0, HTTP_ERR_NONE, HTTP_BODY_NONE, 0, "CL 0: no body"},
    {"Content-Length: 007\r\n", 0, HTTP_ERR_NONE, HTTP_BODY_LENGTH, 7, "leading zeros"},
    {"Content-Length:    5   \r\n", 0, HTTP_ERR_NONE, HTTP_BODY_LENGTH, 5, "OWS around CL"},
    {"Content-Length: 0000000000000000001\r\n", 0, HTTP_ERR_NONE, HTTP_BODY_LENGTH, 1,
     "19 digits"},
    {"Content-Length: 4611686018427387904\r\n", 0, HTTP_ERR_NONE, HTTP_BODY_LENGTH,
     HTTP_MAX_BODY_LENGTH, "CL = HTTP_MAX_BODY_LENGTH"},
    {"Content-Length: 4611686018427387905\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0,
     "CL above HTTP_MAX_BODY_LENGTH"},
    {"Content-Length: 9999999999999999999\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0,
     "19 nines"},
    {"Content-Length: 00000000000000000001\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0,
     "20 digits"},
    {"Content-Length: 18446744073709551616\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0,
     "2^64 (wraps to 0)"},
    {"Content-Length: 18446744073709551621\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0,
     "2^64 + 5 (wraps to 5)"},
    {"Content-Length: +5\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0, "CL +5"},
    {"Content-Length: -1\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0, "CL -1"},
    {"Content-Length: 5, 5\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0, "CL 5, 5"},
    {"Content-Length: 5,5\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0, "CL 5,5"},
    {"Content-Length: 5 5\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0, "space inside CL"},
    {"Content-Length: 5\t0\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0, "tab inside CL"},
    {"Content-Length: 0x10\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0, "hex CL"},
    {"Content-Length: 5a\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0, "CL 5a"},
    {"Content-Length: 1e3\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0, "CL 1e3"},
    {"Content-Length: 5.0\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0, "CL 5.0"},
    {"Content-Length:\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0, "empty CL"},
    {"Content-Length: \"5\"\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0, "quoted CL"},
    {"Content-Length: \xd9\xa5\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0, "non-ASCII digit"},
    {"Content-Length: 5\r\nContent-Length: 5\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0,
     "two CL, same value"},
    {"Content-Length: 5\r\nContent-Length: 6\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0,
     "two CL, different values"},
    {"Content-Length: 5\r\nX: y\r\ncontent-length: 5\r\n", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0,
     "two CL, apart, different case"},
    {"Transfer-Encoding: chunked\r\n", 0, HTTP_ERR_NONE, HTTP_BODY_CHUNKED, 0, "TE chunked"},
    {"Transfer-Encoding: Chunked\r\n", 0, HTTP_ERR_NONE, HTTP_BODY_CHUNKED, 0, "TE Chunked"},
    {"Transfer-Encoding: CHUNKED\r\n", 0, HTTP_ERR_NONE, HTTP_BODY_CHUNKED, 0, "TE CHUNKED"},
    {"transfer-encoding:chunked\r\n", 0, HTTP_ERR_NONE, HTTP_BODY_CHUNKED, 0,
     "lowercase name, no space"},
    {"Transfer-Encoding:  chunked \t\r\n", 0, HTTP_ERR_NONE, HTTP_BODY_CHUNKED, 0,
     "OWS around chunked"},
    {"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", -1, HTTP_ERR_CL_TE, 0, 0,
     "TE and CL"},
    {"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", -1, HTTP_ERR_CL_TE, 0, 0,
     "CL and TE"},
    {"Content-Length: -1\r\nTransfer-Encoding: gzip\r\n", -1, HTTP_ERR_CL_TE, 0, 0,
     "CL+TE checked before either value"},
    {"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", -1, HTTP_ERR_CL_TE, 0, 0,
     "CL 0 and TE"},
    {"Transfer-Encoding: gzip\r\n", -1, HTTP_ERR_TE_UNSUPPORTED, 0, 0, "TE gzip"},
    {"Transfer-Encoding: identity\r\n", -1, HTTP_ERR_TE_UNSUPPORTED, 0, 0, "TE identity"},
    {"Transfer-Encoding: gzip, chunked\r\n", -1, HTTP_ERR_TE_UNSUPPORTED, 0, 0,
     "TE gzip, chunked"},
    {"Transfer-Encoding: chunked, gzip\r\n", -1, HTTP_ERR_TE_UNSUPPORTED, 0, 0,
     "TE chunked, gzip"},
    {"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", -1, HTTP_ERR_TE_UNSUPPORTED,
     0, 0, "TE gzip + TE chunked in two fields"},
    {"Transfer-Encoding: chunked;q=1\r\n", -1, HTTP_ERR_TE_UNSUPPORTED, 0, 0,
     "chunked with a parameter"},
    {"Transfer-Encoding: xchunked\r\n", -1, HTTP_ERR_TE_UNSUPPORTED, 0, 0, "xchunked"},
    {"Transfer-Encoding: chunk\r\n", -1, HTTP_ERR_TE_UNSUPPORTED, 0, 0, "chunk"},
    {"Transfer-Encoding: \"chunked\"\r\n", -1, HTTP_ERR_TE_UNSUPPORTED, 0, 0, "quoted chunked"},
    {"Transfer-Encoding: chunked chunked\r\n", -1, HTTP_ERR_TE_UNSUPPORTED, 0, 0,
     "chunked chunked without a comma"},
    {"Transfer-Encoding: ch\xc3\xbcnked\r\n", -1, HTTP_ERR_TE_UNSUPPORTED, 0, 0,
     "non-ASCII lookalike"},
    {"Transfer-Encoding: chunked,\r\n", -1, HTTP_ERR_TE_MALFORMED, 0, 0, "chunked,"},
    {"Transfer-Encoding: ,chunked\r\n", -1, HTTP_ERR_TE_MALFORMED, 0, 0, ",chunked"},
    {"Transfer-Encoding: chunked, ,\r\n", -1, HTTP_ERR_TE_MALFORMED, 0, 0, "chunked, ,"},
    {"Transfer-Encoding: chunked, chunked\r\n", -1, HTTP_ERR_TE_MALFORMED, 0, 0,
     "chunked, chunked"},
    {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", -1, HTTP_ERR_TE_MALFORMED,
     0, 0, "chunked in two fields"},
    {"Transfer-Encoding:\r\n", -1, HTTP_ERR_TE_MALFORMED, 0, 0, "empty TE"},
    {"Transfer-Encoding: ,\r\n", -1, HTTP_ERR_TE_MALFORMED, 0, 0, "TE ,"},
    {"Transfer-Encoding: chunked\r\nTransfer-Encoding:\r\n", -1, HTTP_ERR_TE_MALFORMED, 0, 0,
     "chunked plus an empty TE field"},
    {"Transfer_Encoding: chunked\r\n", 0, HTTP_ERR_NONE, HTTP_BODY_NONE, 0,
     "Transfer_Encoding is another field"},
    {"Content_Length: 5\r\n", 0, HTTP_ERR_NONE, HTTP_BODY_NONE, 0,
     "Content_Length is another field"},
};

static void test_request_framing(void)
{
    char text[512];
    for (size_t i = 0; i < sizeof(request_cases) / sizeof(request_cases[0]); i++) {
        const struct framing_case *c = &request_cases[i];
        struct http_framing fr = {HTTP_BODY_CLOSE, 12345};
        enum http_error err = HTTP_ERR_NONE;
        snprintf(text, sizeof(text), "POST / HTTP/1.1\r\nHost: h\r\n%s\r\n", c->fields);
        int rc = request_framing(text, &fr, &err);
        int good = rc == c->rc && err == c->err;
        if (good && rc == 0)
            good = fr.kind == c->kind && (c->kind != HTTP_BODY_LENGTH || fr.length == c->length);
        if (!ok(good, "request framing: %s", c->name))
            printf("#   got rc %d err %d (%s) kind %d length %llu\n", rc, (int)err,
                   http_error_text(err), (int)fr.kind, (unsigned long long)fr.length);
    }

    struct http_framing fr;
    enum http_error err;
    is_int(request_framing("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", &fr, &err),
           -1, "TE in HTTP/1.0 refused");
    is_int(err, HTTP_ERR_TE_MALFORMED, "... as malformed framing");
    is_int(request_framing("POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n", &fr, &err), 0,
           "CL in HTTP/1.0");
    ok(fr.kind == HTTP_BODY_LENGTH && fr.length == 3, "... gives its length");
}

static const struct {
    const char *text;
    int rc;
    const char *name;
} host_cases[] = {
    {"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", 0, "Host present"},
    {"GET / HTTP/1.1\r\nhost: example.com\r\n\r\n", 0, "host in lowercase"},
    {"GET / HTTP/1.1\r\n\r\n", -1, "HTTP/1.1 without Host"},
    {"GET http://a/ HTTP/1.1\r\n\r\n", -1, "absolute-form still needs Host in HTTP/1.1"},
    {"GET / HTTP/1.0\r\n\r\n", 0, "HTTP/1.0 without Host"},
    {"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", -1, "two Host, same value"},
    {"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\nHost: evil\r\n\r\n", -1, "second Host further down"},
    {"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", -1, "two Host in HTTP/1.0"},
    {"GET / HTTP/1.1\r\nHost:\r\n\r\n", -1, "empty Host"},
    {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", -1, "space in Host"},
    {"GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", -1, "Host list"},
    {"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", -1, "userinfo in Host"},
    {"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", -1, "path in Host"},
    {"GET / HTTP/1.1\r\nHost: a:\r\n\r\n", -1, "colon without port"},
    {"GET / HTTP/1.0\r\nHost: a:0\r\n\r\n", -1, "port 0 (HTTP/1.0 too)"},
    {"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 0, "IPv6 with port"},
    {"GET / HTTP/1.1\r\nHost: 10.0.0.1:80\r\n\r\n", 0, "IPv4 with port"},
};

static void test_request_host(void)
{
    for (size_t i = 0; i < sizeof(host_cases) / sizeof(host_cases[0]); i++) {
        struct http_framing fr;
        enum http_error err = HTTP_ERR_NONE;
        int rc = request_framing(host_cases[i].text, &fr, &err);
        int good = rc == host_cases[i].rc &&
                   (rc == 0 ? err == HTTP_ERR_NONE : err == HTTP_ERR_HOST);
        if (!ok(good, "Host rule: %s", host_cases[i].name))
            printf("#   got rc %d err %d\n", rc, (int)err);
    }
}

static void test_host_valid(void)
{
    static const char *const good[] = {
        "example.com", "EXAMPLE.com.", "a", "a-b_c~d.e", "1.2.3.4", "1.2.3.4:65535",
        "example.com:1", "example.com:80", "example.com:00080", "localhost:8080",
        "[::1]", "[::1]:443", "[2001:db8::1]", "[::ffff:1.2.3.4]", "[FE80::ABCD]",
    };
    static const char *const bad[] = {
        "", ":80", "example.com:", "example.com:0", "example.com:65536",
        "example.com:123456", "example.com:+80", "example.com:8o", "example.com: 80",
        "example.com:80:80", "user@example.com", "user:pw@example.com", "exa%41mple.com",
        "a,b", "a;b", "a!b", "a b", "a/b", "a?b", "a#b", "a\\b", "caf\xc3\xa9.com",
        "[::1", "::1", "[]", "[:]", "[::1]x", "[::1]:", "[::1]:0", "[zz::1]",
        "[fe80::1%25eth0]", "[v1.fe80::a]", "[1.2.3.4]", "[::1]]", "[[::1]]",
        "[1:2:3:4:5:6:7:8:9]", "[:::1]",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const char *copy = guarded_copy(good[i], strlen(good[i]));
        is_int(url_host_field_valid(copy, strlen(good[i])), 0, good[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *copy = guarded_copy(bad[i], strlen(bad[i]));
        if (!ok(url_host_field_valid(copy, strlen(bad[i])) == -1, "invalid host '%s'", bad[i]))
            printf("#   accepted\n");
    }
    const char nul[] = "a\0b";
    is_int(url_host_field_valid(guarded_copy(nul, 3), 3), -1, "NUL inside a host");
}

static const struct {
    const char *text;
    const char *method;
    int rc;
    enum http_error err;
    enum http_body_kind kind;
    uint64_t length;
    const char *name;
} response_cases[] = {
    {"HTTP/1.1 200 OK\r\n\r\n", "GET", 0, HTTP_ERR_NONE, HTTP_BODY_CLOSE, 0,
     "no CL, no TE: until close"},
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", 0, HTTP_ERR_NONE,
     HTTP_BODY_LENGTH, 5, "CL 5"},
    {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET", 0, HTTP_ERR_NONE, HTTP_BODY_LENGTH,
     0, "CL 0: an explicit zero length, to be passed on"},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", 0, HTTP_ERR_NONE,
     HTTP_BODY_CHUNKED, 0, "chunked"},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", "POST", 0, HTTP_ERR_NONE,
     HTTP_BODY_CHUNKED, 0, "Chunked"},
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", 0, HTTP_ERR_NONE, HTTP_BODY_NONE,
     0, "HEAD: no body whatever CL says"},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", "HEAD", 0,
     HTTP_ERR_NONE, HTTP_BODY_NONE, 0, "HEAD: no body even with CL and TE"},
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "head", 0, HTTP_ERR_NONE,
     HTTP_BODY_LENGTH, 5, "\"head\" is not HEAD (methods are case-sensitive)"},
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEADX", 0, HTTP_ERR_NONE,
     HTTP_BODY_LENGTH, 5, "HEADX is not HEAD"},
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEA", 0, HTTP_ERR_NONE,
     HTTP_BODY_LENGTH, 5, "HEA is not HEAD"},
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", NULL, 0, HTTP_ERR_NONE, HTTP_BODY_LENGTH,
     5, "no method given"},
    {"HTTP/1.1 100 Continue\r\n\r\n", "GET", 0, HTTP_ERR_NONE, HTTP_BODY_NONE, 0, "100"},
    {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "GET", 0,
     HTTP_ERR_NONE, HTTP_BODY_NONE, 0, "101"},
    {"HTTP/1.1 199 X\r\nContent-Length: 5\r\n\r\n", "GET", 0, HTTP_ERR_NONE, HTTP_BODY_NONE, 0,
     "199 with CL"},
    {"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", 0, HTTP_ERR_NONE,
     HTTP_BODY_NONE, 0, "204 with TE"},
    {"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", "GET", 0, HTTP_ERR_NONE,
     HTTP_BODY_NONE, 0, "304 with CL"},
    {"HTTP/1.1 205 Reset Content\r\n\r\n", "GET", 0, HTTP_ERR_NONE, HTTP_BODY_CLOSE, 0,
     "205 is not special"},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", "GET", -1,
     HTTP_ERR_CL_TE, 0, 0, "CL and TE"},
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", "GET", -1,
     HTTP_ERR_CONTENT_LENGTH, 0, 0, "two CL"},
    {"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", "GET", -1, HTTP_ERR_CONTENT_LENGTH, 0, 0,
     "CL -5"},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET", -1, HTTP_ERR_TE_UNSUPPORTED,
     0, 0, "TE gzip"},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", "GET", -1,
     HTTP_ERR_TE_MALFORMED, 0, 0, "chunked, chunked"},
    {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", -1, HTTP_ERR_TE_MALFORMED,
     0, 0, "chunked in an HTTP/1.0 response"},
    {"HTTP/1.0 200 OK\r\n\r\n", "GET", 0, HTTP_ERR_NONE, HTTP_BODY_CLOSE, 0,
     "HTTP/1.0 without CL"},
    {"HTTP/1.1 200 OK\r\n\r\n", "GET", 0, HTTP_ERR_NONE, HTTP_BODY_CLOSE, 0,
     "no Host needed in a response"},
};

static void test_response_framing(void)
{
    for (size_t i = 0; i < sizeof(response_cases) / sizeof(response_cases[0]); i++) {
        struct http_framing fr = {HTTP_BODY_CHUNKED, 12345};
        enum http_error err = HTTP_ERR_NONE;
        int rc = response_framing(response_cases[i].text, response_cases[i].method, &fr, &err);
        int good = rc == response_cases[i].rc && err == response_cases[i].err;
        if (good && rc == 0)
            good = fr.kind == response_cases[i].kind &&
                   (fr.kind != HTTP_BODY_LENGTH || fr.length == response_cases[i].length);
        if (!ok(good, "response framing: %s", response_cases[i].name))
            printf("#   got rc %d err %d kind %d length %llu\n", rc, (int)err, (int)fr.kind,
                   (unsigned long long)fr.length);
    }
}

/* ---- lookups ---- */

static void test_tokens(void)
{
    is_int(http_token_eq("Chunked", 7, "chunked"), 1, "token_eq ignores case");
    is_int(http_token_eq("chunkedX", 7, "chunked"), 1, "token_eq looks at <len> bytes only");
    is_int(http_token_eq("chunke", 6, "chunked"), 0, "token_eq: shorter differs");
    is_int(http_token_eq("chunkeds", 8, "chunked"), 0, "token_eq: longer differs");
    is_int(http_token_eq("", 0, ""), 1, "token_eq: empty equals empty");
    is_int(http_token_eq("[", 1, "{"), 0, "token_eq: '[' is not '{' (only letters fold)");
    is_int(http_token_eq("\xc9", 1, "\xe9"), 0, "token_eq: no folding beyond ASCII");

    enum http_error err;
    const char *s = "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
                    "Upgrade: websocket\r\nconnection: X-Foo ,, close\r\n"
                    "Expect: 100-Continue\r\nX-Foo: 1\r\nX-Foo-Bar: 2\r\n"
                    "Keep-Alive: 5\r\nTE: trailers\r\nTrailer: X\r\n"
                    "Proxy-Connection: close\r\nProxy-Authorization: Basic x\r\n"
                    "Proxy-Authenticate: Basic\r\nContent-Length: 0\r\n"
                    "Proxy-Authentication-Info: nextnonce=\"x\"\r\n"
                    "Transfer_Encoding: x\r\nUPGRADE-Insecure-Requests: 1\r\n\r\n";
    is_int(parse_whole(http_parse_request, s, strlen(s), &err), strlen(s), "lookup head parses");

    is_int(http_find_field(&head, "host", 0), 0, "find_field ignores case");
    is_int(http_find_field(&head, "Connection", 0), 1, "find_field: first");
    is_int(http_find_field(&head, "Connection", 2), 3, "find_field: from index");
    is_int(http_find_field(&head, "Connection", 4), -1, "find_field: none after");
    is_int(http_find_field(&head, "Missing", 0), -1, "find_field: absent");
    is_int(http_find_field(&head, "Host", 1000), -1, "find_field: from past the end");

    is_int(http_has_token(&head, "Connection", "close"), 1, "has_token in a second field");
    is_int(http_has_token(&head, "Connection", "KEEP-ALIVE"), 1, "has_token ignores case");
    is_int(http_has_token(&head, "Connection", "upgrade"), 1, "has_token: last element");
    is_int(http_has_token(&head, "Connection", "x-foo"), 1, "has_token: OWS around");
    is_int(http_has_token(&head, "Connection", "clos"), 0, "has_token: prefix is not a match");
    is_int(http_has_token(&head, "Connection", "keep"), 0, "has_token: no partial match");
    is_int(http_has_token(&head, "Connection", ""), 0, "has_token: empty elements ignored");
    is_int(http_has_token(&head, "Expect", "100-continue"), 1, "Expect: 100-continue");
    is_int(http_has_token(&head, "Missing", "close"), 0, "has_token: absent field");
    /* the same through the field's id */
    is_int(http_has_token_id(&head, HTTP_FIELD_CONNECTION, "close"), 1, "has_token_id: second field");
    is_int(http_has_token_id(&head, HTTP_FIELD_CONNECTION, "KEEP-ALIVE"), 1,
           "has_token_id ignores case");
    is_int(http_has_token_id(&head, HTTP_FIELD_CONNECTION, "clos"), 0,
           "has_token_id: prefix is not a match");
    is_int(http_has_token_id(&head, HTTP_FIELD_TRANSFER_ENCODING, "chunked"), 0,
           "has_token_id: absent field");
    is_int(http_has_token_id(&head, HTTP_FIELD_EXPECT, "100-continue"), 1,
           "has_token_id: Expect");

    static const struct {
        const char *name;
        int hop;
    } want[] = {
        {"Host", 0}, {"Connection", 1}, {"Upgrade", 1}, {"connection", 1}, {"Expect", 0},
        {"X-Foo", 1}, {"X-Foo-Bar", 0}, {"Keep-Alive", 1}, {"TE", 1}, {"Trailer", 1},
        {"Proxy-Connection", 1}, {"Proxy-Authorization", 1}, {"Proxy-Authenticate", 1},
        {"Proxy-Authentication-Info", 1},
        {"Content-Length", 0}, {"Transfer_Encoding", 0}, {"UPGRADE-Insecure-Requests", 0},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        int f = http_find_field(&head, want[i].name, 0);
        if (f < 0 || !http_token_eq(head.fields[f].name, head.fields[f].name_len, want[i].name)) {
            ok(0, "field %s present", want[i].name);
            continue;
        }
        is_int(http_is_hop_by_hop(&head, (size_t)f), want[i].hop, want[i].name);
    }
    is_int(http_is_hop_by_hop(&head, head.field_count), 0, "hop_by_hop: index past the end");

    /* Connection naming the fields that frame and route the message must
     * not make the proxy drop them. */
    s = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
        "Connection: Content-Length, Host, Connection, Transfer-Encoding, X-A\r\n"
        "X-A: 1\r\nX-B: 2\r\n\r\n";
    is_int(parse_whole(http_parse_request, s, strlen(s), &err), strlen(s), "second head parses");
    is_int(http_is_hop_by_hop(&head, 0), 0, "Connection: Host does not drop Host");
    is_int(http_is_hop_by_hop(&head, 1), 0, "Connection: Content-Length does not drop CL");
    is_int(http_is_hop_by_hop(&head, 2), 1, "Connection: Connection is harmless");
    is_int(http_is_hop_by_hop(&head, 3), 1, "X-A listed");
    is_int(http_is_hop_by_hop(&head, 4), 0, "X-B not listed");
    /* Connection answers from its elements' lengths first: a token of a
     * length no element has is absent, one of a length some element has
     * is still compared. */
    {
        enum http_error e;
        const char *c = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n"
                        "Connection: ,\t Close \t, X-Long-Token-Name-Past-Sixty-Three-Bytes-"
                        "Which-All-Share-One-Bit\r\n\r\n";
        is_int(parse_whole(http_parse_request, c, strlen(c), &e), strlen(c),
               "Connection head parses");
        is_int(http_has_token_id(&head, HTTP_FIELD_CONNECTION, "close"), 1,
               "has_token_id: an element with OWS and case");
        is_int(http_has_token_id(&head, HTTP_FIELD_CONNECTION, "upgrade"), 0,
               "has_token_id: no element of that length");
        is_int(http_has_token_id(&head, HTTP_FIELD_CONNECTION, "clone"), 0,
               "has_token_id: that length, other bytes");
        const char *l = "x-long-token-name-past-sixty-three-bytes-which-all-share-one-bit";
        is_int(http_has_token_id(&head, HTTP_FIELD_CONNECTION, l), 1,
               "has_token_id: a long element");
        is_int(http_has_token_id(&head, HTTP_FIELD_CONNECTION, "x-long-token-name-past-sixty-"
                                                               "three-bytes-which-all-share-one"),
               0, "has_token_id: a long token that is not there");
    }
}

/* The parser's field ids and Connection summary are shortcuts: every
 * answer must be the one a walk of the names and lists would give. */
static void test_field_ids(void)
{
    static const struct {
        const char *name;
        enum http_field_id id;
    } names[] = {
        {"TE", HTTP_FIELD_TE}, {"via", HTTP_FIELD_VIA}, {"HOST", HTTP_FIELD_HOST},
        {"Expect", HTTP_FIELD_EXPECT}, {"trailer", HTTP_FIELD_TRAILER},
        {"UpGrade", HTTP_FIELD_UPGRADE}, {"connection", HTTP_FIELD_CONNECTION},
        {"keep-ALIVE", HTTP_FIELD_KEEP_ALIVE}, {"Content-Length", HTTP_FIELD_CONTENT_LENGTH},
        {"Proxy-Connection", HTTP_FIELD_PROXY_CONNECTION},
        {"Transfer-Encoding", HTTP_FIELD_TRANSFER_ENCODING},
        {"Proxy-Authenticate", HTTP_FIELD_PROXY_AUTHENTICATE},
        {"Proxy-Authorization", HTTP_FIELD_PROXY_AUTHORIZATION},
        {"proxy-authentication-INFO", HTTP_FIELD_PROXY_AUTHENTICATION_INFO},
        {"Proxy-Authentication-Inf0", HTTP_FIELD_OTHER},
        {"Set-Cookie", HTTP_FIELD_OTHER}, {"Hosts", HTTP_FIELD_OTHER},
        {"Content_Length", HTTP_FIELD_OTHER}, {"Keep_Alive", HTTP_FIELD_OTHER},
        {"T", HTTP_FIELD_OTHER}, {"Upgrade2", HTTP_FIELD_OTHER}, {"Vi\xe1", HTTP_FIELD_OTHER},
        /* bytes that a looser case fold (more bits than 0x20, or 0x20 on
         * a "-") would take for a letter or "-", in each word compared */
        {"Content\rLength", HTTP_FIELD_OTHER}, {"Keep\rAlive", HTTP_FIELD_OTHER},
        {"H\x0fst", HTTP_FIELD_OTHER}, {"Ho\x13t", HTTP_FIELD_OTHER}, {"T\x05", HTTP_FIELD_OTHER},
        {"\x14" "E", HTTP_FIELD_OTHER}, {"Vi@", HTTP_FIELD_OTHER}, {"V\xc9" "a", HTTP_FIELD_OTHER},
        {"Transfer-Encodin\x07", HTTP_FIELD_OTHER},
        {"Transfer-EncodinG", HTTP_FIELD_TRANSFER_ENCODING},
        {"\x14ransfer-Encoding", HTTP_FIELD_OTHER}, {"Proxy-Authorizatio\x0e", HTTP_FIELD_OTHER},
        {"PROXY-AUTHORIZATION", HTTP_FIELD_PROXY_AUTHORIZATION},
        {"Proxy-Authorizat\xc9on", HTTP_FIELD_OTHER}, {"Upgrad\x05", HTTP_FIELD_OTHER},
        {"Content-Lengt\x08", HTTP_FIELD_OTHER}, {"Connectio\x0e", HTTP_FIELD_OTHER},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        is_int(http_field_id(names[i].name, strlen(names[i].name)), names[i].id, names[i].name);

    enum http_error err;
    /* Names of the same length as a listed one, and names past 63 bytes
     * (which share one length bit), are told apart by their bytes. */
    const char *s = "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Foo,"
                    " X-Long-Name-That-Is-Listed-In-Connection-And-Longer-Than-63-Bytes\r\n"
                    "Set-Cookie: a\r\nX-Foo: 1\r\nX-Bar: 2\r\n"
                    "X-Long-Name-That-Is-Listed-In-Connection-And-Longer-Than-63-Bytes: 3\r\n"
                    "X-Long-Name-That-Is-Not-Listed-In-Connection-And-Longer-Than-63-Byte: 4\r\n"
                    "\r\n";
    is_int(parse_whole(http_parse_request, s, strlen(s), &err), strlen(s), "ids head parses");
    is_int(head.fields[0].id, HTTP_FIELD_HOST, "parser sets the id of Host");
    is_int(head.fields[1].id, HTTP_FIELD_CONNECTION, "parser sets the id of Connection");
    is_int(head.fields[2].id, HTTP_FIELD_OTHER, "parser: Set-Cookie is another name");
    is_int(http_is_hop_by_hop(&head, 2), 0, "Set-Cookie has keep-alive's length, not listed");
    is_int(http_is_hop_by_hop(&head, 3), 1, "X-Foo listed");
    is_int(http_is_hop_by_hop(&head, 4), 0, "X-Bar has X-Foo's length, not listed");
    is_int(http_is_hop_by_hop(&head, 5), 1, "a long listed name");
    is_int(http_is_hop_by_hop(&head, 6), 0, "a long name not listed");
    is_int(http_find_field(&head, "Content-Length", 0), -1, "find_field: a known name absent");
    is_int(http_find_id(&head, HTTP_FIELD_CONNECTION, 2), -1, "find_id: none after");

    /* A head parsed into the same struct forgets the previous one. */
    s = "HTTP/1.1 200 OK\r\nX-Foo: 1\r\nContent-Length: 0\r\n\r\n";
    is_int(parse_whole(http_parse_response, s, strlen(s), &err), strlen(s), "second head parses");
    is_int(http_find_field(&head, "Connection", 0), -1, "no Connection left from before");
    is_int(http_find_field(&head, "Host", 0), -1, "no Host left from before");
    is_int(http_find_field(&head, "content-length", 0), 1, "Content-Length found by id");
    is_int(http_is_hop_by_hop(&head, 0), 0, "X-Foo no longer listed");
}

static void test_errors(void)
{
    static const struct {
        enum http_error err;
        int status;
        const char *text;
    } table[] = {
        {HTTP_ERR_REQUEST_LINE, 400, "malformed request line"},
        {HTTP_ERR_STATUS_LINE, 502, "malformed status line"},
        {HTTP_ERR_STATUS_CODE, 502, "status code outside 100-599"},
        {HTTP_ERR_VERSION, 505, "unsupported HTTP version"},
        {HTTP_ERR_FIELD_NAME, 400, "whitespace or invalid character in a field name"},
        {HTTP_ERR_FIELD_VALUE, 400, "invalid character in a field value"},
        {HTTP_ERR_OBS_FOLD, 400, "obsolete line folding"},
        {HTTP_ERR_BARE_CR_LF, 400, "bare CR or LF"},
        {HTTP_ERR_TOO_MANY_FIELDS, 431, "too many header fields"},
        {HTTP_ERR_CL_TE, 400, "Content-Length together with Transfer-Encoding"},
        {HTTP_ERR_CONTENT_LENGTH, 400, "invalid or duplicate Content-Length"},
        {HTTP_ERR_TE_UNSUPPORTED, 501, "unsupported Transfer-Encoding"},
        {HTTP_ERR_TE_MALFORMED, 400, "malformed Transfer-Encoding"},
        {HTTP_ERR_HOST, 400, "missing, duplicate or invalid Host"},
        {HTTP_ERR_CHUNK_SIZE, 400, "invalid chunk size"},
        {HTTP_ERR_CHUNK_FRAMING, 400, "invalid chunk framing"},
        {HTTP_ERR_TRAILER, 400, "invalid trailer section"},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        const char *text = http_error_text(table[i].err);
        is_int(http_error_status(table[i].err), table[i].status, table[i].text);
        ok(strcmp(text, table[i].text) == 0, "text of error %d: %s", (int)table[i].err, text);
    }
    ok(http_error_text(HTTP_ERR_NONE) != NULL, "text for no error");
    ok(strcmp(http_error_text((enum http_error)999), "unknown error") == 0,
       "text for an unknown code");
    is_int(http_error_status((enum http_error)999), 500, "status for an unknown code");
}

static void test_parse_fields(void)
{
    enum http_error err;
    const char *s = "A: 1\r\nB-c: two words\r\n\r\nrest";
    const char *copy = guarded_copy(s, strlen(s));
    is_int(http_parse_fields(copy, strlen(s), &err), strlen(s) - 4, "field section length");
    copy = guarded_copy("\r\n", 2);
    is_int(http_parse_fields(copy, 2, &err), 2, "empty field section");
    copy = guarded_copy("A: 1\r\n", 6);
    is_int(http_parse_fields(copy, 6, &err), -2, "field section incomplete");
    copy = guarded_copy("A: 1\r\n b\r\n\r\n", 12);
    is_int(http_parse_fields(copy, 12, &err), -1, "folded field section");
    is_int(err, HTTP_ERR_OBS_FOLD, "... reports obs-fold");
    ok(prefixes_consistent(http_parse_request, T("GET / HTTP/1.1\r\nA: 1\r\n b\r\n\r\n"),
                           HTTP_ERR_OBS_FOLD),
       "obs-fold in every split");
}

int main(void)
{
    test_request_ok();
    test_incomplete();
    test_request_rejects();
    test_too_many_fields();
    test_values();
    test_bytes_at_every_offset();
    test_response_ok();
    test_response_rejects();
    test_request_framing();
    test_request_host();
    test_host_valid();
    test_response_framing();
    test_tokens();
    test_field_ids();
    test_errors();
    test_parse_fields();
    return tap_done();
}
