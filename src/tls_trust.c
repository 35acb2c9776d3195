/*
 * tls_trust.c - the certificates upstreams are verified against: read at
 * start, and again on a reload when their files changed (see tls_trust.h).
 *
 * A file's stamp (device, inode, size, modification and change times) is
 * taken before it is read: a file replaced while it is being read has a
 * new stamp by the next reload, which then reads it again.
 */
#include "tls_trust.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "config.h"

static void stamp_file(const char *path, struct file_stamp *s)
{
    struct stat st;

    memset(s, 0, sizeof *s);
    if (!path || stat(path, &st) != 0)
        return;
    s->found = 1;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->size = st.st_size;
    s->mtime_sec = st.st_mtim.tv_sec;
    s->mtime_nsec = st.st_mtim.tv_nsec;
    s->ctime_sec = st.st_ctim.tv_sec;
    s->ctime_nsec = st.st_ctim.tv_nsec;
}

static int same_stamp(const struct file_stamp *a, const struct file_stamp *b)
{
    return a->found == b->found && a->dev == b->dev && a->ino == b->ino &&
           a->size == b->size && a->mtime_sec == b->mtime_sec &&
           a->mtime_nsec == b->mtime_nsec && a->ctime_sec == b->ctime_sec &&
           a->ctime_nsec == b->ctime_nsec;
}

/* The files a store for <cfg> is read from: the system's bundle (where
 * SSL_CERT_FILE points, else OpenSSL's default) and --upstream-ca. The
 * system's directory of hashed names is not read ahead: OpenSSL looks a
 * certificate up there when a chain needs it, so it is always current. */
static void stamp_trust_files(const struct config *cfg, struct file_stamp out[2])
{
    const char *env = getenv(X509_get_default_cert_file_env());

    stamp_file(env && *env ? env : X509_get_default_cert_file(), &out[0]);
    stamp_file(cfg->upstream_ca, &out[1]);
}

int tls_trust_load(struct config *cfg, char *err, size_t err_len)
{
    X509_STORE *store;

    if (cfg->insecure_upstream || cfg->upstream_trust)
        return 0;
    stamp_trust_files(cfg, cfg->upstream_trust_files);
    store = X509_STORE_new();
    if (!store || !X509_STORE_set_default_paths(store)) {
        X509_STORE_free(store);
        snprintf(err, err_len, "cannot read the system's certificates");
        ERR_clear_error();
        return -1;
    }
    if (cfg->upstream_ca && !X509_STORE_load_file(store, cfg->upstream_ca)) {
        X509_STORE_free(store);
        snprintf(err, err_len, "cannot read --upstream-ca %s: not a PEM certificate file",
                 cfg->upstream_ca);
        ERR_clear_error();
        return -1;
    }
    cfg->upstream_trust = store;
    return 0;
}

int tls_trust_reload(const struct config *running, struct config *fresh, char *err,
                     size_t err_len)
{
    struct file_stamp now[2];
    int same_file = (!running->upstream_ca && !fresh->upstream_ca) ||
                    (running->upstream_ca && fresh->upstream_ca &&
                     strcmp(running->upstream_ca, fresh->upstream_ca) == 0);

    fresh->upstream_trust = NULL;
    if (fresh->insecure_upstream)
        return 0;
    stamp_trust_files(fresh, now);
    if (running->upstream_trust && same_file &&
        same_stamp(&now[0], &running->upstream_trust_files[0]) &&
        same_stamp(&now[1], &running->upstream_trust_files[1])) {
        X509_STORE_up_ref(running->upstream_trust);
        fresh->upstream_trust = running->upstream_trust;
        memcpy(fresh->upstream_trust_files, now, sizeof now);
        return 0;
    }
    return tls_trust_load(fresh, err, err_len);
}

void tls_trust_release(struct config *cfg)
{
    X509_STORE_free(cfg->upstream_trust);
    cfg->upstream_trust = NULL;
}
