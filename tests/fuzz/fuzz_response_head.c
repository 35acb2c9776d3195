/*
 * fuzz_response_head.c - libFuzzer target for http_parse_response() and
 * http_response_framing().
 *
 * The input is a response head (and whatever follows it). Besides "no
 * crash, no over-read", it checks the invariants listed in fuzz_head.h, and
 * for responses:
 *   - the status is 100..599 and matches the three digits after the
 *     version; the reason lies inside the head and holds only field bytes;
 *   - the framing for a HEAD request or a 1xx/204/304 status is NONE
 *     whatever the fields say, and otherwise follows the request rules with
 *     CLOSE for "neither field".
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_head.h"
#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_framing(const struct http_head *h)
{
    static const char *const methods[] = {"GET", "HEAD", "head", "POST", "CONNECT"};
    int bodiless_status = (h->status >= 100 && h->status < 200) || h->status == 204 ||
                          h->status == 304;

    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        struct http_framing fr;
        enum http_error err;
        int rc = http_response_framing(h, methods[i], strlen(methods[i]), &fr, &err);
        int bodiless = bodiless_status || strcmp(methods[i], "HEAD") == 0;
        fuzz_check_framing(h, rc, &fr, err, 1, bodiless);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_dup(data, size);
    struct http_head *h = calloc(1, sizeof(*h));
    struct http_head *again = calloc(1, sizeof(*again));
    if (h == NULL || again == NULL)
        abort();
    enum http_error err;
    ssize_t n = http_parse_response(buf, size, h, &err);

    FUZZ_CHECK(n >= -2, "returned %zd", n);
    if (n == -1)
        FUZZ_CHECK(err != HTTP_ERR_NONE && http_error_status(err) != 500 &&
                       http_error_text(err) != NULL,
                   "rejected without a reason (err %d)", err);
    fuzz_check_prefixes(http_parse_response, data, size, n, err);

    if (n >= 0) {
        FUZZ_CHECK(n > 0 && (size_t)n <= size, "size %zd for %zu bytes", n, size);
        FUZZ_CHECK(err == HTTP_ERR_NONE, "accepted with err %d", err);
        FUZZ_CHECK(n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0,
                   "head does not end with CRLF CRLF");
        FUZZ_CHECK(h->status >= 100 && h->status <= 599, "status %d", h->status);
        FUZZ_CHECK(size >= 12 && memcmp(buf, "HTTP/1.", 7) == 0 && buf[8] == ' ' &&
                       (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0') == h->status,
                   "status %d does not match the status line", h->status);
        FUZZ_CHECK(fuzz_inside(h->reason, h->reason_len, buf, (size_t)n), "reason outside head");
        for (size_t i = 0; i < h->reason_len; i++)
            FUZZ_CHECK(fuzz_is_field_byte((unsigned char)h->reason[i]), "reason byte 0x%02x",
                       (unsigned char)h->reason[i]);
        FUZZ_CHECK(h->method == NULL && h->target == NULL, "a response with a request line");
        FUZZ_CHECK(h->version_minor == 0 || h->version_minor == 1, "version 1.%d",
                   h->version_minor);
        fuzz_check_fields(h, buf, (size_t)n);
        fuzz_check_hop_by_hop(h);
        check_framing(h);

        /* canonical form: "HTTP/1.x SP status SP reason CRLF" */
        struct fuzz_str out = {0};
        char line[32];
        snprintf(line, sizeof(line), "HTTP/1.%d %03d ", h->version_minor, h->status);
        fuzz_puts(&out, line);
        fuzz_put(&out, h->reason, h->reason_len);
        fuzz_puts(&out, "\r\n");
        fuzz_put_fields(&out, h);
        char *canon = fuzz_dup(out.s, out.len);
        enum http_error err2;
        ssize_t m = http_parse_response(canon, out.len, again, &err2);
        FUZZ_CHECK(m == (ssize_t)out.len, "canonical form (%zu bytes) gave %zd (err %d)",
                   out.len, m, err2);
        fuzz_same_head(h, again);

        struct http_framing f1, f2;
        enum http_error e1, e2;
        int r1 = http_response_framing(h, "GET", 3, &f1, &e1);
        int r2 = http_response_framing(again, "GET", 3, &f2, &e2);
        FUZZ_CHECK(r1 == r2 && e1 == e2, "framing %d/%d vs %d/%d after re-serialising", r1, e1,
                   r2, e2);
        if (r1 == 0)
            FUZZ_CHECK(f1.kind == f2.kind && f1.length == f2.length, "framing kind differs");
        free(canon);
        free(out.s);
    }
    free(again);
    free(h);
    free(buf);
    return 0;
}
