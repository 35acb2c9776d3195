/*
 * test_auth.c - unit tests for the users file and the checks of auth.c.
 *
 * The file is read on the event loop at every SIGHUP, so its checks must
 * stay cheap for the largest file accepted (100,000 users); a duplicate is
 * still reported at the line where it repeats. (Comparing each line with
 * all before it took half a minute here for this file.) Checks run on the real
 * thread pool under a private loop, with SHA-512 crypt hashes of few
 * rounds so that a verdict comes back at once.
 */
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>

#include "auth.h"
#include "base64.h"
#include "tap.h"

static char dir[] = "/tmp/luaproxy-auth-XXXXXX";

/* A cheap hash of <password> ($6$ at its default 5000 rounds: milliseconds). */
static const char *cheap_hash(const char *password)
{
    static struct crypt_data data;
    return crypt_r(password, "$6$testsalt$", &data);
}

/* Writes <text> to a file in the test directory; returns its path. */
static const char *write_users(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) == EOF || fclose(f) != 0) {
        printf("# cannot write %s\n", path);
        exit(1);
    }
    return path;
}

static const char *basic(const char *user, const char *password)
{
    static char out[512];
    char in[256];
    int n = snprintf(in, sizeof in, "%s:%s", user, password);
    memcpy(out, "Basic ", 6);
    base64_encode((const unsigned char *)in, (size_t)n, out + 6, BASE64_STANDARD);
    out[6 + base64_encoded_len((size_t)n, BASE64_STANDARD)] = '\0';
    return out;
}

struct verdict {
    int calls;
    int ok;
};

static void on_done(void *arg, enum auth_result verdict, const char *user)
{
    struct verdict *v = arg;
    (void)user;
    v->calls++;
    v->ok = verdict == AUTH_OK;
}

/* The verdict on the Proxy-Authorization <value> from <client>: 1 good,
 * 0 refused. */
static int check_value(struct auth *a, struct ev_loop *loop, const char *value,
                       const char *client)
{
    char name[AUTH_USER_MAX];
    struct verdict v = {0, 0};
    struct auth_job *job;
    enum auth_result r =
        auth_check(a, 1, value, strlen(value), client, name, sizeof name, on_done, &v, &job);
    if (r != AUTH_PENDING)
        return r == AUTH_OK;
    while (v.calls == 0)
        ev_run(loop, EVRUN_ONCE);
    return v.ok;
}

/* The verdict on <user>:<password> from <client>: 1 good, 0 refused. */
static int check(struct auth *a, struct ev_loop *loop, const char *user, const char *password,
                 const char *client)
{
    return check_value(a, loop, basic(user, password), client);
}

/* "ab:c" is YWI6Yw== and nothing else: the same bytes spelled with
 * leftover bits set (YWI6Yx==) are refused, so no two texts of one
 * credential exist. */
static void test_one_spelling(void)
{
    char err[512];
    char text[256];
    snprintf(text, sizeof text, "ab:%s\n", cheap_hash("c"));
    const char *path = write_users("spelling", text);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct auth *a = auth_open(path, loop, err, sizeof err);
    ok(a != NULL, "a one-user file is accepted");
    if (a) {
        ok(check_value(a, loop, "Basic YWI6Yw==", "192.0.2.1"), "YWI6Yw== is ab:c");
        ok(!check_value(a, loop, "Basic YWI6Yx==", "192.0.2.1"),
           "YWI6Yx== (leftover bits set) is refused");
        ok(!check_value(a, loop, "Basic YWI6Yw", "192.0.2.1"), "missing padding is refused");
    }
    auth_free(a);
    ev_loop_destroy(loop);
}

static void test_duplicates(void)
{
    char err[512];
    const char *h = cheap_hash("x");
    char text[1024];
    snprintf(text, sizeof text, "carol:%s\nbob:%s\n# note\nalice:%s\nbob:%s\ncarol:%s\n", h, h, h,
             h, h);
    const char *path = write_users("twice", text);
    struct auth *a = auth_open(path, NULL, err, sizeof err);
    ok(a == NULL, "a user named twice is refused");
    char want[300];
    snprintf(want, sizeof want, "%s:5: user 'bob' appears twice", path);
    is_str(err, strlen(err), want, "the first repeat in file order is named, with its line");
    auth_free(a);
}

/* The longest line there is room for is taken at the end of the file
 * without its newline too; one byte more is too long, either way. */
static void test_long_last_line(void)
{
    char text[1200], err[512];
    int n = snprintf(text, sizeof text, "alice:%s\n", cheap_hash("secret"));
    const char *path;
    struct auth_users *u;

    memset(text + n, 'x', 1023);
    text[n] = '#';
    text[n + 1023] = '\0';
    path = write_users("long-last", text);
    u = auth_users_read(path, err, sizeof err);
    if (!ok(u != NULL, "a last line of 1023 bytes without a newline is read"))
        printf("#   %s\n", err);
    auth_users_free(u);

    text[n + 1023] = 'x';
    text[n + 1024] = '\0';
    path = write_users("too-long-last", text);
    u = auth_users_read(path, err, sizeof err);
    ok(u == NULL && strstr(err, "line too long"), "one of 1024 bytes is too long");
    auth_users_free(u);
}

static void test_large_file(void)
{
    enum { USERS = 99999 }; /* one below the cap, so that a repeat still fits */
    char err[512], name[32];
    const char *h = cheap_hash("secret");
    char path[256];
    snprintf(path, sizeof path, "%s/large", dir);
    FILE *f = fopen(path, "w");
    /* Written in an order unlike the sorted one, to exercise the sort. */
    for (int i = 0; f && i < USERS; i++)
        fprintf(f, "user%05d:%s\n", (int)((i * 7919L) % USERS), h);
    if (!f || fclose(f) != 0) {
        printf("# cannot write %s\n", path);
        exit(1);
    }

    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct auth *a = auth_open(path, loop, err, sizeof err);
    if (!ok(a != NULL, "a file of %d users is accepted", USERS))
        printf("#   %s\n", err);
    if (a) {
        ok(check(a, loop, "user99998", "secret", "192.0.2.1"), "the last name is found");
        ok(check(a, loop, "user00000", "secret", "192.0.2.1"), "the first name is found");
        ok(!check(a, loop, "user99998", "wrong", "192.0.2.1"), "a wrong password is refused");
        ok(!check(a, loop, "user100000", "secret", "192.0.2.1"), "an unknown name is refused");
    }

    /* One more line repeating a name: refused at that line. */
    f = fopen(path, "a");
    if (f) {
        fprintf(f, "user04242:%s\n", h);
        fclose(f);
    }
    struct auth_users *again = auth_users_read(path, err, sizeof err);
    ok(again == NULL, "a repeated name in a large file is refused");
    auth_users_free(again);
    snprintf(name, sizeof name, ":%d: user 'user04242'", USERS + 1);
    ok(strstr(err, name) != NULL, "it is named with its line: %s", err);
    auth_free(a);
    ev_loop_destroy(loop);
}

/* A reload keeps a tunnel whose user it keeps with the same hash, and no
 * other: not a changed password, a removed user, or one never proven. */
static void test_user_kept(void)
{
    char err[512], text[512], ha[128], hb[128], hn[128];
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct auth_users *fresh;

    snprintf(ha, sizeof ha, "%s", cheap_hash("a"));
    snprintf(hb, sizeof hb, "%s", cheap_hash("b"));
    snprintf(hn, sizeof hn, "%s", cheap_hash("new"));
    snprintf(text, sizeof text, "alice:%s\nbob:%s\ncarol:%s\n", ha, hb, hb);
    struct auth *a = auth_open(write_users("kept", text), loop, err, sizeof err);
    if (!ok(a != NULL, "kept: the file is read"))
        return;
    snprintf(text, sizeof text, "alice:%s\ncarol:%s\ndave:%s\n", hn, hb, ha);
    fresh = auth_users_read(write_users("kept", text), err, sizeof err);
    ok(fresh != NULL, "kept: the fresh file is read");
    ok(auth_user_kept(a, fresh, "carol"), "kept: the same user and hash");
    ok(!auth_user_kept(a, fresh, "alice"), "kept: not with a changed password");
    ok(!auth_user_kept(a, fresh, "bob"), "kept: not once removed");
    ok(!auth_user_kept(a, fresh, "dave"), "kept: not a user new to the file");
    ok(!auth_user_kept(a, fresh, NULL) && !auth_user_kept(a, fresh, ""),
       "kept: not a tunnel that proved no one");
    ok(!auth_user_kept(NULL, fresh, "carol"), "kept: not when no users were in force");
    auth_users_free(fresh);
    auth_free(a);
    ev_loop_destroy(loop);
}

/* A tunnel's stamp holds across reloads that keep its user as it was,
 * and stops holding once the user is gone or has another hash. */
static void test_stamp(void)
{
    char err[512], text[512], ha[128], hb[128], hn[128];
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct auth_stamp st;
    struct auth_users *u;

    /* (cheap_hash answers in one static buffer) */
    snprintf(ha, sizeof ha, "%s", cheap_hash("a"));
    snprintf(hb, sizeof hb, "%s", cheap_hash("b"));
    snprintf(hn, sizeof hn, "%s", cheap_hash("new"));
    snprintf(text, sizeof text, "alice:%s\nbob:%s\n", ha, hb);
    struct auth *a = auth_open(write_users("stamp", text), loop, err, sizeof err);
    if (!ok(a != NULL, "stamp: the file is read"))
        return;
    auth_stamp_user(a, "nobody", &st);
    ok(!auth_stamp_holds(a, "nobody", &st), "stamp: an unknown user's never holds");
    auth_stamp_user(a, "alice", &st);
    ok(auth_stamp_holds(a, "alice", &st), "stamp: holds while the file is not read again");
    u = auth_users_read(write_users("stamp", text), err, sizeof err);
    auth_users_use(a, u);
    ok(auth_stamp_holds(a, "alice", &st), "stamp: holds after a reload that kept the user");
    snprintf(text, sizeof text, "alice:%s\nbob:%s\n", hn, hb);
    auth_users_use(a, auth_users_read(write_users("stamp", text), err, sizeof err));
    ok(!auth_stamp_holds(a, "alice", &st), "stamp: a changed password ends it");
    auth_stamp_user(a, "bob", &st);
    snprintf(text, sizeof text, "alice:%s\n", hn);
    auth_users_use(a, auth_users_read(write_users("stamp", text), err, sizeof err));
    ok(!auth_stamp_holds(a, "bob", &st), "stamp: a removed user's ends");
    auth_free(a);
    ev_loop_destroy(loop);
}

/* The key checks count under: an IPv6 client by its /64. */
static void test_client_key(void)
{
    static const char *const cases[][2] = {
        {"192.0.2.7", "192.0.2.7"},
        {"::ffff:192.0.2.7", "192.0.2.7"},
        {"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
        {"2001:db8:1:2::ffff", "2001:db8:1:2::/64"},
        {"::1", "::/64"},
        {"fe80::1", "fe80::/64"},
        {"not an address", "not an address"},
    };
    char key[AUTH_CLIENT_KEY_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        auth_client_key(cases[i][0], key, sizeof key);
        is_str(key, strlen(key), cases[i][1], cases[i][0]);
    }
}

static void count_done(void *arg, enum auth_result verdict, const char *user)
{
    (void)verdict;
    (void)user;
    (*(int *)arg)++;
}

/* One client has at most 4 checks in the pool and 16 held: an IPv6
 * client that changes its address within its /64 is still one client. */
static void test_ipv6_client_fairness(void)
{
    char err[512], name[AUTH_USER_MAX], ip[64];
    char text[256];
    snprintf(text, sizeof text, "alice:%s\n", cheap_hash("secret"));
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct auth *a = auth_open(write_users("fair", text), loop, err, sizeof err);
    struct auth_job *job;
    int done = 0, pending = 0, busy = 0;
    enum auth_result r;

    if (!ok(a != NULL, "users for the fairness test"))
        return;
    for (int i = 1; i <= 21; i++) {
        /* distinct wrong passwords: none is answered from memory */
        char password[32];
        snprintf(password, sizeof password, "guess%d", i);
        snprintf(ip, sizeof ip, "2001:db8:0:1::%x", i);
        const char *value = basic("alice", password);
        r = auth_check(a, 1, value, strlen(value), ip, name, sizeof name, count_done, &done, &job);
        pending += r == AUTH_PENDING;
        busy += r == AUTH_BUSY;
    }
    is_int(pending, 20, "20 checks from one /64 wait, each from its own address");
    is_int(busy, 1, "  ... and the 21st is refused: they are one client");
    const char *value = basic("alice", "guess-other");
    r = auth_check(a, 1, value, strlen(value), "2001:db8:0:2::1", name, sizeof name, count_done,
                   &done, &job);
    ok(r == AUTH_PENDING, "  ... while a client of another /64 is let in");
    pending += r == AUTH_PENDING;
    while (done < pending)
        ev_run(loop, EVRUN_ONCE);
    auth_free(a);
    ev_loop_destroy(loop);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    (void)guarded_copy; /* files, not buffers: nothing to guard here */
    test_duplicates();
    test_one_spelling();
    test_long_last_line();
    test_large_file();
    test_client_key();
    test_ipv6_client_fairness();
    test_stamp();
    test_user_kept();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return tap_done();
}
