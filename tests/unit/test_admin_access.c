/*
 * test_admin_access.c - unit tests for the admin listener's token and Host
 * checks: the token's exact length and bytes, where it may come from
 * (bearer, the named cookie among others), and every Host that must be
 * refused (other names, other ports, a second Host, a malformed literal).
 */
#include <stdlib.h>

#include "admin_access.h"
#include "tap.h"

static struct http_head head;

/* Parses "GET / HTTP/1.1" with <fields> ("Name: value\r\n" lines). */
static const struct http_head *with(const char *fields)
{
    static char buf[4096];
    enum http_error err;
    snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\n%s\r\n", fields);
    head.field_limit = 0;
    const char *copy = guarded_copy(buf, strlen(buf));
    if (http_parse_request(copy, strlen(buf), &head, &err) <= 0)
        printf("# could not parse: %s\n", fields);
    return &head;
}

/* The fields on one line, for a test point's name. */
static const char *name_of(const char *fields)
{
    static char out[512];
    size_t n = 0;
    for (const char *p = fields; *p && n + 3 < sizeof out; p++) {
        if (*p == '\r')
            continue;
        if (*p == '\n') {
            if (p[1])
                out[n++] = '|';
            continue;
        }
        out[n++] = *p;
    }
    out[n] = '\0';
    return out;
}

#define TOKEN "s3cret-token-1"

static void token(const char *fields, int want)
{
    ok(admin_access_has_token(TOKEN, with(fields)) == want, "%s token: %s", want ? "has" : "no",
       name_of(fields));
}

static void host(const char *fields, int want)
{
    ok(admin_access_host_ok(with(fields), "127.0.0.1", "127.0.0.1", 9090) == want,
       "%s: %s", want ? "allowed" : "refused", name_of(fields));
}

int main(void)
{
    ok(admin_access_token_eq(TOKEN, TOKEN, strlen(TOKEN)), "equal");
    ok(!admin_access_token_eq(TOKEN, TOKEN, strlen(TOKEN) - 1), "a prefix is not the token");
    ok(!admin_access_token_eq(TOKEN, TOKEN "x", strlen(TOKEN) + 1), "nor a longer one");
    ok(!admin_access_token_eq(TOKEN, "s3cret-token-2", 14), "one byte off");
    ok(!admin_access_token_eq(TOKEN, "", 0), "empty");

    token("Host: localhost\r\nAuthorization: Bearer " TOKEN "\r\n", 1);
    token("Host: localhost\r\nAuthorization: bearer " TOKEN "\r\n", 1);
    token("Host: localhost\r\nAuthorization: Basic " TOKEN "\r\n", 0);
    token("Host: localhost\r\nAuthorization: Bearer " TOKEN "x\r\n", 0);
    token("Host: localhost\r\nCookie: luaproxy_admin=" TOKEN "\r\n", 1);
    token("Host: localhost\r\nCookie: a=1; luaproxy_admin=" TOKEN "; b=2\r\n", 1);
    token("Host: localhost\r\nCookie: luaproxy_adminx=" TOKEN "\r\n", 0);
    token("Host: localhost\r\nCookie: other=" TOKEN "\r\n", 0);
    token("Host: localhost\r\nCookie: luaproxy_admin=\r\n", 0);
    token("Host: localhost\r\nX-Token: " TOKEN "\r\n", 0);
    token("Host: localhost\r\n", 0);

    host("Host: localhost\r\n", 1);
    host("Host: LocalHost:9090\r\n", 1);
    host("Host: 127.0.0.1:9090\r\n", 1);
    host("Host: 127.0.0.1\r\n", 1);
    host("Host: localhost:9091\r\n", 0);
    host("Host: 127.0.0.2:9090\r\n", 0);
    host("Host: evil.example\r\n", 0);
    host("Host: localhost.evil.example\r\n", 0);
    host("Host: 127.0.0.1:9090x\r\n", 0);
    host("Host: [::1]:9090\r\n", 0); /* not this listener's address */
    host("Host: [127.0.0.1\r\n", 0);
    host("Host: localhost\r\nHost: localhost\r\n", 0);
    host("X-Nothing: 1\r\n", 0);
    ok(admin_access_host_ok(with("Host: [::1]:9090\r\n"), "::1", "", 9090), "an IPv6 listener");
    ok(admin_access_host_ok(with("Host: 10.0.0.5:9090\r\n"), "0.0.0.0", "10.0.0.5", 9090),
       "a wildcard listener reached on one of its addresses");
    return tap_done();
}
