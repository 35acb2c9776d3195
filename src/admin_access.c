/*
 * admin_access.c - the admin listener's token and Host checks (see
 * admin_access.h).
 */
#include "admin_access.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int admin_access_token_eq(const char *token, const char *s, size_t len)
{
    size_t tl = strlen(token);
    unsigned diff = len != tl;
    for (size_t i = 0; i < tl; i++)
        diff |= (unsigned char)token[i] ^ (unsigned char)(i < len ? s[i] : 0);
    return diff == 0;
}

int admin_access_has_token(const char *token, const struct http_head *head)
{
    const size_t cl = strlen(ADMIN_ACCESS_COOKIE);

    for (size_t i = 0; i < head->field_count; i++) {
        const struct http_field *f = &head->fields[i];
        if (http_token_eq(f->name, f->name_len, "Authorization")) {
            if (f->value_len > 7 && strncasecmp(f->value, "Bearer ", 7) == 0 &&
                admin_access_token_eq(token, f->value + 7, f->value_len - 7))
                return 1;
        } else if (http_token_eq(f->name, f->name_len, "Cookie")) {
            const char *p = f->value, *end = f->value + f->value_len;
            while (p < end) {
                const char *semi = memchr(p, ';', (size_t)(end - p));
                const char *stop = semi ? semi : end;
                while (p < stop && *p == ' ')
                    p++;
                if ((size_t)(stop - p) > cl && memcmp(p, ADMIN_ACCESS_COOKIE, cl) == 0 &&
                    p[cl] == '=' &&
                    admin_access_token_eq(token, p + cl + 1, (size_t)(stop - p) - cl - 1))
                    return 1;
                p = stop + 1;
            }
        }
    }
    return 0;
}

/* DNS rebinding: a page on another name that resolves to us must not read
 * the API, so Host must name this listener (its address, or localhost). */
int admin_access_host_ok(const struct http_head *head, const char *own_ip, const char *local_ip,
                         uint16_t port)
{
    int i = http_find_field(head, "Host", 0);
    const char *v, *end, *port_text = NULL;
    size_t host_len;
    char want_port[8];

    if (i < 0 || http_find_field(head, "Host", (size_t)i + 1) >= 0)
        return 0;
    v = head->fields[i].value;
    end = v + head->fields[i].value_len;
    if (v < end && *v == '[') {
        const char *close = memchr(v, ']', (size_t)(end - v));
        if (!close)
            return 0;
        v++;
        host_len = (size_t)(close - v);
        if (close + 1 < end) {
            if (close[1] != ':')
                return 0;
            port_text = close + 2;
        }
    } else {
        const char *colon = memchr(v, ':', (size_t)(end - v));
        host_len = (size_t)((colon ? colon : end) - v);
        if (colon)
            port_text = colon + 1;
    }
    snprintf(want_port, sizeof want_port, "%u", port);
    if (port_text && ((size_t)(end - port_text) != strlen(want_port) ||
                      memcmp(port_text, want_port, strlen(want_port)) != 0))
        return 0;
    return http_token_eq(v, host_len, "localhost") ||
           (host_len == strlen(own_ip) && memcmp(v, own_ip, host_len) == 0) ||
           (local_ip[0] && host_len == strlen(local_ip) && memcmp(v, local_ip, host_len) == 0);
}

/* CSRF: a page on another origin can make a browser send a request that
 * carries the cookie whenever the two are the same site (any port of
 * 127.0.0.1 or localhost is), and a form POST needs no preflight. So a
 * request that changes something must not come from another origin: its
 * Origin, when a browser sent one, must be this listener's (the Host,
 * which admin_access_host_ok has checked), and Sec-Fetch-Site, when sent,
 * must say the same origin or none (typed by the user). Without either
 * field it comes from a client that is no browser, or one too old to send
 * them: the token alone decides. */
int admin_access_origin_ok(const struct http_head *head)
{
    int host = http_find_field(head, "Host", 0);
    size_t from = 0;
    int i;

    while ((i = http_find_field(head, "Sec-Fetch-Site", from)) >= 0) {
        const struct http_field *f = &head->fields[i];
        from = (size_t)i + 1;
        if (!http_token_eq(f->value, f->value_len, "same-origin") &&
            !http_token_eq(f->value, f->value_len, "none"))
            return 0;
    }
    from = 0;
    while ((i = http_find_field(head, "Origin", from)) >= 0) {
        const struct http_field *f = &head->fields[i];
        from = (size_t)i + 1;
        if (host < 0 || f->value_len != 7 + head->fields[host].value_len ||
            strncasecmp(f->value, "http://", 7) != 0 ||
            strncasecmp(f->value + 7, head->fields[host].value, head->fields[host].value_len) != 0)
            return 0;
    }
    return 1;
}
