/*
 * max_forwards.c - Max-Forwards (RFC 9110 7.6.2). TRACE and OPTIONS carry
 * a count of the hops they may still take: a proxy that receives 0 is the
 * request's final recipient and answers it; otherwise it forwards the
 * request with the count lowered by one. Other methods ignore the field,
 * which then goes on as it came.
 */
#include "max_forwards.h"

#include <stdio.h>
#include <string.h>

#include "headers.h"
#include "message.h"

static int is_method(const struct http_head *head, const char *name)
{
    size_t len = strlen(name);
    return head->method_len == len && memcmp(head->method, name, len) == 0;
}

/*
 * The field's value, 1*DIGIT (RFC 9110 7.6.2), into <out>. A count past
 * MAX_FORWARDS_CAP is read as the cap: no request takes that many hops, so
 * the two mean the same ("very large"), and RFC 9110 asks a recipient to
 * expect long numerals rather than fail on them (8.6, of Content-Length).
 * The cap also keeps what goes on small enough for any next hop to read. 0, or -1 when the value
 * is empty or not all digits.
 */
static int parse_count(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v <= MAX_FORWARDS_CAP) /* past it, more digits change nothing */
            v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v > MAX_FORWARDS_CAP ? MAX_FORWARDS_CAP : v;
    return 0;
}

enum max_forwards max_forwards_check(const struct http_head *head, uint64_t *left)
{
    uint64_t value;

    if (!is_method(head, "TRACE") && !is_method(head, "OPTIONS"))
        return MAX_FORWARDS_NONE;
    int at = http_find_field(head, "Max-Forwards", 0);
    if (at < 0)
        return MAX_FORWARDS_NONE;
    /* one field, one number: two counts would leave the hop to guess */
    if (http_find_field(head, "Max-Forwards", (size_t)at + 1) >= 0 ||
        parse_count(head->fields[at].value, head->fields[at].value_len, &value) != 0)
        return MAX_FORWARDS_BAD;
    if (value == 0)
        return MAX_FORWARDS_HERE;
    *left = value - 1;
    return MAX_FORWARDS_ON;
}

int max_forwards_set(struct headers *fields, uint64_t left)
{
    char num[24];
    int len = snprintf(num, sizeof num, "%llu", (unsigned long long)left);
    return headers_set(fields, "Max-Forwards", 12, num, (size_t)len);
}

/* Fields a TRACE's reflection leaves out: they may hold credentials
 * (RFC 9110 9.3.8). */
static int sensitive(const struct http_field *f)
{
    static const char *const names[] = {"Authorization", "Proxy-Authorization", "Cookie"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (http_token_eq(f->name, f->name_len, names[i]))
            return 1;
    return 0;
}

int max_forwards_answer(struct buffer *out, const struct http_head *head, int keep_alive,
                        int client_minor)
{
    struct buffer body;
    int trace = is_method(head, "TRACE"), rc;

    buffer_init(&body);
    if (trace) {
        rc = buffer_printf(&body, "%.*s %.*s HTTP/1.%d\r\n", (int)head->method_len, head->method,
                           (int)head->target_len, head->target, head->version_minor);
        for (size_t i = 0; rc == 0 && i < head->field_count; i++) {
            const struct http_field *f = &head->fields[i];
            if (!sensitive(f))
                rc = buffer_printf(&body, "%.*s: %.*s\r\n", (int)f->name_len, f->name,
                                   (int)f->value_len, f->value);
        }
        if (rc == 0)
            rc = buffer_append(&body, "\r\n", 2);
    } else {
        rc = 0;
    }
    if (rc == 0)
        rc = buffer_printf(out,
                           "HTTP/1.1 200 OK\r\n%s"
                           "Content-Length: %zu\r\n"
                           "Via: " MESSAGE_VIA "\r\n"
                           "%s\r\n",
                           trace ? "Content-Type: message/http\r\n"
                                 : "Allow: GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, "
                                   "TRACE, PATCH\r\n",
                           buffer_length(&body),
                           !keep_alive         ? "Connection: close\r\n"
                           : client_minor == 0 ? "Connection: keep-alive\r\n"
                                               : "");
    if (rc == 0 && buffer_length(&body) > 0)
        rc = buffer_append(out, buffer_peek(&body), buffer_length(&body));
    int len = rc == 0 ? (int)buffer_length(&body) : -1;
    buffer_free(&body);
    return len;
}
