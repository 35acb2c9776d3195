/*
 * reload.c - SIGHUP in one process (a worker, or the proxy alone): the
 * config file and the command line are read again, the scripts loaded
 * with them, the users file read, the access log reopened (so a rotated
 * one starts afresh), and all of it put in force at once.
 *
 * Loading scripts runs their top-level code, which may take up to the
 * load time limit per script (a block list built at start, say), and a
 * users file of many thousands of lines is sorted: done on the loop, that
 * would stop every client for as long. So the load runs on a thread of
 * its own, on a Lua state no one else sees yet, while the loop serves
 * with the scripts in force; when it is done the thread wakes the loop
 * (an ev_async), and the rest (what needs the loop: a Redis store, the
 * credentials' checkers, the access log) is made there, and put in force.
 *
 * Anything wrong keeps everything as it was: every step that can fail
 * makes its part aside first, and only when all of them succeeded are
 * they put in force, by steps that cannot fail. Exchanges in flight keep
 * the scripts they started with (hooks.h) and read the new limits from
 * then on. A SIGHUP that comes while a load runs is not lost: one more
 * reload follows it, with what the files say by then.
 */
#include "reload.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "access_log.h"
#include "acl.h"
#include "auth.h"
#include "config.h"
#include "endpoint.h"
#include "hooks.h"
#include "intercept.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "upstream_pool.h"
#include "session.h"
#include "session_idle.h"
#include "tls.h"
#include "tls_trust.h"
#include "trace.h"

/* Each set of scripts a reload replaced stays in memory (its Lua state, up
 * to --lua-memory) while exchanges started under it are in flight: a
 * tunnel or a long download may keep one for hours. So that reloads do
 * not pile them up, at most RETIRED_SCRIPTS_MAX stay; the exchanges still
 * using an older one are ended, as at the end of a shutdown's grace. */
#define RETIRED_SCRIPTS_MAX 3

struct reload {
    struct proxy *p;
    ev_async done;       /* sent by the thread when its part is made */
    pthread_t thread;
    int running;         /* a load is on its thread */
    int again;           /* a SIGHUP came meanwhile: reload once more after */
    /* Made on the loop before the thread starts, read by it: */
    struct config *fresh;
    int want_users;      /* read the users file into an existing checker */
    /* Made by the thread, read by the loop once it is done: */
    int failed;          /* hooks_prepare_apart failed: the scripts' error */
    struct hooks *hooks;
    struct auth_users *users;
    char err[1024];
};

/* A reload may take a client off --allow: its connection's next request
 * gets 403 and the connection closes (an exchange or a tunnel in flight
 * finishes). From then on it counts with the refused (count_session). */
static void recheck_allowed(struct proxy *p)
{
    for (struct session *s = p->sessions; s; s = s->next) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        if (s->reject_status || s->client.fd < 0 ||
            getpeername(s->client.fd, (struct sockaddr *)&peer, &len) != 0 ||
            acl_match(p->cfg->allow, p->cfg->allow_count, (struct sockaddr *)&peer))
            continue;
        s->reject_status = 403;
        p->refused_count++;
        if (p->shared_sessions)
            __atomic_sub_fetch(&p->shared_sessions[p->shared_slot], 1, __ATOMIC_RELAXED);
    }
}

/* Whether <s> carries a request on its way to a tunnel, its credentials
 * checked: a CONNECT let through and still in its request hooks,
 * resolving, connecting, or waiting for a parent proxy's answer to the
 * CONNECT the proxy sent it; an upgrade let through whose 101 has not
 * come yet (any other answer makes it a plain exchange, which ends on its
 * own). What comes next (the connect, the parent's 200, the upstream's
 * 101) would open the tunnel on the credentials checked before. A check
 * still running (auth_job) is judged by the new file: it is not one. */
static int tunnel_coming(const struct session *s)
{
    const struct exchange *x = &s->x;

    if (!x->active || !(x->is_connect || x->is_upgrade))
        return 0;
    switch (s->state) {
    case SESSION_HOOK:
        return !x->auth_job;
    case SESSION_RESOLVING:
    case SESSION_CONNECTING:
        return 1;
    case SESSION_EXCHANGE:
        return x->is_connect ? x->parent_tunnel : x->res_state == RESPONSE_WAIT_HEAD;
    default:
        return 0;
    }
}

/* Whether <s> is an intercepted tunnel idle between its requests: its
 * TLS handshake over, no request in flight or begun, and the last answer
 * all out (session_idle_waiting, the reclaim's own test). */
static int intercepted_idle(const struct session *s)
{
    return s->intercepted && s->tunnel && session_idle_waiting(s);
}

/* A tunnel (CONNECT, or an upgrade such as a WebSocket) moves bytes for
 * as long as both sides like, with the credentials its request carried
 * checked once. A reload that removes its user or changes the password
 * must not leave it open on credentials that no longer hold: such
 * tunnels are closed, as are the requests on their way to one
 * (tunnel_coming). Those of users the file keeps as they were stay.
 * Called when the fresh configuration has --auth-file, before <fresh>
 * (NULL when the auth object is new: no users were in force) is put in
 * force: a tunnel opened without --auth-file proved no one, and is
 * closed too.
 *
 * Requests inside an intercepted tunnel are checked on their own
 * (exchange.c): the next one would get 407. Yet a browser takes a 407
 * from inside a tunnel as an error of the site's, not as the proxy
 * asking for credentials, so an intercepted tunnel idle between its
 * requests is closed as well, with a close_notify: to the client, a kept
 * connection the server ended, which it replaces by a new CONNECT, whose
 * 407 it answers. One with a request in flight (checked when it began)
 * or still in its TLS handshake is left to that check. */
static void close_unproven_tunnels(struct proxy *p, const struct auth_users *fresh)
{
    int closed = 0, idle = 0;

    for (struct session *s = p->sessions, *next; s; s = next) {
        next = s->next;
        if (intercepted_idle(s)) {
            if (s->tunnel->auth_on && auth_user_kept(p->auth, fresh, s->tunnel->user))
                continue;
            endpoint_end_for_close(&s->client);
            session_abort(s, "closed: its credentials no longer hold (--auth-file was read "
                             "again)");
            idle++;
            continue;
        }
        int tunnel = s->state == SESSION_TUNNEL || tunnel_coming(s);
        if (!tunnel || auth_user_kept(p->auth, fresh, s->x.user))
            continue;
        session_abort(s, "closed: its credentials no longer hold (--auth-file was read again)");
        closed++;
    }
    if (closed > 0)
        log_info("reload: closed %d tunnel(s) whose credentials no longer hold", closed);
    if (idle > 0)
        log_info("reload: closed %d idle intercepted tunnel(s) whose credentials no longer "
                 "hold", idle);
}

static void close_oldest_scripts(struct proxy *p)
{
    while (hooks_retired_count() > RETIRED_SCRIPTS_MAX) {
        const struct hooks *oldest = hooks_retired_oldest();
        int closed = 0;
        for (struct session *s = p->sessions, *next; s; s = next) {
            next = s->next;
            if (s->x.active && s->x.hook.hooks == oldest) {
                session_abort(s, "closed: its scripts were replaced by later reloads");
                closed++;
            }
        }
        log_warn("reload: closed %d connection(s) still using the oldest of %d earlier sets "
                 "of scripts (at most %d stay in memory)",
                 closed, RETIRED_SCRIPTS_MAX + 1, RETIRED_SCRIPTS_MAX);
        if (hooks_retired_oldest() == oldest)
            break; /* an on_done still waits in it: it ends on its own */
    }
}

/* The thread: the slow parts, which touch no loop and nothing the loop's
 * thread uses (the Lua state is new; the users list is new; the upstream
 * certificates are new, or the running ones with one more reference). */
static void *load_apart(void *arg)
{
    struct reload *r = arg;

    r->failed = hooks_prepare_apart(r->fresh, &r->hooks, r->err, sizeof r->err) != 0;
    if (!r->failed && r->want_users)
        r->users = auth_users_read(r->fresh->auth_file, r->err, sizeof r->err);
    /* p->cfg changes only in finish(), once this thread is joined. */
    if (!r->failed && (!r->want_users || r->users))
        r->failed = tls_trust_reload(r->p->cfg, r->fresh, r->err, sizeof r->err) != 0;
    ev_async_send(r->p->loop, &r->done);
    return NULL;
}

/* Drops what a reload made and did not put in force. */
static void discard(struct reload *r)
{
    hooks_discard(r->hooks);
    r->hooks = NULL;
    auth_users_free(r->users);
    r->users = NULL;
    if (r->fresh)
        tls_trust_release(r->fresh);
    free(r->fresh);
    r->fresh = NULL;
}

static void start(struct reload *r)
{
    struct proxy *p = r->p;
    sigset_t all, before;

    r->fresh = malloc(sizeof *r->fresh);
    if (!r->fresh) {
        log_error("reload: out of memory; the running configuration stays");
        return;
    }
    if (config_reload(p->cfg, r->fresh, r->err, sizeof r->err) != 0) {
        log_error("reload: %s; the running configuration stays", r->err);
        discard(r);
        return;
    }
    r->failed = 0;
    r->want_users = r->fresh->auth_file && p->auth;
    /* The thread takes no signal: they are the loop's (libev's handlers),
     * and the hooks' watchdog aims its own at the loop's thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &before);
    int rc = pthread_create(&r->thread, NULL, load_apart, r);
    pthread_sigmask(SIG_SETMASK, &before, NULL);
    if (rc != 0) {
        log_error("reload: cannot start a thread to load the scripts; the running "
                  "configuration stays");
        discard(r);
        return;
    }
    r->running = 1;
}

/* On the loop, once the thread is done: the parts that need the loop, then
 * everything in force. */
static void finish(struct reload *r)
{
    struct proxy *p = r->p;
    struct auth *auth = NULL;
    struct access_log *log = NULL;
    struct config *fresh = r->fresh;

    if (r->failed) {
        log_error("reload failed, keeping the scripts in force and the running "
                  "configuration: %s", r->err);
        goto fail_quietly;
    }
    if (r->want_users && !r->users)
        goto fail; /* the users file: r->err says why */
    if (hooks_attach(r->hooks, fresh, p->loop, r->err, sizeof r->err) != 0)
        goto fail;
    /* An auth object stays once made (sessions may wait on it) and takes
     * the new users in place; without --auth-file after the reload it is
     * simply not asked. */
    if (fresh->auth_file && !p->auth &&
        !(auth = auth_open(fresh->auth_file, p->loop, r->err, sizeof r->err)))
        goto fail;
    if (fresh->access_log &&
        !(log = access_log_open(fresh->access_log, fresh->log_format, r->err, sizeof r->err)))
        goto fail;

    /* Everything is ready: nothing below can fail. */
    if (fresh->auth_file)
        close_unproven_tunnels(p, r->users);
    if (r->users)
        auth_users_use(p->auth, r->users);
    r->users = NULL;
    if (auth)
        p->auth = auth;
    access_log_close(p->access_log);
    p->access_log = log;
    if (fresh->upstream_trust != p->cfg->upstream_trust) {
        tls_use_trust(p->tls, fresh);
        log_info("reload: the certificates upstreams are checked against were read again");
    }
    p->cfg = fresh;
    metrics_set_config(fresh);
    /* Options only read where they are used, from now on. */
    log_set_level(fresh->verbose ? LOG_DEBUG : LOG_INFO);
    trace_enabled = fresh->trace;
    intercept_set_ttl(p->intercept, fresh->passthrough_ttl);
    upstream_pool_set_idle_timeout(&p->pool, proxy_pool_idle_timeout(fresh));
    /* The configuration replaced: fresh holds its own reference to the
     * certificates. (The one from the start is main's, which releases it.) */
    if (p->cfg_owned)
        tls_trust_release(p->cfg_owned);
    free(p->cfg_owned);
    p->cfg_owned = fresh;
    r->fresh = NULL;
    hooks_replace(p, r->hooks);
    r->hooks = NULL;
    close_oldest_scripts(p);
    recheck_allowed(p);
    proxy_fit_descriptors(p); /* a new --max-connections */
    return;

fail:
    log_error("reload: %s; the running configuration stays", r->err);
fail_quietly:
    auth_free(auth);
    discard(r);
}

static void on_loaded(struct ev_loop *loop, ev_async *w, int revents)
{
    struct reload *r = w->data;
    (void)loop;
    (void)revents;
    if (!r->running)
        return;
    pthread_join(r->thread, NULL);
    r->running = 0;
    finish(r);
    if (r->again && !r->p->stopping) {
        r->again = 0;
        start(r);
    }
}

void reload_on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct proxy *p = w->data;
    struct reload *r = p->reload;
    (void)revents;

    if (!r) {
        r = p->reload = calloc(1, sizeof *r);
        if (!r) {
            log_error("reload: out of memory; the running configuration stays");
            return;
        }
        r->p = p;
        ev_async_init(&r->done, on_loaded);
        r->done.data = r;
        ev_async_start(loop, &r->done);
        /* It wakes the loop only when a load is done: it keeps no loop
         * running on its own (ev_run ends when the proxy's work does). */
        ev_unref(loop);
    }
    if (r->running) {
        r->again = 1; /* after the one loading now, with the files as they are then */
        return;
    }
    start(r);
}

void reload_free(struct proxy *p)
{
    struct reload *r = p->reload;
    if (!r)
        return;
    if (r->running)
        pthread_join(r->thread, NULL); /* bounded by the load time limit */
    ev_ref(p->loop);
    ev_async_stop(p->loop, &r->done);
    discard(r);
    free(r);
    p->reload = NULL;
}
