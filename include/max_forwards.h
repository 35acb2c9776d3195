/*
 * max_forwards.h - Max-Forwards (RFC 9110 7.6.2), for exchange.c: a TRACE
 * or OPTIONS request that may be forwarded no further is answered by the
 * proxy; one that may goes on with the count lowered by one.
 */
#ifndef LUAPROXY_MAX_FORWARDS_H
#define LUAPROXY_MAX_FORWARDS_H

#include <stdint.h>

#include "buffer.h"
#include "http_parse.h"

/* The largest count read or sent; a longer numeral stands for it. 2^31-1:
 * far beyond any real chain of proxies, and within every parser's int. */
#define MAX_FORWARDS_CAP ((uint64_t)2147483647)

enum max_forwards {
    MAX_FORWARDS_NONE, /* not TRACE or OPTIONS, or no Max-Forwards: forward as it is */
    MAX_FORWARDS_ON,   /* forward, with the count lowered to *left */
    MAX_FORWARDS_HERE, /* 0: the proxy answers (max_forwards_answer) */
    MAX_FORWARDS_BAD,  /* repeated, empty or not digits: refuse with 400 */
};

enum max_forwards max_forwards_check(const struct http_head *head, uint64_t *left);
/* The same, at the cost of one compare for every request that is not one
 * of the two (by its method's length: TRACE 5, OPTIONS 7). */
static inline enum max_forwards max_forwards_of(const struct http_head *head, uint64_t *left)
{
    if (head->method_len != 5 && head->method_len != 7)
        return MAX_FORWARDS_NONE;
    return max_forwards_check(head, left);
}
/* The forwarded request's Max-Forwards: <left> in place of the client's
 * value. 0, or -1 when out of memory. */
struct headers;
int max_forwards_set(struct headers *fields, uint64_t left);

/* The proxy's own answer to a TRACE (the request it received, less
 * credentials and cookies, as message/http) or an OPTIONS (what it
 * forwards: Allow), whole, into <out>. Returns the body's length, or -1
 * when out of memory. */
int max_forwards_answer(struct buffer *out, const struct http_head *head, int keep_alive,
                        int client_minor);

#endif
