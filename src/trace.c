/*
 * trace.c - writing --trace lines (see trace.h). Owns only the format; the
 * steps themselves are TRACE() calls next to the code that takes them.
 */
#include "trace.h"

#include <stdarg.h>
#include <stdio.h>

#include "log.h"
#include "session.h"

int trace_enabled;

void trace_step(const struct session *s, const char *file, const char *func, const char *fmt,
                ...)
{
    char msg[1024], who[64] = "-";
    double since = 0;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (s && s->x.id) {
        snprintf(who, sizeof who, "c%llu #%llu", (unsigned long long)s->id,
                 (unsigned long long)s->x.id);
        since = ev_time() - s->x.started;
    } else if (s) {
        snprintf(who, sizeof who, "c%llu", (unsigned long long)s->id);
        since = ev_time() - s->accepted;
    }
    log_msg(LOG_TRACE, "%s +%.3fms %s:%s %s", who, since * 1000.0, file, func, msg);
}
