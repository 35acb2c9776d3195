/*
 * shared_redis.c - the Redis backend of proxy.shared (hiredis, async, on
 * the worker's libev loop).
 *
 * Each worker keeps one connection. While it is down every call fails at
 * once with "unavailable" and a timer tries again in the background, so a
 * dead Redis never stalls traffic. Keys carry the prefix "luaproxy:".
 *
 * Types survive the round trip through Redis strings: an integer is stored
 * as plain decimal (so INCRBY works on it natively, exact to 64 bits), any
 * other value with a type prefix: "s:" string, "f:" float, "b:" boolean.
 * An increment is one EVAL, so it stays atomic across proxies.
 *
 * A Redis that stops answering without closing the connection (stopped,
 * swapped out, or behind a network that drops packets) is a Redis that is
 * down: when calls have waited ANSWER_TIMEOUT without any answer coming,
 * the connection is dropped, its calls fail with "unavailable" and it is
 * made again in the background. Until then, what waits for it is bounded
 * (PENDING_MAX calls, PENDING_BYTES_MAX bytes of commands); past that a
 * call fails at once, as when Redis is down.
 *
 * What comes back is bounded too. A value is read with GETRANGE, never
 * more than SHARED_MAX_VALUE and its type prefix, so a large one that
 * something else wrote under a key of ours is refused, not read whole;
 * and as hiredis holds a reply until it is complete, a connection whose
 * unread answer grows past REPLY_MAX (which none of our commands gets
 * from a Redis) is dropped like one that stopped answering.
 */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wshadow"
#include <hiredis/adapters/libev.h>
#pragma GCC diagnostic pop
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "shared_backend.h"

#define KEY_PREFIX "luaproxy:"
#define RECONNECT_DELAY 1.0 /* seconds between attempts */
/* Seconds calls may wait without Redis answering anything (nor, while
 * connecting, the connection being made) before it is taken for down. */
#define ANSWER_TIMEOUT 5.0
/* Calls waiting for answers, and the bytes of their commands. */
#define PENDING_MAX 4096
#define PENDING_BYTES_MAX ((size_t)16 << 20)
/* The most an answer being read may hold. */
#define REPLY_MAX ((size_t)1 << 20)
/* A value's type prefix ("s:"), before its SHARED_MAX_VALUE bytes. */
#define VALUE_PREFIX_MAX 2

/* INCR with types: integers stay exact (INCRBY), anything with a float
 * becomes a float ("f:"). The key's expiry is set only when it has none,
 * so a counter keeps the window it started. */
static const char incr_script[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "local by, isint = ARGV[1], ARGV[2] == 'i'\n"
    "local r\n"
    "if isint and (not v or v:match('^%-?%d+$')) then\n"
    "  r = redis.call('INCRBY', KEYS[1], by)\n"
    "else\n"
    "  local cur = 0\n"
    "  if v then\n"
    "    if v:sub(1, 2) == 'f:' then cur = tonumber(v:sub(3))\n"
    "    elseif v:match('^%-?%d+$') then cur = tonumber(v)\n"
    "    else return redis.error_reply('not a number') end\n"
    "  end\n"
    "  r = 'f:' .. string.format('%.17g', cur + tonumber(by))\n"
    "  redis.call('SET', KEYS[1], r, 'KEEPTTL')\n"
    "end\n"
    "if tonumber(ARGV[3]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
    "end\n"
    "return r\n";

struct shared_call {
    struct redis_backend *rb;
    shared_callback *cb;
    void *arg;
    enum shared_op op;
    int cancelled;
    size_t bytes; /* of its command, counted in the backend's pending_bytes */
    struct shared_call *prev, *next; /* the backend's pending calls */
};

struct redis_backend {
    char host[64];
    int port, db;
    struct ev_loop *loop;
    redisAsyncContext *ac; /* NULL while down */
    int connected;
    int closing;
    ev_timer retry;
    ev_timer watchdog;    /* runs while something waits for Redis */
    ev_tstamp last_heard; /* the last answer, or when the waiting began */
    struct shared_call *pending;
    int pending_count;
    size_t pending_bytes;
    int logged_down; /* log the outage once, not every retry */
    int logged_select; /* the same for a database that cannot be selected */
};

static void start_connect(struct redis_backend *rb);
static void schedule_retry(struct redis_backend *rb);

/* Whether something waits for Redis: a connection being made (with its
 * SELECT), or calls. */
static int waiting(const struct redis_backend *rb)
{
    return rb->ac && (!rb->connected || rb->pending);
}

static void watch(struct redis_backend *rb)
{
    if (!ev_is_active(&rb->watchdog)) {
        ev_timer_set(&rb->watchdog, ANSWER_TIMEOUT, 0.);
        ev_timer_start(rb->loop, &rb->watchdog);
    }
}

/* The connection is given up: its calls fail ("unavailable") and it is made
 * again later. Not from inside a hiredis callback. */
static void drop_connection(struct redis_backend *rb, redisAsyncContext *ac)
{
    rb->logged_down = 1; /* said once: nor the disconnection, nor the retries again */
    /* Gone before hiredis runs the callbacks, so that a hook they wake
     * finds it down; hiredis calls on_redis_disconnected only for a
     * connection that was made. */
    rb->ac = NULL;
    rb->connected = 0;
    redisAsyncFree(ac);
    schedule_retry(rb);
}

/* The connection is readable: hiredis reads (at most 16 KiB) and hands
 * over the answers that are complete; what is left is an answer still
 * coming, which may not grow past REPLY_MAX. In place of the libev
 * adapter's own read callback (which only calls redisAsyncHandleRead). */
static void on_redis_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    redisLibevEvents *e = w->data;
    redisAsyncContext *ac = e->context;
    struct redis_backend *rb = ac->data;
    (void)loop;
    (void)revents;

    redisAsyncHandleRead(ac);
    if (rb->ac != ac)
        return; /* it went (closed, or failed): hiredis freed it */
    const redisReader *r = ac->c.reader;
    if (r && r->len - r->pos > REPLY_MAX) {
        log_warn("redis %s:%d: an answer of over %zu KiB; dropping the connection, retrying in "
                 "the background",
                 rb->host, rb->port, REPLY_MAX >> 10);
        drop_connection(rb, ac);
    }
}

/* Nothing heard for ANSWER_TIMEOUT while something waited: the connection
 * is dropped (its calls fail, "unavailable") and made again later. */
static void on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct redis_backend *rb = w->data;
    redisAsyncContext *ac = rb->ac;
    (void)revents;

    if (!waiting(rb))
        return; /* the next call starts it again */
    ev_tstamp left = rb->last_heard + ANSWER_TIMEOUT - ev_now(loop);
    if (left > 0) {
        ev_timer_set(w, left, 0.);
        ev_timer_start(loop, w);
        return;
    }
    if (!rb->logged_down)
        log_warn("redis %s:%d: %s for %.0f s; dropping the connection, retrying in the "
                 "background",
                 rb->host, rb->port, rb->connected ? "no answer" : "not connected",
                 ANSWER_TIMEOUT);
    drop_connection(rb, ac);
}

static void on_retry_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    start_connect(w->data);
}

static void schedule_retry(struct redis_backend *rb)
{
    if (rb->closing)
        return;
    ev_timer_stop(rb->loop, &rb->retry);
    ev_timer_set(&rb->retry, RECONNECT_DELAY, 0.);
    ev_timer_start(rb->loop, &rb->retry);
}

static void on_redis_connected(const redisAsyncContext *ac, int status)
{
    struct redis_backend *rb = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        if (!rb->logged_down)
            log_warn("redis %s:%d: %s; retrying in the background", rb->host, rb->port,
                     ac->errstr);
        rb->logged_down = 1;
        rb->ac = NULL;
        schedule_retry(rb);
        return;
    }
    /* With a database to select, calls wait for its answer (on_selected):
     * one sent before it would go to database 0. */
    if (rb->db == 0)
        rb->connected = 1;
    rb->last_heard = ev_now(rb->loop);
    rb->logged_down = 0;
    log_info("redis %s:%d connected", rb->host, rb->port);
}

/* The answer to SELECT: calls may go now, or the database cannot be used
 * and the connection is dropped (tried again like a lost one; said once). */
static void on_selected(redisAsyncContext *ac, void *r, void *privdata)
{
    struct redis_backend *rb = ac->data;
    const redisReply *reply = r;
    (void)privdata;
    if (!reply)
        return; /* the connection went first */
    rb->last_heard = ev_now(rb->loop);
    if (reply->type == REDIS_REPLY_ERROR) {
        if (!rb->logged_select)
            log_error("redis %s:%d: SELECT %d failed: %.*s; proxy.shared calls fail until it "
                      "can be selected",
                      rb->host, rb->port, rb->db, (int)(reply->len < 120 ? reply->len : 120),
                      reply->str);
        rb->logged_select = 1;
        rb->logged_down = 1; /* the disconnection that follows says nothing more */
        redisAsyncDisconnect(ac);
        return;
    }
    rb->logged_select = 0;
    rb->connected = 1;
}

static void on_redis_disconnected(const redisAsyncContext *ac, int status)
{
    struct redis_backend *rb = ac->data;
    (void)status;
    rb->ac = NULL;
    rb->connected = 0;
    if (!rb->closing) {
        if (!rb->logged_down)
            log_warn("redis %s:%d: connection lost; retrying in the background", rb->host,
                     rb->port);
        rb->logged_down = 1;
        schedule_retry(rb);
    }
}

static void start_connect(struct redis_backend *rb)
{
    redisAsyncContext *ac;

    if (rb->ac || rb->closing)
        return;
    /* The host is an IP literal (checked when parsing the URL), so this
     * connect does not resolve names: it never blocks. */
    ac = redisAsyncConnect(rb->host, rb->port);
    if (!ac)
        return schedule_retry(rb);
    if (ac->err) {
        redisAsyncFree(ac);
        return schedule_retry(rb);
    }
    ac->data = rb;
    if (redisLibevAttach(rb->loop, ac) != REDIS_OK) {
        redisAsyncFree(ac);
        return schedule_retry(rb);
    }
    ev_set_cb(&((redisLibevEvents *)ac->ev.data)->rev, on_redis_readable);
    redisAsyncSetConnectCallback(ac, on_redis_connected);
    redisAsyncSetDisconnectCallback(ac, on_redis_disconnected);
    rb->ac = ac;
    rb->last_heard = ev_now(rb->loop);
    watch(rb);
    if (rb->db != 0) {
        /* Queued now, sent first once connected. */
        char db[16];
        snprintf(db, sizeof db, "%d", rb->db);
        const char *argv[] = {"SELECT", db};
        redisAsyncCommandArgv(ac, on_selected, NULL, 2, argv, NULL);
    }
}

struct redis_backend *redis_backend_new(const char *host, int port, int db, struct ev_loop *loop)
{
    struct redis_backend *rb = calloc(1, sizeof *rb);
    if (!rb)
        return NULL;
    snprintf(rb->host, sizeof rb->host, "%s", host);
    rb->port = port;
    rb->db = db;
    rb->loop = loop;
    ev_init(&rb->retry, on_retry_timer);
    rb->retry.data = rb;
    ev_init(&rb->watchdog, on_watchdog);
    rb->watchdog.data = rb;
    start_connect(rb);
    return rb;
}

void redis_backend_free(struct redis_backend *rb)
{
    if (!rb)
        return;
    rb->closing = 1;
    for (struct shared_call *c = rb->pending; c; c = c->next)
        c->cancelled = 1;
    ev_timer_stop(rb->loop, &rb->retry);
    ev_timer_stop(rb->loop, &rb->watchdog);
    if (rb->ac)
        redisAsyncFree(rb->ac); /* runs each pending callback with no reply */
    /* Calls hiredis never took are not on the list: every listed call got
     * its callback above and freed itself. */
    free(rb);
}

static void unlink_call(struct shared_call *c)
{
    c->rb->pending_count--;
    c->rb->pending_bytes -= c->bytes;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->rb->pending = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

/* Turns a stored string back into a typed value. */
static void decode_value(const char *s, size_t len, struct shared_reply *reply)
{
    struct shared_value *v = &reply->value;
    if (len >= 2 && s[1] == ':' && (s[0] == 's' || s[0] == 'f' || s[0] == 'b')) {
        if (s[0] == 's') {
            buffer_append(&reply->text, s + 2, len - 2);
            v->type = SHARED_STRING;
            v->s = buffer_peek(&reply->text);
            v->len = len - 2;
        } else if (s[0] == 'f') {
            char tmp[64];
            snprintf(tmp, sizeof tmp, "%.*s", (int)(len - 2), s + 2);
            v->type = SHARED_FLOAT;
            v->f = strtod(tmp, NULL);
        } else {
            v->type = SHARED_BOOLEAN;
            v->i = len > 2 && s[2] == '1';
        }
        return;
    }
    char tmp[32];
    char *end;
    snprintf(tmp, sizeof tmp, "%.*s", (int)(len < 31 ? len : 31), s);
    errno = 0;
    long long n = strtoll(tmp, &end, 10);
    if (len > 0 && len < 31 && *end == '\0' && errno == 0) {
        v->type = SHARED_INTEGER;
        v->i = n;
    } else {
        /* Written by something else: hand it over as a string. */
        buffer_append(&reply->text, s, len);
        v->type = SHARED_STRING;
        v->s = buffer_peek(&reply->text);
        v->len = len;
    }
}

/* The reason a script gets for Redis's error reply <s>: worded as shared
 * memory words the same failure (SHARED_ERR_*), so that a script reads
 * one text whichever backend is in use. An error shared memory never has
 * (a read-only replica, say) keeps Redis's words. */
static void error_reason(const char *s, size_t len, char *err, size_t err_len)
{
    if (memmem(s, len, "not a number", 12)) /* incr_script's own */
        snprintf(err, err_len, "%s", SHARED_ERR_NOT_NUMBER);
    else if (memmem(s, len, "overflow", 8) || memmem(s, len, "out of range", 12))
        snprintf(err, err_len, "%s", SHARED_ERR_OVERFLOW); /* INCRBY past 64 bits */
    else if (len >= 3 && memcmp(s, "OOM", 3) == 0) /* maxmemory reached, nothing to evict */
        snprintf(err, err_len, "%s", SHARED_ERR_FULL);
    else
        snprintf(err, err_len, "redis: %.*s", (int)(len < 80 ? len : 80), s);
}

static void on_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct shared_call *c = privdata;
    redisReply *reply = r;
    struct shared_reply out;
    enum shared_status status = SHARED_DONE;
    (void)ac;

    if (reply)
        c->rb->last_heard = ev_now(c->rb->loop);
    unlink_call(c);
    if (c->cancelled) {
        free(c);
        return;
    }
    memset(&out, 0, sizeof out);
    buffer_init(&out.text);
    out.value.type = SHARED_NIL;
    if (!reply) {
        snprintf(out.err, sizeof out.err, "%s", SHARED_ERR_UNAVAILABLE);
        status = SHARED_FAILED;
    } else if (reply->type == REDIS_REPLY_ERROR) {
        error_reason(reply->str, reply->len, out.err, sizeof out.err);
        status = SHARED_FAILED;
    } else if (reply->type == REDIS_REPLY_STRING && c->op == SHARED_GET &&
               reply->len > VALUE_PREFIX_MAX + SHARED_MAX_VALUE) {
        /* GETRANGE gave the first bytes of something larger, which only
         * something else can have written. */
        snprintf(out.err, sizeof out.err, "values are at most %d bytes (a larger one is there)",
                 SHARED_MAX_VALUE);
        status = SHARED_FAILED;
    } else if (reply->type == REDIS_REPLY_STRING && c->op == SHARED_GET && reply->len == 0) {
        /* GETRANGE answers a missing key with "", which no value of ours
         * is: nil */
    } else if (reply->type == REDIS_REPLY_STRING && (c->op == SHARED_GET || c->op == SHARED_INCR)) {
        decode_value(reply->str, reply->len, &out);
    } else if (reply->type == REDIS_REPLY_INTEGER && c->op == SHARED_INCR) {
        out.value.type = SHARED_INTEGER;
        out.value.i = reply->integer;
    }
    c->cb(c->arg, status, &out);
    buffer_free(&out.text);
    free(c);
}

/* A ttl in whole milliseconds, as PX and PEXPIRE take it: never rounded
 * down to none (a ttl under 1 ms is 1 ms), and none (0) for one past what
 * Redis can hold, which shared memory never reaches either (math.huge). */
static long long ttl_ms(double ttl)
{
    if (!(ttl > 0) || ttl >= 9e12) /* NaN, none, or past 280,000 years */
        return 0;
    long long ms = (long long)(ttl * 1000 + 0.5);
    return ms > 0 ? ms : 1;
}

enum shared_status redis_call(struct redis_backend *rb, const struct shared_request *rq,
                              struct shared_reply *reply, shared_callback *cb, void *arg,
                              struct shared_call **call)
{
    char key[sizeof KEY_PREFIX + SHARED_MAX_KEY];
    char num[64], ttl[32];
    const char *argv[8];
    size_t argl[8];
    int argc = 0;
    struct shared_call *c;
    struct buffer value;

    if (!rb->ac || !rb->connected) {
        snprintf(reply->err, sizeof reply->err, "%s", SHARED_ERR_UNAVAILABLE);
        return SHARED_FAILED;
    }
    memcpy(key, KEY_PREFIX, sizeof KEY_PREFIX - 1);
    memcpy(key + sizeof KEY_PREFIX - 1, rq->key, rq->key_len);
#define ARG(p, n) (argv[argc] = (p), argl[argc++] = (n))
    buffer_init(&value);
    switch (rq->op) {
    case SHARED_GET:
        /* One byte past the largest value of ours: enough to tell a
         * larger one, without reading it. */
        snprintf(num, sizeof num, "%d", VALUE_PREFIX_MAX + SHARED_MAX_VALUE);
        ARG("GETRANGE", 8);
        ARG(key, sizeof KEY_PREFIX - 1 + rq->key_len);
        ARG("0", 1);
        ARG(num, strlen(num));
        break;
    case SHARED_DELETE:
        ARG("DEL", 3);
        ARG(key, sizeof KEY_PREFIX - 1 + rq->key_len);
        break;
    case SHARED_SET:
        switch (rq->value.type) {
        case SHARED_STRING:
            if (buffer_append(&value, "s:", 2) != 0 ||
                buffer_append(&value, rq->value.s, rq->value.len) != 0)
                goto nomem;
            break;
        case SHARED_INTEGER: buffer_printf(&value, "%" PRId64, rq->value.i); break;
        case SHARED_FLOAT: buffer_printf(&value, "f:%.17g", rq->value.f); break;
        case SHARED_BOOLEAN: buffer_printf(&value, "b:%d", rq->value.i ? 1 : 0); break;
        case SHARED_NIL: break;
        }
        ARG("SET", 3);
        ARG(key, sizeof KEY_PREFIX - 1 + rq->key_len);
        ARG(buffer_peek(&value), buffer_length(&value));
        if (ttl_ms(rq->ttl) > 0) {
            snprintf(ttl, sizeof ttl, "%lld", ttl_ms(rq->ttl));
            ARG("PX", 2);
            ARG(ttl, strlen(ttl));
        }
        break;
    case SHARED_INCR:
        if (rq->value.type == SHARED_INTEGER)
            snprintf(num, sizeof num, "%" PRId64, rq->value.i);
        else
            snprintf(num, sizeof num, "%.17g", rq->value.f);
        snprintf(ttl, sizeof ttl, "%lld", ttl_ms(rq->ttl));
        ARG("EVAL", 4);
        ARG(incr_script, sizeof incr_script - 1);
        ARG("1", 1);
        ARG(key, sizeof KEY_PREFIX - 1 + rq->key_len);
        ARG(num, strlen(num));
        ARG(rq->value.type == SHARED_INTEGER ? "i" : "f", 1);
        ARG(ttl, strlen(ttl));
        break;
    }
#undef ARG
    size_t bytes = 0;
    for (int i = 0; i < argc; i++)
        bytes += argl[i] + 16; /* with RESP's framing, about */
    if (rb->pending_count >= PENDING_MAX || bytes > PENDING_BYTES_MAX - rb->pending_bytes) {
        /* Redis does not keep up (or is stuck, and not yet taken for
         * down): what waits for it must not grow without end. */
        buffer_free(&value);
        snprintf(reply->err, sizeof reply->err, "%s", SHARED_ERR_UNAVAILABLE);
        return SHARED_FAILED;
    }
    c = calloc(1, sizeof *c);
    if (!c)
        goto nomem;
    c->rb = rb;
    c->bytes = bytes;
    c->cb = cb;
    c->arg = arg;
    c->op = rq->op;
    if (redisAsyncCommandArgv(rb->ac, on_redis_reply, c, argc, argv, argl) != REDIS_OK) {
        free(c);
        buffer_free(&value);
        snprintf(reply->err, sizeof reply->err, "%s", SHARED_ERR_UNAVAILABLE);
        return SHARED_FAILED;
    }
    buffer_free(&value); /* hiredis formatted its own copy */
    if (!rb->pending)
        rb->last_heard = ev_now(rb->loop); /* the waiting begins */
    watch(rb);
    rb->pending_count++;
    rb->pending_bytes += bytes;
    c->next = rb->pending;
    if (rb->pending)
        rb->pending->prev = c;
    rb->pending = c;
    if (call)
        *call = c;
    return SHARED_PENDING;
nomem:
    buffer_free(&value);
    snprintf(reply->err, sizeof reply->err, "%s", SHARED_ERR_NO_MEMORY);
    return SHARED_FAILED;
}

void redis_call_cancel(struct shared_call *call)
{
    if (call)
        call->cancelled = 1;
}
