/*
 * trace.h - --trace: the proxy's steps for each exchange, as they happen.
 *
 * One line per step on standard error:
 *
 *   ... trace c12 #57 +0.412ms src/exchange.c:exchange_begin head complete: 143 bytes
 *
 * "c12" is the connection (the session), "#57" the exchange on it (absent
 * between exchanges), "+0.412ms" the time since the exchange (else the
 * connection) began, and "src/file.c:function" where in the source the
 * step was taken, so a trace doubles as an index into the code. The same
 * "c12 #57" numbering is used by every other log line.
 *
 * Off by default and cheap when off: TRACE() is one predictable branch on
 * a flag set at startup (and by a reload); its arguments are not evaluated. Any module
 * may add steps (the TLS code does):
 *
 *   TRACE(s, "TLS handshake with %s done: %s", host, version);
 */
#ifndef LUAPROXY_TRACE_H
#define LUAPROXY_TRACE_H

struct session;

/* --trace: set at startup and by each reload, on the loop's thread. */
extern int trace_enabled;

#define TRACE(s, ...)                                                                \
    do {                                                                             \
        if (__builtin_expect(trace_enabled, 0))                                      \
            trace_step((s), __FILE__, __func__, __VA_ARGS__);                        \
    } while (0)

/* Writes one trace line for session <s> (NULL: no connection yet), naming
 * <file>:<func> as the place of the step. Use TRACE(), which passes them. */
void trace_step(const struct session *s, const char *file, const char *func, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

#endif
