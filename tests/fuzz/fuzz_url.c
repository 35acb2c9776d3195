/*
 * fuzz_url.c - libFuzzer target for url_parse_absolute(),
 * url_parse_authority() and url_is_origin_form().
 *
 * The same input is tried as an absolute-form target, as an authority-form
 * target and as a Host value. Invariants:
 *   - every view (scheme, host, path) lies inside the input; the host is
 *     non-empty and made of reg-name bytes (or IPv6 literal bytes inside
 *     brackets); the path is empty or starts with "/" or "?" and runs to
 *     the end; a given port is 1..65535, otherwise the scheme's default;
 *   - re-assembling scheme "://" host-or-[host] [":" port] path (and
 *     host ":" port for authority-form) and parsing again gives the same
 *     host, port and path;
 *   - the URL splitter and the Host check (url_host_field_valid) accept exactly
 *     the same authorities: if they disagreed, an ACL reading one could
 *     pass a request that connects by the other.
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "http_parse.h"
#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int is_reg_name_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static int is_ipv6_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
           c == ':' || c == '.';
}

static int eq_nocase(const char *s, size_t len, const char *word)
{
    if (strlen(word) != len)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char a = (unsigned char)s[i];
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a + 32);
        if (a != (unsigned char)word[i])
            return 0;
    }
    return 1;
}

/* The host and port of a parsed target, checked against the input. */
static void check_host_port(const struct url *u, const char *s, size_t len)
{
    FUZZ_CHECK(u->host_len > 0 && fuzz_inside(u->host, u->host_len, s, len),
               "host outside the input or empty");
    for (size_t i = 0; i < u->host_len; i++) {
        unsigned char c = (unsigned char)u->host[i];
        FUZZ_CHECK(u->host_is_ipv6 ? is_ipv6_byte(c) : is_reg_name_byte(c),
                   "host byte 0x%02x (ipv6=%d)", c, u->host_is_ipv6);
    }
    if (u->host_is_ipv6) {
        /* the brackets are in the input, just outside the view */
        FUZZ_CHECK(u->host > s && u->host[-1] == '[' &&
                       fuzz_inside(u->host + u->host_len, 1, s, len) &&
                       u->host[u->host_len] == ']',
                   "IPv6 host not between brackets");
    }
    if (u->port_given)
        FUZZ_CHECK(u->port >= 1, "port 0 given");
}

static void same_url(const struct url *a, const struct url *b, const char *what)
{
    FUZZ_CHECK(fuzz_view_eq(a->scheme, a->scheme_len, b->scheme, b->scheme_len),
               "%s: scheme differs", what);
    FUZZ_CHECK(fuzz_view_eq(a->host, a->host_len, b->host, b->host_len), "%s: host differs",
               what);
    FUZZ_CHECK(a->host_is_ipv6 == b->host_is_ipv6, "%s: ipv6 flag differs", what);
    FUZZ_CHECK(a->port == b->port && a->port_given == b->port_given, "%s: port %u/%d vs %u/%d",
               what, a->port, a->port_given, b->port, b->port_given);
    FUZZ_CHECK(fuzz_view_eq(a->path, a->path_len, b->path, b->path_len), "%s: path differs",
               what);
}

/* host-or-[host] [":" port] */
static void put_authority(struct fuzz_str *b, const struct url *u)
{
    if (u->host_is_ipv6)
        fuzz_puts(b, "[");
    fuzz_put(b, u->host, u->host_len);
    if (u->host_is_ipv6)
        fuzz_puts(b, "]");
    if (u->port_given) {
        char port[16];
        snprintf(port, sizeof(port), ":%u", u->port);
        fuzz_puts(b, port);
    }
}

static void check_absolute(const char *s, size_t len)
{
    struct url u;
    if (url_parse_absolute(s, len, &u) != 0)
        return;

    FUZZ_CHECK(u.scheme == s && u.scheme_len > 0 && u.scheme_len + 3 <= len &&
                   memcmp(s + u.scheme_len, "://", 3) == 0,
               "scheme view");
    check_host_port(&u, s, len);
    FUZZ_CHECK(fuzz_inside(u.path, u.path_len, s, len) && u.path + u.path_len == s + len,
               "path does not run to the end of the input");
    FUZZ_CHECK(u.path_len == 0 || u.path[0] == '/' || u.path[0] == '?', "path starts with %c",
               u.path[0]);
    for (size_t i = 0; i < len; i++)
        FUZZ_CHECK(s[i] >= 0x21 && s[i] <= 0x7e && s[i] != '#', "accepted byte 0x%02x",
                   (unsigned char)s[i]);
    FUZZ_CHECK(memchr(s, '@', (size_t)(u.path - s)) == NULL, "userinfo accepted");
    if (!u.port_given) {
        uint16_t def = eq_nocase(u.scheme, u.scheme_len, "http")    ? 80
                       : eq_nocase(u.scheme, u.scheme_len, "https") ? 443
                                                                     : 0;
        FUZZ_CHECK(u.port == def, "default port %u for this scheme", u.port);
    }

    /* re-assembled canonically, it splits the same way */
    struct fuzz_str b = {0};
    fuzz_put(&b, u.scheme, u.scheme_len);
    fuzz_puts(&b, "://");
    size_t auth_at = b.len;
    put_authority(&b, &u);
    size_t auth_len = b.len - auth_at;
    fuzz_put(&b, u.path, u.path_len);
    char *again_s = fuzz_dup(b.s, b.len);
    struct url again;
    FUZZ_CHECK(url_parse_absolute(again_s, b.len, &again) == 0, "re-assembled URL refused");
    same_url(&u, &again, "re-assembled absolute");

    /* its authority is a valid Host value, and with a port a valid
     * authority-form target naming the same host and port */
    char *auth = fuzz_dup(b.s + auth_at, auth_len);
    FUZZ_CHECK(url_host_field_valid(auth, auth_len) == 0, "URL authority is not a valid Host");
    if (u.port_given) {
        struct url a;
        FUZZ_CHECK(url_parse_authority(auth, auth_len, &a) == 0, "authority-form refused");
        FUZZ_CHECK(fuzz_view_eq(a.host, a.host_len, u.host, u.host_len) && a.port == u.port &&
                       a.host_is_ipv6 == u.host_is_ipv6,
                   "authority-form splits differently");
    }
    free(auth);
    free(again_s);
    free(b.s);
}

static void check_authority(const char *s, size_t len)
{
    struct url u;
    if (url_parse_authority(s, len, &u) != 0)
        return;

    check_host_port(&u, s, len);
    FUZZ_CHECK(u.port_given && u.port >= 1, "authority-form without a port");
    FUZZ_CHECK(u.path_len == 0 && u.scheme_len == 0, "authority-form with a path or scheme");
    FUZZ_CHECK(url_host_field_valid(s, len) == 0, "authority-form target is not a valid Host");

    struct fuzz_str b = {0};
    put_authority(&b, &u);
    char *again_s = fuzz_dup(b.s, b.len);
    struct url again;
    FUZZ_CHECK(url_parse_authority(again_s, b.len, &again) == 0, "re-assembled authority refused");
    FUZZ_CHECK(fuzz_view_eq(again.host, again.host_len, u.host, u.host_len) &&
                   again.port == u.port && again.host_is_ipv6 == u.host_is_ipv6,
               "re-assembled authority splits differently");
    free(again_s);
    free(b.s);
}

/* The Host check and the URL splitter agree on what an authority is. */
static void check_host_agreement(const char *s, size_t len)
{
    int host_ok = url_host_field_valid(s, len) == 0;

    struct fuzz_str b = {0};
    fuzz_puts(&b, "http://");
    fuzz_put(&b, s, len);
    char *abs = fuzz_dup(b.s, b.len);
    struct url u;
    int url_ok = url_parse_absolute(abs, b.len, &u) == 0 && u.path_len == 0;
    FUZZ_CHECK(host_ok == url_ok, "Host check says %d, URL splitter says %d", host_ok, url_ok);
    free(abs);
    free(b.s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_dup(data, size);

    check_absolute(s, size);
    check_authority(s, size);
    if (size > 0)
        check_host_agreement(s, size);
    FUZZ_CHECK(url_is_origin_form(s, size) == (size > 0 && s[0] == '/'), "origin-form");

    free(s);
    return 0;
}
