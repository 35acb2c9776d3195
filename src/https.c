/*
 * https.c - intercepted tunnels, as seen from the session.
 *
 * An intercepted CONNECT never reaches the upstream: the proxy answers 200,
 * swaps the client endpoint's transport for TLS (tls_accept), ends the
 * CONNECT exchange and goes back to reading request heads, now decrypted.
 * From there every request is an ordinary exchange (same parser, limits,
 * keep-alive, pipelining, hooks) whose target is https://<tunnel host>/...
 * and whose upstream connection speaks TLS (upstream.c's
 * upstream_begin_forwarding()).
 *
 * A client may also speak plain HTTP in its tunnel: a browser sends a
 * ws:// WebSocket through a proxy that way, as a CONNECT to port 80. Its
 * first byte tells (tls_accept): the endpoint then stays plain, and the
 * requests are the same ordinary exchanges, for http://<tunnel host>/...
 */
#include "https.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ca.h"
#include "intercept.h"
#include "log.h"
#include "message.h"
#include "session.h"
#include "tls.h"
#include "trace.h"

int https_should_intercept(struct session *s)
{
    struct exchange *x = &s->x;
    struct proxy *p = s->proxy;
    int want;

    /* https://luaproxy.ca/ (what a browser that upgrades typed addresses
     * tries first) is the page too: decrypted whatever the patterns, a
     * script or the pass-through table say, since passing it through
     * would hand the client to whoever holds that name on the internet.
     * When it cannot be decrypted the CONNECT is refused (https_refuse_
     * ca_tunnel), never forwarded. */
    if (https_is_ca_page(x->host)) {
        TRACE(s, "CONNECT %s: the proxy's own page, %s", x->host,
              !tls_ca(p->tls) ? "but no CA is loaded: refused" : "intercepted");
        return tls_ca(p->tls) != NULL;
    }
    want = x->intercept_choice ? x->intercept_choice == 1
                               : intercept_by_patterns(p->cfg, x->host);

    if (!want) {
        TRACE(s, "CONNECT %s: not intercepted (%s)", x->host,
              x->intercept_choice ? "tx:intercept(false)" : "no --intercept pattern matches");
        return 0;
    }
    if (!tls_ca(p->tls)) {
        log_warn("c%llu #%llu cannot intercept %s: no CA loaded (start with --intercept or "
                 "--ca-dir); passing the tunnel through",
                 (unsigned long long)s->id, (unsigned long long)x->id, x->host);
        return 0;
    }
    /* Bytes sent before our 200 (a ClientHello that did not wait) are
     * the handshake's first: tls_accept reads them. */
    if (intercept_passing_through(p->intercept, s->client_ip, x->host, ev_now(p->loop))) {
        TRACE(s, "not intercepted: this client refused our certificate for %s lately", x->host);
        log_debug("c%llu #%llu %s refused our certificate for %s lately: passing through",
                  (unsigned long long)s->id, (unsigned long long)x->id, s->client_ip, x->host);
        return 0;
    }
    return 1;
}

enum exchange_step https_refuse_ca_tunnel(struct session *s)
{
    return exchange_fail(&s->x, 404, "https://" HTTPS_CA_PAGE_HOST "/ is this proxy's own page, "
                                     "and no CA is loaded (start it with --intercept or "
                                     "--ca-dir); http://" HTTPS_CA_PAGE_HOST "/ says so too");
}

enum exchange_step https_begin_tunnel(struct session *s)
{
    struct exchange *x = &s->x;

    s->tunnel = calloc(1, sizeof *s->tunnel);
    if (!s->tunnel)
        return exchange_fail(x, 500, "out of memory");
    if (buffer_append_str(&s->client.out, "HTTP/1.1 200 Connection Established\r\n\r\n") != 0 ||
        tls_accept(&s->client, s->proxy->tls, x->host) < 0) {
        buffer_consume(&s->client.out, buffer_length(&s->client.out));
        return exchange_fail(x, 502, "could not start TLS with the client");
    }
    s->intercepted = 1;
    s->tunnel->port = x->port;
    snprintf(s->tunnel->host, sizeof s->tunnel->host, "%s", x->host);
    snprintf(s->tunnel->user, sizeof s->tunnel->user, "%s", x->user ? x->user : "");
    s->tunnel->auth_on = s->proxy->auth && s->proxy->cfg->auth_file;
    if (s->tunnel->auth_on)
        auth_stamp_user(s->proxy->auth, s->tunnel->user, &s->tunnel->auth);
    x->status = 200;
    x->response_started = 1;
    x->req_body_done = 1;
    x->keep_alive = 1; /* the connection carries the decrypted requests next */
    log_debug("c%llu #%llu intercepting %s:%u for %s", (unsigned long long)s->id,
              (unsigned long long)x->id, x->host, x->port, s->client_ip);
    TRACE(s, "CONNECT %s:%u intercepted (%s): 200 without contacting it; requests inside "
             "the tunnel are read like plain ones, as %s://",
          x->host, x->port, x->intercept_choice ? "tx:intercept(true)" : "--intercept",
          endpoint_is_tls(&s->client) ? "https" : "http");
    return STEP_END;
}

size_t https_tunnel_origin(const struct session *s, char *out, size_t len)
{
    int ipv6 = strchr(s->tunnel->host, ':') != NULL, tls = endpoint_is_tls(&s->client);
    int n = snprintf(out, len, ipv6 ? "%s://[%s]" : "%s://%s", tls ? "https" : "http",
                     s->tunnel->host);
    if (n > 0 && (size_t)n < len && s->tunnel->port != (tls ? 443 : 80))
        n += snprintf(out + n, len - (size_t)n, ":%u", s->tunnel->port);
    return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

void https_session_closing(struct session *s)
{
    struct proxy *p = s->proxy;

    if (!s->intercepted)
        return;
    if (!s->client.tls_aborted) {
        /* Failed on the proxy's side of the handshake (a ClientHello with
         * only TLS 1.0, no cipher in common, bytes that are not TLS): the
         * client only sees an alert, so the operator needs the why. A
         * client that leaves without a word (client.error unset) is not
         * news. */
        if (s->client.handshaking && s->client.error)
            log_info("c%llu %s (client %s, host %s)", (unsigned long long)s->id,
                     s->client.error, s->client_ip, s->tunnel->host);
        return;
    }
    TRACE(s, "the client ended the TLS handshake for %s: noted in the pass-through table",
          s->tunnel->host);
    if (intercept_note_refusal(p->intercept, s->client_ip, s->tunnel->host, ev_now(p->loop)))
        log_warn("%s (client %s, host %s): it may not trust the luaproxy CA or pins "
                 "certificates; its tunnels to that host pass through for %.0f s",
                 s->client.error ? s->client.error : "the client closed inside the TLS handshake",
                 s->client_ip, s->tunnel->host, p->cfg->passthrough_ttl);
    else if (p->cfg->passthrough_ttl <= 0)
        /* Nothing is noted, so nothing above says it: yet the client
         * failed (npm: "unable to verify the first certificate"), which
         * only the JSON access log's error shows besides. Each refusal is
         * news here, since the next tunnel is decrypted again. */
        log_info("%s (client %s, host %s): it may not trust the luaproxy CA or pins "
                 "certificates; --tls-passthrough-ttl is 0, so its next tunnels are "
                 "decrypted too",
                 s->client.error ? s->client.error : "the client closed inside the TLS handshake",
                 s->client_ip, s->tunnel->host);
}

/* ---- http://luaproxy.ca/ ---------------------------------------------- */

int https_is_ca_page(const char *host)
{
    size_t n = sizeof HTTPS_CA_PAGE_HOST - 1;
    /* "luaproxy.ca." is the same name, fully qualified: it must not go out
     * to whoever holds the real domain. */
    return strncasecmp(host, HTTPS_CA_PAGE_HOST, n) == 0 &&
           (host[n] == '\0' || (host[n] == '.' && host[n + 1] == '\0'));
}

static const char page_head[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>luaproxy CA</title>\n"
    "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:2em auto;"
    "padding:0 1em}code,pre{background:#f3f3f3;padding:.1em .3em}"
    "a.button{display:inline-block;padding:.5em 1em;margin:.2em;border:1px solid #888;"
    "border-radius:.3em;text-decoration:none}</style></head><body>\n"
    "<h1>luaproxy certificate authority</h1>\n"
    "<p>This proxy decrypts HTTPS for the hosts it was told to intercept, with "
    "certificates signed by its own CA. Trust this CA only on devices you use for "
    "debugging through this proxy.</p>\n"
    "<p><a class=\"button\" href=\"/ca.pem\">Download ca.pem</a>\n"
    "<a class=\"button\" href=\"/ca.der\">Download ca.der (Android, Windows)</a></p>\n"
    "<h2>Trust it</h2><ul>\n"
    "<li><b>Debian/Ubuntu</b>: <code>sudo cp ca.pem "
    "/usr/local/share/ca-certificates/luaproxy.crt &amp;&amp; sudo update-ca-certificates"
    "</code></li>\n"
    "<li><b>Chromium, Firefox</b> (NSS): <code>certutil -d sql:$HOME/.pki/nssdb -A -t C,, "
    "-n luaproxy -i ca.pem</code>, or import it under Settings, Certificates, "
    "Authorities</li>\n"
    "<li><b>curl</b>: <code>curl --cacert ca.pem -x http://PROXY ...</code></li>\n"
    "<li><b>Python</b> (requests): <code>REQUESTS_CA_BUNDLE=ca.pem</code></li>\n"
    "<li><b>Node.js</b>: <code>NODE_EXTRA_CA_CERTS=ca.pem</code></li>\n"
    "<li><b>Android</b>: download ca.der, then Settings, Security, Encryption &amp; "
    "credentials, Install a certificate, CA certificate</li>\n"
    "</ul>\n<h2>The certificate</h2>\n<pre>";
static const char page_tail[] = "</pre>\n</body></html>\n";

/* Writes a complete response with <body>. */
static int write_page(struct session *s, int status, const char *type, const char *filename,
                      const void *body, size_t len)
{
    struct exchange *x = &s->x;
    struct buffer *out = &s->client.out;
    int head_only = x->method_len == 4 && memcmp(x->method, "HEAD", 4) == 0;

    if (buffer_printf(out,
                      "HTTP/1.%d %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
                      x->minor >= 1 ? 1 : 0, status, message_reason(status), type,
                      len) != 0 ||
        (filename && buffer_printf(out, "Content-Disposition: attachment; filename=\"%s\"\r\n",
                                   filename) != 0) ||
        buffer_append_str(out, x->keep_alive ? (x->minor >= 1 ? "\r\n"
                                                              : "Connection: keep-alive\r\n\r\n")
                                             : "Connection: close\r\n\r\n") != 0)
        return -1;
    if (!head_only && buffer_append(out, body, len) != 0)
        return -1;
    x->res_bytes = head_only ? 0 : len;
    return 0;
}

enum exchange_step https_answer_ca_page(struct session *s)
{
    struct exchange *x = &s->x;
    const struct ca *ca = tls_ca(s->proxy->tls);
    const char *path = x->url.path;
    size_t plen = x->url.path_len, pem_len = 0, der_len = 0;
    const char *pem = ca ? ca_pem(ca, &pem_len) : NULL;
    const unsigned char *der = ca ? ca_der(ca, &der_len) : NULL;
    static const char none[] = "No CA is loaded: start the proxy with --intercept or --ca-dir.\n";
    static const char missing[] = "Not found. Try / , /ca.pem or /ca.der\n";
    struct buffer html;
    int rc;

    if (!x->req_body_done)
        exchange_no_keep(x, "the request body is never read"); /* a page for a GET */
    if (memchr(path, '?', plen))
        plen = (size_t)((const char *)memchr(path, '?', plen) - path);
    x->status = 200;
    if (!ca) {
        x->status = 404;
        rc = write_page(s, 404, "text/plain; charset=utf-8", NULL, none, sizeof none - 1);
    } else if (plen <= 1) {
        /* The PEM is base64 and dashes: safe inside <pre> as it is. */
        buffer_init(&html);
        rc = buffer_append(&html, page_head, sizeof page_head - 1) != 0 ||
                     buffer_append(&html, pem, pem_len) != 0 ||
                     buffer_append_str(&html, page_tail) != 0
                 ? -1
                 : write_page(s, 200, "text/html; charset=utf-8", NULL, buffer_peek(&html),
                              buffer_length(&html));
        buffer_free(&html);
    } else if (plen == 7 && memcmp(path, "/ca.pem", 7) == 0) {
        rc = write_page(s, 200, "application/x-pem-file", "luaproxy-ca.pem", pem, pem_len);
    } else if (plen == 7 && (memcmp(path, "/ca.der", 7) == 0 || memcmp(path, "/ca.crt", 7) == 0)) {
        rc = write_page(s, 200, "application/x-x509-ca-cert", "luaproxy-ca.der", der, der_len);
    } else {
        x->status = 404;
        rc = write_page(s, 404, "text/plain; charset=utf-8", NULL, missing, sizeof missing - 1);
    }
    if (rc != 0)
        return exchange_fail(x, 500, "out of memory");
    x->response_started = 1;
    return STEP_END;
}
