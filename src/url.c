/*
 * url.c - splits absolute-form and authority-form request targets (see
 * url.h).
 *
 * Owns: the target grammar a forward proxy accepts, kept narrower than
 * RFC 3986 on purpose: userinfo, fragments, percent-escapes or sub-delims
 * in the host, and empty or zero ports are refused, because each is a place
 * where the proxy and the origin (or an ACL hook) could read a different
 * host. Does not own: resolving or connecting; the views point into the
 * caller's bytes.
 *
 * A path view starts at the first "/" or "?" after the authority, so
 * "http://h?q" gives path "?q": a caller building an origin-form target
 * puts "/" in front of a path that does not start with one, and sends "/"
 * for an empty path.
 */
#include "url.h"
#include "hex.h"

#include <arpa/inet.h>
#include <sys/types.h>
#include <string.h>

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static int is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The bytes a host name may have here (RFC 3986 3.2.2 unreserved; no
 * percent-encoding, no sub-delims), as a table: every request's host is
 * read through it, twice with the Host field. */
static const unsigned char reg_name_byte[256] = {
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1,
};

static int is_reg_name_byte(unsigned char c) { return reg_name_byte[c]; }

static int eq_nocase(const char *s, size_t len, const char *word)
{
    if (strlen(word) != len)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char a = (unsigned char)s[i], b = (unsigned char)word[i];
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a + ('a' - 'A'));
        if (a != b)
            return 0;
    }
    return 1;
}

/* Every byte must be visible ASCII (the request line allows nothing else)
 * and none may start a fragment, which is never sent on the wire. Eight
 * bytes at a time: a target is read through here on every request. */
static int bytes_valid(const char *s, size_t len)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    size_t i = 0;

    for (; len - i >= 8; i += 8) {
        uint64_t x, hash;
        memcpy(&x, s + i, 8);
        hash = x ^ (ones * '#'); /* a "#" becomes zero */
        /* a high bit left set: a byte below 0x21, one of 0x7f or more (a
         * carry out of 0xff only reaches a word already refused), a "#" */
        if (((x - ones * 0x21) & ~x & highs) | ((x | (x + ones)) & highs) |
            ((hash - ones) & ~hash & highs))
            return -1;
    }
    for (; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == '#')
            return -1;
    }
    return 0;
}

/* The inside of "[...]", checked by inet_pton; the bounded copy only adds
 * the NUL it needs. Zone ids and IPvFuture are refused. */
static int ipv6_valid(const char *s, size_t len)
{
    char text[INET6_ADDRSTRLEN];
    struct in6_addr addr;

    if (len < 2 || len >= sizeof(text))
        return -1;
    for (size_t i = 0; i < len; i++)
        if (!(is_hex((unsigned char)s[i]) || s[i] == ':' || s[i] == '.'))
            return -1;
    memcpy(text, s, len);
    text[len] = '\0';
    return inet_pton(AF_INET6, text, &addr) == 1 ? 0 : -1;
}

/*
 * host [ ":" port ] at the start of <s> (<len> bytes), filling the host and
 * port fields of <out>. Returns the offset where it ends, which the caller
 * checks is the end of the authority, or -1. Port: 1 to 5 digits,
 * 1..65535.
 */
static ssize_t host_port_end(const char *s, size_t len, struct url *out)
{
    size_t pos = 0;

    out->host_is_ipv6 = 0;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL)
            return -1;
        size_t inner = (size_t)(close - s) - 1;
        if (ipv6_valid(s + 1, inner) < 0)
            return -1;
        out->host = s + 1;
        out->host_len = inner;
        out->host_is_ipv6 = 1;
        pos = inner + 2;
    } else {
        while (pos < len && is_reg_name_byte((unsigned char)s[pos]))
            pos++;
        if (pos == 0)
            return -1;
        out->host = s;
        out->host_len = pos;
    }

    out->port_given = 0;
    if (pos == len || s[pos] != ':')
        return (ssize_t)pos;
    pos++;
    size_t first = pos;
    unsigned port = 0;
    while (pos < len && pos - first < 6 && is_digit((unsigned char)s[pos]))
        port = port * 10 + (unsigned)(s[pos++] - '0');
    if (pos == first || pos - first > 5 || port < 1 || port > 65535)
        return -1;
    out->port = (uint16_t)port;
    out->port_given = 1;
    return (ssize_t)pos;
}

/* host [ ":" port ] making up the whole of <s>[0, <len>). */
static int parse_host_port(const char *s, size_t len, struct url *out)
{
    return host_port_end(s, len, out) == (ssize_t)len ? 0 : -1;
}

int url_parse_absolute(const char *s, size_t len, struct url *out)
{
    size_t pos = 0;

    if (bytes_valid(s, len) < 0)
        return -1;

    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://":
     * a target without an authority names no host to connect to. */
    if (len == 0 || !is_alpha((unsigned char)s[0]))
        return -1;
    while (pos < len && (is_alpha((unsigned char)s[pos]) || is_digit((unsigned char)s[pos]) ||
                         s[pos] == '+' || s[pos] == '-' || s[pos] == '.'))
        pos++;
    if (len - pos < 3 || memcmp(s + pos, "://", 3) != 0)
        return -1;
    out->scheme = s;
    out->scheme_len = pos;
    pos += 3;

    /* The authority runs to the first "/" or "?" (or the end), and must
     * be host [ ":" port ] exactly: read as that, it must stop there. A
     * "user@host" is refused at its "@": a reader that stops at the wrong
     * "@" or ":" connects somewhere else than the one that checked the
     * ACL. (No "/" or "?" can be inside a host or port, so the first one
     * is where the walk stops.) */
    ssize_t end = host_port_end(s + pos, len - pos, out);
    if (end < 0)
        return -1;
    pos += (size_t)end;
    if (pos < len && s[pos] != '/' && s[pos] != '?')
        return -1;
    if (!out->port_given) {
        if (eq_nocase(out->scheme, out->scheme_len, "http"))
            out->port = 80;
        else if (eq_nocase(out->scheme, out->scheme_len, "https"))
            out->port = 443;
        else
            out->port = 0;
    }

    out->path = s + pos;
    out->path_len = len - pos;
    return 0;
}

int url_parse_authority(const char *s, size_t len, struct url *out)
{
    if (len == 0 || bytes_valid(s, len) < 0)
        return -1;
    if (memchr(s, '@', len) != NULL || memchr(s, '/', len) != NULL ||
        memchr(s, '?', len) != NULL)
        return -1;
    if (parse_host_port(s, len, out) < 0 || !out->port_given)
        return -1;
    out->scheme = s;
    out->scheme_len = 0;
    out->path = s + len;
    out->path_len = 0;
    return 0;
}

int url_host_field_valid(const char *value, size_t len)
{
    struct url parts;
    return parse_host_port(value, len, &parts);
}

int url_is_origin_form(const char *s, size_t len)
{
    return len > 0 && s[0] == '/';
}

int url_path_valid(const char *s, size_t len)
{
    if (len == 0)
        return 1;
    return (s[0] == '/' || s[0] == '?') && bytes_valid(s, len) == 0;
}

int url_host_valid(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    if (memchr(s, ':', len))
        return ipv6_valid(s, len) == 0;
    for (size_t i = 0; i < len; i++)
        if (!is_reg_name_byte((unsigned char)s[i]))
            return 0;
    return 1;
}

int url_percent_decode(const char *in, size_t len, char *out, size_t out_len, int plus_is_space)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)in[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= len || (hi = hex_digit_value((unsigned char)in[i + 1])) < 0 ||
                (lo = hex_digit_value((unsigned char)in[i + 2])) < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0' || c == '\r' || c == '\n' || n + 1 >= out_len)
            return -1;
        out[n++] = (char)c;
    }
    if (out_len == 0)
        return -1;
    out[n] = '\0';
    return (int)n;
}
