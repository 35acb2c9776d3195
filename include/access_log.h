/*
 * access_log.h - one line per exchange, Common Log Format plus duration.
 *
 *   127.0.0.1 - - [26/Nov/2026:22:50:00 +0000] "GET http://h/ HTTP/1.1" 200 6 3
 *
 * The fields are CLF's (client, identity, user, time, request line, status,
 * body bytes sent) followed by the exchange's duration in milliseconds, so
 * CLF tools read it and the duration is there for those who want it.
 */
#ifndef LUAPROXY_ACCESS_LOG_H
#define LUAPROXY_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

struct access_log;

/* Opens <path> for appending ("-" is stdout). NULL with <err> on failure. */
struct access_log *access_log_open(const char *path, char *err, size_t err_len);
void access_log_close(struct access_log *log);

struct access_entry {
    const char *client_ip;
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    int version_minor;
    int status;
    uint64_t bytes;
    double duration_ms;
};

/* Writes one line; request-line bytes that are not printable are escaped,
 * so a client cannot forge log lines. No-op when <log> is NULL. */
void access_log_write(struct access_log *log, const struct access_entry *e);

#endif
