/*
 * parent.c - parsing the parent proxy's URL, matching bypass patterns, and
 * naming the credentials a connection to the parent carries.
 *
 * What it does not do: connect (upstream.c connects to the parent instead
 * of the origin and writes the request for it).
 */
#include "parent.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acl.h"
#include "base64.h"
#include "url.h"

#define FAIL(...)                                                                        \
    do {                                                                                 \
        snprintf(err, err_len, __VA_ARGS__);                                             \
        return -1;                                                                       \
    } while (0)

int parent_parse(const char *url, struct parent_proxy *out, char *err, size_t err_len)
{
    const char *rest, *at, *host, *host_end, *port_text, *end;
    char user[256], password[256], creds[513];
    long port;
    char *stop;

    memset(out, 0, sizeof *out);
    if (strlen(url) >= sizeof out->url)
        FAIL("the parent proxy URL is too long");
    if (strncasecmp(url, "http://", 7) != 0)
        FAIL("the parent proxy URL must start with http://");
    rest = url + 7;
    /* The user and password end at the last '@': no path follows, so a
     * password may hold '@', '/', '?' or '#' as typed (curl reads it so),
     * besides percent-encoded. */
    at = strrchr(rest, '@');
    end = (at ? at + 1 : rest) + strcspn(at ? at + 1 : rest, "/?#");
    if (*end && strcmp(end, "/") != 0)
        FAIL("the parent proxy URL takes no path");
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        const char *user_end = colon ? colon : at;
        if (url_percent_decode(rest, (size_t)(user_end - rest), user, sizeof user, 0) <= 0 ||
            strchr(user, ':'))
            FAIL("the parent proxy URL has a malformed user name");
        if (url_percent_decode(colon ? colon + 1 : at, colon ? (size_t)(at - colon - 1) : 0,
                               password, sizeof password, 0) < 0)
            FAIL("the parent proxy URL has a malformed password");
        snprintf(creds, sizeof creds, "%s:%s", user, password);
        memcpy(out->auth, "Basic ", 6);
        /* "Basic " and the base64 of creds fit: out->auth is sized for
         * the longest user and password. */
        base64_encode((const unsigned char *)creds, strlen(creds), out->auth + 6,
                      BASE64_STANDARD);
        out->auth[6 + base64_encoded_len(strlen(creds), BASE64_STANDARD)] = '\0';
        host = at + 1;
    } else {
        host = rest;
    }
    if (*host == '[') {
        host_end = memchr(host, ']', (size_t)(end - host));
        if (!host_end || host_end[1] != ':')
            FAIL("the parent proxy URL needs host:port");
        port_text = host_end + 2;
        host++;
    } else {
        host_end = memchr(host, ':', (size_t)(end - host));
        if (!host_end)
            FAIL("the parent proxy URL needs host:port");
        port_text = host_end + 1;
    }
    if (host_end == host || (size_t)(host_end - host) >= sizeof out->host)
        FAIL("the parent proxy URL has a malformed host");
    for (const char *c = host; c < host_end; c++)
        if (!(*c == '-' || *c == '.' || *c == ':' || *c == '_' || (*c >= '0' && *c <= '9') ||
              (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')))
            FAIL("the parent proxy URL has a malformed host");
    if (port_text >= end || *port_text < '0' || *port_text > '9')
        FAIL("the parent proxy URL needs host:port");
    port = strtol(port_text, &stop, 10);
    if (stop != end && !(stop < end && *stop == '/'))
        FAIL("the parent proxy URL has a malformed port");
    if (port < 1 || port > 65535 || stop - port_text > 5)
        FAIL("the parent proxy URL's port must be 1 to 65535");
    memcpy(out->host, host, (size_t)(host_end - host));
    out->host[host_end - host] = '\0';
    out->port = (uint16_t)port;
    snprintf(out->url, sizeof out->url, "%s", url);
    explicit_bzero(creds, sizeof creds);
    explicit_bzero(password, sizeof password);
    return 0;
}

int parent_pattern_valid(const char *pattern)
{
    struct cidr c;
    const char *name = pattern;

    if (strchr(pattern, '/'))
        return acl_parse_cidr(pattern, &c) == 0;
    if (acl_parse_cidr(pattern, &c) == 0)
        return 1;
    if (strncmp(name, "*.", 2) == 0)
        name += 2;
    if (*name == '\0' || strlen(name) > 253)
        return 0;
    for (const char *p = name; *p; p++)
        if (!(*p == '-' || *p == '.' || *p == '_' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return 0;
    return 1;
}

/* The length of <s> without one trailing dot. */
static size_t name_len(const char *s)
{
    size_t n = strlen(s);
    return n > 1 && s[n - 1] == '.' ? n - 1 : n;
}

/* <host> as an address, when it is an IP literal. */
static int host_address(const char *host, struct sockaddr_storage *ss)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        return 1;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        return 1;
    }
    return 0;
}

int parent_bypassed(const char *const *patterns, int count, const char *host)
{
    struct sockaddr_storage addr;
    int is_ip = host_address(host, &addr);
    /* "intranet.local." is "intranet.local", fully qualified: a trailing
     * dot on either side does not count. */
    size_t host_len = name_len(host);

    for (int i = 0; i < count; i++) {
        const char *p = patterns[i];
        struct cidr c;
        if (acl_parse_cidr(p, &c) == 0) {
            if (is_ip && acl_match(&c, 1, (const struct sockaddr *)&addr))
                return 1;
            continue;
        }
        if (strncmp(p, "*.", 2) == 0) {
            size_t dlen = name_len(p + 1); /* ".domain" */
            if (host_len > dlen && strncasecmp(host + host_len - dlen, p + 1, dlen) == 0)
                return 1;
            continue;
        }
        if (name_len(p) == host_len && strncasecmp(host, p, host_len) == 0)
            return 1;
    }
    return 0;
}

int parent_credentials_id(const char *auth, unsigned char id[PARENT_CREDENTIALS_ID_LEN])
{
    unsigned char digest[SHA256_DIGEST_LENGTH];

    memset(id, 0, PARENT_CREDENTIALS_ID_LEN);
    if (!auth)
        return 0;
    if (!SHA256((const unsigned char *)auth, strlen(auth), digest))
        return -1;
    memcpy(id, digest, PARENT_CREDENTIALS_ID_LEN);
    return 0;
}

int parent_pool_name(const struct parent_proxy *p, char *out, size_t len)
{
    int n = snprintf(out, len, "parent!%s", p->host);
    return n >= 0 && (size_t)n < len ? 0 : -1;
}

void parent_authority(const struct parent_proxy *p, char *out, size_t len)
{
    snprintf(out, len, strchr(p->host, ':') ? "[%s]:%u" : "%s:%u", p->host, p->port);
}
