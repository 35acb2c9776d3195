/*
 * url.h - splits request targets into scheme, host, port and path.
 *
 * A forward proxy sees two target forms (RFC 9112 3.2): absolute-form
 * ("http://host:port/path?q") for ordinary requests and authority-form
 * ("host:port") for CONNECT. The splitter copies nothing: the views point
 * into the caller's string. It is strict: userinfo ("user@host"), a
 * fragment, an empty host, a port outside 1..65535, or a byte outside the
 * URI character set are refused.
 */
#ifndef LUAPROXY_URL_H
#define LUAPROXY_URL_H

#include <stddef.h>
#include <stdint.h>

struct url {
    const char *scheme; /* "http", "https" ...; lower or mixed case as sent */
    size_t scheme_len;
    const char *host;   /* without brackets for IPv6 literals */
    size_t host_len;
    int host_is_ipv6;   /* the host was a bracketed literal */
    uint16_t port;      /* explicit port, or the scheme's default (80, 443) */
    int port_given;     /* the target named a port */
    const char *path;   /* path and query from the first "/" or "?" after the
                         * authority ("http://h?q" gives "?q"); "" when the
                         * target had none. Origin-form needs a "/" in front
                         * when it does not start with one. */
    size_t path_len;
};

/* Splits an absolute-form target. Any scheme of letters, digits, "+-." is
 * split (the caller decides which it serves); the default port is 80 for
 * http, 443 for https, 0 for others. Returns 0, or -1 if malformed. */
int url_parse_absolute(const char *s, size_t len, struct url *out);

/* Splits an authority-form target "host:port" (the port is required).
 * Returns 0, or -1 if malformed. */
int url_parse_authority(const char *s, size_t len, struct url *out);

/* Validates a Host field value: uri-host [ ":" port ], with reg-name,
 * IPv4 or a bracketed IPv6 literal, by the same rules as a target's
 * authority (the port optional). Returns 0 if valid, -1 otherwise. */
int url_host_field_valid(const char *value, size_t len);

/* Whether the target is origin-form (starts with "/"). */
int url_is_origin_form(const char *s, size_t len);

/* For a request line made elsewhere (a script's): whether <s> is a path
 * and query as url_parse_absolute gives them, by the same rules: empty,
 * or from a "/" or "?", of visible ASCII without a "#". */
int url_path_valid(const char *s, size_t len);

/* Whether <s> is a host as url_parse_* give it (without the brackets of
 * an IPv6 literal), by the same rules: a non-empty name of the allowed
 * bytes (IPv4 addresses among them), or an IPv6 literal. */
int url_host_valid(const char *s, size_t len);

/* Percent-decodes <in>[0..len) into <out> as a C string; with
 * <plus_is_space> a "+" is a space, as in a form-encoded query. A "%" not
 * followed by two hex digits, a decoded NUL, CR or LF, or a result that
 * does not fit <out_len> (with its NUL) is refused. Returns the length, or
 * -1 if refused. */
int url_percent_decode(const char *in, size_t len, char *out, size_t out_len, int plus_is_space);

#endif
