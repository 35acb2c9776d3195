/*
 * tls_prefix.c - a BIO that hands OpenSSL bytes already read from a
 * socket before the socket's own.
 *
 * A client may send its ClientHello right behind its CONNECT, without
 * waiting for the 200: those bytes come in with the request head and sit
 * in the endpoint's input buffer, where OpenSSL, which reads the socket
 * itself, would never see them. Such a client got a plain tunnel instead,
 * so any client could choose not to be intercepted. With this filter in
 * front of the socket BIO, the handshake reads them first.
 */
#include "tls_prefix.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>

struct prefix {
    size_t len, pos;
    char data[];
};

static int prefix_read(BIO *b, char *out, size_t len, size_t *got)
{
    struct prefix *p = BIO_get_data(b);
    BIO *next = BIO_next(b);
    int r;

    BIO_clear_retry_flags(b);
    if (p && p->pos < p->len) {
        size_t n = p->len - p->pos < len ? p->len - p->pos : len;
        memcpy(out, p->data + p->pos, n);
        p->pos += n;
        *got = n;
        return 1;
    }
    if (!next)
        return 0;
    r = BIO_read_ex(next, out, len, got);
    BIO_copy_next_retry(b);
    return r;
}

static int prefix_write(BIO *b, const char *in, size_t len, size_t *put)
{
    BIO *next = BIO_next(b);
    int r;

    BIO_clear_retry_flags(b);
    if (!next)
        return 0;
    r = BIO_write_ex(next, in, len, put);
    BIO_copy_next_retry(b);
    return r;
}

static long prefix_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct prefix *p = BIO_get_data(b);
    BIO *next = BIO_next(b);
    long left = p ? (long)(p->len - p->pos) : 0;

    if (cmd == BIO_CTRL_PENDING && left > 0)
        return left;
    return next ? BIO_ctrl(next, cmd, num, ptr) : 0;
}

static int prefix_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int prefix_destroy(BIO *b)
{
    free(BIO_get_data(b));
    BIO_set_data(b, NULL);
    return 1;
}

/* Made once per process, on first use (workers are processes, and each
 * runs one loop thread). */
static BIO_METHOD *prefix_method(void)
{
    static BIO_METHOD *m;

    if (m)
        return m;
    m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "luaproxy read-ahead");
    if (m && (!BIO_meth_set_read_ex(m, prefix_read) || !BIO_meth_set_write_ex(m, prefix_write) ||
              !BIO_meth_set_ctrl(m, prefix_ctrl) || !BIO_meth_set_create(m, prefix_create) ||
              !BIO_meth_set_destroy(m, prefix_destroy))) {
        BIO_meth_free(m);
        m = NULL;
    }
    return m;
}

BIO *tls_prefix_bio(int fd, const char *data, size_t len)
{
    BIO_METHOD *m = prefix_method();
    struct prefix *p = malloc(sizeof *p + len);
    BIO *filter = m ? BIO_new(m) : NULL;
    BIO *sock = BIO_new_socket(fd, BIO_NOCLOSE);

    if (!p || !filter || !sock) {
        free(p);
        BIO_free(filter);
        BIO_free(sock);
        return NULL;
    }
    p->len = len;
    p->pos = 0;
    memcpy(p->data, data, len);
    BIO_set_data(filter, p);
    return BIO_push(filter, sock);
}
