/*
 * tls_prefix.h - a read BIO for an SSL object that gives it <len> bytes
 * already read from the socket (a ClientHello sent right behind the
 * CONNECT) before the socket's own; see tls_prefix.c.
 */
#ifndef LUAPROXY_TLS_PREFIX_H
#define LUAPROXY_TLS_PREFIX_H

#include <stddef.h>

#include <openssl/bio.h>

/* A filter holding a copy of <data> in front of a socket BIO on <fd>
 * (which it does not close), for SSL_set0_rbio; NULL without memory. */
BIO *tls_prefix_bio(int fd, const char *data, size_t len);

#endif
