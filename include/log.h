/*
 * log.h - timestamped diagnostic lines on stderr.
 *
 * One line per event: "2026-11-26T22:50:00.123Z info message". The access
 * log (one line per exchange) is separate: see access_log.h.
 */
#ifndef LUAPROXY_LOG_H
#define LUAPROXY_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_TRACE /* --trace: always shown */ };

/* Lines below <level> are dropped. Set once at startup. */
void log_set_level(enum log_level level);

/* A short tag put before every line of this process ("w2" for a worker),
 * so lines from several workers sharing stderr can be told apart. */
void log_set_tag(const char *tag);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether lines of <level> are shown: a caller on the hot path asks before
 * gathering the arguments of a line that would be dropped. */
int log_wants(enum log_level level);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
