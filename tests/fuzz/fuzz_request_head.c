/*
 * fuzz_request_head.c - libFuzzer target for http_parse_request() and
 * http_request_framing().
 *
 * The input is a request head (and whatever follows it). Besides "no
 * crash, no over-read", it checks the invariants listed in fuzz_head.h, and
 * for requests:
 *   - the method is a non-empty token and the target non-empty visible
 *     ASCII, both inside the head;
 *   - an accepted HTTP/1.1 request framing has exactly one valid Host.
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_head.h"
#include "http_parse.h"
#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_framing(const struct http_head *h)
{
    struct http_framing fr;
    enum http_error err;
    int rc = http_request_framing(h, &fr, &err);

    fuzz_check_framing(h, rc, &fr, err, 0, 0);
    if (rc == 0) {
        size_t at = 0;
        size_t hosts = fuzz_count_fields(h, "Host", &at);
        if (h->version_minor == 1)
            FUZZ_CHECK(hosts == 1, "HTTP/1.1 request accepted with %zu Host fields", hosts);
        else
            FUZZ_CHECK(hosts <= 1, "HTTP/1.0 request accepted with %zu Host fields", hosts);
        if (hosts)
            FUZZ_CHECK(url_host_field_valid(h->fields[at].value, h->fields[at].value_len) == 0,
                       "accepted an invalid Host");
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
    ssize_t n = http_parse_request(buf, size, h, &err);

    FUZZ_CHECK(n >= -2, "returned %zd", n);
    if (n == -1)
        FUZZ_CHECK(err != HTTP_ERR_NONE && http_error_status(err) != 500 &&
                       http_error_text(err) != NULL,
                   "rejected without a reason (err %d)", err);
    fuzz_check_prefixes(http_parse_request, data, size, n, err);

    if (n >= 0) {
        FUZZ_CHECK(n > 0 && (size_t)n <= size, "size %zd for %zu bytes", n, size);
        FUZZ_CHECK(err == HTTP_ERR_NONE, "accepted with err %d", err);
        FUZZ_CHECK(n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0,
                   "head does not end with CRLF CRLF");
        FUZZ_CHECK(fuzz_inside(h->method, h->method_len, buf, (size_t)n), "method outside head");
        FUZZ_CHECK(fuzz_inside(h->target, h->target_len, buf, (size_t)n), "target outside head");
        FUZZ_CHECK(h->method_len > 0 && h->target_len > 0, "empty method or target");
        for (size_t i = 0; i < h->method_len; i++)
            FUZZ_CHECK(fuzz_is_tchar((unsigned char)h->method[i]), "method byte 0x%02x",
                       (unsigned char)h->method[i]);
        for (size_t i = 0; i < h->target_len; i++)
            FUZZ_CHECK(h->target[i] >= 0x21 && h->target[i] <= 0x7e, "target byte 0x%02x",
                       (unsigned char)h->target[i]);
        FUZZ_CHECK(h->version_minor == 0 || h->version_minor == 1, "version 1.%d",
                   h->version_minor);
        fuzz_check_fields(h, buf, (size_t)n);
        fuzz_check_hop_by_hop(h);
        check_framing(h);

        /* canonical form: one SP between the parts, ": " after names */
        struct fuzz_str out = {0};
        fuzz_put(&out, h->method, h->method_len);
        fuzz_puts(&out, " ");
        fuzz_put(&out, h->target, h->target_len);
        fuzz_puts(&out, h->version_minor ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
        fuzz_put_fields(&out, h);
        char *canon = fuzz_dup(out.s, out.len);
        enum http_error err2;
        ssize_t m = http_parse_request(canon, out.len, again, &err2);
        FUZZ_CHECK(m == (ssize_t)out.len, "canonical form (%zu bytes) gave %zd (err %d)",
                   out.len, m, err2);
        fuzz_same_head(h, again);

        /* the framing decision depends on the fields only, not on spelling */
        struct http_framing f1, f2;
        enum http_error e1, e2;
        int r1 = http_request_framing(h, &f1, &e1);
        int r2 = http_request_framing(again, &f2, &e2);
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
