/*
 * metrics.h - the counters (stats.h) as Prometheus text and as JSON, on
 * the admin listener: GET /metrics (no token, for scrapers) and GET
 * /status (token).
 */
#ifndef LUAPROXY_METRICS_H
#define LUAPROXY_METRICS_H

struct admin;
struct config;

/* Adds /metrics and /status to <a>. */
void metrics_register(struct admin *a);
/* The configuration /status describes (scripts, workers); call again after
 * a reload. The pointer must stay valid until the next call. */
void metrics_set_config(const struct config *cfg);

#endif
