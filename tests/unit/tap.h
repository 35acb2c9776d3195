/*
 * tap.h - a tiny Test Anything Protocol helper for the C unit tests.
 *
 *   ok(cond, "name %d", i);   one test point
 *   is_int(got, want, name);  compares and prints both on failure
 *   return tap_done();        prints the plan, exit status 1 on any failure
 *
 * guarded_copy() places bytes right before an unreadable page so a parser
 * that reads one byte too far faults at once instead of passing by luck.
 */
#ifndef LUAPROXY_TAP_H
#define LUAPROXY_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int tap_count, tap_failed;

__attribute__((format(printf, 2, 3))) static int ok(int cond, const char *fmt, ...)
{
    va_list ap;
    tap_count++;
    if (!cond)
        tap_failed++;
    printf("%s %d - ", cond ? "ok" : "not ok", tap_count);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    return cond;
}

#define is_int(got, want, name)                                                          \
    do {                                                                                 \
        long long got_ = (long long)(got), want_ = (long long)(want);                    \
        if (!ok(got_ == want_, "%s", name))                                              \
            printf("#   got %lld, want %lld\n", got_, want_);                             \
    } while (0)

#define is_str(got, got_len, want, name)                                                 \
    do {                                                                                 \
        size_t want_len_ = strlen(want);                                                 \
        if (!ok((got_len) == want_len_ && memcmp((got), (want), want_len_) == 0, "%s",   \
                name))                                                                   \
            printf("#   got '%.*s', want '%s'\n", (int)(got_len), (got), (want));         \
    } while (0)

static int tap_done(void)
{
    printf("1..%d\n", tap_count);
    return tap_failed ? 1 : 0;
}

/* Copies <len> bytes so that they end exactly at a PROT_NONE page. The
 * mapping is leaked on purpose: tests are short-lived. */
static const char *guarded_copy(const char *src, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t span = (len + page - 1) / page * page + page;
    char *base = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    mprotect(base + span - page, page, PROT_NONE);
    char *dst = base + span - page - len;
    memcpy(dst, src, len);
    return dst;
}

#endif
