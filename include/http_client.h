/*
 * http_client.h - one HTTP/1.1 request from the proxy itself, on the loop
 * (proxy.http). It resolves with the proxy's resolver, connects without
 * blocking, speaks TLS for https:// URLs (the proxy's TLS transport, with
 * certificate verification), and bounds everything: the whole call by a
 * timeout, the response head by a size, the body by max_body.
 *
 * It never goes through the proxy's own hooks. It goes through a parent
 * proxy as the relay does: --upstream's unless the host bypasses it, or
 * one the caller names (plain HTTP in absolute form, https in a CONNECT
 * tunnel with TLS to the origin inside), or directly. Plain HTTP shares
 * the proxy's upstream pool: a call takes a kept-alive
 * connection to the same host and port when there is one (for methods that
 * may be sent again, should it turn out closed before any answer) and
 * parks its connection there when the response leaves it clean. https
 * takes a connection per call (Connection: close): the pool keeps sockets,
 * and a TLS session lives in its SSL object.
 */
#ifndef LUAPROXY_HTTP_CLIENT_H
#define LUAPROXY_HTTP_CLIENT_H

#include <stddef.h>

#include "buffer.h"
#include "headers.h"
#include "parent.h"

struct proxy;
struct http_call;

struct http_client_request {
    const char *method;           /* a token, e.g. "GET" */
    const char *url;              /* http://host[:port]/path or https://... */
    const struct headers *fields; /* extra request fields, or NULL */
    const char *body;             /* sent with a Content-Length when not NULL */
    size_t body_len;
    double timeout;               /* seconds for the whole call */
    size_t max_body;              /* a longer response body is an error, found as it
                                   * arrives: the body is held (in C memory) up to
                                   * this, the caller's bound on it */
    size_t all_calls_max;         /* what the bodies of every call in flight in this
                                   * process may hold together (0: no bound); a call
                                   * whose body would pass it fails */
    const struct parent_proxy *parent; /* go through this parent proxy; or, when NULL: */
    int direct;                   /* 1: never through a parent; 0: through --upstream's
                                   * unless the URL's host bypasses it */
};

struct http_client_response {
    int status;
    struct headers fields;
    struct buffer body;
};

/* Runs from the loop when the call ends, never from inside
 * http_client_start. <error> is NULL on success (then <res> is filled in,
 * valid during the callback only), else a short text. */
typedef void http_client_done(void *arg, const char *error, struct http_client_response *res);

/* Starts a call. NULL with <err> when the request itself is wrong (bad
 * URL, https without TLS support) or memory runs out. */
struct http_call *http_client_start(struct proxy *p, const struct http_client_request *rq,
                                    http_client_done *cb, void *arg, char *err, size_t err_len);
/* Stops a call; its callback never runs. */
void http_call_cancel(struct http_call *c);

#endif
