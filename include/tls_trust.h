/*
 * tls_trust.h - the certificates upstreams are verified against.
 *
 * The system's bundle and --upstream-ca's file, in one OpenSSL X509_STORE
 * that the configuration holds (cfg->upstream_trust). It is read once at
 * start, before any worker, so the workers share it instead of each
 * reading the system's bundle (tens of milliseconds and over a megabyte).
 * A reload reads it again only when one of its files changed (an internal
 * CA rotated in --upstream-ca, the system's bundle updated): reading it is
 * slow, so that happens on the reload's thread, never on the loop.
 *
 * Each configuration holds one reference to its store: two configurations
 * whose files did not change share one.
 */
#ifndef LUAPROXY_TLS_TRUST_H
#define LUAPROXY_TLS_TRUST_H

#include <stddef.h>

struct config;

/* At start: reads the store for <cfg> (none with --insecure-upstream).
 * 0, or -1 with <err> (a file that is not PEM: a startup error). */
int tls_trust_load(struct config *cfg, char *err, size_t err_len);

/* On a reload's thread: gives <fresh> the store of <running> when neither
 * the files nor --upstream-ca's name changed, else reads a new one. 0, or
 * -1 with <err> (the reload then fails, and the running store stays). */
int tls_trust_reload(const struct config *running, struct config *fresh, char *err,
                     size_t err_len);

/* Drops <cfg>'s reference to its store (NULL-safe, and safe twice). */
void tls_trust_release(struct config *cfg);

#endif
