/*
 * access_log.h - one line per exchange, in one of three formats.
 *
 * common:   127.0.0.1 - alice [26/Nov/2026:22:50:00 +0000] "GET http://h/ HTTP/1.1" 200 6 3
 * combined: the same with "referer" "user-agent" before the duration
 * json:     {"time":"2026-11-26T22:50:00Z","client":"127.0.0.1","user":"alice",
 *            "method":"GET","target":"http://h/","version":"HTTP/1.1","status":200,
 *            "bytes":6,"duration_ms":3.1,"referer":null,"user_agent":"curl/8",
 *            "upstream":"h:80","upstream_addr":"10.0.0.1:80","error":null}
 *
 * The text fields are CLF's (client, identity, user, time, request line,
 * status, body bytes sent) followed by the exchange's duration in
 * milliseconds, so CLF tools read them and the duration is there for those
 * who want it.
 */
#ifndef LUAPROXY_ACCESS_LOG_H
#define LUAPROXY_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct access_log;

/* Opens <path> for appending ("-" is stdout). NULL with <err> on failure. */
struct access_log *access_log_open(const char *path, enum log_format format, char *err,
                                   size_t err_len);
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
    const char *user;          /* NULL: not authenticated */
    const char *referer;       /* views of the request's fields, or NULL */
    size_t referer_len;
    const char *user_agent;
    size_t user_agent_len;
    const char *upstream;      /* "host:port" asked for, or NULL */
    const char *upstream_addr; /* the address connected to, or NULL */
    const char *error;         /* why the exchange failed, or NULL */
};

/* Whether the log wants the fields only some formats print (so the caller
 * can skip looking them up). */
int access_log_wants_details(const struct access_log *log);

/* Writes one line; request-line bytes that are not printable are escaped,
 * so a client cannot forge log lines. No-op when <log> is NULL. */
void access_log_write(struct access_log *log, const struct access_entry *e);

#endif
