/*
 * ca.c - the local certificate authority: create, load, mint, cache.
 *
 * What it owns: the CA's files (ca.key, ca.pem, ca.der), the CA key and
 * certificate in memory, the one leaf key every minted certificate shares,
 * and a bounded LRU cache of minted certificates by name. What it doesn't:
 * TLS connections (tls.c) or deciding which tunnels to intercept.
 *
 * Why one leaf key: generating a key pair per host is the slow part of
 * what interception proxies do; a certificate is only a signature over a
 * few hundred bytes, so with a shared P-256 key a new host costs one ECDSA
 * signature. The key never leaves this process.
 */
#include "ca.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "log.h"

#define CA_VALID_DAYS 3650
/* Leaves are valid this long (capped by the CA's own end). Browsers refuse
 * public certificates valid over 398 days; staying under costs nothing. */
#define LEAF_VALID_DAYS 397
#define CA_NAME_MAX 253
#define CACHE_BUCKETS 2048

struct cached_cert {
    struct cached_cert *hash_next;
    struct cached_cert *prev, *next; /* LRU list, most recent first */
    X509 *cert;
    char name[CA_NAME_MAX + 1];
};

struct ca {
    X509 *cert;
    EVP_PKEY *key;
    EVP_PKEY *leaf_key;
    char *pem;
    size_t pem_len;
    unsigned char *der;
    size_t der_len;
    char dir[4096];
    struct cached_cert *buckets[CACHE_BUCKETS];
    struct cached_cert *lru_head, *lru_tail;
    int cached;
};

/* Appends OpenSSL's first queued error (if any) to <err>, and clears the
 * queue so a later failure does not report a stale reason. */
static void ssl_error(char *err, size_t err_len, const char *what)
{
    unsigned long e = ERR_get_error();
    char reason[256] = "";
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    ERR_clear_error();
    snprintf(err, err_len, "%s%s%s", what, e ? ": " : "", reason);
}

int ca_dir_resolve(const char *dir, char *out, size_t out_len, char *err, size_t err_len)
{
    const char *env = getenv("LUAPROXY_CA_DIR");
    const char *home = getenv("HOME");
    int n;

    if (dir && *dir)
        n = snprintf(out, out_len, "%s", dir);
    else if (env && *env)
        n = snprintf(out, out_len, "%s", env);
    else if (home && *home)
        n = snprintf(out, out_len, "%s/.luaproxy", home);
    else {
        snprintf(err, err_len, "no CA directory: give --ca-dir or set LUAPROXY_CA_DIR or HOME");
        return -1;
    }
    if (n < 0 || (size_t)n >= out_len - 16) {
        snprintf(err, err_len, "the CA directory name is too long");
        return -1;
    }
    return 0;
}

static void file_in(const char *dir, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", dir, name);
}

/* The CA's directory must not be writable by every user: anyone who can
 * write there can put a CA of their own in place of ours (clients then
 * trust a key they hold), or plant the name we write the key to. 0 or -1. */
static int check_dir(const char *dir, char *err, size_t err_len)
{
    struct stat st;

    if (stat(dir, &st) == -1) {
        snprintf(err, err_len, "cannot use %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, err_len, "cannot use %s for the CA: not a directory", dir);
        return -1;
    }
    if (st.st_mode & S_IWOTH) {
        snprintf(err, err_len, "%s is writable by every user (mode %03o), so anyone could "
                               "replace the CA there: chmod o-w it, or use another --ca-dir",
                 dir, (unsigned)(st.st_mode & 07777));
        return -1;
    }
    return 0;
}

/* The key must be readable by its owner alone (ca init makes it 0600),
 * as ssh insists for its keys: with it, anyone can impersonate any site
 * to the clients that trust the CA. 0 or -1. */
static int check_key_file(const char *path, char *err, size_t err_len)
{
    struct stat st;

    if (stat(path, &st) == -1) {
        snprintf(err, err_len, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    if (st.st_mode & 077) {
        snprintf(err, err_len, "%s is open to other users (mode %03o); the CA key must be "
                               "private: chmod 600 it",
                 path, (unsigned)(st.st_mode & 07777));
        return -1;
    }
    return 0;
}

int ca_exists(const char *dir)
{
    char path[4200];
    file_in(dir, "ca.pem", path, sizeof path);
    if (access(path, F_OK) == 0)
        return 1;
    file_in(dir, "ca.key", path, sizeof path);
    return access(path, F_OK) == 0;
}

/* Adds extension <nid> given in OpenSSL's config syntax. 0 or -1. */
static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int rc;

    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return -1;
    rc = X509_add_ext(cert, ext, -1) ? 0 : -1;
    X509_EXTENSION_free(ext);
    return rc;
}

/* A random positive 127-bit serial: unique enough that two minted
 * certificates never collide in a client's cache. */
static int set_random_serial(X509 *cert)
{
    BIGNUM *bn = BN_new();
    int rc = -1;
    if (bn && BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)))
        rc = 0;
    BN_free(bn);
    return rc;
}

/* Writes <len> bytes to <path> (replacing it) with <mode>, via a temporary
 * name and rename(2), so a crash never leaves half a file behind. */
static int write_file(const char *path, const void *data, size_t len, mode_t mode, char *err,
                      size_t err_len)
{
    char tmp[4300];
    int fd;
    const char *p = data;

    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    /* A new file of ours, never one found there: a temporary name someone
     * else made (their file, or a link to one) would get the key. */
    if (unlink(tmp) == -1 && errno != ENOENT) {
        snprintf(err, err_len, "cannot replace %s: %s", tmp, strerror(errno));
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd == -1) {
        snprintf(err, err_len, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    fchmod(fd, mode); /* the umask may have taken bits away */
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, err_len, "cannot write %s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    if (fsync(fd) == -1 || close(fd) == -1 || rename(tmp, path) == -1) {
        snprintf(err, err_len, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Serialises with a memory BIO and writes the result to <path>. */
static int write_pem_key(const char *path, EVP_PKEY *key, char *err, size_t err_len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long len;
    int rc = -1;

    if (bio && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) &&
        (len = BIO_get_mem_data(bio, &data)) > 0)
        rc = write_file(path, data, (size_t)len, 0600, err, err_len);
    else
        ssl_error(err, err_len, "cannot encode the CA key");
    BIO_free(bio);
    return rc;
}

static int write_cert(const char *dir, X509 *cert, char *err, size_t err_len)
{
    char path[4200];
    BIO *bio = BIO_new(BIO_s_mem());
    unsigned char *der = NULL;
    char *pem;
    long pem_len;
    int der_len, rc = -1;

    if (!bio || !PEM_write_bio_X509(bio, cert) || (pem_len = BIO_get_mem_data(bio, &pem)) <= 0 ||
        (der_len = i2d_X509(cert, &der)) <= 0) {
        ssl_error(err, err_len, "cannot encode the CA certificate");
        goto done;
    }
    file_in(dir, "ca.pem", path, sizeof path);
    if (write_file(path, pem, (size_t)pem_len, 0644, err, err_len) != 0)
        goto done;
    file_in(dir, "ca.der", path, sizeof path);
    if (write_file(path, der, (size_t)der_len, 0644, err, err_len) != 0)
        goto done;
    rc = 0;
done:
    OPENSSL_free(der);
    BIO_free(bio);
    return rc;
}

int ca_create(const char *dir, int force, char *err, size_t err_len)
{
    char host[256] = "localhost", cn[320], path[4200];
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    X509_NAME *name;
    int rc = -1;

    if (ca_exists(dir) && !force) {
        snprintf(err, err_len, "a CA already exists in %s (use --force to replace it)", dir);
        return -1;
    }
    if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
        snprintf(err, err_len, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    if (check_dir(dir, err, err_len) != 0)
        return -1;
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(cn, sizeof cn, "luaproxy CA (%.40s)", host);

    key = EVP_EC_gen("P-256");
    cert = X509_new();
    if (!key || !cert) {
        ssl_error(err, err_len, "cannot generate the CA key");
        goto done;
    }
    name = X509_get_subject_name(cert);
    if (!X509_set_version(cert, 2) || set_random_serial(cert) != 0 ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                    -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                    (const unsigned char *)"luaproxy", -1, -1, 0) ||
        !X509_set_issuer_name(cert, name) || !X509_gmtime_adj(X509_getm_notBefore(cert), -3600) ||
        !X509_time_adj_ex(X509_getm_notAfter(cert), CA_VALID_DAYS, 0, NULL) ||
        !X509_set_pubkey(cert, key) ||
        add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") != 0 ||
        add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign") != 0 ||
        add_ext(cert, cert, NID_subject_key_identifier, "hash") != 0 ||
        !X509_sign(cert, key, EVP_sha256())) {
        ssl_error(err, err_len, "cannot make the CA certificate");
        goto done;
    }
    file_in(dir, "ca.key", path, sizeof path);
    if (write_pem_key(path, key, err, err_len) != 0 || write_cert(dir, cert, err, err_len) != 0)
        goto done;
    rc = 0;
done:
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

static void print_trust_steps(const char *dir)
{
    printf("Created a luaproxy CA in %s:\n"
           "  %s/ca.key   the private key (mode 0600; keep it private)\n"
           "  %s/ca.pem   the certificate (PEM), %s/ca.der (DER)\n"
           "\n"
           "Trust it where you want intercepted HTTPS to be accepted:\n"
           "  Debian/Ubuntu system store:\n"
           "    sudo cp %s/ca.pem /usr/local/share/ca-certificates/luaproxy.crt\n"
           "    sudo update-ca-certificates\n"
           "  Chromium and Firefox (NSS database):\n"
           "    certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n luaproxy -i %s/ca.pem\n"
           "  curl:\n"
           "    curl --cacert %s/ca.pem -x http://127.0.0.1:8080 https://example.com/\n"
           "  A device using the proxy: open http://luaproxy.ca/ through it.\n"
           "\n"
           "Start the proxy with --intercept '*' (or a host pattern) to decrypt tunnels.\n",
           dir, dir, dir, dir, dir, dir, dir);
}

int ca_command(int argc, char **argv)
{
    const char *dir = NULL;
    char path[4096], err[512];
    int force = 0;

    if (argc < 2 || strcmp(argv[1], "init") != 0) {
        fprintf(stderr, "usage: luaproxy ca init [--ca-dir DIR] [--force]\n");
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0)
            force = 1;
        else if (strcmp(argv[i], "--ca-dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strncmp(argv[i], "--ca-dir=", 9) == 0)
            dir = argv[i] + 9;
        else {
            fprintf(stderr, "luaproxy ca init: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (ca_dir_resolve(dir, path, sizeof path, err, sizeof err) != 0 ||
        ca_create(path, force, err, sizeof err) != 0) {
        fprintf(stderr, "luaproxy: %s\n", err);
        return 1;
    }
    print_trust_steps(path);
    return 0;
}

/* ---- loading ---------------------------------------------------------- */

static int read_pem_file(const char *path, X509 **cert, EVP_PKEY **key, char *err,
                         size_t err_len)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, err_len, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    if (cert)
        *cert = PEM_read_X509(f, NULL, NULL, NULL);
    else
        *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (cert ? !*cert : !*key) {
        char what[4200];
        snprintf(what, sizeof what, "%s is not a PEM %s", path, cert ? "certificate" : "key");
        ssl_error(err, err_len, what);
        return -1;
    }
    return 0;
}

struct ca *ca_load(const char *dir, char *err, size_t err_len)
{
    struct ca *ca = calloc(1, sizeof *ca);
    char path[4200];
    BIO *bio = NULL;
    char *pem;
    long pem_len;
    int der_len;
    unsigned char *der = NULL;

    if (!ca) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    snprintf(ca->dir, sizeof ca->dir, "%s", dir);
    if (check_dir(dir, err, err_len) != 0)
        goto fail;
    file_in(dir, "ca.pem", path, sizeof path);
    if (read_pem_file(path, &ca->cert, NULL, err, err_len) != 0)
        goto fail;
    file_in(dir, "ca.key", path, sizeof path);
    if (check_key_file(path, err, err_len) != 0 ||
        read_pem_file(path, NULL, &ca->key, err, err_len) != 0)
        goto fail;
    if (!X509_check_private_key(ca->cert, ca->key)) {
        ERR_clear_error();
        snprintf(err, err_len, "the CA key in %s does not match its certificate ca.pem", dir);
        goto fail;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(ca->cert)) <= 0) {
        snprintf(err, err_len, "the CA certificate in %s has expired (make a new one with "
                               "luaproxy ca init --force)", dir);
        goto fail;
    }
    ca->leaf_key = EVP_EC_gen("P-256");
    bio = BIO_new(BIO_s_mem());
    if (!ca->leaf_key || !bio || !PEM_write_bio_X509(bio, ca->cert) ||
        (pem_len = BIO_get_mem_data(bio, &pem)) <= 0 || (der_len = i2d_X509(ca->cert, &der)) <= 0) {
        ssl_error(err, err_len, "cannot prepare the CA");
        goto fail;
    }
    ca->pem = malloc((size_t)pem_len + 1);
    ca->der = malloc((size_t)der_len);
    if (!ca->pem || !ca->der) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    memcpy(ca->pem, pem, (size_t)pem_len);
    ca->pem[pem_len] = '\0';
    ca->pem_len = (size_t)pem_len;
    memcpy(ca->der, der, (size_t)der_len);
    ca->der_len = (size_t)der_len;
    OPENSSL_free(der);
    BIO_free(bio);
    return ca;

fail:
    OPENSSL_free(der);
    BIO_free(bio);
    ca_free(ca);
    return NULL;
}

void ca_free(struct ca *ca)
{
    if (!ca)
        return;
    while (ca->lru_head) {
        struct cached_cert *c = ca->lru_head;
        ca->lru_head = c->next;
        X509_free(c->cert);
        free(c);
    }
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    EVP_PKEY_free(ca->leaf_key);
    free(ca->pem);
    free(ca->der);
    free(ca);
}

/* ---- minting ---------------------------------------------------------- */

/* Host names and IP literals only: letters, digits and - . _ : (the colon
 * for IPv6). Anything else never reaches a certificate field. */
static int valid_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > CA_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == ':'))
            return 0;
    }
    return 1;
}

static X509 *mint(struct ca *ca, const char *name)
{
    X509 *cert = X509_new();
    X509_NAME *subject;
    char san[CA_NAME_MAX + 8];
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;

    if (!cert)
        return NULL;
    snprintf(san, sizeof san, "%s:%s", is_ip ? "IP" : "DNS", name);
    subject = X509_get_subject_name(cert);
    /* The common name is limited to 64 characters; the subjectAltName is
     * what clients check anyway. */
    if (strlen(name) <= 64 &&
        !X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (const unsigned char *)name,
                                    -1, -1, 0))
        goto fail;
    if (!X509_set_version(cert, 2) || set_random_serial(cert) != 0 ||
        !X509_set_issuer_name(cert, X509_get_subject_name(ca->cert)) ||
        !X509_gmtime_adj(X509_getm_notBefore(cert), -86400) ||
        !X509_time_adj_ex(X509_getm_notAfter(cert), LEAF_VALID_DAYS, 0, NULL))
        goto fail;
    if (ASN1_TIME_compare(X509_get0_notAfter(cert), X509_get0_notAfter(ca->cert)) > 0 &&
        !X509_set1_notAfter(cert, X509_get0_notAfter(ca->cert)))
        goto fail;
    if (!X509_set_pubkey(cert, ca->leaf_key) ||
        add_ext(cert, ca->cert, NID_subject_alt_name, san) != 0 ||
        add_ext(cert, ca->cert, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
        add_ext(cert, ca->cert, NID_key_usage, "critical,digitalSignature") != 0 ||
        add_ext(cert, ca->cert, NID_ext_key_usage, "serverAuth") != 0 ||
        add_ext(cert, ca->cert, NID_authority_key_identifier, "keyid") != 0 ||
        !X509_sign(cert, ca->key, EVP_sha256()))
        goto fail;
    return cert;
fail:
    ERR_clear_error();
    X509_free(cert);
    return NULL;
}

static unsigned hash_name(const char *name)
{
    unsigned h = 2166136261u; /* FNV-1a over the lower-cased name */
    for (; *name; name++) {
        h ^= (unsigned char)(*name | 0x20);
        h *= 16777619u;
    }
    return h % CACHE_BUCKETS;
}

static void lru_unlink(struct ca *ca, struct cached_cert *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        ca->lru_head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        ca->lru_tail = c->prev;
    c->prev = c->next = NULL;
}

static void lru_push_front(struct ca *ca, struct cached_cert *c)
{
    c->prev = NULL;
    c->next = ca->lru_head;
    if (ca->lru_head)
        ca->lru_head->prev = c;
    ca->lru_head = c;
    if (!ca->lru_tail)
        ca->lru_tail = c;
}

/* Drops <c> from the cache (an SSL object using its certificate holds a
 * reference of its own). */
static void evict(struct ca *ca, struct cached_cert *c)
{
    struct cached_cert **pp;
    for (pp = &ca->buckets[hash_name(c->name)]; *pp; pp = &(*pp)->hash_next)
        if (*pp == c) {
            *pp = c->hash_next;
            break;
        }
    lru_unlink(ca, c);
    X509_free(c->cert);
    free(c);
    ca->cached--;
}

static void evict_oldest(struct ca *ca)
{
    if (ca->lru_tail)
        evict(ca, ca->lru_tail);
}

/* Whether a cached certificate ends within a day: a proxy that runs for
 * longer than its validity would otherwise go on showing it after. */
static int expiring(const X509 *cert)
{
    time_t soon = time(NULL) + 86400;
    return X509_cmp_time(X509_get0_notAfter(cert), &soon) <= 0;
}

X509 *ca_certificate(struct ca *ca, const char *name)
{
    unsigned b;
    struct cached_cert *c;

    if (!valid_name(name))
        return NULL;
    b = hash_name(name);
    for (c = ca->buckets[b]; c; c = c->hash_next)
        if (strcasecmp(c->name, name) == 0) {
            /* (Unless the CA ends too: a new one would end as soon.) */
            if (expiring(c->cert) && !expiring(ca->cert)) {
                evict(ca, c); /* made again below */
                break;
            }
            lru_unlink(ca, c);
            lru_push_front(ca, c);
            return c->cert;
        }
    c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cert = mint(ca, name);
    if (!c->cert) {
        free(c);
        log_warn("could not make a certificate for %s", name);
        return NULL;
    }
    snprintf(c->name, sizeof c->name, "%s", name);
    if (ca->cached >= CA_CACHE_MAX)
        evict_oldest(ca);
    c->hash_next = ca->buckets[b];
    ca->buckets[b] = c;
    lru_push_front(ca, c);
    ca->cached++;
    return c->cert;
}

EVP_PKEY *ca_leaf_key(struct ca *ca) { return ca->leaf_key; }

const char *ca_pem(const struct ca *ca, size_t *len)
{
    *len = ca->pem_len;
    return ca->pem;
}

const unsigned char *ca_der(const struct ca *ca, size_t *len)
{
    *len = ca->der_len;
    return ca->der;
}

const char *ca_path(const struct ca *ca) { return ca->dir; }
