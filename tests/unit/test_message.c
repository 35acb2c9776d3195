/*
 * test_message.c - unit tests for what the proxy changes in a head.
 *
 * Heads are parsed with the real parser (http_parse.c) from guarded copies,
 * imported with message_import_*, and written with message_write_*; the
 * tests compare the written bytes exactly, because that is what the next
 * hop reads. Local error responses are parsed back with the response parser
 * to prove they are well-formed and that Content-Length fits the body.
 */
#include <stdint.h>
#include <stdlib.h>

#include "headers.h"
#include "http_parse.h"
#include "message.h"
#include "tap.h"

/* Parses a request head; aborts the test run if the fixture is wrong. */
static void parse_request(const char *text, struct http_head *head)
{
    enum http_error err;
    size_t len = strlen(text);
    const char *copy = guarded_copy(text, len);
    if (http_parse_request(copy, len, head, &err) != (ssize_t)len) {
        printf("# fixture does not parse as a request (err %d):\n# %s\n", err, text);
        abort();
    }
}

static void parse_response(const char *text, struct http_head *head)
{
    enum http_error err;
    size_t len = strlen(text);
    const char *copy = guarded_copy(text, len);
    if (http_parse_response(copy, len, head, &err) != (ssize_t)len) {
        printf("# fixture does not parse as a response (err %d):\n# %s\n", err, text);
        abort();
    }
}

static void is_fields(const struct headers *h, const char *want, const char *name)
{
    struct buffer out;
    buffer_init(&out);
    if (headers_write(h, &out) != 0)
        ok(0, "%s (headers_write failed)", name);
    else
        is_str(buffer_peek(&out), buffer_length(&out), want, name);
    buffer_free(&out);
}

/* ---- importing a request ----------------------------------------------- */

static void test_import_request(void)
{
    struct http_head head = {0};
    struct headers h;

    parse_request("GET http://example.com/x HTTP/1.1\r\n"
                  "Accept: */*\r\n"
                  "Host: example.com\r\n"
                  "Connection: keep-alive, X-Hop\r\n"
                  "X-Hop: secret\r\n"
                  "Keep-Alive: timeout=5\r\n"
                  "Proxy-Connection: keep-alive\r\n"
                  "TE: trailers\r\n"
                  "Trailer: X-Sum\r\n"
                  "Upgrade: websocket\r\n"
                  "Proxy-Authorization: Basic dXNlcjpwYXNz\r\n"
                  "Transfer-Encoding: chunked\r\n"
                  "X-End: 2\r\n"
                  "\r\n",
                  &head);
    headers_init(&h);
    is_int(message_import_request(&head, "example.com:8080", 16, 0, &h), 0, "import a request");
    is_fields(&h,
              "Host: example.com:8080\r\n"
              "Accept: */*\r\n"
              "X-End: 2\r\n"
              "Via: 1.1 luaproxy\r\n",
              "hop-by-hop, framing and Host dropped; Host first; Via last");
    headers_free(&h);

    /* The same head with an upgrade: Upgrade survives, Connection does not
     * (the proxy writes its own "Connection: Upgrade"). */
    headers_init(&h);
    is_int(message_import_request(&head, "example.com", 11, 1, &h), 0, "import with upgrade");
    is_fields(&h,
              "Host: example.com\r\n"
              "Accept: */*\r\n"
              "Upgrade: websocket\r\n"
              "X-End: 2\r\n"
              "Via: 1.1 luaproxy\r\n",
              "upgrade: Upgrade kept in place, the rest as before");
    headers_free(&h);

    /* Connection names match whatever their case, over several Connection
     * fields, with odd whitespace in the list. */
    parse_request("GET http://h/ HTTP/1.1\r\n"
                  "Host: h\r\n"
                  "x-a: 1\r\n"
                  "CONNECTION: X-A ,\t x-b\r\n"
                  "X-B: 2\r\n"
                  "connection: x-c\r\n"
                  "X-C: 3\r\n"
                  "X-D: 4\r\n"
                  "\r\n",
                  &head);
    headers_init(&h);
    message_import_request(&head, "h", 1, 0, &h);
    is_fields(&h, "Host: h\r\nX-D: 4\r\nVia: 1.1 luaproxy\r\n",
              "names listed in any Connection field are dropped, any case");
    headers_free(&h);

    /* A client must not be able to strip the fields that frame or route the
     * message by listing them in Connection. */
    parse_request("POST http://h/ HTTP/1.1\r\n"
                  "Host: h\r\n"
                  "Connection: Content-Length, Host, X-Gone\r\n"
                  "Content-Length: 3\r\n"
                  "X-Gone: 1\r\n"
                  "\r\n",
                  &head);
    ok(!http_is_hop_by_hop(&head, (size_t)http_find_field(&head, "Content-Length", 0)),
       "Connection: Content-Length does not make CL hop-by-hop");
    ok(!http_is_hop_by_hop(&head, (size_t)http_find_field(&head, "Host", 0)),
       "Connection: Host does not make Host hop-by-hop");
    ok(http_is_hop_by_hop(&head, (size_t)http_find_field(&head, "X-Gone", 0)),
       "  ... while the other listed name is hop-by-hop");
    headers_init(&h);
    message_import_request(&head, "h", 1, 0, &h);
    is_fields(&h, "Host: h\r\nVia: 1.1 luaproxy\r\n",
              "request: CL is regenerated by the writer, not copied");
    headers_free(&h);

    /* Via: our entry goes at the end of the last Via field. */
    parse_request("GET http://h/ HTTP/1.1\r\n"
                  "Host: h\r\n"
                  "Via: 1.0 first\r\n"
                  "X-Between: 1\r\n"
                  "via: 1.1 second, 1.1 third\r\n"
                  "X-After: 2\r\n"
                  "\r\n",
                  &head);
    headers_init(&h);
    message_import_request(&head, "h", 1, 0, &h);
    is_fields(&h,
              "Host: h\r\n"
              "Via: 1.0 first\r\n"
              "X-Between: 1\r\n"
              "via: 1.1 second, 1.1 third, 1.1 luaproxy\r\n"
              "X-After: 2\r\n",
              "Via appended to the last existing Via, in place");
    headers_free(&h);

    /* Field values and unusual names are copied as they are. */
    parse_request("GET http://h/ HTTP/1.1\r\n"
                  "Host: h\r\n"
                  "X-Spaces:    padded value   \r\n"
                  "X-Empty:\r\n"
                  "Cookie: a=1\r\n"
                  "Cookie: b=2\r\n"
                  "\r\n",
                  &head);
    headers_init(&h);
    message_import_request(&head, "[::1]:8080", 10, 0, &h);
    is_fields(&h,
              "Host: [::1]:8080\r\n"
              "X-Spaces: padded value\r\n"
              "X-Empty: \r\n"
              "Cookie: a=1\r\n"
              "Cookie: b=2\r\n"
              "Via: 1.1 luaproxy\r\n",
              "values trimmed by the parser, duplicates and order kept, authority as given");
    headers_free(&h);

    /* An absurdly long Via is left alone rather than grown. */
    char big[1200];
    int n = snprintf(big, sizeof big, "GET http://h/ HTTP/1.1\r\nHost: h\r\nVia: ");
    memset(big + n, 'v', 1020);
    n += 1020;
    n += snprintf(big + n, sizeof big - (size_t)n, "\r\n\r\n");
    parse_request(big, &head);
    headers_init(&h);
    is_int(message_import_request(&head, "h", 1, 0, &h), 0, "import with a 1020-byte Via");
    size_t vlen;
    headers_value(&h, 1, &vlen);
    is_int(vlen, 1020, "  ... the Via value is left as it was");
    headers_free(&h);
}

/* ---- importing a response ---------------------------------------------- */

static void test_import_response(void)
{
    struct http_head head = {0};
    struct headers h;

    parse_response("HTTP/1.1 200 OK\r\n"
                   "Content-Type: text/plain\r\n"
                   "Content-Length: 5\r\n"
                   "Connection: close, X-Hop\r\n"
                   "X-Hop: 1\r\n"
                   "Keep-Alive: timeout=5\r\n"
                   "Proxy-Authenticate: Basic\r\n"
                   "Proxy-Authentication-Info: nextnonce=\"abc\"\r\n"
                   "Trailer: X-Sum\r\n"
                   "Host: not-a-request-field\r\n"
                   "Via: 1.1 origin-cache\r\n"
                   "\r\n",
                   &head);
    headers_init(&h);
    is_int(message_import_response(&head, 0, 0, &h), 0, "import a response");
    is_fields(&h,
              "Content-Type: text/plain\r\n"
              "Host: not-a-request-field\r\n"
              "Via: 1.1 origin-cache, 1.1 luaproxy\r\n",
              "response: hop-by-hop and CL dropped, Host is just a field, Via appended");
    headers_free(&h);

    headers_init(&h);
    message_import_response(&head, 1, 0, &h);
    is_fields(&h,
              "Content-Type: text/plain\r\n"
              "Content-Length: 5\r\n"
              "Host: not-a-request-field\r\n"
              "Via: 1.1 origin-cache, 1.1 luaproxy\r\n",
              "keep_length (HEAD, 304): Content-Length kept in place");
    headers_free(&h);

    parse_response("HTTP/1.1 200 OK\r\n"
                   "Connection: Content-Length\r\n"
                   "Content-Length: 5\r\n"
                   "\r\n",
                   &head);
    headers_init(&h);
    message_import_response(&head, 1, 0, &h);
    is_fields(&h, "Content-Length: 5\r\nVia: 1.1 luaproxy\r\n",
              "Connection: Content-Length cannot strip a kept Content-Length");
    headers_free(&h);

    parse_response("HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: abc=\r\n"
                   "\r\n",
                   &head);
    headers_init(&h);
    message_import_response(&head, 0, 1, &h);
    is_fields(&h,
              "Upgrade: websocket\r\n"
              "Sec-WebSocket-Accept: abc=\r\n"
              "Via: 1.1 luaproxy\r\n",
              "101 with upgrade: Upgrade kept, Connection dropped");
    headers_free(&h);
    headers_init(&h);
    message_import_response(&head, 0, 0, &h);
    is_fields(&h, "Sec-WebSocket-Accept: abc=\r\nVia: 1.1 luaproxy\r\n",
              "without upgrade: Upgrade dropped as hop-by-hop");
    headers_free(&h);
}

/* ---- writing a request ------------------------------------------------- */

static void test_write_request(void)
{
    struct headers h;
    struct buffer out;

    headers_init(&h);
    headers_add(&h, "Host", 4, "h", 1);
    headers_add(&h, "Via", 3, "1.1 luaproxy", 12);
    buffer_init(&out);

    static const struct {
        const char *path;
        enum http_body_kind kind;
        uint64_t length;
        int had_length, upgrade;
        const char *want;
        const char *name;
    } cases[] = {
        {"/x?y=1", HTTP_BODY_NONE, 0, 0, 0,
         "GET /x?y=1 HTTP/1.1\r\nHost: h\r\nVia: 1.1 luaproxy\r\n\r\n",
         "no body: no framing, no Connection field (kept open for reuse)"},
        {"", HTTP_BODY_NONE, 0, 0, 0,
         "GET / HTTP/1.1\r\nHost: h\r\nVia: 1.1 luaproxy\r\n\r\n",
         "an empty path becomes /"},
        {"?q=1", HTTP_BODY_NONE, 0, 0, 0,
         "GET /?q=1 HTTP/1.1\r\nHost: h\r\nVia: 1.1 luaproxy\r\n\r\n",
         "a path of only ?q gets a leading /"},
        {"/", HTTP_BODY_LENGTH, 42, 1, 0,
         "GET / HTTP/1.1\r\nHost: h\r\nVia: 1.1 luaproxy\r\nContent-Length: 42\r\n"
         "\r\n",
         "length: Content-Length written"},
        {"/", HTTP_BODY_LENGTH, (uint64_t)1 << 62, 1, 0,
         "GET / HTTP/1.1\r\nHost: h\r\nVia: 1.1 luaproxy\r\nContent-Length: 4611686018427387904\r\n"
         "\r\n",
         "length: the largest accepted length written in full"},
        {"/", HTTP_BODY_CHUNKED, 0, 0, 0,
         "GET / HTTP/1.1\r\nHost: h\r\nVia: 1.1 luaproxy\r\nTransfer-Encoding: chunked\r\n"
         "\r\n",
         "chunked: Transfer-Encoding: chunked written"},
        {"/", HTTP_BODY_NONE, 0, 1, 0,
         "GET / HTTP/1.1\r\nHost: h\r\nVia: 1.1 luaproxy\r\nContent-Length: 0\r\n"
         "\r\n",
         "an explicit Content-Length: 0 is kept"},
        {"/chat", HTTP_BODY_NONE, 0, 0, 1,
         "GET /chat HTTP/1.1\r\nHost: h\r\nVia: 1.1 luaproxy\r\nConnection: Upgrade\r\n\r\n",
         "upgrade: Connection: Upgrade"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buffer_consume(&out, buffer_length(&out));
        int rc = message_write_request(&out, "GET", 3, cases[i].path, strlen(cases[i].path), &h,
                                       cases[i].kind, cases[i].length, cases[i].had_length,
                                       cases[i].upgrade);
        is_int(rc, 0, "write_request returns 0");
        is_str(buffer_peek(&out), buffer_length(&out), cases[i].want, cases[i].name);
    }

    /* the method is written as given, views need no NUL */
    buffer_consume(&out, buffer_length(&out));
    message_write_request(&out, "OPTIONSxxx", 7, "/a b", 2, &h, HTTP_BODY_NONE, 0, 0, 0);
    is_str(buffer_peek(&out), buffer_length(&out),
           "OPTIONS /a HTTP/1.1\r\nHost: h\r\nVia: 1.1 luaproxy\r\n\r\n",
           "method and path are length-delimited views");

    /* What we write parses back as a request with the intended framing. */
    buffer_consume(&out, buffer_length(&out));
    message_write_request(&out, "POST", 4, "/p", 2, &h, HTTP_BODY_CHUNKED, 0, 0, 0);
    struct http_head head = {0};
    struct http_framing f;
    enum http_error err;
    ssize_t n = http_parse_request(buffer_peek(&out), buffer_length(&out), &head, &err);
    ok(n == (ssize_t)buffer_length(&out), "the written request parses");
    ok(n > 0 && http_request_framing(&head, &f, &err) == 0 && f.kind == HTTP_BODY_CHUNKED,
       "  ... as chunked");
    ok(n > 0 && http_find_field(&head, "Connection", 0) < 0, "  ... with no Connection field");

    buffer_free(&out);
    headers_free(&h);
}

/* ---- writing a response ------------------------------------------------ */

static void test_write_response(void)
{
    struct headers h;
    struct buffer out;

    headers_init(&h);
    headers_add(&h, "Content-Type", 12, "text/plain", 10);
    buffer_init(&out);

    static const struct {
        int status;
        const char *reason;
        enum http_body_kind kind;
        uint64_t length;
        int keep_alive, minor, upgrade;
        const char *want;
        const char *name;
    } cases[] = {
        {200, "OK", HTTP_BODY_LENGTH, 5, 1, 1, 0,
         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n",
         "1.1 keep-alive: no Connection field (persistent is the default)"},
        {200, "OK", HTTP_BODY_LENGTH, 5, 1, 0, 0,
         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
         "Connection: keep-alive\r\n\r\n",
         "1.0 keep-alive: explicit Connection: keep-alive"},
        {200, "OK", HTTP_BODY_LENGTH, 5, 0, 1, 0,
         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
         "Connection: close\r\n\r\n",
         "1.1 closing: Connection: close"},
        {200, "OK", HTTP_BODY_CLOSE, 0, 0, 0, 0,
         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
         "1.0 close-delimited: no framing field, Connection: close"},
        {200, "OK", HTTP_BODY_CHUNKED, 0, 1, 1, 0,
         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
         "chunked to a 1.1 client"},
        {101, "Switching Protocols", HTTP_BODY_NONE, 0, 0, 1, 1,
         "HTTP/1.1 101 Switching Protocols\r\nContent-Type: text/plain\r\n"
         "Connection: Upgrade\r\n\r\n",
         "upgrade: Connection: Upgrade wins over keep-alive and close"},
        {204, "", HTTP_BODY_NONE, 0, 1, 1, 0,
         "HTTP/1.1 204 \r\nContent-Type: text/plain\r\n\r\n",
         "an empty reason keeps the space after the status"},
        {599, "Custom Thing", HTTP_BODY_NONE, 0, 1, 1, 0,
         "HTTP/1.1 599 Custom Thing\r\nContent-Type: text/plain\r\n\r\n",
         "an unknown status and its reason pass as they are"},
        {200, "OK", HTTP_BODY_LENGTH, 0, 1, 0, 0,
         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n"
         "Connection: keep-alive\r\n\r\n",
         "a zero length, to a 1.0 client kept alive"},
        {200, "OK", HTTP_BODY_LENGTH, UINT64_MAX, 1, 1, 0,
         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
         "Content-Length: 18446744073709551615\r\n\r\n",
         "a length of twenty digits"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buffer_consume(&out, buffer_length(&out));
        int rc = message_write_response(&out, cases[i].status, cases[i].reason,
                                        strlen(cases[i].reason), &h, cases[i].kind,
                                        cases[i].length, cases[i].keep_alive, cases[i].minor,
                                        cases[i].upgrade);
        is_int(rc, 0, "write_response returns 0");
        is_str(buffer_peek(&out), buffer_length(&out), cases[i].want, cases[i].name);
    }
    buffer_free(&out);
    headers_free(&h);
}

/* ---- local error responses --------------------------------------------- */

/* Writes an error, parses it back and checks its shape. */
static void check_error(int status, const char *cause, int keep_alive, int minor,
                        const char *connection)
{
    struct buffer out;
    struct http_head head = {0};
    struct http_framing f;
    enum http_error err;
    char body[512];
    const char *reason = message_reason(status);

    int blen = snprintf(body, sizeof body, "%03d %s: %s\n", status, reason, cause);
    buffer_init(&out);
    is_int(message_write_error(&out, status, cause, keep_alive, minor, 0), blen,
           "write_error returns the body's length");
    const char *s = buffer_peek(&out);
    size_t len = buffer_length(&out);
    ssize_t n = http_parse_response(s, len, &head, &err);
    if (!ok(n > 0, "%d: a well-formed response head", status)) {
        buffer_free(&out);
        return;
    }
    is_int(head.status, status, "  ... the status");
    is_str(head.reason, head.reason_len, reason, "  ... the standard reason");
    ok(http_response_framing(&head, "GET", 3, &f, &err) == 0 && f.kind == HTTP_BODY_LENGTH,
       "  ... framed by Content-Length");
    ok(f.length == (uint64_t)blen && len - (size_t)n == (size_t)blen,
       "  ... Content-Length %llu equals the body's %d bytes",
       (unsigned long long)f.length, blen);
    is_str(s + n, len - (size_t)n, body, "  ... body 'NNN Reason: cause\\n'");
    ok(memmem(s + n, len - (size_t)n, cause, strlen(cause)) != NULL,
       "  ... the cause appears verbatim");
    int ct = http_find_field(&head, "Content-Type", 0);
    ok(ct >= 0 && http_token_eq(head.fields[ct].value, head.fields[ct].value_len,
                                "text/plain; charset=utf-8"),
       "  ... Content-Type: text/plain; charset=utf-8");
    int via = http_find_field(&head, "Via", 0);
    ok(via >= 0 && http_token_eq(head.fields[via].value, head.fields[via].value_len,
                                 MESSAGE_VIA),
       "  ... Via: " MESSAGE_VIA);
    int c = http_find_field(&head, "Connection", 0);
    if (connection)
        ok(c >= 0 && http_token_eq(head.fields[c].value, head.fields[c].value_len, connection),
           "  ... Connection: %s", connection);
    else
        ok(c < 0, "  ... no Connection field");
    ok(len >= 9 && memcmp(s, "HTTP/1.1 ", 9) == 0, "  ... status line says HTTP/1.1");
    buffer_free(&out);
}

static void test_errors(void)
{
    check_error(400, "this is a proxy: send an absolute URL", 0, 1, "close");
    check_error(502, "the upstream refused the connection", 1, 1, NULL);
    check_error(504, "connecting to the upstream timed out", 1, 0, "keep-alive");
    check_error(403, "CONNECT to this port is not allowed", 0, 0, "close");
    check_error(508, "the request would loop back to this proxy", 0, 1, "close");
    check_error(431, "the request head is larger than the proxy accepts", 0, 1, "close");
    check_error(500, "", 0, 1, "close");
    /* A cause with a percent sign is text, not a format. */
    check_error(502, "100% sure: %s %d %n", 0, 1, "close");

    /* To a HEAD: the same head, with the length a GET gets, and no body. */
    {
        struct buffer get, head_only;
        buffer_init(&get);
        buffer_init(&head_only);
        int blen = message_write_error(&get, 502, "refused", 1, 1, 0);
        is_int(message_write_error(&head_only, 502, "refused", 1, 1, 1), 0,
               "write_error to a HEAD writes no body");
        ok(buffer_length(&head_only) + (size_t)blen == buffer_length(&get) &&
               memcmp(buffer_peek(&head_only), buffer_peek(&get), buffer_length(&head_only)) == 0,
           "  ... and the head a GET gets, Content-Length included");
        buffer_free(&get);
        buffer_free(&head_only);
    }

    /* Every status the proxy may send has a reason that is not a fallback. */
    static const int ours[] = {400, 403, 408, 414, 431, 500, 501, 502, 503, 504, 505, 508};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {
        const char *r = message_reason(ours[i]);
        ok(strcmp(r, "Client Error") != 0 && strcmp(r, "Server Error") != 0 && r[0] != '\0',
           "reason for %d: %s", ours[i], r);
    }
    is_str(message_reason(502), strlen(message_reason(502)), "Bad Gateway", "502 Bad Gateway");
    is_str(message_reason(508), strlen(message_reason(508)), "Loop Detected", "508 Loop Detected");
    is_str(message_reason(431), strlen(message_reason(431)),
           "Request Header Fields Too Large", "431 reason");
    /* Every registered status gets its own phrase, not its class's. */
    static const struct {
        int status;
        const char *reason;
    } registered[] = {
        {102, "Processing"}, {103, "Early Hints"}, {203, "Non-Authoritative Information"},
        {205, "Reset Content"}, {207, "Multi-Status"}, {208, "Already Reported"},
        {226, "IM Used"}, {300, "Multiple Choices"}, {305, "Use Proxy"}, {306, "Unused"},
        {402, "Payment Required"}, {406, "Not Acceptable"}, {412, "Precondition Failed"},
        {416, "Range Not Satisfiable"}, {418, "I'm a teapot"}, {421, "Misdirected Request"},
        {422, "Unprocessable Content"}, {423, "Locked"}, {424, "Failed Dependency"},
        {425, "Too Early"}, {426, "Upgrade Required"}, {428, "Precondition Required"},
        {429, "Too Many Requests"}, {451, "Unavailable For Legal Reasons"},
        {506, "Variant Also Negotiates"}, {507, "Insufficient Storage"}, {510, "Not Extended"},
        {511, "Network Authentication Required"},
    };
    for (size_t i = 0; i < sizeof registered / sizeof registered[0]; i++)
        is_str(message_reason(registered[i].status), strlen(message_reason(registered[i].status)),
               registered[i].reason, registered[i].reason);
    is_str(message_reason(199), strlen(message_reason(199)), "Informational", "fallback 1xx");
    is_str(message_reason(299), strlen(message_reason(299)), "OK", "fallback 2xx");
    is_str(message_reason(399), strlen(message_reason(399)), "Redirection", "fallback 3xx");
    is_str(message_reason(499), strlen(message_reason(499)), "Client Error", "fallback 4xx");
    is_str(message_reason(599), strlen(message_reason(599)), "Server Error", "fallback 5xx");
}

/* Writing a response head straight from the parsed views must give the
 * very bytes that importing it and writing the list gives. */
static void test_write_response_from(void)
{
    static const struct {
        const char *head;
        int keep_length;
        enum http_body_kind kind;
        uint64_t length;
        int keep_alive, minor;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n", 0,
         HTTP_BODY_LENGTH, 5, 1, 1},
        {"HTTP/1.1 200 OK\r\nVia: 1.0 a\r\nX-A: 1\r\nVia: 1.1 b\r\n\r\n", 0, HTTP_BODY_CHUNKED,
         0, 1, 1},
        {"HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\n"
         "Transfer-Encoding: chunked\r\nX-Keep: 2\r\n\r\n", 0, HTTP_BODY_CLOSE, 0, 0, 0},
        {"HTTP/1.1 304 Not Modified\r\nContent-Length: 42\r\nETag: \"x\"\r\n\r\n", 1,
         HTTP_BODY_NONE, 0, 1, 0},
        {"HTTP/1.0 404 \r\nProxy-Authenticate: Basic\r\nServer: s\r\n\r\n", 0,
         HTTP_BODY_CLOSE, 0, 0, 1},
        /* lines copied as they were sent only when written the way we
         * write them: other spacing is rewritten, and a dropped field or
         * a rewritten line ends a run of copied ones */
        {"HTTP/1.1 200 OK\r\nA: 1\r\nB:2\r\nC:  3\r\nD:\t4\r\nE: 5 \r\nF: 6\t\r\n"
         "G:\r\nH: \r\nI:   \r\nJ: x y\r\nK: 7\r\n\r\n", 0, HTTP_BODY_LENGTH, 0, 1, 1},
        {"HTTP/1.1 200 OK\r\nA: 1\r\nContent-Length: 3\r\nB: 2\r\nConnection: X-C\r\n"
         "X-C: 3\r\nD: 4\r\nVia: 1.1 p\r\nE: 5\r\n\r\n", 0, HTTP_BODY_LENGTH, 3, 1, 1},
        {"HTTP/1.1 200 OK\r\nVia: 1.1 p\r\n\r\n", 1, HTTP_BODY_NONE, 0, 1, 1},
        {"HTTP/1.1 200 OK\r\nA: 1\r\nContent-Length: 3\r\nB: 2\r\n\r\n", 1,
         HTTP_BODY_LENGTH, 3, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct http_head head = {0};
        struct headers fields;
        struct buffer a, b;
        headers_init(&fields);
        buffer_init(&a);
        buffer_init(&b);
        parse_response(cases[i].head, &head);
        ok(message_import_response(&head, cases[i].keep_length, 0, &fields) == 0 &&
               message_write_response(&a, head.status, head.reason, head.reason_len, &fields,
                                      cases[i].kind, cases[i].length, cases[i].keep_alive,
                                      cases[i].minor, 0) == 0,
           "case %zu: import + write", i);
        ok(message_write_response_from(&b, &head, cases[i].keep_length, cases[i].kind,
                                       cases[i].length, cases[i].keep_alive, cases[i].minor) == 0,
           "case %zu: write from the views", i);
        buffer_append(&a, "", 1); /* a NUL, so <a> reads as the wanted text */
        is_str(buffer_peek(&b), buffer_length(&b), buffer_peek(&a), "  ... the same bytes");
        headers_free(&fields);
        buffer_free(&a);
        buffer_free(&b);
    }
}

int main(void)
{
    test_write_response_from();
    test_import_request();
    test_import_response();
    test_write_request();
    test_write_response();
    test_errors();
    return tap_done();
}
