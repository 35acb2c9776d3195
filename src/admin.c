/*
 * admin.c - the admin listener's HTTP/1.1 server (see admin.h).
 *
 * Deliberately small and strict: one request at a time per connection, a
 * head of at most ADMIN_HEAD_MAX bytes parsed by the proxy's own parser, a
 * body only with Content-Length and at most ADMIN_BODY_MAX bytes, at most
 * ADMIN_CONN_MAX connections, and a timer per connection. Everything is
 * non-blocking on the loop it was started on; an answer too large to make
 * at once is streamed, a part each time the socket can take more. What is
 * sent back is written in admin_reply.c.
 */
#include "admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "acl.h"
#include "admin_access.h"
#include "admin_internal.h"
#include "config.h"
#include "log.h"
#include "proxy.h"
#include "url.h"

static void on_conn_io(struct ev_loop *loop, ev_io *w, int revents);
static void on_conn_timer(struct ev_loop *loop, ev_timer *w, int revents);

/* ---- setup ------------------------------------------------------------- */

static int make_token(char *out, size_t len)
{
    unsigned char raw[16];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof raw && 2 * i + 2 < len; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

struct admin *admin_open(const struct config *cfg, char *err, size_t err_len)
{
    struct admin *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    memcpy(a->allow, cfg->admin_allow, sizeof a->allow);
    a->allow_count = cfg->admin_allow_count;
    a->head_timeout = cfg->header_timeout;
    a->fd = -1;
    a->next_id = 1;
    if (cfg->admin_token) {
        snprintf(a->token, sizeof a->token, "%s", cfg->admin_token);
        a->token_given = 1;
    } else if (make_token(a->token, sizeof a->token) != 0) {
        snprintf(err, err_len, "cannot make the admin token: %s", strerror(errno));
        free(a);
        return NULL;
    }
    /* The proxy's own socket maker: only one process ever listens here,
     * since it refuses an address something already listens on. */
    a->fd = proxy_listen_socket(&cfg->admin, 0, &a->addr, &a->addr_len, err, err_len);
    if (a->fd < 0) {
        free(a);
        return NULL;
    }
    if (a->addr.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&a->addr)->sin_addr, a->host, sizeof a->host);
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a->addr)->sin6_addr, a->host,
                  sizeof a->host);
    return a;
}

static uint16_t admin_port(const struct admin *a)
{
    return proxy_address_port(&a->addr);
}

const struct sockaddr *admin_address(const struct admin *a, socklen_t *len)
{
    *len = a->addr_len;
    return (const struct sockaddr *)&a->addr;
}

struct ev_loop *admin_loop(const struct admin *a)
{
    return a->loop;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents);

void admin_start(struct admin *a, struct ev_loop *loop)
{
    a->loop = loop;
    ev_io_init(&a->io, on_accept, a->fd, EV_READ);
    a->io.data = a;
    ev_io_start(loop, &a->io);
    ev_timer_init(&a->ping, admin_on_ping, ADMIN_EVENTS_PING, ADMIN_EVENTS_PING);
    a->ping.data = a;
    ev_timer_start(loop, &a->ping);
    /* A token the proxy made is logged, or nobody would know it; one the
     * operator gave is theirs already, and logs are read by more people
     * than the token should be. */
    const char *open = a->addr.ss_family == AF_INET6 ? "[" : "";
    const char *close = a->addr.ss_family == AF_INET6 ? "]" : "";
    if (a->token_given)
        log_info("admin interface: http://%s%s%s:%u/ (the token is the one --admin-token gives)",
                 open, a->host, close, admin_port(a));
    else
        log_info("admin interface: http://%s%s%s:%u/?token=%s", open, a->host, close,
                 admin_port(a), a->token);
}

int admin_route(struct admin *a, const char *method, const char *path, admin_handler *handler,
                void *arg, int flags)
{
    struct admin_route_entry *r;
    if (a->route_count == ADMIN_ROUTE_MAX || strlen(method) >= sizeof r->method ||
        strlen(path) >= sizeof r->path)
        return -1;
    r = &a->routes[a->route_count++];
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->path, sizeof r->path, "%s", path);
    r->handler = handler;
    r->arg = arg;
    r->flags = flags;
    return 0;
}

static void on_version(struct admin_conn *c, const struct admin_request *r, void *arg)
{
    static const char body[] = "{\"name\":\"luaproxy\",\"version\":\"" LUAPROXY_VERSION "\"}\n";
    (void)r;
    (void)arg;
    admin_reply(c, 200, "application/json", body, sizeof body - 1);
}

void admin_add_basic_routes(struct admin *a)
{
    admin_route(a, "GET", "/api/version", on_version, NULL, 0);
}

/* ---- connections ------------------------------------------------------- */

static void conn_free(struct admin_conn *c)
{
    struct admin *a = c->admin;
    if (a->loop) {
        ev_io_stop(a->loop, &c->io);
        ev_timer_stop(a->loop, &c->timer);
    }
    if (c->stream)
        admin_stream_end(c);
    if (c->fd >= 0)
        close(c->fd);
    buffer_free(&c->in);
    buffer_free(&c->out);
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->conn_count--;
    free(c);
}

void admin_conn_close(struct admin_conn *c)
{
    c->closed = 1;
    if (!c->in_callback)
        conn_free(c);
}

void admin_free(struct admin *a)
{
    if (!a)
        return;
    while (a->conns)
        conn_free(a->conns);
    if (a->loop) {
        ev_io_stop(a->loop, &a->io);
        ev_timer_stop(a->loop, &a->ping);
    }
    if (a->fd >= 0)
        close(a->fd);
    free(a);
}

void admin_forget(struct admin *a)
{
    if (!a)
        return;
    a->loop = NULL; /* conn_free and admin_free then leave the watchers be */
    admin_free(a);
}

/*
 * At ADMIN_CONN_MAX connections, a new one takes the place of the oldest
 * that no request with the token came on, and that is not being
 * answered: anybody who may connect (a local user of the machine, say)
 * could otherwise hold every connection, sending nothing or a byte now
 * and then, and keep the admin out. A connection of the admin's (the
 * viewer's event stream) is never closed for another. 1 when a place was
 * made.
 */
static int make_room(struct admin *a)
{
    struct admin_conn *oldest = NULL;

    /* New connections go at the head of the list: the last one that may
     * go is the oldest. */
    for (struct admin_conn *c = a->conns; c; c = c->next)
        if (!c->trusted && !c->held && !c->stream && !c->events && !c->in_callback)
            oldest = c;
    if (!oldest)
        return 0;
    log_debug("admin: %d connections; closing the oldest one without the token for a new one",
              ADMIN_CONN_MAX);
    conn_free(oldest);
    return 1;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    struct admin *a = w->data;
    (void)revents;

    for (int i = 0; i < 16; i++) {
        struct sockaddr_storage peer, local;
        socklen_t peer_len = sizeof peer, local_len = sizeof local;
        int fd = accept4(a->fd, (struct sockaddr *)&peer, &peer_len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;
        }
        if (!acl_match(a->allow, a->allow_count, (struct sockaddr *)&peer) ||
            (a->conn_count >= ADMIN_CONN_MAX && !make_room(a))) {
            close(fd); /* not a client of ours, or too many: no answer at all */
            continue;
        }
        struct admin_conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->admin = a;
        c->fd = fd;
        buffer_init(&c->in);
        buffer_init(&c->out);
        buffer_init(&c->part);
        if (getsockname(fd, (struct sockaddr *)&local, &local_len) == 0) {
            if (local.ss_family == AF_INET)
                inet_ntop(AF_INET, &((struct sockaddr_in *)&local)->sin_addr, c->local_ip,
                          sizeof c->local_ip);
            else
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&local)->sin6_addr, c->local_ip,
                          sizeof c->local_ip);
        }
        c->next = a->conns;
        if (a->conns)
            a->conns->prev = c;
        a->conns = c;
        a->conn_count++;
        c->last_activity = ev_now(loop);
        ev_io_init(&c->io, on_conn_io, fd, EV_READ);
        c->io.data = c;
        ev_io_start(loop, &c->io);
        ev_timer_init(&c->timer, on_conn_timer, a->head_timeout, 0.);
        c->timer.data = c;
        ev_timer_start(loop, &c->timer);
    }
}

/* ---- requests ---------------------------------------------------------- */

int admin_query(const struct admin_request *r, const char *name, char *out, size_t out_len)
{
    const char *q = r->query, *end = r->query + r->query_len;
    size_t name_len = strlen(name);

    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        const char *key_end = eq ? eq : stop;
        if ((size_t)(key_end - q) == name_len && memcmp(q, name, name_len) == 0) {
            const char *v = eq ? eq + 1 : stop;
            int n = url_percent_decode(v, (size_t)(stop - v), out, out_len, 1);
            return n < 0 ? -2 : n; /* -2: malformed, not absent */
        }
        q = stop + 1;
    }
    return -1;
}

static void dispatch(struct admin_conn *c, const struct admin_request *r)
{
    struct admin *a = c->admin;
    const struct admin_route_entry *route = NULL;
    int path_known = 0, authorized;
    char qtoken[160];
    char allow[80] = "Allow: "; /* the methods of the path, for a 405 */

    if (!admin_access_host_ok(r->head, a->host, c->local_ip, admin_port(a))) {
        c->close_after = 1;
        admin_reply_error(c, 403, "Host must be this listener's address or localhost");
        return;
    }
    /* Only GET and HEAD are free of effects: anything else from a page
     * of another origin (CSRF) is refused, whatever credentials it has. */
    if (!http_token_eq(r->method, r->method_len, "GET") &&
        !http_token_eq(r->method, r->method_len, "HEAD") && !admin_access_origin_ok(r->head)) {
        admin_reply_error(c, 403, "a request from another origin may not change anything here");
        return;
    }
    for (int i = 0; i < a->route_count; i++) {
        const struct admin_route_entry *e = &a->routes[i];
        size_t pl = strlen(e->path);
        int match = (e->flags & ADMIN_PREFIX)
                        ? r->path_len >= pl && memcmp(r->path, e->path, pl) == 0
                        : r->path_len == pl && memcmp(r->path, e->path, pl) == 0;
        if (!match)
            continue;
        path_known = 1;
        if (!strstr(allow + 7, e->method)) {
            size_t used = strlen(allow);
            snprintf(allow + used, sizeof allow - used, "%s%s%s", used > 7 ? ", " : "",
                     e->method, strcmp(e->method, "GET") == 0 ? ", HEAD" : "");
        }
        if (http_token_eq(r->method, r->method_len, e->method) ||
            (http_token_eq(r->method, r->method_len, "HEAD") && strcmp(e->method, "GET") == 0)) {
            route = e;
            break;
        }
    }
    if (!route) {
        if (path_known) {
            /* RFC 9110 15.5.6: a 405 says which methods the page takes */
            admin_reply_header(c, allow);
            admin_reply_error(c, 405, "method not allowed here");
        } else
            admin_reply_error(c, 404, "no such page");
        return;
    }
    authorized = admin_access_has_token(a->token, r->head);
    /* Compared by its decoded length: a %00 must not end the comparison. */
    int qlen = authorized ? -1 : admin_query(r, "token", qtoken, sizeof qtoken);
    if (qlen >= 0 && admin_access_token_eq(a->token, qtoken, (size_t)qlen)) {
        char line[256];
        /* The page keeps the token in a cookie that scripts cannot read
         * and other sites cannot send. */
        snprintf(line, sizeof line,
                 "Set-Cookie: " ADMIN_ACCESS_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict",
                 a->token);
        admin_reply_header(c, line);
        authorized = 1;
        if (r->path_len == 1 && http_token_eq(r->method, r->method_len, "GET")) {
            /* Take the token out of the address bar (and history). */
            admin_reply_header(c, "Location: /");
            admin_reply(c, 303, NULL, NULL, 0);
            return;
        }
    }
    if (authorized)
        c->trusted = 1;
    if (!authorized && !(route->flags & ADMIN_PUBLIC)) {
        if (r->path_len == 1) {
            static const char page[] =
                "<!doctype html><meta charset=utf-8><title>luaproxy</title>"
                "<p>This page needs the admin token: open the address that luaproxy "
                "logged at start (<code>admin interface: http://...?token=...</code>), "
                "or add <code>?token=</code> and the one given with "
                "<code>--admin-token</code>.\n";
            admin_reply(c, 401, "text/html; charset=utf-8", page, sizeof page - 1);
        } else {
            admin_reply_error(c, 401, "the admin token is missing or wrong");
        }
        return;
    }
    route->handler(c, r, route->arg);
}

/* Parses and runs one request from "in". 1 if one ran, 0 if more bytes are
 * needed, -1 to close. */
static int handle_request(struct admin_conn *c)
{
    struct http_head head;
    enum http_error err = HTTP_ERR_NONE;
    struct http_framing framing;
    struct admin_request r;
    size_t len = buffer_length(&c->in);
    ssize_t n;

    head.field_limit = 0; /* the parser's default */
    n = http_parse_request(buffer_peek(&c->in), len, &head, &err);
    /* Every answer to a HEAD, errors included, is a head only. */
    c->head_only = n >= 0 && http_token_eq(head.method, head.method_len, "HEAD");

    /* Too large whether it is still coming or came whole: a head that
     * arrived in two reads is complete before it reaches the cap. */
    if (n > (ssize_t)ADMIN_HEAD_MAX || (n == -2 && len >= ADMIN_HEAD_MAX)) {
        c->close_after = 1;
        admin_reply_error(c, 431, "request head too large");
        return 1;
    }
    if (n == -2)
        return 0;
    if (n == -1 || http_request_framing(&head, &framing, &err) != 0) {
        /* The status the relay gives the same head: 431 for too many
         * fields, 505 for another version, 501 for another coding. */
        c->close_after = 1;
        if (err == HTTP_ERR_NONE)
            admin_reply_error(c, 400, "malformed request");
        else
            admin_reply_error(c, http_error_status(err), http_error_text(err));
        return 1;
    }
    if (framing.kind == HTTP_BODY_CHUNKED || framing.length > ADMIN_BODY_MAX) {
        c->close_after = 1;
        admin_reply_error(c, 413, "request body too large or chunked");
        return 1;
    }
    if (framing.kind == HTTP_BODY_LENGTH && len - (size_t)n < framing.length)
        return 0;
    if (head.version_minor == 0 || http_has_token(&head, "Connection", "close"))
        c->close_after = 1;
    memset(&r, 0, sizeof r);
    r.method = head.method;
    r.method_len = head.method_len;
    r.path = head.target;
    r.path_len = head.target_len;
    r.query = "";
    const char *qm = memchr(head.target, '?', head.target_len);
    if (qm) {
        r.path_len = (size_t)(qm - head.target);
        r.query = qm + 1;
        r.query_len = head.target_len - r.path_len - 1;
    }
    r.head = &head;
    r.body = buffer_peek(&c->in) + n;
    r.body_len = framing.kind == HTTP_BODY_LENGTH ? (size_t)framing.length : 0;
    c->id = c->admin->next_id++;
    c->http10 = head.version_minor == 0;
    if (r.path_len == 0 || r.path[0] != '/') {
        c->close_after = 1;
        admin_reply_error(c, 400, "the target must be a path");
    } else {
        c->held = 0;
        c->answered = 0;
        dispatch(c, &r);
        if (!c->held && !c->answered && !c->closed) {
            /* A handler that forgot to answer must not hang the client. */
            admin_reply_error(c, 500, "no answer");
        }
    }
    buffer_consume(&c->in, (size_t)n + r.body_len);
    /* Pipelined bytes behind it: the next request's clock starts now. */
    c->head_started = buffer_length(&c->in) ? ev_now(c->admin->loop) : 0;
    return 1;
}

static void conn_update(struct admin_conn *c)
{
    struct ev_loop *loop = c->admin->loop;
    int want = 0;
    if (!c->held && !c->stream && !c->close_after && !c->read_eof &&
        buffer_length(&c->in) < ADMIN_HEAD_MAX + ADMIN_BODY_MAX)
        want |= EV_READ;
    if (c->lingering)
        want = EV_READ; /* only to see the client's end */
    if (c->events)
        want |= EV_READ; /* only to notice the reader leaving */
    /* A stream in progress is paced by the socket: "writable" asks for
     * its next part. */
    if (buffer_length(&c->out) > 0 || c->stream)
        want |= EV_WRITE;
    if (want != (c->io.events & (EV_READ | EV_WRITE))) {
        ev_io_stop(loop, &c->io);
        ev_io_set(&c->io, c->fd, want);
        if (want)
            ev_io_start(loop, &c->io);
    }
}

void admin_conn_flush(struct admin_conn *c)
{
    while (buffer_length(&c->out) > 0) {
        ssize_t n = write(c->fd, buffer_peek(&c->out), buffer_length(&c->out));
        if (n > 0) {
            buffer_consume(&c->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        admin_conn_close(c);
        return;
    }
    if (buffer_length(&c->out) == 0) {
        buffer_shrink(&c->out);
        if (c->close_after && !c->held && !c->stream && !c->lingering) {
            /* Unread bytes may follow: shut the write side (the FIN goes
             * after the answer) and read to the client's end before the
             * close, so the answer is not lost to a reset. */
            if (shutdown(c->fd, SHUT_WR) != 0) {
                admin_conn_close(c);
                return;
            }
            c->lingering = 1; /* what is still unread is dropped as it comes */
            c->timer.repeat = ADMIN_LINGER_TIMEOUT;
            ev_timer_again(c->admin->loop, &c->timer);
        }
    }
    if (c->closed)
        return;
    conn_update(c);
    /* An answer given later (a replay's), outside this connection's
     * callback: a request pipelined behind it was read meanwhile, and no
     * byte will come to start it, so the loop is asked to as if one had. */
    if (!c->in_callback && !c->held && !c->stream && !c->events && !c->close_after &&
        !c->lingering && (buffer_length(&c->in) > 0 || c->read_eof))
        ev_feed_event(c->admin->loop, &c->io, EV_READ);
}

static void on_conn_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct admin_conn *c = w->data;

    c->in_callback = 1;
    c->last_activity = ev_now(loop);
    if (revents & EV_READ) {
        char *p = buffer_reserve(&c->in, 16384);
        ssize_t n = p ? read(c->fd, p, 16384) : -1;
        if (n > 0) {
            if (buffer_length(&c->in) == 0)
                c->head_started = ev_now(loop);
            buffer_commit(&c->in, (size_t)n);
            if (c->events || c->lingering)
                buffer_consume(&c->in, buffer_length(&c->in));
            if (c->lingering && (c->discarded += (size_t)n) > ADMIN_LINGER_MAX)
                c->closed = 1; /* it keeps sending: give up on a clean close */
        } else if (n == 0 && !c->events && !c->lingering) {
            /* The end of its input, but not of its interest: a client may
             * shut its sending half once its requests are out and read
             * the answers (RFC 9112 9.6). They go out first; the close
             * comes after them (below). An event stream's reader, though,
             * has left. */
            c->read_eof = 1;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            c->closed = 1;
        }
    }
    if ((revents & EV_WRITE) && !c->closed)
        admin_conn_flush(c);
    if ((revents & EV_WRITE) && !c->closed && c->stream)
        admin_stream_pump(c);
    while (!c->closed && !c->held && !c->stream && !c->events && !c->close_after &&
           buffer_length(&c->in) > 0 && handle_request(c) == 1)
        ;
    if (!c->closed && buffer_length(&c->in) >= ADMIN_HEAD_MAX + ADMIN_BODY_MAX)
        c->closed = 1;
    if (c->read_eof && !c->closed && !c->held && !c->stream && !c->close_after) {
        /* Every whole request it sent is answered (or being sent): no
         * other can come, and what is left in "in" never ends. The close
         * follows the answer, as for "Connection: close". */
        c->close_after = 1;
        admin_conn_flush(c);
    }
    c->in_callback = 0;
    if (c->closed) {
        conn_free(c);
        return;
    }
    conn_update(c);
    /* Events streams and held answers wait as long as they need; a
     * request gets --header-timeout from its first byte, not from its last
     * (a byte now and then would hold the connection for ever), and an
     * idle connection more. */
    if (c->lingering)
        return; /* its timer was set once, when the lingering began */
    if (buffer_length(&c->in) == 0 || c->stream) {
        /* a stream: every part sent comes back here, so a client that
         * reads nothing for this long is closed */
        c->timer.repeat = ADMIN_IDLE_TIMEOUT;
    } else {
        ev_tstamp left = c->head_started + c->admin->head_timeout - ev_now(loop);
        c->timer.repeat = left > 0.001 ? left : 0.001;
    }
    ev_timer_again(loop, &c->timer);
}

static void on_conn_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct admin_conn *c = w->data;
    (void)loop;
    (void)revents;
    if (c->events || c->held) {
        c->timer.repeat = ADMIN_IDLE_TIMEOUT;
        ev_timer_again(loop, &c->timer);
        return;
    }
    admin_conn_close(c);
}
