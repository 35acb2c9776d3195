/*
 * test_upstream_pool.c - unit tests for which parked connection a request
 * may take.
 *
 * A connection to a parent proxy is the user's whose credentials it was
 * used with: the pool hands it only to a request with the same ones, never
 * to one with other credentials or with none, and a direct connection
 * (no credentials) never to a request that carries some. The place a
 * request asks for ends right before an unreadable page, so a comparison
 * that reads past it faults.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tap.h"
#include "upstream_pool.h"

/* One end of a fresh socket pair, as a parked upstream connection; the
 * other end is kept open so the connection looks alive. */
static int connected_fd(int *peer)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == -1) {
        perror("socketpair");
        exit(1);
    }
    *peer = sv[1];
    return sv[0];
}

/* <key> (with its NUL) right before an unreadable page. */
static const char *guarded(const char *key)
{
    return guarded_copy(key, strlen(key) + 1);
}

int main(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct upstream_pool pool;
    unsigned char alice[PARENT_CREDENTIALS_ID_LEN], bob[PARENT_CREDENTIALS_ID_LEN];
    int peers[4], fa, fb, fnone, fdirect;

    parent_credentials_id("Basic YWxpY2U6d29uZGVybGFuZA==", alice);
    parent_credentials_id("Basic Ym9iOmJ1aWxkZXI=", bob);
    upstream_pool_init(&pool, loop, 16, 8, 60.);

    fa = connected_fd(&peers[0]);
    upstream_pool_put(&pool, fa, "parent!127.0.0.1", 3128, alice, ev_now(loop));
    is_int(upstream_pool_take(&pool, guarded("parent!127.0.0.1"), 3128, bob), -1,
           "another user's credentials do not take alice's connection");
    is_int(upstream_pool_take(&pool, guarded("parent!127.0.0.1"), 3128, NULL), -1,
           "nor does a request without credentials");
    is_int(upstream_pool_take(&pool, guarded("parent!127.0.0.1"), 3128, alice), fa,
           "alice's credentials take it");
    is_int(pool.count, 0, "and it left the pool");

    /* Both parked at the same place: each goes to its own user. */
    upstream_pool_put(&pool, fa, "parent!127.0.0.1", 3128, alice, ev_now(loop));
    fb = connected_fd(&peers[1]);
    upstream_pool_put(&pool, fb, "parent!127.0.0.1", 3128, bob, ev_now(loop));
    fnone = connected_fd(&peers[2]);
    upstream_pool_put(&pool, fnone, "parent!127.0.0.1", 3128, NULL, ev_now(loop));
    is_int(upstream_pool_take(&pool, guarded("parent!127.0.0.1"), 3128, alice), fa,
           "alice gets hers, though bob's was parked later");
    is_int(upstream_pool_take(&pool, guarded("parent!127.0.0.1"), 3128, alice), -1,
           "and no other once hers is taken");
    is_int(upstream_pool_take(&pool, guarded("parent!127.0.0.1"), 3128, NULL), fnone,
           "no credentials: the connection used without any");
    is_int(upstream_pool_take(&pool, guarded("parent!127.0.0.1"), 3128, bob), fb, "bob gets his");

    /* A direct connection carries no credentials. */
    fdirect = connected_fd(&peers[3]);
    upstream_pool_put(&pool, fdirect, "example.com", 80, NULL, ev_now(loop));
    is_int(upstream_pool_take(&pool, guarded("example.com"), 80, alice), -1,
           "a direct connection is not taken with credentials");
    is_int(upstream_pool_take(&pool, guarded("EXAMPLE.com"), 80, NULL), fdirect,
           "but is without, the name matched case-insensitively");

    upstream_pool_put(&pool, fa, "parent!127.0.0.1", 3128, alice, ev_now(loop));
    upstream_pool_free(&pool);
    is_int(pool.count, 0, "freeing the pool closes what it holds");
    close(fb);
    close(fnone);
    close(fdirect);
    for (int i = 0; i < 4; i++)
        close(peers[i]);
    ev_loop_destroy(loop);
    return tap_done();
}
