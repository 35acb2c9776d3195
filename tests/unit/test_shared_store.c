/*
 * test_shared_store.c - unit tests for the shared memory backend of
 * proxy.shared: types survive, TTLs expire (on a clock the test drives),
 * incr counts from 0 and keeps integers exact, a full store evicts the
 * least recently used keys, and two processes count together.
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared_backend.h"
#include "tap.h"

static struct shared_region *region;

static enum shared_status call(enum shared_op op, const char *key, struct shared_value v,
                               double ttl, double now, struct shared_reply *reply)
{
    struct shared_request rq = {op, key, strlen(key), v, ttl};
    buffer_free(&reply->text);
    buffer_init(&reply->text);
    return shm_call(region, &rq, reply, now);
}

static struct shared_value str(const char *s)
{
    return (struct shared_value){.type = SHARED_STRING, .s = s, .len = strlen(s)};
}

static struct shared_value integer(int64_t i)
{
    return (struct shared_value){.type = SHARED_INTEGER, .i = i};
}

int main(void)
{
    char err[128];
    struct shared_reply r;
    struct shared_value none = {.type = SHARED_NIL};

    buffer_init(&r.text);
    ok(shared_region_create(1000, err, sizeof err) == NULL, "a tiny region is refused");
    region = shared_region_create(256 * 1024, err, sizeof err);
    ok(region != NULL, "region created");

    call(SHARED_GET, "missing", none, 0, 100, &r);
    is_int(r.value.type, SHARED_NIL, "a missing key is nil");

    call(SHARED_SET, "s", str("hello"), 0, 100, &r);
    call(SHARED_GET, "s", none, 0, 100, &r);
    ok(r.value.type == SHARED_STRING && r.value.len == 5 && memcmp(r.value.s, "hello", 5) == 0,
       "a string comes back as a string");
    call(SHARED_SET, "i", integer(-42), 0, 100, &r);
    call(SHARED_GET, "i", none, 0, 100, &r);
    ok(r.value.type == SHARED_INTEGER && r.value.i == -42, "an integer comes back as one");
    call(SHARED_SET, "f", (struct shared_value){.type = SHARED_FLOAT, .f = 1.5}, 0, 100, &r);
    call(SHARED_GET, "f", none, 0, 100, &r);
    ok(r.value.type == SHARED_FLOAT && r.value.f == 1.5, "a float comes back as one");
    call(SHARED_SET, "b", (struct shared_value){.type = SHARED_BOOLEAN, .i = 0}, 0, 100, &r);
    call(SHARED_GET, "b", none, 0, 100, &r);
    ok(r.value.type == SHARED_BOOLEAN && r.value.i == 0, "false comes back as false");

    {
        /* A value longer than many blocks survives byte for byte. */
        char *big = malloc(SHARED_MAX_VALUE);
        for (int i = 0; i < SHARED_MAX_VALUE; i++)
            big[i] = (char)('a' + i % 26);
        struct shared_value v = {.type = SHARED_STRING, .s = big, .len = SHARED_MAX_VALUE};
        is_int(call(SHARED_SET, "big", v, 0, 100, &r), SHARED_DONE, "a 64 KiB value fits");
        call(SHARED_GET, "big", none, 0, 100, &r);
        ok(r.value.len == SHARED_MAX_VALUE && memcmp(r.value.s, big, SHARED_MAX_VALUE) == 0,
           "a 64 KiB value comes back intact");
        call(SHARED_DELETE, "big", none, 0, 100, &r);
        call(SHARED_GET, "big", none, 0, 100, &r);
        is_int(r.value.type, SHARED_NIL, "delete removes the key");
        free(big);
    }

    call(SHARED_SET, "t", str("x"), 10, 100, &r);
    call(SHARED_GET, "t", none, 0, 109.9, &r);
    is_int(r.value.type, SHARED_STRING, "before its TTL a key is there");
    call(SHARED_GET, "t", none, 0, 110.1, &r);
    is_int(r.value.type, SHARED_NIL, "after its TTL it is gone");

    {
        /* The key is read no further than its length. */
        struct shared_request rq = {SHARED_GET, guarded_copy("s", 1), 1, none, 0};
        buffer_free(&r.text);
        shm_call(region, &rq, &r, 100);
        is_int(r.value.type, SHARED_STRING, "a key ending at an unreadable page");
    }
    call(SHARED_INCR, "n", integer(1), 0, 100, &r);
    ok(r.value.type == SHARED_INTEGER && r.value.i == 1, "incr counts from 0");
    call(SHARED_INCR, "n", integer(41), 0, 100, &r);
    is_int(r.value.i, 42, "incr adds");
    call(SHARED_INCR, "n", (struct shared_value){.type = SHARED_FLOAT, .f = 0.5}, 0, 100, &r);
    ok(r.value.type == SHARED_FLOAT && r.value.f == 42.5, "a float step makes a float");
    is_int(call(SHARED_INCR, "s", integer(1), 0, 100, &r), SHARED_FAILED,
           "incr on a string fails");
    call(SHARED_SET, "max", integer(INT64_MAX), 0, 100, &r);
    is_int(call(SHARED_INCR, "max", integer(1), 0, 100, &r), SHARED_FAILED,
           "integer overflow fails");

    /* A window counter: the TTL starts with the first incr and is kept. */
    call(SHARED_INCR, "w", integer(1), 10, 100, &r);
    call(SHARED_INCR, "w", integer(1), 10, 105, &r);
    call(SHARED_GET, "w", none, 0, 109, &r);
    is_int(r.value.i, 2, "window counter counts");
    call(SHARED_GET, "w", none, 0, 111, &r);
    is_int(r.value.type, SHARED_NIL, "window counter expires with its first TTL");

    {
        /* Fill the store: the least recently used keys go first. */
        char key[32];
        int present_first, present_old;
        call(SHARED_SET, "keep", str("me"), 0, 100, &r);
        for (int i = 0; i < 5000; i++) {
            snprintf(key, sizeof key, "k%d", i);
            call(SHARED_SET, key, str("0123456789012345678901234567890123456789"), 0, 100, &r);
            if (i % 100 == 0)
                call(SHARED_GET, "keep", none, 0, 100, &r); /* used often: stays */
        }
        call(SHARED_GET, "keep", none, 0, 100, &r);
        present_first = r.value.type == SHARED_STRING;
        call(SHARED_GET, "k0", none, 0, 100, &r);
        present_old = r.value.type != SHARED_NIL;
        ok(present_first, "a recently used key survives eviction");
        ok(!present_old, "the least recently used key was evicted");
        call(SHARED_GET, "k4999", none, 0, 100, &r);
        is_int(r.value.type, SHARED_STRING, "the newest key is there");
    }

    {
        /* Two processes increment one counter: no update is lost. */
        pid_t pid;
        int status;
        call(SHARED_DELETE, "shared", none, 0, 100, &r);
        pid = fork();
        if (pid == 0) {
            struct shared_reply cr;
            buffer_init(&cr.text);
            for (int i = 0; i < 20000; i++)
                call(SHARED_INCR, "shared", integer(1), 0, 100, &cr);
            _exit(0);
        }
        for (int i = 0; i < 20000; i++)
            call(SHARED_INCR, "shared", integer(1), 0, 100, &r);
        waitpid(pid, &status, 0);
        call(SHARED_GET, "shared", none, 0, 100, &r);
        is_int(r.value.i, 40000, "two processes count together");
    }

    buffer_free(&r.text);
    shared_region_destroy(region);
    return tap_done();
}
