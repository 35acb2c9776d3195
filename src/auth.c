/*
 * auth.c - Basic proxy authentication: the checking threads, the
 * fairness between clients, and the memory of recent checks. The users
 * file itself is auth_users.c's.
 *
 * Threads: the loop thread owns the users, the caches, the clients and
 * every job's life; the pool threads only take a queued job, run crypt_rn
 * on the copies it carries, and put it on the done list. Both lists are
 * behind one mutex. The ev_async wakes the loop, which delivers the
 * verdicts. A queued job whose session went away is only marked
 * (auth_cancel): a thread that takes it skips the hash, and the loop frees
 * it when it comes back, so a thread never touches freed memory.
 *
 * Fairness: one client address has at most AUTH_CLIENT_ACTIVE checks in
 * the pool's hands; its further requests are held, in order, and go to the
 * pool as its own checks come back (or are answered from the cache by
 * then, as a browser's parallel first requests are). A client failing
 * guesses thus never has more than a few checks ahead of anybody else.
 * An IPv6 client counts by its /64 (auth_client_key): whoever has one
 * address of a /64 usually has them all.
 *
 *   loop: auth_check --(held)--(queue)--> thread: crypt_rn --(done list)-->
 *   loop: on_async: remember, let the client's next held job in, done()
 */
#include "auth.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "auth_users.h"
#include "base64.h"
#include "log.h"
#include "stats.h"

#define AUTH_THREADS 2
#define AUTH_PASSWORD_MAX 256
/* Jobs waiting: all together, and from clients that recently failed. A
 * client beyond that is refused at once rather than queued without end. */
#define AUTH_QUEUE_MAX 256
#define AUTH_SUSPECT_QUEUE_MAX 32
/* Per client address: checks in the pool's hands, and requests held
 * behind them; beyond both, a 503. */
#define AUTH_CLIENT_ACTIVE 4
#define AUTH_CLIENT_HELD 16
/* Remembered checks: how many and for how long. A failed one is remembered
 * briefly, so repeating the same wrong password costs nothing. */
#define CACHE_SLOTS 1024
#define CACHE_OK_TTL 300.0
#define CACHE_FAIL_TTL 30.0
/* Client addresses with a recent failure (hashed into slots). */
#define SUSPECT_SLOTS 256
#define SUSPECT_TTL 60.0

enum job_state {
    JOB_HELD,     /* behind its client's active checks: loop thread only */
    JOB_POOL,     /* queued, being hashed, or on the done list */
    JOB_ANSWERED, /* answered from the cache after being held */
};

/* Client addresses with checks in the pool or held (loop thread only). */
struct auth_client {
    struct auth_client *next; /* in its bucket */
    char ip[AUTH_CLIENT_KEY_MAX]; /* its auth_client_key */
    int active; /* jobs in JOB_POOL */
    int held;
    struct auth_job *held_head, *held_tail;
};

struct auth_job {
    struct auth_job *next; /* in a queue or list (the held list too) */
    struct auth *auth;
    struct auth_client *client;
    enum job_state state;
    int cancelled; /* written by the loop; read by a thread under mu */
    int skipped;   /* cancelled before a thread hashed it */
    int ok;        /* set by the thread */
    int known;     /* <user> is in the file; if not, <hash> is a decoy */
    unsigned generation; /* of the users file <hash> came from */
    unsigned char digest[32];
    char user[AUTH_USER_MAX];
    char password[AUTH_PASSWORD_MAX];
    char hash[AUTH_HASH_MAX];
    unsigned suspect_slot; /* also its client's bucket */
    enum auth_result verdict; /* for done(), once answered */
    auth_done_fn *done;
    void *arg;
};

struct cache_entry {
    unsigned char digest[32];
    ev_tstamp expires; /* 0: empty */
    unsigned generation; /* of the users file the verdict was made against */
    int ok;
    char user[AUTH_USER_MAX];
};

struct auth {
    struct ev_loop *loop;
    ev_async async;
    /* Shared with the threads, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct auth_job *queue[2], *queue_tail[2]; /* [0] normal, [1] suspects */
    int queued[2];
    struct auth_job *done;
    int stopping;
    pthread_t threads[AUTH_THREADS];
    int thread_count;
    /* Loop thread only. */
    struct auth_users *users; /* auth_users.h */
    /* Bumped by every reload: a verdict made against an older file is
     * neither remembered nor, if the user's hash changed, believed. */
    unsigned generation;
    unsigned char key[32]; /* the cache's HMAC key, random per process */
    struct cache_entry cache[CACHE_SLOTS];
    ev_tstamp suspect_until[SUSPECT_SLOTS];
    struct auth_client *clients[SUSPECT_SLOTS]; /* hashed like the suspects */
};

/* ---- the threads ------------------------------------------------------- */

static void *thread_main(void *arg)
{
    struct auth *a = arg;
    struct crypt_data *data = calloc(1, sizeof *data);

    for (;;) {
        struct auth_job *job;
        pthread_mutex_lock(&a->mu);
        while (!a->stopping && !a->queue[0] && !a->queue[1])
            pthread_cond_wait(&a->cond, &a->mu);
        if (a->stopping) {
            pthread_mutex_unlock(&a->mu);
            break;
        }
        /* Clients in good standing first. */
        int q = a->queue[0] ? 0 : 1;
        job = a->queue[q];
        a->queue[q] = job->next;
        if (!a->queue[q])
            a->queue_tail[q] = NULL;
        a->queued[q]--;
        /* Its client went away: hashing it would only delay the others. */
        job->skipped = job->cancelled;
        pthread_mutex_unlock(&a->mu);

        if (!job->skipped) {
            const char *out =
                data ? crypt_rn(job->password, job->hash, data, sizeof *data) : NULL;
            job->ok = job->known && out && strlen(out) == strlen(job->hash) &&
                      CRYPTO_memcmp(out, job->hash, strlen(job->hash)) == 0;
        }
        /* The password stays until the loop frees the job: a reload in
         * the meantime may need it checked again (on_async). */

        pthread_mutex_lock(&a->mu);
        job->next = a->done;
        a->done = job;
        pthread_mutex_unlock(&a->mu);
        ev_async_send(a->loop, &a->async);
    }
    if (data)
        explicit_bzero(data, sizeof *data);
    free(data);
    return NULL;
}

/* ---- remembering checks ------------------------------------------------ */

static struct cache_entry *cache_slot(struct auth *a, const unsigned char *digest)
{
    unsigned idx = ((unsigned)digest[0] | (unsigned)digest[1] << 8) % CACHE_SLOTS;
    return &a->cache[idx];
}

static void remember(struct auth *a, const unsigned char *digest, int ok, const char *user)
{
    struct cache_entry *e = cache_slot(a, digest);
    if (e->generation != a->generation)
        e->expires = 0; /* made against an older file: as good as empty */
    /* A success is not pushed out by a failure that happens to share its
     * slot: otherwise wrong guesses could evict good clients. */
    if (!ok && e->expires > ev_now(a->loop) && e->ok)
        return;
    memcpy(e->digest, digest, sizeof e->digest);
    e->generation = a->generation;
    e->ok = ok;
    e->expires = ev_now(a->loop) + (ok ? CACHE_OK_TTL : CACHE_FAIL_TTL);
    snprintf(e->user, sizeof e->user, "%s", user);
}

/* The hash an unknown <name> is checked against: one of the file's, picked
 * by a keyed hash of the name. Refusing an unknown name at once would tell
 * a guesser which names exist; this way it costs a check of the same kind
 * and cost as a real user's (the same name always the same one), and
 * fails like a wrong password. NULL for an empty file. */
static const char *decoy_hash(const struct auth *a, const char *name)
{
    unsigned char mac[32];
    unsigned len = sizeof mac;
    if (auth_users_count(a->users) == 0)
        return NULL;
    HMAC(EVP_sha256(), a->key, sizeof a->key, (const unsigned char *)name, strlen(name), mac,
         &len);
    unsigned pick = (unsigned)mac[0] | (unsigned)mac[1] << 8 | (unsigned)mac[2] << 16;
    return auth_users_at(a->users, (int)(pick % (unsigned)auth_users_count(a->users)))->hash;
}

void auth_client_key(const char *client_ip, char *key, size_t key_len)
{
    struct in6_addr a6;
    char text[INET6_ADDRSTRLEN];

    if (inet_pton(AF_INET6, client_ip, &a6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&a6) && inet_ntop(AF_INET, a6.s6_addr + 12, text, sizeof text)) {
            snprintf(key, key_len, "%s", text);
            return;
        }
        memset(a6.s6_addr + 8, 0, 8);
        if (inet_ntop(AF_INET6, &a6, text, sizeof text)) {
            snprintf(key, key_len, "%s/64", text);
            return;
        }
    }
    snprintf(key, key_len, "%s", client_ip);
}

static unsigned suspect_slot(const struct auth *a, const char *client_ip)
{
    unsigned char mac[32];
    unsigned len = sizeof mac;
    HMAC(EVP_sha256(), a->key, sizeof a->key, (const unsigned char *)client_ip,
         strlen(client_ip), mac, &len);
    return ((unsigned)mac[0] | (unsigned)mac[1] << 8) % SUSPECT_SLOTS;
}

static void free_job(struct auth_job *job)
{
    explicit_bzero(job, sizeof *job); /* the password, and the user */
    free(job);
}

/* The remembered verdict on <digest> for <user>, or NULL. */
static const struct cache_entry *cache_find(struct auth *a, const unsigned char *digest,
                                            const char *user)
{
    const struct cache_entry *e = cache_slot(a, digest);
    if (e->expires > ev_now(a->loop) && e->generation == a->generation &&
        memcmp(e->digest, digest, sizeof e->digest) == 0 && strcmp(e->user, user) == 0)
        return e;
    return NULL;
}

/* ---- clients ----------------------------------------------------------- */

/* The entry of <ip> (hashed into <slot>), made if needed; NULL without
 * memory. */
static struct auth_client *client_get(struct auth *a, const char *ip, unsigned slot)
{
    struct auth_client *c;
    for (c = a->clients[slot]; c; c = c->next)
        if (strcmp(c->ip, ip) == 0)
            return c;
    c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    snprintf(c->ip, sizeof c->ip, "%s", ip);
    c->next = a->clients[slot];
    a->clients[slot] = c;
    return c;
}

/* Frees <c> once nothing of it is left in the pool or held. */
static void client_release_if_idle(struct auth *a, struct auth_client *c, unsigned slot)
{
    if (c->active > 0 || c->held > 0)
        return;
    for (struct auth_client **p = &a->clients[slot]; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            free(c);
            return;
        }
}

/* ---- handing jobs to the pool ------------------------------------------ */

/* Puts <job> at the end of its queue. The caller holds a->mu. */
static void enqueue(struct auth *a, struct auth_job *job, int suspect)
{
    job->next = NULL;
    if (a->queue_tail[suspect])
        a->queue_tail[suspect]->next = job;
    else
        a->queue[suspect] = job;
    a->queue_tail[suspect] = job;
    a->queued[suspect]++;
    pthread_cond_signal(&a->cond);
}

/* Gives <job> to the pool, in the suspects' queue if its client failed
 * lately. -1 when that queue is full (the job stays the caller's). */
static int submit(struct auth *a, struct auth_job *job)
{
    int suspect = a->suspect_until[job->suspect_slot] > ev_now(a->loop);

    pthread_mutex_lock(&a->mu);
    if (a->queued[0] + a->queued[1] >= AUTH_QUEUE_MAX ||
        (suspect && a->queued[1] >= AUTH_SUSPECT_QUEUE_MAX)) {
        pthread_mutex_unlock(&a->mu);
        log_warn("authentication queue full; refusing %s", job->client->ip);
        return -1;
    }
    enqueue(a, job, suspect);
    pthread_mutex_unlock(&a->mu);
    job->state = JOB_POOL;
    job->client->active++;
    return 0;
}

/* A pool slot of <c> came free: its held jobs go on, oldest first, to the
 * pool, or (their credentials checked meanwhile by an earlier one, as a
 * browser's parallel first requests are) onto <answered> with the cached
 * verdict. A job the full queue cannot take is answered busy. */
static void client_let_in(struct auth *a, struct auth_client *c, struct auth_job **answered)
{
    while (c->held_head && c->active < AUTH_CLIENT_ACTIVE) {
        struct auth_job *job = c->held_head;
        const struct cache_entry *e;
        c->held_head = job->next;
        if (!c->held_head)
            c->held_tail = NULL;
        c->held--;
        if ((e = cache_find(a, job->digest, job->user)) != NULL) {
            job->verdict = e->ok ? AUTH_OK : AUTH_DENIED;
        } else if (submit(a, job) == 0) {
            continue;
        } else {
            job->verdict = AUTH_BUSY;
        }
        job->state = JOB_ANSWERED;
        job->next = *answered;
        *answered = job;
    }
}

/* A verdict on <job> made against an older users file (a SIGHUP came while
 * it was checked): still true if the user's hash is the same; else the
 * password is checked again against the current hash, so that a changed
 * password takes effect for checks in flight too. Returns 1 when the job
 * went back to the queue. */
static int recheck_if_stale(struct auth *a, struct auth_job *job)
{
    const struct auth_user *u;

    if (job->generation == a->generation)
        return 0;
    job->generation = a->generation;
    u = auth_users_find(a->users, job->user);
    if (!u) {
        job->ok = 0; /* unknown, or removed meanwhile */
        return 0;
    }
    if (job->known && strcmp(u->hash, job->hash) == 0)
        return 0;
    job->known = 1; /* perhaps added meanwhile */
    memcpy(job->hash, u->hash, strlen(u->hash) + 1); /* both < AUTH_HASH_MAX */
    pthread_mutex_lock(&a->mu);
    /* Already admitted once: not refused for a full queue now. */
    enqueue(a, job, a->suspect_until[job->suspect_slot] > ev_now(a->loop));
    pthread_mutex_unlock(&a->mu);
    return 1;
}

/* Calls the done() of each job on <list> not cancelled, and frees them.
 * Nothing of the pool or the clients is touched after a done(), which may
 * start or cancel checks. */
static void answer(struct auth_job *list)
{
    while (list) {
        struct auth_job *job = list;
        list = job->next;
        if (!job->cancelled)
            job->done(job->arg, job->verdict, job->user);
        stats_add(STAT_AUTH_PENDING, -1);
        free_job(job);
    }
}

static void on_async(struct ev_loop *loop, ev_async *w, int revents)
{
    struct auth *a = w->data;
    struct auth_job *list, *answered = NULL;
    (void)loop;
    (void)revents;

    pthread_mutex_lock(&a->mu);
    list = a->done;
    a->done = NULL;
    pthread_mutex_unlock(&a->mu);
    while (list) {
        struct auth_job *job = list;
        struct auth_client *c = job->client;
        list = job->next;
        if (!job->skipped) {
            stats_add(STAT_AUTH_CHECKS, 1);
            if (!job->cancelled && recheck_if_stale(a, job))
                continue;
            if (job->generation == a->generation)
                remember(a, job->digest, job->ok, job->user);
            if (!job->ok) {
                a->suspect_until[job->suspect_slot] = ev_now(a->loop) + SUSPECT_TTL;
                stats_add(STAT_AUTH_FAILURES, 1);
            }
        }
        job->verdict = job->ok ? AUTH_OK : AUTH_DENIED;
        c->active--;
        client_let_in(a, c, &answered);
        client_release_if_idle(a, c, job->suspect_slot);
        job->client = NULL;
        job->state = JOB_ANSWERED;
        job->next = answered;
        answered = job;
    }
    answer(answered);
}

/* ---- the interface ----------------------------------------------------- */

struct auth *auth_open(const char *path, struct ev_loop *loop, char *err, size_t err_len)
{
    struct auth *a = calloc(1, sizeof *a);

    if (!a) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    if (!(a->users = auth_users_read(path, err, err_len))) {
        free(a);
        return NULL;
    }
    if (!loop)
        return a; /* only checking the file */
    if (getrandom(a->key, sizeof a->key, 0) != (ssize_t)sizeof a->key) {
        snprintf(err, err_len, "getrandom: %s", strerror(errno));
        goto fail;
    }
    a->loop = loop;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cond, NULL);
    ev_async_init(&a->async, on_async);
    a->async.data = a;
    ev_async_start(loop, &a->async);
    ev_unref(loop); /* the watcher alone must not keep the loop running */
    for (int i = 0; i < AUTH_THREADS; i++) {
        if (pthread_create(&a->threads[i], NULL, thread_main, a) != 0) {
            snprintf(err, err_len, "cannot start the authentication threads");
            goto fail;
        }
        a->thread_count++;
    }
    return a;

fail:
    auth_free(a);
    return NULL;
}

void auth_users_use(struct auth *a, struct auth_users *u)
{
    auth_users_free(a->users);
    a->users = u;
    /* A removed user or a changed password must not live on in here, nor
     * come back with a check that was in flight (see recheck_if_stale). */
    memset(a->cache, 0, sizeof a->cache);
    a->generation++;
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    if (a->loop) {
        pthread_mutex_lock(&a->mu);
        a->stopping = 1;
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->mu);
        for (int i = 0; i < a->thread_count; i++)
            pthread_join(a->threads[i], NULL);
        ev_ref(a->loop);
        ev_async_stop(a->loop, &a->async);
        for (int q = 0; q < 2; q++)
            while (a->queue[q]) {
                struct auth_job *job = a->queue[q];
                a->queue[q] = job->next;
                free_job(job);
            }
        while (a->done) {
            struct auth_job *job = a->done;
            a->done = job->next;
            free_job(job);
        }
        pthread_cond_destroy(&a->cond);
        pthread_mutex_destroy(&a->mu);
        for (int i = 0; i < SUSPECT_SLOTS; i++)
            while (a->clients[i]) {
                struct auth_client *c = a->clients[i];
                a->clients[i] = c->next;
                while (c->held_head) {
                    struct auth_job *job = c->held_head;
                    c->held_head = job->next;
                    free_job(job);
                }
                free(c);
            }
    }
    auth_users_free(a->users);
    explicit_bzero(a->key, sizeof a->key);
    free(a);
}

void auth_cancel(struct auth *a, struct auth_job *job)
{
    if (!job)
        return;
    if (job->state == JOB_HELD) {
        /* Never given to the pool: gone at once, with its place. */
        struct auth_client *c = job->client;
        for (struct auth_job **p = &c->held_head, *prev = NULL; *p; prev = *p, p = &(*p)->next)
            if (*p == job) {
                *p = job->next;
                if (c->held_tail == job)
                    c->held_tail = prev;
                break;
            }
        c->held--;
        client_release_if_idle(a, c, job->suspect_slot);
        stats_add(STAT_AUTH_PENDING, -1);
        free_job(job);
        return;
    }
    /* In the pool's hands (a thread skips it if not yet hashed), or about
     * to be answered: only marked, freed by on_async. */
    pthread_mutex_lock(&a->mu);
    job->cancelled = 1;
    pthread_mutex_unlock(&a->mu);
}

int auth_user_kept(const struct auth *old, const struct auth_users *fresh, const char *user)
{
    const struct auth_user *was, *now;

    if (!old || !fresh || !user || !user[0])
        return 0;
    was = auth_users_find(old->users, user);
    now = auth_users_find(fresh, user);
    return was && now && strcmp(was->hash, now->hash) == 0;
}

void auth_stamp_user(const struct auth *a, const char *user, struct auth_stamp *out)
{
    const struct auth_user *u = auth_users_find(a->users, user);

    memset(out, 0, sizeof *out);
    out->generation = a->generation;
    out->valid = u && SHA256((const unsigned char *)u->hash, strlen(u->hash), out->hash_id);
}

int auth_stamp_holds(const struct auth *a, const char *user, struct auth_stamp *stamp)
{
    struct auth_stamp now;

    if (!stamp->valid)
        return 0;
    if (stamp->generation == a->generation)
        return 1;
    auth_stamp_user(a, user, &now);
    if (!now.valid || CRYPTO_memcmp(now.hash_id, stamp->hash_id, sizeof now.hash_id) != 0)
        return 0;
    *stamp = now;
    return 1;
}

enum auth_result auth_check(struct auth *a, int fields, const char *value, size_t value_len,
                            const char *client_ip, char *user, size_t user_len,
                            auth_done_fn *done, void *arg, struct auth_job **job_out)
{
    char creds[AUTH_USER_MAX + AUTH_PASSWORD_MAX + 1];
    char key[AUTH_CLIENT_KEY_MAX];
    unsigned char digest[32];
    unsigned digest_len = sizeof digest;
    const struct auth_user *u;
    const char *hash;
    const struct cache_entry *e;
    struct auth_client *client;
    struct auth_job *job;
    char *colon;
    unsigned slot;
    int n;

    *job_out = NULL;
    user[0] = '\0';
    if (fields == 0 || !value)
        goto denied_quietly; /* the usual first request: not a failure */
    /* Two sets of credentials (which one?), another scheme, or "Basic"
     * without a single space and a token: refused and counted, since a
     * client sending them is not one that merely forgot to sign in. */
    if (fields > 1 || value_len < 6 || strncasecmp(value, "Basic ", 6) != 0)
        goto denied;
    value += 6;
    value_len -= 6;
    while (value_len > 0 && *value == ' ') {
        value++;
        value_len--;
    }
    n = (int)base64_decode(value, value_len, (unsigned char *)creds, sizeof creds - 1,
                           BASE64_STANDARD);
    if (n < 0)
        goto denied;
    creds[n] = '\0';
    colon = memchr(creds, ':', (size_t)n);
    if (!colon || strlen(creds) != (size_t)n || (size_t)(colon - creds) >= AUTH_USER_MAX ||
        (size_t)(colon - creds) >= user_len || strlen(colon + 1) >= AUTH_PASSWORD_MAX)
        goto denied;
    HMAC(EVP_sha256(), a->key, sizeof a->key, (const unsigned char *)creds, (size_t)n, digest,
         &digest_len);
    *colon = '\0';
    u = auth_users_find(a->users, creds);
    hash = u ? u->hash : decoy_hash(a, creds);
    if (!hash)
        goto denied; /* nobody can sign in: nothing to reveal either */

    e = cache_find(a, digest, creds);
    if (e) {
        explicit_bzero(creds, sizeof creds);
        if (!e->ok)
            goto denied;
        snprintf(user, user_len, "%s", e->user);
        return AUTH_OK;
    }

    /* One IPv6 client owns a whole /64 and can send from any address in
     * it: its checks and failures count together. */
    auth_client_key(client_ip, key, sizeof key);
    slot = suspect_slot(a, key);
    job = calloc(1, sizeof *job);
    client = job ? client_get(a, key, slot) : NULL;
    if (!client) {
        free(job);
        goto denied;
    }
    job->auth = a;
    job->client = client;
    memcpy(job->digest, digest, sizeof digest);
    /* Lengths were checked above: each fits with its NUL. */
    memcpy(job->user, creds, strlen(creds) + 1);
    memcpy(job->password, colon + 1, strlen(colon + 1) + 1);
    memcpy(job->hash, hash, strlen(hash) + 1);
    job->known = u != NULL;
    job->suspect_slot = slot;
    job->generation = a->generation;
    job->done = done;
    job->arg = arg;
    explicit_bzero(creds, sizeof creds);

    if (client->active >= AUTH_CLIENT_ACTIVE) {
        if (client->held >= AUTH_CLIENT_HELD) {
            log_warn("%s has %d credential checks waiting; refusing more", key,
                     client->active + client->held);
            free_job(job);
            return AUTH_BUSY;
        }
        /* Waits for its client's own earlier checks, not anybody else's. */
        job->state = JOB_HELD;
        if (client->held_tail)
            client->held_tail->next = job;
        else
            client->held_head = job;
        client->held_tail = job;
        client->held++;
    } else if (submit(a, job) != 0) {
        client_release_if_idle(a, client, slot);
        free_job(job);
        return AUTH_BUSY;
    }
    stats_add(STAT_AUTH_PENDING, 1);
    *job_out = job;
    return AUTH_PENDING;

denied:
    stats_add(STAT_AUTH_FAILURES, 1);
denied_quietly:
    explicit_bzero(creds, sizeof creds);
    return AUTH_DENIED;
}
