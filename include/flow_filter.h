/*
 * flow_filter.h - the viewer's filter expressions, in mitmproxy's syntax.
 *
 *   ~d REGEX   host            ~u REGEX   URL           ~m REGEX  method
 *   ~c CODE    status          ~h REGEX   any header    ~hq / ~hs request /
 *   ~b REGEX   any body        ~bq / ~bs  request / response body  response headers
 *   ~t REGEX   content type    ~e         failed        ~modified a hook changed it
 *   !X  X & Y  X | Y  X Y (and)  ( X )   a bare word W means ~u W
 *
 * Regular expressions are PCRE2's (Perl's syntax), case-insensitive; an
 * argument with spaces or parentheses goes in "double" or 'single' quotes.
 * An expression is compiled once and matched against many flows. Matching
 * is bounded: see flow_filter_limit_time and flow_filter_gave_up.
 */
#ifndef LUAPROXY_FLOW_FILTER_H
#define LUAPROXY_FLOW_FILTER_H

#include <stddef.h>

#define FLOW_FILTER_MAX_LEN 1024

struct flow_filter;

/* What a filter may ask of a flow: views, not owned, any may be empty. */
struct flow_view {
    const char *method;
    size_t method_len;
    const char *url;
    size_t url_len;
    const char *host;
    size_t host_len;
    int status;
    const char *req_headers[2]; /* header blocks (as received, as forwarded) */
    size_t req_headers_len[2];
    const char *res_headers[2];
    size_t res_headers_len[2];
    const char *req_body;
    size_t req_body_len;
    const char *res_body;
    size_t res_body_len;
    const char *req_type; /* Content-Type values */
    size_t req_type_len;
    const char *res_type;
    size_t res_type_len;
    int error;
    int modified;
};

/* Compiles <expr>; NULL with a message naming the problem in <err>. An
 * empty expression matches everything. */
struct flow_filter *flow_filter_compile(const char *expr, char *err, size_t err_len);
int flow_filter_match(struct flow_filter *f, const struct flow_view *v);
/* Matching with <f> from now on gives up <seconds> from now (it runs on an
 * event loop). */
void flow_filter_limit_time(struct flow_filter *f, double seconds);
/* Whether a match gave up since flow_filter_limit_time (or ever): a
 * pattern that backtracked past its step or memory limit, or the time ran
 * out. The matches since then are not to be trusted. */
int flow_filter_gave_up(const struct flow_filter *f);
void flow_filter_free(struct flow_filter *f);

#endif
