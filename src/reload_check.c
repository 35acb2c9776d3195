/*
 * reload_check.c - the supervisor's look at a reloaded configuration,
 * with the slow part on a thread (see reload_check.h).
 *
 * The same steps as a worker's reload (reload.c), made only to see that
 * they succeed: the file is read on the loop, the scripts are loaded into
 * a Lua state no one else sees and the users file read on a thread that
 * takes no signal and touches no loop, and an ev_async brings the verdict
 * back to the loop, where the access log is opened (a quick look, then
 * closed) and <done> is told.
 */
#include "reload_check.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "access_log.h"
#include "auth.h"
#include "config.h"
#include "hooks.h"
#include "log.h"
#include "tls_trust.h"

struct reload_check {
    struct ev_loop *loop;
    reload_check_done *done;
    void *arg;
    ev_async finished;  /* sent by the thread when its part is done */
    pthread_t thread;
    int running;        /* a check is on its thread */
    /* Made on the loop before the thread starts, read by it: */
    struct config *fresh;
    const struct config *running_cfg; /* the supervisor's, unchanged until done is told */
    /* Written by the thread, read by the loop once it is done: */
    int failed;
    char err[1024];
};

/* The thread: load the scripts aside and drop them, read the users file
 * and drop it, and read the upstream certificates if their files changed
 * (kept: a worker started later gets them with the configuration). */
static void *check_apart(void *arg)
{
    struct reload_check *rc = arg;
    struct hooks *hooks = NULL;

    rc->failed = hooks_prepare_apart(rc->fresh, &hooks, rc->err, sizeof rc->err) != 0;
    hooks_discard(hooks);
    if (!rc->failed && rc->fresh->auth_file) {
        struct auth_users *users = auth_users_read(rc->fresh->auth_file, rc->err, sizeof rc->err);
        rc->failed = users == NULL;
        auth_users_free(users);
    }
    if (!rc->failed)
        rc->failed = tls_trust_reload(rc->running_cfg, rc->fresh, rc->err, sizeof rc->err) != 0;
    ev_async_send(rc->loop, &rc->finished);
    return NULL;
}

static void on_finished(struct ev_loop *loop, ev_async *w, int revents)
{
    struct reload_check *rc = w->data;
    struct config *fresh = rc->fresh;
    (void)loop;
    (void)revents;

    if (!rc->running)
        return;
    pthread_join(rc->thread, NULL);
    rc->running = 0;
    rc->fresh = NULL;
    if (!rc->failed && fresh->access_log) {
        struct access_log *log =
            access_log_open(fresh->access_log, fresh->log_format, rc->err, sizeof rc->err);
        rc->failed = log == NULL;
        access_log_close(log);
    }
    if (rc->failed) {
        log_error("reload: %s; the running configuration stays", rc->err);
        tls_trust_release(fresh);
        free(fresh);
        fresh = NULL;
    }
    rc->done(rc->arg, fresh);
}

struct reload_check *reload_check_new(struct ev_loop *loop, reload_check_done *done, void *arg)
{
    struct reload_check *rc = calloc(1, sizeof *rc);

    if (!rc)
        return NULL;
    rc->loop = loop;
    rc->done = done;
    rc->arg = arg;
    ev_async_init(&rc->finished, on_finished);
    rc->finished.data = rc;
    ev_async_start(loop, &rc->finished);
    /* It wakes the loop only when a check is done: it keeps no loop
     * running on its own. */
    ev_unref(loop);
    return rc;
}

int reload_check_start(struct reload_check *rc, const struct config *running)
{
    sigset_t all, before;
    int err;

    rc->fresh = malloc(sizeof *rc->fresh);
    if (!rc->fresh) {
        log_error("reload: out of memory; the running configuration stays");
        return -1;
    }
    if (config_reload(running, rc->fresh, rc->err, sizeof rc->err) != 0) {
        log_error("reload: %s; the running configuration stays", rc->err);
        free(rc->fresh);
        rc->fresh = NULL;
        return -1;
    }
    rc->failed = 0;
    rc->running_cfg = running;
    /* The thread takes no signal: they are the loop's. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &before);
    err = pthread_create(&rc->thread, NULL, check_apart, rc);
    pthread_sigmask(SIG_SETMASK, &before, NULL);
    if (err != 0) {
        log_error("reload: cannot start a thread to check the scripts; the running "
                  "configuration stays");
        free(rc->fresh);
        rc->fresh = NULL;
        return -1;
    }
    rc->running = 1;
    return 0;
}

int reload_check_running(const struct reload_check *rc)
{
    return rc && rc->running;
}

void reload_check_free(struct reload_check *rc)
{
    if (!rc)
        return;
    if (rc->running)
        pthread_join(rc->thread, NULL); /* bounded by the load time limit */
    if (rc->fresh)
        tls_trust_release(rc->fresh);
    free(rc->fresh);
    ev_ref(rc->loop);
    ev_async_stop(rc->loop, &rc->finished);
    free(rc);
}
