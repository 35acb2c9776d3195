/*
 * intercept.c - interception patterns and the pass-through table.
 *
 * What it owns: matching host names against the configured patterns, and
 * the table of (client, host) pairs whose handshakes were refused. What it
 * doesn't: TLS (tls.c) or the CONNECT itself (exchange.c).
 *
 * The table is small and bounded; lookups scan only the live entries,
 * which are few in practice (one per pinned app and host).
 */
#include "intercept.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"

struct refusal {
    char client_ip[64];
    char host[256];
    double until;
};

struct intercept {
    double ttl;
    int count;
    struct refusal entries[INTERCEPT_TABLE_MAX];
};

int intercept_pattern_valid(const char *pattern)
{
    size_t len = strlen(pattern);
    const char *p = pattern;

    if (strcmp(pattern, "*") == 0)
        return 1;
    if (len > 2 && pattern[0] == '*' && pattern[1] == '.')
        p += 2;
    if (*p == '\0' || strlen(p) > 253)
        return 0;
    if (strchr(p, ':')) {
        /* Only an IPv6 address has a colon: "example.com:443" would never
         * match (patterns name hosts, whatever the port), and a pattern
         * that silently matches nothing is a --no-intercept that does
         * not protect. */
        struct in6_addr a6;
        return p == pattern && inet_pton(AF_INET6, p, &a6) == 1;
    }
    for (; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_'))
            return 0;
    }
    return 1;
}

/* The length of <s> without one trailing dot: "example.com." is the fully
 * qualified spelling of "example.com", and a client may send either. */
static size_t name_len(const char *s)
{
    size_t n = strlen(s);
    return n > 1 && s[n - 1] == '.' ? n - 1 : n;
}

/* The address <s> spells, an IPv4-mapped IPv6 one as its IPv4 address, in
 * <out>: its length (4 or 16), or 0 when <s> is not an IP literal. Every
 * spelling of an address ("::1", "0:0::1", "::ffff:10.0.0.1") is one
 * address to the upstream, so it is one to the patterns too. */
static int ip_of(const char *s, unsigned char out[16])
{
    struct in6_addr a6;

    if (inet_pton(AF_INET, s, out) == 1)
        return 4;
    if (inet_pton(AF_INET6, s, &a6) != 1)
        return 0;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
        memcpy(out, a6.s6_addr + 12, 4);
        return 4;
    }
    memcpy(out, a6.s6_addr, 16);
    return 16;
}

int intercept_pattern_match(const char *pattern, const char *host)
{
    unsigned char pa[16], ha[16];
    size_t hlen, slen;
    int alen;

    if (strcmp(pattern, "*") == 0)
        return 1;
    if ((alen = ip_of(pattern, pa)) > 0)
        return ip_of(host, ha) == alen && memcmp(pa, ha, (size_t)alen) == 0;
    hlen = name_len(host);
    if (pattern[0] == '*' && pattern[1] == '.') {
        /* "*.example.com": any name ending in ".example.com", at any depth. */
        const char *suffix = pattern + 1;
        slen = name_len(suffix);
        return hlen > slen && strncasecmp(host + hlen - slen, suffix, slen) == 0;
    }
    slen = name_len(pattern);
    return hlen == slen && strncasecmp(pattern, host, slen) == 0;
}

int intercept_by_patterns(const struct config *cfg, const char *host)
{
    for (int i = 0; i < cfg->no_intercept_count; i++)
        if (intercept_pattern_match(cfg->no_intercept[i], host))
            return 0;
    for (int i = 0; i < cfg->intercept_count; i++)
        if (intercept_pattern_match(cfg->intercept[i], host))
            return 1;
    return 0;
}

struct intercept *intercept_new(double ttl)
{
    struct intercept *ic = calloc(1, sizeof *ic);
    if (ic)
        ic->ttl = ttl;
    return ic;
}

void intercept_set_ttl(struct intercept *ic, double ttl)
{
    if (ic)
        ic->ttl = ttl;
}

void intercept_free(struct intercept *ic) { free(ic); }

/* The live entry for the pair, or NULL; drops expired entries on the way. */
static struct refusal *find(struct intercept *ic, const char *client_ip, const char *host,
                            double now)
{
    for (int i = 0; i < ic->count;) {
        struct refusal *r = &ic->entries[i];
        if (r->until <= now) {
            *r = ic->entries[--ic->count]; /* expired: fill the hole from the end */
            continue;
        }
        if (strcmp(r->client_ip, client_ip) == 0 && strcasecmp(r->host, host) == 0)
            return r;
        i++;
    }
    return NULL;
}

int intercept_passing_through(struct intercept *ic, const char *client_ip, const char *host,
                              double now)
{
    return ic && ic->ttl > 0 && find(ic, client_ip, host, now) != NULL;
}

int intercept_note_refusal(struct intercept *ic, const char *client_ip, const char *host,
                           double now)
{
    struct refusal *r;

    if (!ic || ic->ttl <= 0 || strlen(client_ip) >= sizeof r->client_ip ||
        strlen(host) >= sizeof r->host)
        return 0;
    if (find(ic, client_ip, host, now))
        return 0;
    /* A client at its share makes room among its own entries, so that
     * refusing handshakes for host after host cannot push out the
     * entries of other clients (whose pinned apps would then fail once
     * more before passing through again). */
    r = NULL;
    int own = 0;
    for (int i = 0; i < ic->count; i++)
        if (strcmp(ic->entries[i].client_ip, client_ip) == 0) {
            own++;
            if (!r || ic->entries[i].until < r->until)
                r = &ic->entries[i];
        }
    if (own < INTERCEPT_PER_CLIENT_MAX) {
        r = NULL;
        if (ic->count < INTERCEPT_TABLE_MAX) {
            r = &ic->entries[ic->count++];
        } else {
            r = &ic->entries[0];
            for (int i = 1; i < ic->count; i++)
                if (ic->entries[i].until < r->until)
                    r = &ic->entries[i];
        }
    }
    strcpy(r->client_ip, client_ip);
    strcpy(r->host, host);
    r->until = now + ic->ttl;
    return 1;
}
