/*
 * ca.h - the local certificate authority that interception signs with.
 *
 * The CA lives in a directory (--ca-dir, else $LUAPROXY_CA_DIR, else
 * ~/.luaproxy) as ca.key (mode 0600), ca.pem and ca.der. `luaproxy ca init`
 * makes one; the proxy reads it once at start. Certificates for the names
 * clients ask for are minted from it on demand: every leaf shares ONE key
 * pair made at start, so minting is a single signature, and a bounded LRU
 * cache keeps recent ones.
 *
 * Only ca.c, tls*.c (and auth.c's HMAC) include OpenSSL; the rest of the
 * proxy sees struct ca as an opaque handle and the certificate as plain
 * bytes (for the luaproxy.ca page). The OpenSSL types below are forward
 * declarations.
 */
#ifndef LUAPROXY_CA_H
#define LUAPROXY_CA_H

#include <stddef.h>

struct ca;
struct x509_st;
struct evp_pkey_st;

/* Certificates kept per loop; the least recently used goes first. */
#define CA_CACHE_MAX 1024

/* Fills <out> with the CA directory: <dir> when given, else
 * $LUAPROXY_CA_DIR, else $HOME/.luaproxy. 0, or -1 with <err>. */
int ca_dir_resolve(const char *dir, char *out, size_t out_len, char *err, size_t err_len);

/* Whether <dir> holds a CA (ca.pem or ca.key present). */
int ca_exists(const char *dir);

/* Creates a CA in <dir> (made 0700 if missing). Refuses to replace one
 * unless <force>. 0, or -1 with <err>. */
int ca_create(const char *dir, int force, char *err, size_t err_len);

/* `luaproxy ca init [--ca-dir DIR] [--force]`: argv[0] is "ca". Returns
 * the exit status (2 for usage errors, 1 for failures). */
int ca_command(int argc, char **argv);

/* Reads the CA from <dir> and checks that key and certificate belong
 * together; makes the leaf key. NULL with <err> on any problem. */
struct ca *ca_load(const char *dir, char *err, size_t err_len);
void ca_free(struct ca *ca);

/* A certificate for <name> (a host name or an IP literal), signed by the
 * CA, from the cache or minted now. The caller does not own it: it stays
 * valid until the next ca_certificate call (take a reference to keep it).
 * NULL on failure. */
struct x509_st *ca_certificate(struct ca *ca, const char *name);
/* The key of every minted certificate (owned by the CA). */
struct evp_pkey_st *ca_leaf_key(struct ca *ca);

/* The CA certificate as PEM text and as DER bytes (owned by the CA). */
const char *ca_pem(const struct ca *ca, size_t *len);
const unsigned char *ca_der(const struct ca *ca, size_t *len);
/* The directory it was read from. */
const char *ca_path(const struct ca *ca);

#endif
