/*
 * tls.c - the TLS transport of an endpoint, and the contexts behind it.
 *
 * What it owns: the client-facing SSL_CTX (certificates from ca.c, picked
 * by SNI in the certificate callback; ALPN http/1.1 only; TLS 1.2 and 1.3;
 * session tickets), the upstream SSL_CTX (system trust store plus
 * --upstream-ca, host name checks), the NSS key log, and per endpoint one
 * SSL object (struct tls_conn). What it doesn't: deciding what to
 * intercept, or any HTTP.
 *
 * Everything is non-blocking on the loop's sockets: SSL_read/SSL_write
 * report WANT_READ/WANT_WRITE, which become the endpoint's read_needs and
 * write_needs, so the watcher waits for what TLS needs. OpenSSL is told
 * that the buffer it is given may move between retries and that a write
 * may be partial, which is how the endpoint's "out" buffer behaves.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <stdint.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "config.h"
#include "log.h"
#include "private_file.h"
#include "tls_prefix.h"
#include "tls_trust.h"
#include "trace.h"

/* Upstream sessions kept for resumption, by host and port: a new client
 * connection to a host we just talked to skips the certificate chain
 * check and the server's signature. Replaced round-robin. */
#define TLS_SESSIONS_MAX 64

struct upstream_session {
    char key[300];     /* "host port" */
    SSL_SESSION *session;
};

struct tls {
    SSL_CTX *server;   /* faces clients; NULL without a CA */
    SSL_CTX *client;   /* faces upstreams */
    struct ca *ca;
    int keylog_fd;     /* -1: no key log */
    struct upstream_session sessions[TLS_SESSIONS_MAX];
    int next_session;  /* the slot to replace next */
};

struct tls_conn {
    SSL *ssl;
    struct tls *t;
    size_t raw_left;   /* bytes of "out" still to go in the clear (the 200) */
    int server;        /* we accepted (client side) rather than connected */
    int cert_sent;     /* server: our certificate was chosen, so it goes out */
    int cert_asked;    /* upstream: it asked for a client certificate */
    int renegotiation_refused; /* upstream: it asked to renegotiate, we said no */
    int close_notify_read; /* upstream: its close_notify came (on_upstream_info) */
    int got_data;      /* a read returned application data */
    int first_seen;    /* server: the client's first byte was looked at */
    char name[256];    /* the certificate's name when the client sends no SNI */
    char session_key[300]; /* upstream: where its session is kept */
    const struct session *owner; /* for --trace */
    char error[200];
};

static const unsigned char alpn_http11[] = "\x08http/1.1";

static int inet_pton_any(const char *host, unsigned char *out)
{
    return inet_pton(AF_INET, host, out) == 1 || inet_pton(AF_INET6, host, out) == 1;
}

/* ---- the transport ---------------------------------------------------- */

/* The session an endpoint belongs to, for --trace (endpoint.h: the
 * watcher's data is its owner). Only for endpoints known to be a
 * session's (an accepted client); tls_connect is told its owner, since
 * proxy.http connects endpoints that belong to no session. */
#define OWNER(e) ((const struct session *)(e)->io.data)

/* Whether OpenSSL's last error is an alert the peer sent: OpenSSL reports
 * a received alert as its code plus SSL_AD_REASON_OFFSET; failures it
 * found itself have reasons below that. */
static int peer_alerted(void)
{
    unsigned long err = ERR_peek_last_error();
    return err && ERR_GET_LIB(err) == ERR_LIB_SSL && ERR_GET_REASON(err) >= SSL_AD_REASON_OFFSET;
}

/* What the upstream's failure <err> most likely means, in words for the
 * person at the client (the 502 names it), or NULL. OpenSSL's own reasons
 * ("wrong version number", "sslv3 alert handshake failure") say what
 * broke, not why. */
static const char *upstream_failure_meaning(const struct tls_conn *c, unsigned long err)
{
    int reason = err && ERR_GET_LIB(err) == ERR_LIB_SSL ? ERR_GET_REASON(err) : 0;

    /* An alert after a CertificateRequest we answered with none: TLS 1.2
     * servers say handshake_failure, TLS 1.3 ones certificate_required.
     * In TLS 1.3 our side of the handshake is over before the server has
     * judged it, so the request may be written just as it resets the
     * connection: the write fails, with the alert unread, and a close
     * before any answer is the same refusal. */
    if (c->cert_asked && (peer_alerted() || (!err && !c->got_data)))
        return "it asks for a client certificate, and the proxy has none to give";
    /* Most servers answer our no_renegotiation with handshake_failure. */
    if (c->renegotiation_refused)
        return "it asked to renegotiate TLS part-way (a TLS 1.2 server does that to ask for "
               "a client certificate on some paths), which the proxy refuses";
    switch (reason) {
    case SSL_R_WRONG_VERSION_NUMBER: /* a record that does not start like TLS */
        return "it did not answer in TLS (plain HTTP on this port?)";
    case SSL_R_UNSUPPORTED_PROTOCOL: /* its ServerHello chose TLS 1.1 or older */
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION: /* it refused our 1.2 and 1.3 */
        return "it offers no TLS version the proxy accepts (1.2 or 1.3), perhaps only older "
               "ones";
    case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL: /* ALPN: we offer http/1.1 alone */
        return "it does not speak HTTP/1.1, the only protocol the proxy offers (HTTP/2 only?)";
    default:
        return NULL;
    }
}

/* Describes OpenSSL's last error for e->error. */
static void set_error(struct endpoint *e, const char *what)
{
    struct tls_conn *c = e->tls;
    unsigned long err = ERR_peek_last_error();
    const char *reason = err ? ERR_reason_error_string(err) : NULL;
    const char *meaning = c->server ? NULL : upstream_failure_meaning(c, err);
    long verify = c->server ? X509_V_OK : SSL_get_verify_result(c->ssl);

    if (!c->server && verify != X509_V_OK && err &&
        ERR_GET_REASON(err) == SSL_R_CERTIFICATE_VERIFY_FAILED)
        snprintf(c->error, sizeof c->error, "the upstream's certificate was refused: %s",
                 verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH
                     ? "host name mismatch"
                     : X509_verify_cert_error_string(verify));
    else if (meaning)
        snprintf(c->error, sizeof c->error, "%s: %s (%s)", what, meaning,
                 reason ? reason : "connection closed");
    else
        snprintf(c->error, sizeof c->error, "%s: %s", what, reason ? reason : "connection closed");
    e->error = c->error;
    TRACE(c->owner, "TLS with %s %s failed: %s", c->server ? "the client for" : "the upstream",
          c->name, c->error);
    ERR_clear_error();
}

/* The client gave up on our handshake once it had our certificate: an
 * alert it sent (such as unknown_ca), or a close (<by_peer>: the failure
 * is its doing). One that ends before any certificate was sent (a close
 * right after the 200, bytes that are not TLS, a ClientHello the proxy
 * turned down itself, such as one offering only TLS 1.0) refused none:
 * noting it would let any client opt out of interception with one bad
 * ClientHello. */
static void note_aborted(struct endpoint *e, int by_peer)
{
    if (e->handshaking && e->tls->server && e->tls->cert_sent && by_peer)
        e->tls_aborted = 1;
}

/* Turns SSL_get_error's <code> into the transport's -1/errno (or 0 for a
 * clean EOF), and records what a retry must wait for in *<needs>. */
static ssize_t blocked_or_failed(struct endpoint *e, int code, int *needs, int reading)
{
    struct tls_conn *c = e->tls;

    switch (code) {
    case SSL_ERROR_WANT_READ:
        *needs = EV_READ;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        *needs = EV_WRITE;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        note_aborted(e, 1);
        ERR_clear_error();
        /* SSL_OP_IGNORE_UNEXPECTED_EOF makes a bare EOF look like a
         * close_notify here; only the alert itself says the upstream
         * ended its stream on purpose (RFC 8446 6.1). */
        if (reading && !c->server && !e->handshaking && !c->close_notify_read)
            e->tls_eof_unclean = 1;
        if (reading)
            return 0;
        errno = EPIPE;
        return -1;
    case SSL_ERROR_SYSCALL:
        note_aborted(e, 1);
        if (errno == 0 || errno == EAGAIN)
            errno = ECONNRESET;
        e->read_eof = 1; /* nothing more can be read from a broken TLS stream */
        set_error(e, c->server ? "the TLS connection with the client failed"
                               : "the TLS connection with the upstream failed");
        return -1;
    default: {
        /* A handshake the client ended (its alert) or one the proxy
         * turned down (an old version, no cipher in common). */
        const char *client_side = !e->handshaking ? "the TLS connection with the client failed"
                                  : peer_alerted() ? "the client ended the TLS handshake"
                                                   : "the TLS handshake with the client failed";
        note_aborted(e, peer_alerted());
        set_error(e, c->server ? client_side
                               : (e->handshaking ? "the TLS handshake with the upstream failed"
                                                 : "the TLS connection with the upstream failed"));
        e->read_eof = 1;
        errno = EPROTO;
        return -1;
    }
    }
}

static void note_handshake(struct endpoint *e)
{
    if (e->handshaking && SSL_is_init_finished(e->tls->ssl)) {
        e->handshaking = 0;
        TRACE(e->tls->owner, "TLS handshake with %s %s done: %s, %s, %s",
              e->tls->server ? "the client for" : "the upstream", e->tls->name,
              SSL_get_version(e->tls->ssl), SSL_get_cipher_name(e->tls->ssl),
              SSL_session_reused(e->tls->ssl) ? "resumed (no certificate work)"
                                               : "full handshake");
        log_debug("TLS %s with %s: %s, %s", e->tls->server ? "accepted" : "connected",
                  e->tls->name, SSL_get_version(e->tls->ssl),
                  SSL_session_reused(e->tls->ssl) ? "resumed" : "full handshake");
    }
}

/* What SSL_read_ex or SSL_write_ex returned (<r>, having moved <n> bytes)
 * as the transport's result: <n>, or -1/errno (0 for a clean EOF when
 * <reading>) with what a retry waits for in *<needs>. */
static ssize_t io_result(struct endpoint *e, int r, size_t n, int *needs, int reading)
{
    note_handshake(e);
    if (r == 1) {
        *needs = 0;
        return (ssize_t)n;
    }
    return blocked_or_failed(e, SSL_get_error(e->tls->ssl, r), needs, reading);
}

/* A TLS record starts with its content type, and a client's first one is
 * a handshake (22): any other first byte is not TLS. */
#define TLS_RECORD_HANDSHAKE 0x16

/* Gives <e> back its plain transport: the client of an intercepted tunnel
 * speaks plain text in it (see tls_accept). */
static void uninstall(struct endpoint *e)
{
    SSL_free(e->tls->ssl);
    free(e->tls);
    e->tls = NULL;
    e->ops = &endpoint_plain_ops;
    e->handshaking = 0;
    e->read_needs = e->write_needs = 0;
}

/* Server side, before the handshake reads anything: whether the client's
 * first byte, left on the socket, starts a TLS record: 1 yes, 0 no, -1
 * when none has come yet (the handshake then waits for it as usual, and
 * the next read looks again). */
static int first_byte_is_tls(struct endpoint *e)
{
    unsigned char b;
    ssize_t n;
    do
        n = recv(e->fd, &b, 1, MSG_PEEK);
    while (n == -1 && errno == EINTR);
    return n == 1 ? b == TLS_RECORD_HANDSHAKE : -1;
}

static ssize_t tls_read(struct endpoint *e, void *buf, size_t len)
{
    struct tls_conn *c = e->tls;
    size_t n = 0;
    int r;

    if (c->raw_left > 0) {
        /* The 200 has not left yet: nothing to read before it has. */
        e->read_needs = EV_WRITE;
        errno = EAGAIN;
        return -1;
    }
    if (c->server && !c->first_seen) {
        int tls = first_byte_is_tls(e);
        c->first_seen = tls >= 0;
        if (tls == 0) {
            TRACE(c->owner, "the client speaks plain text inside the tunnel to %s, not TLS: "
                            "its requests are read as http://",
                  c->name);
            uninstall(e);
            return e->ops->read(e, buf, len);
        }
    }
    ERR_clear_error();
    r = SSL_read_ex(c->ssl, buf, len, &n);
    if (r == 1)
        c->got_data = 1;
    return io_result(e, r, n, &e->read_needs, 1);
}

static ssize_t tls_write(struct endpoint *e, const void *buf, size_t len)
{
    struct tls_conn *c = e->tls;
    size_t n = 0;
    int r;

    if (c->raw_left > 0) {
        ssize_t w;
        do
            w = send(e->fd, buf, len < c->raw_left ? len : c->raw_left, MSG_NOSIGNAL);
        while (w == -1 && errno == EINTR);
        if (w > 0)
            c->raw_left -= (size_t)w;
        return w;
    }
    ERR_clear_error();
    r = SSL_write_ex(c->ssl, buf, len, &n);
    return io_result(e, r, n, &e->write_needs, 0);
}

static void tls_shutdown(struct endpoint *e)
{
    /* close_notify, then FIN. A close_notify that does not fit in the
     * socket now is dropped: the FIN still ends the stream. */
    if (!e->handshaking && !e->failed)
        SSL_shutdown(e->tls->ssl);
    ERR_clear_error();
    shutdown(e->fd, SHUT_WR);
}

/* Decrypted bytes waiting, and raw ones a read BIO holds apart from the
 * socket (tls_prefix.c): neither makes the socket readable. */
static size_t tls_pending(const struct endpoint *e)
{
    int n = SSL_pending(e->tls->ssl);
    int raw = BIO_pending(SSL_get_rbio(e->tls->ssl));
    return (n > 0 ? (size_t)n : 0) + (raw > 0 ? (size_t)raw : 0);
}

static void tls_close(struct endpoint *e)
{
    if (e->tls) {
        /* OpenSSL spoils the session of a connection freed without a
         * close_notify, so it cannot be resumed. A connection that simply
         * ends (an idle upstream we drop, a client that leaves) did nothing
         * wrong; one that failed keeps that protection. */
        if (!e->failed && !e->handshaking)
            SSL_set_shutdown(e->tls->ssl, SSL_get_shutdown(e->tls->ssl) | SSL_SENT_SHUTDOWN);
        SSL_free(e->tls->ssl);
        free(e->tls);
        e->tls = NULL;
    }
    e->error = NULL;
}

static const struct endpoint_ops tls_ops = {
    .name = "tls",
    .read = tls_read,
    .write = tls_write,
    .shutdown = tls_shutdown,
    .pending = tls_pending,
    .close = tls_close,
    .can_splice = 0,
};

/* Frees a connection that was never installed, and the error queue its
 * set-up left behind, so that the next TLS call on this thread does not
 * read a stale error. Returns -1 for the caller to pass on. */
static int discard_conn(struct tls_conn *c)
{
    SSL_free(c->ssl);
    free(c);
    ERR_clear_error();
    return -1;
}

static struct tls_conn *new_conn(struct endpoint *e, struct tls *t, SSL_CTX *ctx,
                                 const char *name, const struct session *owner)
{
    struct tls_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->ssl = SSL_new(ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, e->fd)) {
        discard_conn(c);
        return NULL;
    }
    c->t = t;
    c->owner = owner;
    snprintf(c->name, sizeof c->name, "%s", name);
    SSL_set_app_data(c->ssl, c);
    return c;
}

/* Installs <c> as <e>'s transport. */
static void install(struct endpoint *e, struct tls_conn *c)
{
    e->tls = c;
    e->ops = &tls_ops;
    e->handshaking = 1;
    e->tls_aborted = e->tls_eof_unclean = 0;
    e->error = NULL;
    e->read_needs = e->write_needs = 0;
}

int tls_accept(struct endpoint *e, struct tls *t, const char *name)
{
    struct tls_conn *c;

    if (!t->server || e->fd < 0 || e->tls)
        return -1;
    /* A client that sent plain text with its CONNECT (a request that did
     * not wait for the 200) is not starting TLS: its tunnel stays plain. */
    if (buffer_length(&e->in) > 0 && (unsigned char)buffer_peek(&e->in)[0] != TLS_RECORD_HANDSHAKE)
        return 1;
    c = new_conn(e, t, t->server, name, OWNER(e));
    if (!c)
        return -1;
    if (buffer_length(&e->in) > 0) {
        BIO *rbio = tls_prefix_bio(e->fd, buffer_peek(&e->in), buffer_length(&e->in));
        if (!rbio)
            return discard_conn(c);
        SSL_set0_rbio(c->ssl, rbio); /* the socket's own BIO stays the write one */
        c->first_seen = 1;           /* a handshake record, checked above */
        TRACE(OWNER(e), "TLS with the client: %zu bytes it sent before our 200 are read first",
              buffer_length(&e->in));
        buffer_consume(&e->in, buffer_length(&e->in));
    }
    c->server = 1;
    c->raw_left = buffer_length(&e->out);
    SSL_set_accept_state(c->ssl);
    install(e, c);
    TRACE(OWNER(e), "TLS with the client: the 200 goes out in the clear, then the handshake "
                    "runs inside the next reads (certificate for %s unless SNI says otherwise)",
          name);
    return 0;
}

static struct upstream_session *find_session(struct tls *t, const char *key)
{
    for (int i = 0; i < TLS_SESSIONS_MAX; i++)
        if (t->sessions[i].session && strcmp(t->sessions[i].key, key) == 0)
            return &t->sessions[i];
    return NULL;
}

/* OpenSSL has a resumable session (a TLS 1.3 ticket, or a 1.2 session)
 * for an upstream connection: keep it for the next connection there. */
static int on_upstream_session(SSL *ssl, SSL_SESSION *session)
{
    struct tls_conn *c = SSL_get_app_data(ssl);
    struct tls *t = c->t;
    struct upstream_session *slot = find_session(t, c->session_key);

    if (!slot) {
        slot = &t->sessions[t->next_session];
        t->next_session = (t->next_session + 1) % TLS_SESSIONS_MAX;
    }
    SSL_SESSION_free(slot->session);
    slot->session = session; /* we keep OpenSSL's reference: return 1 */
    snprintf(slot->key, sizeof slot->key, "%s", c->session_key);
    return 1;
}

int tls_connect(struct endpoint *e, struct tls *t, const char *host, unsigned port,
                const struct session *owner)
{
    struct tls_conn *c;
    struct upstream_session *kept;
    unsigned char ip[16];
    int is_ip = inet_pton_any(host, ip);
    size_t len = strlen(host);
    char name[256];

    if (e->fd < 0 || e->tls || len >= sizeof name)
        return -1;
    c = new_conn(e, t, t->client, host, owner);
    if (!c)
        return -1;
    snprintf(c->session_key, sizeof c->session_key, "%s %u", host, port);
    kept = find_session(t, c->session_key);
    if (kept && SSL_SESSION_is_resumable(kept->session))
        SSL_set_session(c->ssl, kept->session);
    /* No SNI for an IP literal (RFC 6066 3); SSL_set1_host checks an IP
     * literal against the certificate's IP addresses. A name's trailing
     * dot ("example.com.", fully qualified) is left out of both: SNI has
     * none (RFC 6066 3), and no certificate names carry one. */
    if (len > 1 && host[len - 1] == '.')
        len--;
    snprintf(name, sizeof name, "%.*s", (int)len, host);
    if ((!is_ip && !SSL_set_tlsext_host_name(c->ssl, name)) || !SSL_set1_host(c->ssl, name) ||
        SSL_set_alpn_protos(c->ssl, alpn_http11, sizeof alpn_http11 - 1) != 0)
        return discard_conn(c);
    /* The name is checked as browsers check it, so the client, which
     * trusts what we vouch for, is never let through where it would have
     * refused: only the subjectAltName counts (OpenSSL falls back on the
     * subject's common name when there is none), and a wildcard stands
     * for a whole label ("*.example.com", never "f*.example.com"). */
    SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT |
                                  X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set_connect_state(c->ssl);
    install(e, c);
    TRACE(owner, "TLS to the upstream %s:%u: %s, %s", host, port,
          is_ip ? "no SNI (an IP address), its certificate checked for the IP" : "SNI and host name check",
          kept ? "resuming the last session with it" : "no session to resume");
    return 0;
}

static void on_upstream_info(const SSL *ssl, int where, int ret);

int tls_connect_loopback(struct endpoint *e, const char *host)
{
    /* One context per process, made on first use and kept until exit: a
     * replay is rare, and the admin's process may have no struct tls. */
    static SSL_CTX *ctx;
    struct tls_conn *c;
    unsigned char ip[16];

    if (e->fd < 0 || e->tls)
        return -1;
    if (!ctx) {
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
            SSL_CTX_free(ctx);
            ctx = NULL;
            ERR_clear_error();
            return -1;
        }
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        /* No certificate check, on purpose: the socket was connected by
         * this process to the proxy's own listening address on loopback,
         * and the certificate is one the proxy minted itself for the
         * CONNECT we sent. Checking it against the CA would prove only
         * that the proxy signs with its own key, and the process serving
         * the admin interface need not have the CA loaded. */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        /* An upstream connection like the others: tls_eof_unclean
         * needs to see the close_notify come. */
        SSL_CTX_set_info_callback(ctx, on_upstream_info);
    }
    c = new_conn(e, NULL, ctx, host, NULL); /* not a session: nothing to trace */
    if (!c)
        return -1;
    /* SNI as a client would send it (none for an IP literal, RFC 6066 3),
     * so the proxy mints the same certificate as for the original. */
    if ((!inet_pton_any(host, ip) && !SSL_set_tlsext_host_name(c->ssl, host)) ||
        SSL_set_alpn_protos(c->ssl, alpn_http11, sizeof alpn_http11 - 1) != 0)
        return discard_conn(c);
    SSL_set_connect_state(c->ssl);
    install(e, c);
    return 0;
}

enum endpoint_io tls_handshake(struct endpoint *e)
{
    struct tls_conn *c = e->tls;
    int r, code, needs = 0;

    if (!c)
        return ENDPOINT_ERROR;
    if (!e->handshaking)
        return ENDPOINT_PROGRESS;
    ERR_clear_error();
    r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        note_handshake(e);
        e->handshaking = 0;
        e->read_needs = e->write_needs = 0;
        return ENDPOINT_PROGRESS;
    }
    code = SSL_get_error(c->ssl, r);
    if (blocked_or_failed(e, code, &needs, 0) == -1 && errno == EAGAIN) {
        /* Whatever the relay waits for, the handshake needs <needs>. */
        e->read_needs = e->write_needs = needs;
        return ENDPOINT_AGAIN;
    }
    if (!e->error)
        set_error(e, "the TLS handshake with the upstream failed");
    e->failed = 1;
    return ENDPOINT_ERROR;
}

/* ---- the contexts ----------------------------------------------------- */

/* Picks the certificate once the ClientHello is in: for the SNI name when
 * the client sent one, else for the CONNECT host. Runs inside SSL_read on
 * the loop; a cache miss costs one signature. */
static int on_client_cert(SSL *ssl, void *arg)
{
    struct tls *t = arg;
    struct tls_conn *c = SSL_get_app_data(ssl);
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    X509 *cert = NULL;

    if (sni && *sni)
        cert = ca_certificate(t->ca, sni);
    if (!cert) /* no SNI, or one no certificate can carry */
        cert = ca_certificate(t->ca, c->name);
    if (!cert || !SSL_use_certificate(ssl, cert))
        return 0;
    if (sni && *sni)
        snprintf(c->name, sizeof c->name, "%s", sni);
    /* Not called for a resumed session: no certificate goes out then. */
    c->cert_sent = 1;
    TRACE(c->owner, "TLS ClientHello: SNI %s; certificate for %s, signed by the luaproxy CA",
          sni && *sni ? sni : "absent", c->name);
    return 1;
}

/* ALPN: HTTP/1.1 or nothing, so HTTP/2 clients fall back to 1.1. */
static int on_client_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *selected;
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&selected, outlen, alpn_http11, sizeof alpn_http11 - 1, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

/* NSS key log: one line per secret, appended with a single write(2) so the
 * lines of several workers never interleave. */
/* The TLS key log: what it holds decrypts every session it names, so it
 * is its owner's alone (private_file.h: a new one is made 0600, one
 * another user owns is refused, a pipe such as a FIFO to Wireshark is
 * taken as it is). Unlike other such files, one of ours that others can
 * read is made 0600 (and logged). The descriptor, or -1 with <err>. */
static int open_keylog(const char *path, char *err, size_t err_len)
{
    struct stat st;
    int fd = private_file_open(path, O_APPEND, &st);

    if (fd == PRIVATE_FILE_FOREIGN) {
        snprintf(err, err_len, "the TLS key log %s belongs to another user, who could read the "
                 "secrets written to it: remove it, or name another file", path);
        return -1;
    }
    if (fd < 0) {
        snprintf(err, err_len, "cannot open the TLS key log %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode))
        return fd;
    if ((st.st_mode & 077) != 0) {
        if (fchmod(fd, 0600) != 0) {
            snprintf(err, err_len, "the TLS key log %s is readable by others and cannot be "
                     "made 0600: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        log_warn("the TLS key log %s was readable by others; it is 0600 now", path);
    }
    return fd;
}

static void on_keylog(const SSL *ssl, const char *line)
{
    struct tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    char buf[512];
    size_t len = strlen(line);

    if (!t || t->keylog_fd < 0 || len + 1 > sizeof buf)
        return;
    memcpy(buf, line, len);
    buf[len++] = '\n';
    if (write(t->keylog_fd, buf, len) < 0)
        return; /* a full disk must not stop the proxy */
}

/* Settings both sides share: TLS 1.2 at least, no renegotiation (a
 * client-driven way to make the proxy spend CPU, and never needed for
 * HTTP/1.1), buffers that may move between retries.
 *
 * An EOF without close_notify reads as a clean end (many peers close
 * without one) rather than as a fatal error: a fatal error would send
 * the peer an alert and spoil the session kept for resuming with an
 * upstream. Where it matters, a body that only the connection's end
 * delimits, the upstream side tells the two apart by the alert
 * (on_upstream_info, tls_eof_unclean in endpoint.h). */
static int common_setup(SSL_CTX *ctx, struct tls *t)
{
    SSL_CTX_set_app_data(ctx, t);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (t->keylog_fd >= 0)
        SSL_CTX_set_keylog_callback(ctx, on_keylog);
    return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ? 0 : -1;
}

static int make_server_ctx(struct tls *t, const struct config *cfg)
{
    static const unsigned char sid_ctx[] = "luaproxy";

    t->server = SSL_CTX_new(TLS_server_method());
    if (!t->server || common_setup(t->server, t) != 0)
        return -1;
    /* Every minted certificate carries the same public key: the key is set
     * once here, and each connection only picks its certificate. */
    if (!SSL_CTX_use_PrivateKey(t->server, ca_leaf_key(t->ca)))
        return -1;
    SSL_CTX_set_cert_cb(t->server, on_client_cert, t);
    SSL_CTX_set_alpn_select_cb(t->server, on_client_alpn, NULL);
    SSL_CTX_set_session_id_context(t->server, sid_ctx, sizeof sid_ctx - 1);
    /* Session-id resumption (TLS 1.2 clients without tickets) keeps state
     * here: bounded (OpenSSL's default is 20480 sessions). */
    SSL_CTX_sess_set_cache_size(t->server, 1024);
    /* Workers share the ticket keys (made once at start), so a client that
     * comes back resumes whichever worker takes the connection. */
    if (cfg->have_ticket_keys &&
        SSL_CTX_set_tlsext_ticket_keys(t->server, (void *)(uintptr_t)cfg->ticket_keys,
                                       sizeof cfg->ticket_keys) != 1)
        return -1;
    return 0;
}

/* The upstream asks for a client certificate (a CertificateRequest). The
 * proxy has none: noted, so that the failure this may bring is named
 * for what it is, and 0 lets the handshake go on without one (some
 * servers only ask). */
static int on_upstream_cert_request(SSL *ssl, X509 **cert, EVP_PKEY **key)
{
    struct tls_conn *c = SSL_get_app_data(ssl);
    (void)cert;
    (void)key;
    if (c)
        c->cert_asked = 1;
    return 0;
}

/* OpenSSL's progress on an upstream connection. Two alerts are looked
 * at: the no_renegotiation SSL_OP_NO_RENEGOTIATION sends when a TLS 1.2
 * server asks to renegotiate, so the failure that follows is named for
 * what it is (upstream_failure_meaning); and the upstream's close_notify,
 * which SSL_read reports just as it reports an EOF without one (see
 * common_setup), so that a body that ends with the connection is taken
 * as whole only after it (RFC 9112 9.8). */
static void on_upstream_info(const SSL *ssl, int where, int ret)
{
    struct tls_conn *c;

    if (!(where & SSL_CB_ALERT))
        return;
    c = SSL_get_app_data(ssl);
    if (!c)
        return;
    if ((where & SSL_CB_WRITE) && (ret & 0xff) == SSL_AD_NO_RENEGOTIATION)
        c->renegotiation_refused = 1;
    if ((where & SSL_CB_READ) && (ret & 0xff) == SSL_AD_CLOSE_NOTIFY)
        c->close_notify_read = 1;
}

static int make_client_ctx(struct tls *t, const struct config *cfg, char *err, size_t err_len)
{
    t->client = SSL_CTX_new(TLS_client_method());
    if (!t->client || common_setup(t->client, t) != 0)
        return -1;
    SSL_CTX_set_session_cache_mode(t->client, SSL_SESS_CACHE_CLIENT |
                                                  SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(t->client, on_upstream_session);
    SSL_CTX_set_client_cert_cb(t->client, on_upstream_cert_request);
    SSL_CTX_set_info_callback(t->client, on_upstream_info);
    if (cfg->insecure_upstream) {
        SSL_CTX_set_verify(t->client, SSL_VERIFY_NONE, NULL);
        return 0;
    }
    SSL_CTX_set_verify(t->client, SSL_VERIFY_PEER, NULL);
    if (!cfg->upstream_trust) {
        snprintf(err, err_len, "no certificates to verify upstreams with (tls_prepare)");
        return -2;
    }
    SSL_CTX_set1_cert_store(t->client, cfg->upstream_trust); /* takes a reference */
    return 0;
}

struct tls *tls_new(const struct config *cfg, char *err, size_t err_len)
{
    struct tls *t = calloc(1, sizeof *t);
    int rc;

    if (!t) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    t->keylog_fd = -1;
    if (cfg->tls_keylog && (t->keylog_fd = open_keylog(cfg->tls_keylog, err, err_len)) < 0)
        goto fail;
    if (cfg->use_ca) {
        t->ca = ca_load(cfg->ca_dir, err, err_len);
        if (!t->ca)
            goto fail;
        if (make_server_ctx(t, cfg) != 0) {
            snprintf(err, err_len, "cannot set up TLS for clients");
            goto fail;
        }
    }
    rc = make_client_ctx(t, cfg, err, err_len);
    if (rc != 0) {
        if (rc == -1)
            snprintf(err, err_len, "cannot set up TLS for upstreams");
        goto fail;
    }
    ERR_clear_error();
    return t;
fail:
    ERR_clear_error();
    tls_free(t);
    return NULL;
}

void tls_free(struct tls *t)
{
    if (!t)
        return;
    for (int i = 0; i < TLS_SESSIONS_MAX; i++)
        SSL_SESSION_free(t->sessions[i].session);
    SSL_CTX_free(t->server);
    SSL_CTX_free(t->client);
    ca_free(t->ca);
    if (t->keylog_fd >= 0)
        close(t->keylog_fd);
    free(t);
}

void tls_use_trust(struct tls *t, const struct config *cfg)
{
    if (!t || !cfg->upstream_trust)
        return; /* --insecure-upstream checks nothing, and cannot change */
    SSL_CTX_set1_cert_store(t->client, cfg->upstream_trust); /* takes a reference */
    for (int i = 0; i < TLS_SESSIONS_MAX; i++) {
        SSL_SESSION_free(t->sessions[i].session);
        t->sessions[i].session = NULL;
    }
}

const struct ca *tls_ca(const struct tls *t) { return t ? t->ca : NULL; }

int tls_prepare(struct config *cfg, char *err, size_t err_len)
{
    struct ca *ca;
    const char *env = getenv("SSLKEYLOGFILE");

    if (!cfg->tls_keylog && env && *env)
        cfg->tls_keylog = env;
    if (cfg->insecure_upstream)
        log_warn("--insecure-upstream: upstream certificates are NOT verified; anyone on the "
                 "path to an upstream can read and change intercepted traffic");
    if (RAND_bytes(cfg->ticket_keys, sizeof cfg->ticket_keys) == 1)
        cfg->have_ticket_keys = 1;
    if (tls_trust_load(cfg, err, err_len) != 0)
        return -1;
    if (cfg->intercept_count == 0 && !cfg->ca_dir_option)
        return 0; /* nothing to sign with, nothing asked */
    if (ca_dir_resolve(cfg->ca_dir_option, cfg->ca_dir, sizeof cfg->ca_dir, err, err_len) != 0)
        return -1;
    if (!ca_exists(cfg->ca_dir)) {
        if (cfg->intercept_count == 0) {
            snprintf(err, err_len, "no CA in %s (make one with: luaproxy ca init --ca-dir %s)",
                     cfg->ca_dir, cfg->ca_dir);
            return -1;
        }
        if (ca_create(cfg->ca_dir, 0, err, err_len) != 0)
            return -1;
        log_info("created a CA for interception in %s; trust %s/ca.pem in your clients "
                 "(or fetch it from http://luaproxy.ca/ through the proxy)",
                 cfg->ca_dir, cfg->ca_dir);
    }
    ca = ca_load(cfg->ca_dir, err, err_len);
    if (!ca)
        return -1;
    ca_free(ca);
    cfg->use_ca = 1;
    return 0;
}
