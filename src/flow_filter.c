/*
 * flow_filter.c - parsing and matching filter expressions (flow_filter.h).
 *
 * A recursive-descent parser builds a small tree of nodes in one array:
 *
 *   or   := and ( "|" and )*
 *   and  := not ( "&"? not )*
 *   not  := "!" not | atom
 *   atom := "(" or ")" | "~" NAME [ARG] | WORD
 *
 * Depth and size are bounded, so no expression can exhaust the stack.
 *
 * Regular expressions are PCRE2's (Perl's syntax, as mitmproxy's Python
 * ones), because PCRE2 can bound a match: a pattern that backtracks
 * without end ("(a|aa)*b" against a long run of a's) stops at
 * MATCH_LIMIT steps, and a whole pass over many flows stops at the time
 * its caller allows (flow_filter_limit_time). Either way the filter gives
 * up (flow_filter_gave_up) instead of holding the event loop it runs on.
 */
#include "flow_filter.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_NODES 64
#define MAX_DEPTH 32
/* Steps of one search (PCRE2's match limit; its default is 10,000,000),
 * and the memory its backtracking may take (KiB). */
#define MATCH_LIMIT 2000000
#define HEAP_LIMIT_KIB 8192

enum op {
    OP_AND, OP_OR, OP_NOT, OP_ALL,
    OP_DOMAIN, OP_URL, OP_METHOD, OP_CODE, OP_HEADER, OP_HEADER_REQ, OP_HEADER_RES,
    OP_BODY, OP_BODY_REQ, OP_BODY_RES, OP_TYPE, OP_ERROR, OP_MODIFIED,
};

struct node {
    enum op op;
    int a, b;      /* children (indexes) */
    int code;
    pcre2_code *re;
};

struct flow_filter {
    struct node nodes[MAX_NODES];
    int count;
    int root;
    pcre2_match_data *match;   /* made once, for every search */
    pcre2_match_context *limits;
    double deadline;           /* CLOCK_MONOTONIC seconds; 0: none */
    int gave_up;
};

struct parser {
    struct flow_filter *f;
    const char *p;
    char *err;
    size_t err_len;
    int failed;
};

static const struct {
    const char *name;
    enum op op;
    int arg; /* 0 none, 1 regex, 2 number */
} operators[] = {
    {"d", OP_DOMAIN, 1},      {"u", OP_URL, 1},         {"m", OP_METHOD, 1},
    {"c", OP_CODE, 2},        {"h", OP_HEADER, 1},      {"hq", OP_HEADER_REQ, 1},
    {"hs", OP_HEADER_RES, 1}, {"b", OP_BODY, 1},        {"bq", OP_BODY_REQ, 1},
    {"bs", OP_BODY_RES, 1},   {"t", OP_TYPE, 1},        {"e", OP_ERROR, 0},
    {"modified", OP_MODIFIED, 0}, {"all", OP_ALL, 0},
};

__attribute__((format(printf, 2, 3))) static int fail(struct parser *ps, const char *fmt, ...)
{
    va_list ap;
    if (!ps->failed) {
        va_start(ap, fmt);
        vsnprintf(ps->err, ps->err_len, fmt, ap);
        va_end(ap);
    }
    ps->failed = 1;
    return -1;
}

static void skip_space(struct parser *ps)
{
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')
        ps->p++;
}

static int new_node(struct parser *ps, enum op op)
{
    if (ps->f->count == MAX_NODES)
        return fail(ps, "the expression is too long (at most %d terms)", MAX_NODES);
    struct node *n = &ps->f->nodes[ps->f->count];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->a = n->b = -1;
    return ps->f->count++;
}

/* Reads an argument: quoted ("..." or '...', backslash escapes the quote)
 * or bare up to whitespace or ')'. */
static int read_arg(struct parser *ps, char *out, size_t out_len, const char *what)
{
    size_t n = 0;
    skip_space(ps);
    if (*ps->p == '"' || *ps->p == '\'') {
        char q = *ps->p++;
        while (*ps->p && *ps->p != q) {
            if (*ps->p == '\\' && (ps->p[1] == q || ps->p[1] == '\\'))
                ps->p++;
            if (n + 1 >= out_len)
                return fail(ps, "the argument of %s is too long", what);
            out[n++] = *ps->p++;
        }
        if (*ps->p != q)
            return fail(ps, "unterminated quote in the argument of %s", what);
        ps->p++;
    } else {
        while (*ps->p && *ps->p != ' ' && *ps->p != '\t' && *ps->p != ')' && *ps->p != '\n') {
            if (n + 1 >= out_len)
                return fail(ps, "the argument of %s is too long", what);
            out[n++] = *ps->p++;
        }
    }
    out[n] = '\0';
    if (n == 0)
        return fail(ps, "%s needs an argument", what);
    return 0;
}

/* Case-insensitive; ^ and $ match at line ends too, and "." does not
 * match a newline, so a pattern reads a header block line by line. Bytes,
 * not UTF-8: bodies may be anything. */
static int compile_re(struct parser *ps, struct node *n, const char *text, const char *what)
{
    int code;
    PCRE2_SIZE offset;

    n->re = pcre2_compile((PCRE2_SPTR)text, PCRE2_ZERO_TERMINATED,
                          PCRE2_CASELESS | PCRE2_MULTILINE, &code, &offset, NULL);
    if (!n->re) {
        PCRE2_UCHAR msg[128];
        pcre2_get_error_message(code, msg, sizeof msg);
        return fail(ps, "bad regular expression for %s: %s (at %zu)", what, (char *)msg,
                    (size_t)offset);
    }
    return 0;
}

static int parse_or(struct parser *ps, int depth);

static int parse_atom(struct parser *ps, int depth)
{
    char arg[FLOW_FILTER_MAX_LEN + 1];
    int idx;

    skip_space(ps);
    if (*ps->p == '\0')
        return fail(ps, "the expression ends where a term was expected");
    if (*ps->p == '(') {
        ps->p++;
        idx = parse_or(ps, depth + 1);
        if (idx < 0)
            return -1;
        skip_space(ps);
        if (*ps->p != ')')
            return fail(ps, "missing ')'");
        ps->p++;
        return idx;
    }
    if (*ps->p == ')' || *ps->p == '&' || *ps->p == '|')
        return fail(ps, "unexpected '%c'", *ps->p);
    if (*ps->p == '~') {
        char name[16];
        size_t len = 0;
        const char *start = ++ps->p;
        while ((*ps->p >= 'a' && *ps->p <= 'z') || (*ps->p >= 'A' && *ps->p <= 'Z')) {
            ps->p++;
        }
        len = (size_t)(ps->p - start);
        if (len == 0 || len >= sizeof name)
            return fail(ps, "unknown operator ~%.*s", (int)(len > 20 ? 20 : len), start);
        memcpy(name, start, len);
        name[len] = '\0';
        for (size_t i = 0; i < sizeof operators / sizeof operators[0]; i++) {
            char what[24];
            if (strcmp(operators[i].name, name) != 0)
                continue;
            snprintf(what, sizeof what, "~%s", name);
            idx = new_node(ps, operators[i].op);
            if (idx < 0)
                return -1;
            if (operators[i].arg == 0)
                return idx;
            if (read_arg(ps, arg, sizeof arg, what) != 0)
                return -1;
            if (operators[i].arg == 2) {
                char *end;
                long code = strtol(arg, &end, 10);
                if (*end != '\0' || code < 0 || code > 999)
                    return fail(ps, "~c needs a status code, not '%.40s'", arg);
                ps->f->nodes[idx].code = (int)code;
                return idx;
            }
            return compile_re(ps, &ps->f->nodes[idx], arg, what) == 0 ? idx : -1;
        }
        return fail(ps, "unknown operator ~%s", name);
    }
    /* A bare word filters the URL. */
    if (read_arg(ps, arg, sizeof arg, "a bare word") != 0)
        return -1;
    idx = new_node(ps, OP_URL);
    if (idx < 0)
        return -1;
    return compile_re(ps, &ps->f->nodes[idx], arg, "a bare word") == 0 ? idx : -1;
}

static int parse_not(struct parser *ps, int depth)
{
    if (depth > MAX_DEPTH)
        return fail(ps, "the expression nests too deeply");
    skip_space(ps);
    if (*ps->p == '!') {
        ps->p++;
        int child = parse_not(ps, depth + 1);
        if (child < 0)
            return -1;
        int idx = new_node(ps, OP_NOT);
        if (idx >= 0)
            ps->f->nodes[idx].a = child;
        return idx;
    }
    return parse_atom(ps, depth);
}

/* A new <op> node over <left> and <right>: its index, or -1 when <right>
 * failed to parse or the tree is full. */
static int join(struct parser *ps, enum op op, int left, int right)
{
    int idx;
    if (right < 0 || (idx = new_node(ps, op)) < 0)
        return -1;
    ps->f->nodes[idx].a = left;
    ps->f->nodes[idx].b = right;
    return idx;
}

static int parse_and(struct parser *ps, int depth)
{
    int left = parse_not(ps, depth);
    while (left >= 0) {
        skip_space(ps);
        if (*ps->p == '&')
            ps->p++;
        else if (*ps->p == '\0' || *ps->p == '|' || *ps->p == ')')
            break;
        left = join(ps, OP_AND, left, parse_not(ps, depth));
    }
    return left;
}

static int parse_or(struct parser *ps, int depth)
{
    if (depth > MAX_DEPTH)
        return fail(ps, "the expression nests too deeply");
    int left = parse_and(ps, depth);
    while (left >= 0) {
        skip_space(ps);
        if (*ps->p != '|')
            break;
        ps->p++;
        left = join(ps, OP_OR, left, parse_and(ps, depth));
    }
    return left;
}

struct flow_filter *flow_filter_compile(const char *expr, char *err, size_t err_len)
{
    struct flow_filter *f = calloc(1, sizeof *f);
    struct parser ps = {f, expr, err, err_len, 0};

    if (!f) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    if (strlen(expr) > FLOW_FILTER_MAX_LEN) {
        snprintf(err, err_len, "the expression is too long (at most %d bytes)",
                 FLOW_FILTER_MAX_LEN);
        free(f);
        return NULL;
    }
    f->match = pcre2_match_data_create(1, NULL);
    f->limits = pcre2_match_context_create(NULL);
    if (!f->match || !f->limits) {
        snprintf(err, err_len, "out of memory");
        flow_filter_free(f);
        return NULL;
    }
    pcre2_set_match_limit(f->limits, MATCH_LIMIT);
    pcre2_set_heap_limit(f->limits, HEAP_LIMIT_KIB);
    skip_space(&ps);
    if (*ps.p == '\0') {
        f->root = new_node(&ps, OP_ALL);
        return f;
    }
    f->root = parse_or(&ps, 0);
    if (f->root >= 0) {
        skip_space(&ps);
        if (*ps.p != '\0')
            fail(&ps, "unexpected '%c'", *ps.p);
    }
    if (ps.failed || f->root < 0) {
        flow_filter_free(f);
        return NULL;
    }
    return f;
}

void flow_filter_free(struct flow_filter *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->count; i++)
        pcre2_code_free(f->nodes[i].re);
    pcre2_match_data_free(f->match);
    pcre2_match_context_free(f->limits);
    free(f);
}

static double monotonic_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void flow_filter_limit_time(struct flow_filter *f, double seconds)
{
    f->deadline = monotonic_now() + seconds;
    f->gave_up = 0;
}

int flow_filter_gave_up(const struct flow_filter *f)
{
    return f->gave_up;
}

/* Searches <len> bytes, which may hold NULs and need not be terminated.
 * Past a limit it gives up: no match, and the filter remembers it. */
static int search(struct flow_filter *f, const pcre2_code *re, const char *s, size_t len)
{
    if (!s || f->gave_up)
        return 0;
    if (f->deadline > 0 && monotonic_now() > f->deadline) {
        f->gave_up = 1;
        return 0;
    }
    int rc = pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, f->match, f->limits);
    if (rc >= 0)
        return 1;
    if (rc != PCRE2_ERROR_NOMATCH)
        f->gave_up = 1; /* a limit (steps, memory), or an error: no answer */
    return 0;
}

static int eval(struct flow_filter *f, int i, const struct flow_view *v)
{
    const struct node *n = &f->nodes[i];
    switch (n->op) {
    case OP_AND: return eval(f, n->a, v) && eval(f, n->b, v);
    case OP_OR: return eval(f, n->a, v) || eval(f, n->b, v);
    case OP_NOT: return !eval(f, n->a, v);
    case OP_ALL: return 1;
    case OP_DOMAIN: return search(f, n->re, v->host, v->host_len);
    case OP_URL: return search(f, n->re, v->url, v->url_len);
    case OP_METHOD: return search(f, n->re, v->method, v->method_len);
    case OP_CODE: return v->status == n->code;
    case OP_HEADER_REQ:
        return search(f, n->re, v->req_headers[0], v->req_headers_len[0]) ||
               search(f, n->re, v->req_headers[1], v->req_headers_len[1]);
    case OP_HEADER_RES:
        return search(f, n->re, v->res_headers[0], v->res_headers_len[0]) ||
               search(f, n->re, v->res_headers[1], v->res_headers_len[1]);
    case OP_HEADER:
        return search(f, n->re, v->req_headers[0], v->req_headers_len[0]) ||
               search(f, n->re, v->req_headers[1], v->req_headers_len[1]) ||
               search(f, n->re, v->res_headers[0], v->res_headers_len[0]) ||
               search(f, n->re, v->res_headers[1], v->res_headers_len[1]);
    case OP_BODY_REQ: return search(f, n->re, v->req_body, v->req_body_len);
    case OP_BODY_RES: return search(f, n->re, v->res_body, v->res_body_len);
    case OP_BODY:
        return search(f, n->re, v->req_body, v->req_body_len) ||
               search(f, n->re, v->res_body, v->res_body_len);
    case OP_TYPE:
        return search(f, n->re, v->res_type, v->res_type_len) ||
               search(f, n->re, v->req_type, v->req_type_len);
    case OP_ERROR: return v->error;
    case OP_MODIFIED: return v->modified;
    }
    return 0;
}

int flow_filter_match(struct flow_filter *f, const struct flow_view *v)
{
    return eval(f, f->root, v);
}
