/*
 * test_flow_filter.c - unit tests for the viewer's filter expressions.
 *
 * Every operator against a flow it matches and one it does not, the
 * combinators and their precedence (! binds tightest, then &, then |;
 * juxtaposition is &), quoting, and every way to write a bad expression:
 * each must be refused with a message that names the problem.
 */
#include <stdlib.h>

#include "flow_filter.h"
#include "tap.h"

static struct flow_view flow_a(void)
{
    struct flow_view v;
    memset(&v, 0, sizeof v);
    v.method = "GET";
    v.method_len = 3;
    v.url = "http://api.example.com/v1/users?id=7";
    v.url_len = strlen(v.url);
    v.host = "api.example.com";
    v.host_len = strlen(v.host);
    v.status = 200;
    v.req_headers[0] = "Host: api.example.com\r\nAccept: application/json\r\n\r\n";
    v.req_headers_len[0] = strlen(v.req_headers[0]);
    v.res_headers[0] = "Content-Type: application/json\r\nX-Served-By: cache-7\r\n\r\n";
    v.res_headers_len[0] = strlen(v.res_headers[0]);
    /* right before an unreadable page: the regex search must stop at the
     * body's end, which is not NUL-terminated */
    v.res_body = guarded_copy("{\"name\":\"ada\"}", 14);
    v.res_body_len = 14;
    v.res_type = "application/json";
    v.res_type_len = strlen(v.res_type);
    return v;
}

static struct flow_view flow_b(void)
{
    struct flow_view v;
    memset(&v, 0, sizeof v);
    v.method = "POST";
    v.method_len = 4;
    v.url = "http://upload.test/form";
    v.url_len = strlen(v.url);
    v.host = "upload.test";
    v.host_len = strlen(v.host);
    v.status = 502;
    v.req_headers[0] = "Host: upload.test\r\nContent-Type: text/plain\r\n\r\n";
    v.req_headers_len[0] = strlen(v.req_headers[0]);
    v.req_body = "hello\0world"; /* a NUL inside: bodies are bytes */
    v.req_body_len = 11;
    v.req_type = "text/plain";
    v.req_type_len = strlen(v.req_type);
    v.error = 1;
    v.modified = 1;
    return v;
}

/* Compiles <expr> and checks it against both flows. */
static void check(const char *expr, int want_a, int want_b)
{
    char err[200];
    struct flow_view a = flow_a(), b = flow_b();
    struct flow_filter *f = flow_filter_compile(expr, err, sizeof err);
    if (!ok(f != NULL, "compiles: %s", expr)) {
        printf("#   %s\n", err);
        return;
    }
    ok(flow_filter_match(f, &a) == want_a, "%s on flow a is %d", expr, want_a);
    ok(flow_filter_match(f, &b) == want_b, "%s on flow b is %d", expr, want_b);
    flow_filter_free(f);
}

static void bad(const char *expr, const char *want_in_message)
{
    char err[200] = "";
    struct flow_filter *f = flow_filter_compile(expr, err, sizeof err);
    ok(f == NULL, "refused: '%s'", expr);
    if (!ok(strstr(err, want_in_message) != NULL, "message for '%s' names the problem", expr))
        printf("#   got '%s', want it to contain '%s'\n", err, want_in_message);
    flow_filter_free(f);
}

/* A pattern that backtracks without end, and a pass that runs out of
 * time: both give up (no match, flow_filter_gave_up) instead of holding
 * the loop. "(a|aa)+" splits a run of a's in exponentially many ways, all
 * tried before the "!" at the end fails the "$". */
static void gives_up(void)
{
    char err[200];
    size_t n = 100000;
    char *as = malloc(n);
    struct flow_view v = flow_a();
    memset(as, 'a', n - 1);
    as[n - 1] = '!';
    v.res_body = as;
    v.res_body_len = n;

    struct flow_filter *f = flow_filter_compile("~b \"^(a|aa)+$\"", err, sizeof err);
    ok(f != NULL, "a backtracking pattern compiles");
    flow_filter_limit_time(f, 60);
    ok(flow_filter_match(f, &v) == 0, "a backtracking pattern over 100,000 bytes: no match");
    ok(flow_filter_gave_up(f), "... and the filter says it gave up");
    flow_filter_free(f);

    f = flow_filter_compile("~b \"a+!$\"", err, sizeof err);
    flow_filter_limit_time(f, 60);
    ok(flow_filter_match(f, &v) == 1 && !flow_filter_gave_up(f),
       "an ordinary pattern over the same body matches, within the limits");
    flow_filter_limit_time(f, -1); /* the time is up already */
    ok(flow_filter_match(f, &v) == 0 && flow_filter_gave_up(f),
       "past the time allowed: no match, gave up");
    flow_filter_free(f);
    free(as);
}

int main(void)
{
    /* each operator */
    check("", 1, 1);
    check("~d example\\.com", 1, 0);
    check("~d ^upload", 0, 1);
    check("~u /v1/users", 1, 0);
    check("~u id=7$", 1, 0);
    check("~m GET", 1, 0);
    check("~m post", 0, 1); /* case-insensitive */
    check("~c 200", 1, 0);
    check("~c 502", 0, 1);
    check("~h accept", 1, 0);
    check("~h X-Served-By", 1, 0);
    check("~hq \"^Content-Type: text\"", 0, 1);
    check("~hs \"^content-type: application\"", 1, 0);
    check("~hq X-Served-By", 0, 0);
    check("~b ada", 1, 0);
    check("~b world", 0, 1); /* past the NUL */
    check("~bq hello", 0, 1);
    check("~bs hello", 0, 0);
    check("~t json", 1, 0);
    check("~t text/plain", 0, 1);
    check("~e", 0, 1);
    check("~modified", 0, 1);
    /* a bare word is ~u */
    check("users", 1, 0);
    check("upload", 0, 1);
    /* combinators */
    check("!~e", 1, 0);
    check("~m GET & ~c 200", 1, 0);
    check("~m GET ~c 502", 0, 0); /* juxtaposition is and */
    check("~m GET | ~c 502", 1, 1);
    check("!(~m GET | ~c 502)", 0, 0);
    check("~e | ~m GET & ~c 404", 0, 1);  /* & binds tighter than | */
    check("(~e | ~m GET) & ~c 200", 1, 0);
    check("!!~e", 0, 1);
    check("~d \"api.example.com\"", 1, 0);
    check("~u 'users\\?id'", 1, 0);
    check("~u \"(v1|v2)/users\"", 1, 0);
    check("  ~m   GET  ", 1, 0);
    /* bad expressions */
    bad("~x", "unknown operator ~x");
    bad("~zzz foo", "unknown operator ~zzz");
    bad("~u", "~u needs an argument");
    bad("~c abc", "~c needs a status code");
    bad("~c 1000", "~c needs a status code");
    bad("~u \"open", "unterminated quote");
    bad("(~m GET", "missing ')'");
    bad("~m GET)", "unexpected ')'");
    bad("~m GET &", "ends where a term was expected");
    bad("| ~m GET", "unexpected '|'");
    bad("!", "ends where a term was expected");
    bad("~u (", "bad regular expression for ~u");
    bad("~b \"a{2,1}\"", "bad regular expression for ~b");
    bad("~", "unknown operator ~");
    {
        char deep[200];
        memset(deep, '(', 100);
        deep[100] = '\0';
        bad(deep, "nests too deeply");
        char many[1100] = "";
        for (int i = 0; i < 70; i++)
            strcat(many, "~e | ");
        strcat(many, "~e");
        bad(many, "too long");
        char huge[1500];
        memset(huge, 'a', sizeof huge - 1);
        huge[sizeof huge - 1] = '\0';
        bad(huge, "too long");
    }
    gives_up();
    return tap_done();
}
