/*
 * test_url.c - unit tests for splitting absolute-form and authority-form
 * request targets. Every target is parsed from a guarded copy.
 */
#include <stdint.h>

#include "tap.h"
#include "url.h"

struct absolute_case {
    const char *target;
    const char *scheme;
    const char *host;
    int ipv6;
    int port;
    int port_given;
    const char *path;
};

static const struct absolute_case absolutes[] = {
    {"http://example.com/", "http", "example.com", 0, 80, 0, "/"},
    {"http://example.com", "http", "example.com", 0, 80, 0, ""},
    {"https://example.com/a", "https", "example.com", 0, 443, 0, "/a"},
    {"HTTP://Example.COM/A", "HTTP", "Example.COM", 0, 80, 0, "/A"},
    {"HtTpS://h/", "HtTpS", "h", 0, 443, 0, "/"},
    {"http://example.com:8080/x?y=1&z=%20", "http", "example.com", 0, 8080, 1, "/x?y=1&z=%20"},
    {"http://example.com:80/", "http", "example.com", 0, 80, 1, "/"},
    {"https://example.com:1", "https", "example.com", 0, 1, 1, ""},
    {"http://example.com:65535/", "http", "example.com", 0, 65535, 1, "/"},
    {"http://example.com:00080/", "http", "example.com", 0, 80, 1, "/"},
    {"http://example.com?q=1", "http", "example.com", 0, 80, 0, "?q=1"},
    {"http://example.com:81?q", "http", "example.com", 0, 81, 1, "?q"},
    {"http://1.2.3.4/", "http", "1.2.3.4", 0, 80, 0, "/"},
    {"http://[::1]/", "http", "::1", 1, 80, 0, "/"},
    {"http://[::1]:8080/p", "http", "::1", 1, 8080, 1, "/p"},
    {"http://[2001:db8::a:b]", "http", "2001:db8::a:b", 1, 80, 0, ""},
    {"http://[::ffff:10.0.0.1]:1/", "http", "::ffff:10.0.0.1", 1, 1, 1, "/"},
    {"http://a-b_c~d.e./", "http", "a-b_c~d.e.", 0, 80, 0, "/"},
    {"ftp://files.example/x", "ftp", "files.example", 0, 0, 0, "/x"},
    {"ws+x.y-z://h:9/", "ws+x.y-z", "h", 0, 9, 1, "/"},
    {"httpx://h/", "httpx", "h", 0, 0, 0, "/"},
    {"http://h/a@b/c:d", "http", "h", 0, 80, 0, "/a@b/c:d"},
    {"http://h//double", "http", "h", 0, 80, 0, "//double"},
    {"http://h/%2e%2e/", "http", "h", 0, 80, 0, "/%2e%2e/"},
    {"http://h?x@y:1", "http", "h", 0, 80, 0, "?x@y:1"},
    {"http://h:12?/", "http", "h", 0, 12, 1, "?/"},
};

static void test_absolute_ok(void)
{
    for (size_t i = 0; i < sizeof(absolutes) / sizeof(absolutes[0]); i++) {
        const struct absolute_case *c = &absolutes[i];
        struct url u;
        size_t len = strlen(c->target);
        const char *copy = guarded_copy(c->target, len);
        int rc = url_parse_absolute(copy, len, &u);
        if (!ok(rc == 0, "accept %s", c->target))
            continue;
        int good = u.scheme_len == strlen(c->scheme) &&
                   memcmp(u.scheme, c->scheme, u.scheme_len) == 0 &&
                   u.host_len == strlen(c->host) && memcmp(u.host, c->host, u.host_len) == 0 &&
                   u.host_is_ipv6 == c->ipv6 && u.port == c->port &&
                   u.port_given == c->port_given && u.path_len == strlen(c->path) &&
                   memcmp(u.path, c->path, u.path_len) == 0;
        if (!ok(good, "split %s", c->target))
            printf("#   got scheme '%.*s' host '%.*s' v6 %d port %u given %d path '%.*s'\n",
                   (int)u.scheme_len, u.scheme, (int)u.host_len, u.host, u.host_is_ipv6,
                   u.port, u.port_given, (int)u.path_len, u.path);
        ok(u.scheme >= copy && u.host >= copy && u.host + u.host_len <= copy + len &&
               u.path >= copy && u.path + u.path_len <= copy + len,
           "views point into the target: %s", c->target);
    }
}

static const char *const absolute_bad[] = {
    "",
    "/",
    "/path",
    "example.com",
    "example.com:80",
    "http:",
    "http:/",
    "http://",
    "http:/example.com/",
    "http:example.com/",
    "http//example.com/",
    "://example.com/",
    "1http://example.com/",
    "+http://h/",
    "ht_tp://h/",
    "ht tp://h/",
    "http:///path",
    "http://:80/",
    "http://?q",
    "http://user@example.com/",
    "http://user:pass@example.com/",
    "http://@example.com/",
    "http://example.com@evil.com/",
    "http://example.com#frag",
    "http://example.com/#frag",
    "http://example.com/a?b#c",
    "http://example.com:/",
    "http://example.com:0/",
    "http://example.com:65536/",
    "http://example.com:99999/",
    "http://example.com:123456/",
    "http://example.com:-1/",
    "http://example.com:+80/",
    "http://example.com:8o/",
    "http://example.com:80:81/",
    "http://example.com: 80/",
    "http://exa mple.com/",
    "http://example.com /",
    "http://example.com/a b",
    "http://example.com/\t",
    "http://exa%41mple.com/",
    "http://a,b/",
    "http://a;b/",
    "http://a!b/",
    "http://a$b/",
    "http://a'b/",
    "http://a(b)/",
    "http://a*b/",
    "http://a+b/",
    "http://a=b/",
    "http://a\\b/",
    "http://a[b]/",
    "http://caf\xc3\xa9.com/",
    "http://example.com/caf\xc3\xa9",
    "http://example.com/\x7f",
    "http://[::1/",
    "http://::1/",
    "http://[]/",
    "http://[:]/",
    "http://[::1]x/",
    "http://[::1]:/",
    "http://[::1]:0/",
    "http://[::1]80/",
    "http://[zz::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[v1.fe80::a]/",
    "http://[1.2.3.4]/",
    "http://[::1]]/",
    "http://[[::1]]/",
    "http://[1:2:3:4:5:6:7:8:9]/",
    "http://[:::1]/",
    "http://[0000:0000:0000:0000:0000:0000:0000:0000:0]/",
    "http://[::1/x]/",
    "http://[::1]:80x/",
    "http://h:80@x/",
    "http://h:1234567",
    "http://h:/x",
    "http://h:8080:/",
    "http://h]/",
};

static void test_absolute_bad(void)
{
    for (size_t i = 0; i < sizeof(absolute_bad) / sizeof(absolute_bad[0]); i++) {
        struct url u;
        size_t len = strlen(absolute_bad[i]);
        const char *copy = guarded_copy(absolute_bad[i], len);
        is_int(url_parse_absolute(copy, len, &u), -1, absolute_bad[i]);
    }

    struct url u;
    const char nul[] = "http://a\0b/";
    is_int(url_parse_absolute(guarded_copy(nul, sizeof(nul) - 1), sizeof(nul) - 1, &u), -1,
           "NUL in the host");
    const char nul_path[] = "http://a/\0";
    is_int(url_parse_absolute(guarded_copy(nul_path, sizeof(nul_path) - 1), sizeof(nul_path) - 1,
                              &u),
           -1, "NUL in the path");
    /* Every byte, at every offset of the eight-byte check, in the path:
     * only VCHAR but "#" passes. */
    int bytes_ok = 1;
    for (int c = 0; c < 256; c++) {
        for (size_t k = 0; k < 17; k++) {
            char text[32] = "http://h/";
            memset(text + 9, 'a', 22);
            text[9 + k] = (char)c;
            int want = c >= 0x21 && c <= 0x7e && c != '#' ? 0 : -1;
            if (url_parse_absolute(guarded_copy(text, 9 + k + 6), 9 + k + 6, &u) != want) {
                printf("#   byte 0x%02x at offset %zu of the path\n", c, k);
                bytes_ok = 0;
            }
        }
    }
    ok(bytes_ok, "each byte kept or refused at every offset");

    /* the length, not a NUL, ends the target */
    const char *s = "http://a/b";
    is_int(url_parse_absolute(guarded_copy(s, 8), 8, &u), 0, "a prefix of a target");
    ok(u.host_len == 1 && u.path_len == 0, "... is split at <len>");
}

struct authority_case {
    const char *target;
    const char *host;
    int ipv6;
    int port;
};

static const struct authority_case authorities[] = {
    {"example.com:443", "example.com", 0, 443},
    {"Example.COM:1", "Example.COM", 0, 1},
    {"example.com:65535", "example.com", 0, 65535},
    {"1.2.3.4:22", "1.2.3.4", 0, 22},
    {"[::1]:443", "::1", 1, 443},
    {"[2001:db8::1]:8443", "2001:db8::1", 1, 8443},
    {"a-b_c~d.e.:80", "a-b_c~d.e.", 0, 80},
};

static const char *const authority_bad[] = {
    "",
    ":",
    ":443",
    "example.com",
    "example.com:",
    "example.com:0",
    "example.com:65536",
    "example.com:443/",
    "example.com:443/path",
    "example.com:443?q",
    "example.com:443#f",
    "user@example.com:443",
    "http://example.com:443",
    "example.com:443:443",
    "example.com:+443",
    "example.com: 443",
    "exa mple.com:443",
    "exa%41mple.com:443",
    "[::1]",
    "[::1]:",
    "::1:443",
    "[::1:443",
    "[fe80::1%25eth0]:443",
    "*:443",
    "caf\xc3\xa9.com:443",
};

static void test_authority(void)
{
    for (size_t i = 0; i < sizeof(authorities) / sizeof(authorities[0]); i++) {
        const struct authority_case *c = &authorities[i];
        struct url u;
        size_t len = strlen(c->target);
        const char *copy = guarded_copy(c->target, len);
        if (!ok(url_parse_authority(copy, len, &u) == 0, "accept authority %s", c->target))
            continue;
        ok(u.host_len == strlen(c->host) && memcmp(u.host, c->host, u.host_len) == 0 &&
               u.host_is_ipv6 == c->ipv6 && u.port == c->port && u.port_given == 1 &&
               u.path_len == 0 && u.scheme_len == 0,
           "split authority %s", c->target);
    }
    for (size_t i = 0; i < sizeof(authority_bad) / sizeof(authority_bad[0]); i++) {
        struct url u;
        size_t len = strlen(authority_bad[i]);
        const char *copy = guarded_copy(authority_bad[i], len);
        if (!ok(url_parse_authority(copy, len, &u) == -1, "reject authority '%s'",
                authority_bad[i]))
            printf("#   accepted\n");
    }
}

static void test_origin_form(void)
{
    is_int(url_is_origin_form(guarded_copy("/", 1), 1), 1, "'/' is origin-form");
    is_int(url_is_origin_form(guarded_copy("/a?b", 4), 4), 1, "'/a?b' is origin-form");
    is_int(url_is_origin_form(guarded_copy("", 0), 0), 0, "empty is not origin-form");
    is_int(url_is_origin_form(guarded_copy("*", 1), 1), 0, "'*' is not origin-form");
    is_int(url_is_origin_form(guarded_copy("http://a/", 9), 9), 0,
           "absolute-form is not origin-form");
    is_int(url_is_origin_form(guarded_copy("a:1", 3), 3), 0, "authority-form is not origin-form");
}

/* What a script hands back for a request line is held to the rules a
 * client's target meets. */
static void test_script_parts(void)
{
    static const char *const paths_ok[] = {"", "/", "/a?b=1&c=%20", "?q", "//x", "/a@b:c"};
    static const char *const paths_bad[] = {"a", "/a#frag", "/caf\xe9", "/a b", "/a\tb",
                                            "/a\x7f", "#", "*"};
    static const char *const hosts_ok[] = {"example.com", "a-b_c~d.e.", "1.2.3.4", "::1",
                                           "2001:db8::a:b", "::ffff:10.0.0.1"};
    static const char *const hosts_bad[] = {"", "a b", "a,b", "@evil", "x:99", "[::1]",
                                            ":::::", "h\xe9", "a%2eb", "fe80::1%eth0"};

    for (size_t i = 0; i < sizeof paths_ok / sizeof paths_ok[0]; i++) {
        size_t len = strlen(paths_ok[i]);
        ok(url_path_valid(guarded_copy(paths_ok[i], len), len), "path '%s' is valid", paths_ok[i]);
    }
    for (size_t i = 0; i < sizeof paths_bad / sizeof paths_bad[0]; i++) {
        size_t len = strlen(paths_bad[i]);
        ok(!url_path_valid(guarded_copy(paths_bad[i], len), len), "path '%s' is refused",
           paths_bad[i]);
    }
    for (size_t i = 0; i < sizeof hosts_ok / sizeof hosts_ok[0]; i++) {
        size_t len = strlen(hosts_ok[i]);
        ok(url_host_valid(guarded_copy(hosts_ok[i], len), len), "host '%s' is valid", hosts_ok[i]);
    }
    for (size_t i = 0; i < sizeof hosts_bad / sizeof hosts_bad[0]; i++) {
        size_t len = strlen(hosts_bad[i]);
        ok(!url_host_valid(guarded_copy(hosts_bad[i], len), len), "host '%s' is refused",
           hosts_bad[i]);
    }
}

/* Percent-decoding, as the admin interface's query and a parent's
 * credentials use it: escapes of either case, "+" as a space only when
 * asked, and nothing that would cut or split the C string it makes. */
static void test_percent_decode(void)
{
    static const struct {
        const char *in;
        int plus_is_space;
        const char *out; /* NULL: refused */
    } cases[] = {
        {"a%20b", 0, "a b"},   {"%41%6a%6A", 0, "Ajj"}, {"a+b", 1, "a b"}, {"a+b", 0, "a+b"},
        {"", 0, ""},           {"100%", 0, NULL},       {"%4", 0, NULL},    {"%zz", 0, NULL},
        {"a%00b", 0, NULL},    {"a%0d%0ab", 1, NULL},   {"%%41", 0, NULL},
    };
    char out[16];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].in);
        int n = url_percent_decode(guarded_copy(cases[i].in, len), len, out, sizeof out,
                                   cases[i].plus_is_space);
        if (cases[i].out)
            ok(n == (int)strlen(cases[i].out) && strcmp(out, cases[i].out) == 0,
               "'%s' decodes to '%s'", cases[i].in, cases[i].out);
        else
            ok(n == -1, "'%s' is refused", cases[i].in);
    }
    ok(url_percent_decode("abcd", 4, out, 4, 0) == -1, "a result with no room for its NUL is refused");
    ok(url_percent_decode("abc", 3, out, 4, 0) == 3, "a result that just fits is kept");
}

int main(void)
{
    test_absolute_ok();
    test_absolute_bad();
    test_authority();
    test_origin_form();
    test_script_parts();
    test_percent_decode();
    return tap_done();
}
