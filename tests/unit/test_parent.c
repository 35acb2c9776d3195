/*
 * test_parent.c - unit tests for the parent proxy URL and bypass patterns.
 *
 * The URL carries credentials, so the edges that matter are how user and
 * password are decoded (percent-encoding, a colon inside the password) and
 * that every malformed URL is refused rather than half-understood; the
 * patterns decide what skips the parent, so near misses must not match.
 * The credentials' identity decides which pooled connection a request may
 * ride, so any two different values must tell apart, none included.
 */
#include <stdlib.h>
#include <string.h>

#include "parent.h"
#include "tap.h"

/* The URL ends (with its NUL) right before an unreadable page. */
static const char *guarded(const char *url)
{
    return guarded_copy(url, strlen(url) + 1);
}

static void url_ok(const char *url, const char *host, unsigned port, const char *auth)
{
    struct parent_proxy p;
    char err[200];
    int rc = parent_parse(guarded(url), &p, err, sizeof err);
    ok(rc == 0, "parses %s%s%s", url, rc ? ": " : "", rc ? err : "");
    if (rc != 0)
        return;
    ok(strcmp(p.host, host) == 0, "host of %s is %s (got %s)", url, host, p.host);
    is_int(p.port, port, "port");
    ok(strcmp(p.auth, auth) == 0, "auth of %s is '%s' (got '%s')", url, auth, p.auth);
    ok(strcmp(p.url, url) == 0, "keeps the URL as given");
}

static void url_bad(const char *url)
{
    struct parent_proxy p;
    char err[200];
    ok(parent_parse(guarded(url), &p, err, sizeof err) == -1, "refuses %s", url);
}

int main(void)
{
    url_ok("http://127.0.0.1:3128", "127.0.0.1", 3128, "");
    url_ok("http://proxy.corp:8080/", "proxy.corp", 8080, "");
    url_ok("HTTP://[::1]:3128", "::1", 3128, "");
    /* "alice:secret" and "u@corp:p:ss" (decoded) in base64 */
    url_ok("http://alice:secret@10.0.0.1:3128", "10.0.0.1", 3128, "Basic YWxpY2U6c2VjcmV0");
    url_ok("http://u%40corp:p%3Ass@h:1", "h", 1, "Basic dUBjb3JwOnA6c3M=");
    url_ok("http://u:p:q@h:1", "h", 1, "Basic dTpwOnE=");
    url_ok("http://bob@h:65535", "h", 65535, "Basic Ym9iOg==");
    /* "u:p@ss/#?" and "u@corp:x@y": the userinfo ends at the last '@' */
    url_ok("http://u:p@ss/#?@h:1", "h", 1, "Basic dTpwQHNzLyM/");
    url_ok("http://u%40corp:x@y@h:1/", "h", 1, "Basic dUBjb3JwOnhAeQ==");

    url_bad("https://h:1");
    url_bad("h:3128");
    url_bad("http://h");
    url_bad("http://h:");
    url_bad("http://h:0");
    url_bad("http://h:65536");
    url_bad("http://h:12x");
    url_bad("http://:3128");
    url_bad("http://h:3128/path");
    url_bad("http://h:3128?q");
    url_bad("http://ho st:3128");
    url_bad("http://[::1:3128");
    url_bad("http://@h:1");
    url_bad("http://u%4:p@h:1");
    url_bad("http://u%00:p@h:1");
    url_bad("http://u:p%0d%0aX@h:1");
    url_bad("http://u:p@h:1/@");
    url_bad("http://u:p@h:1/x");

    const char *patterns[] = {"localhost", "*.corp.example", "10.0.0.0/8", "fd00::/8",
                              "192.168.1.7"};
    int n = (int)(sizeof patterns / sizeof patterns[0]);
    ok(parent_bypassed(patterns, n, "LOCALHOST"), "a name matches case-insensitively");
    ok(parent_bypassed(patterns, n, "a.corp.example"), "*.domain matches a name under it");
    ok(parent_bypassed(patterns, n, "a.b.Corp.Example"), "... at any depth");
    ok(!parent_bypassed(patterns, n, "corp.example"), "... but not the domain itself");
    ok(!parent_bypassed(patterns, n, "evilcorp.example"), "... nor a name that only ends alike");
    ok(parent_bypassed(patterns, n, "10.1.2.3"), "an address in a CIDR");
    ok(!parent_bypassed(patterns, n, "11.1.2.3"), "an address outside it");
    ok(parent_bypassed(patterns, n, "fd12::1"), "an IPv6 address in a CIDR");
    ok(parent_bypassed(patterns, n, "192.168.1.7"), "a single address");
    ok(!parent_bypassed(patterns, n, "192.168.1.70"), "not its neighbour");
    ok(!parent_bypassed(patterns, n, "10.example"), "a name never matches a CIDR");
    ok(!parent_bypassed(patterns, n, "localhost.evil"), "nor a longer name an exact one");

    ok(parent_pattern_valid("*.example.com"), "valid: *.domain");
    ok(parent_pattern_valid("10.0.0.0/8"), "valid: CIDR");
    ok(!parent_pattern_valid("10.0.0.0/33"), "invalid: a prefix too long");
    ok(!parent_pattern_valid("*."), "invalid: an empty domain");
    ok(!parent_pattern_valid("a b"), "invalid: a space");
    ok(!parent_pattern_valid(""), "invalid: empty");

    unsigned char a[PARENT_CREDENTIALS_ID_LEN], b[PARENT_CREDENTIALS_ID_LEN];
    static const unsigned char zeros[PARENT_CREDENTIALS_ID_LEN];
    char copy[] = "Basic YWxpY2U6c2VjcmV0";
    is_int(parent_credentials_id(NULL, a), 0, "identity of no credentials");
    ok(memcmp(a, zeros, sizeof a) == 0, "... is all zeros");
    is_int(parent_credentials_id("", b), 0, "identity of an empty value");
    ok(memcmp(b, zeros, sizeof b) != 0, "... is not that of none");
    parent_credentials_id("Basic YWxpY2U6c2VjcmV0", a);
    parent_credentials_id(copy, b);
    ok(memcmp(a, b, sizeof a) == 0, "the same value, another copy: the same identity");
    parent_credentials_id("Basic Ym9iOmJ1aWxkZXI=", b);
    ok(memcmp(a, b, sizeof a) != 0, "another user: another identity");
    parent_credentials_id("basic YWxpY2U6c2VjcmV0", b);
    ok(memcmp(a, b, sizeof a) != 0, "values that differ only in case differ");
    return tap_done();
}
