/*
 * metrics.c - renders the shared counters for the admin listener.
 *
 * /metrics follows the Prometheus text format and its naming conventions:
 * the luaproxy_ prefix, _total on counters, base units (seconds, bytes),
 * a HELP and TYPE line for each family; `promtool check metrics` accepts
 * it. /status is the same numbers as one JSON object, plus what a person
 * checking on the proxy wants to see: version, uptime, workers, scripts.
 * This file only reads; the relay writes through stats.h.
 */
#include "metrics.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "buffer.h"
#include "config.h"
#include "json_out.h"
#include "stats.h"

static const struct config *current_cfg;

static const char *const phase_names[STATS_HOOK_PHASES] = {
    "on_request", "before_connect", "on_response", "on_response_chunk", "on_done",
    "on_request_chunk",
};

void metrics_set_config(const struct config *cfg)
{
    current_cfg = cfg;
}

static void family(struct buffer *b, const char *name, const char *type, const char *help)
{
    buffer_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void single(struct buffer *b, const char *name, const char *type, const char *help,
                   enum stats_counter c)
{
    family(b, name, type, help);
    buffer_printf(b, "%s %lld\n", name, (long long)stats_total(c));
}

static void render_prometheus(struct buffer *b)
{
    family(b, "luaproxy_requests_total", "counter",
           "Requests answered, by method and status class.");
    for (int m = 0; m < STATS_METHOD_COUNT; m++)
        for (int s = 0; s < STATS_STATUS_CLASSES; s++)
            buffer_printf(b, "luaproxy_requests_total{method=\"%s\",code=\"%dxx\"} %lld\n",
                          stats_method_name((enum stats_method)m), s + 1,
                          (long long)stats_total((enum stats_counter)(
                              STAT_REQUESTS + m * STATS_STATUS_CLASSES + s)));
    single(b, "luaproxy_received_bytes_total", "counter",
           "Bytes received from clients: request bodies and tunnel bytes.", STAT_BYTES_IN);
    single(b, "luaproxy_sent_bytes_total", "counter",
           "Bytes sent to clients: response bodies and tunnel bytes.", STAT_BYTES_OUT);
    single(b, "luaproxy_connections_accepted_total", "counter", "Client connections accepted.",
           STAT_CONNECTIONS_ACCEPTED);
    single(b, "luaproxy_connections_open", "gauge", "Client connections open now.",
           STAT_CONNECTIONS_OPEN);
    single(b, "luaproxy_connections_reclaimed_total", "counter",
           "Idle keep-alive clients closed at --max-connections to make room for a new client.",
           STAT_CONNECTIONS_RECLAIMED);
    single(b, "luaproxy_tunnels_open", "gauge", "CONNECT and upgrade tunnels open now.",
           STAT_TUNNELS_OPEN);
    single(b, "luaproxy_upstream_connect_errors_total", "counter",
           "Connections to upstreams (or the parent proxy) that failed.",
           STAT_UPSTREAM_CONNECT_ERRORS);
    single(b, "luaproxy_upstream_timeouts_total", "counter",
           "Upstream connects, lookups or responses that timed out.", STAT_UPSTREAM_TIMEOUTS);
    single(b, "luaproxy_dns_lookups_total", "counter", "Upstream name lookups.",
           STAT_DNS_LOOKUPS);
    family(b, "luaproxy_dns_lookup_seconds_total", "counter", "Time spent waiting for lookups.");
    buffer_printf(b, "luaproxy_dns_lookup_seconds_total %.6f\n",
                  (double)stats_total(STAT_DNS_MICROSECONDS) / 1e6);
    single(b, "luaproxy_auth_failures_total", "counter",
           "Requests with wrong or malformed proxy credentials.", STAT_AUTH_FAILURES);
    single(b, "luaproxy_auth_checks_total", "counter",
           "Passwords verified (the rest were answered from the cache).", STAT_AUTH_CHECKS);
    single(b, "luaproxy_auth_pending", "gauge",
           "Proxy credential checks waiting for the pool or running.", STAT_AUTH_PENDING);
    single(b, "luaproxy_flow_capture_bytes", "gauge",
           "Body bytes kept by flow captures still in flight (at most --flows-memory).",
           STAT_FLOW_CAPTURE_BYTES);

    family(b, "luaproxy_log_lines_dropped_total", "counter",
           "Log lines dropped because their output did not keep up or failed, by log.");
    buffer_printf(b, "luaproxy_log_lines_dropped_total{log=\"diagnostics\"} %lld\n",
                  (long long)stats_total(STAT_LOG_LINES_DROPPED));
    buffer_printf(b, "luaproxy_log_lines_dropped_total{log=\"access\"} %lld\n",
                  (long long)stats_total(STAT_ACCESS_LOG_LINES_DROPPED));

    family(b, "luaproxy_hook_calls_total", "counter", "Script hook calls, by hook.");
    for (int p = 0; p < STATS_HOOK_PHASES; p++)
        buffer_printf(b, "luaproxy_hook_calls_total{hook=\"%s\"} %lld\n", phase_names[p],
                      (long long)stats_total((enum stats_counter)(STAT_HOOK_CALLS + p)));
    family(b, "luaproxy_hook_errors_total", "counter", "Script hook calls that failed.");
    for (int p = 0; p < STATS_HOOK_PHASES; p++)
        buffer_printf(b, "luaproxy_hook_errors_total{hook=\"%s\"} %lld\n", phase_names[p],
                      (long long)stats_total((enum stats_counter)(STAT_HOOK_ERRORS + p)));
    family(b, "luaproxy_hook_timeouts_total", "counter",
           "Script hook calls stopped for exceeding --hook-timeout.");
    for (int p = 0; p < STATS_HOOK_PHASES; p++)
        buffer_printf(b, "luaproxy_hook_timeouts_total{hook=\"%s\"} %lld\n", phase_names[p],
                      (long long)stats_total((enum stats_counter)(STAT_HOOK_TIMEOUTS + p)));
    family(b, "luaproxy_hook_duration_seconds", "histogram", "Time one hook call ran.");
    for (int p = 0; p < STATS_HOOK_PHASES; p++) {
        long long cumulative = 0;
        for (int i = 0; i < STATS_HOOK_BUCKETS; i++) {
            cumulative += (long long)stats_total(
                (enum stats_counter)(STAT_HOOK_BUCKET + p * STATS_HOOK_BUCKETS + i));
            buffer_printf(b, "luaproxy_hook_duration_seconds_bucket{hook=\"%s\",le=\"%g\"} %lld\n",
                          phase_names[p], stats_hook_bounds[i], cumulative);
        }
        long long calls = (long long)stats_total((enum stats_counter)(STAT_HOOK_CALLS + p));
        buffer_printf(b, "luaproxy_hook_duration_seconds_bucket{hook=\"%s\",le=\"+Inf\"} %lld\n",
                      phase_names[p], calls);
        buffer_printf(b, "luaproxy_hook_duration_seconds_sum{hook=\"%s\"} %.6f\n", phase_names[p],
                      (double)stats_total((enum stats_counter)(STAT_HOOK_MICROSECONDS + p)) / 1e6);
        buffer_printf(b, "luaproxy_hook_duration_seconds_count{hook=\"%s\"} %lld\n",
                      phase_names[p], calls);
    }
    family(b, "luaproxy_start_time_seconds", "gauge", "When the proxy started, in Unix time.");
    buffer_printf(b, "luaproxy_start_time_seconds %.0f\n", stats_start_time());
    family(b, "luaproxy_build_info", "gauge", "The version of this build; always 1.");
    buffer_printf(b, "luaproxy_build_info{version=\"%s\"} 1\n", LUAPROXY_VERSION);
}

static void on_metrics(struct admin_conn *c, const struct admin_request *r, void *arg)
{
    struct buffer b;
    (void)r;
    (void)arg;
    buffer_init(&b);
    render_prometheus(&b);
    admin_reply_buffer(c, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
    buffer_free(&b);
}

static void render_status(struct buffer *b)
{
    const struct config *cfg = current_cfg;
    double now = (double)time(NULL), start = stats_start_time();
    long long requests = 0;
    int first = 1;

    for (int i = 0; i < STATS_METHOD_COUNT * STATS_STATUS_CLASSES; i++)
        requests += (long long)stats_total((enum stats_counter)(STAT_REQUESTS + i));
    buffer_printf(b, "{\"version\":\"%s\",\"pid\":%ld,\"start_time\":%.0f,\"uptime_seconds\":%.0f,",
                  LUAPROXY_VERSION, (long)getpid(), start, now - start);
    buffer_append_str(b, "\"workers\":[");
    for (int row = 0; row < stats_rows(); row++) {
        pid_t pid = stats_row_pid(row);
        if (pid == 0)
            continue;
        buffer_printf(b, "%s{\"worker\":%d,\"pid\":%ld}", first ? "" : ",", row, (long)pid);
        first = 0;
    }
    buffer_append_str(b, "],\"scripts\":[");
    for (int i = 0; cfg && i < cfg->script_count; i++) {
        if (i)
            buffer_append_str(b, ",");
        json_cstring(b, cfg->scripts[i]); /* a path: UTF-8 kept as such */
    }
    buffer_printf(b, "],\"requests\":%lld,\"requests_by_class\":{", requests);
    for (int m = 0; m < STATS_METHOD_COUNT; m++) {
        buffer_printf(b, "%s\"%s\":{", m ? "," : "", stats_method_name((enum stats_method)m));
        for (int s = 0; s < STATS_STATUS_CLASSES; s++)
            buffer_printf(b, "%s\"%dxx\":%lld", s ? "," : "", s + 1,
                          (long long)stats_total((enum stats_counter)(
                              STAT_REQUESTS + m * STATS_STATUS_CLASSES + s)));
        buffer_append_str(b, "}");
    }
    buffer_printf(b,
                  "},\"received_bytes\":%lld,\"sent_bytes\":%lld,\"connections_accepted\":%lld,"
                  "\"connections_open\":%lld,\"connections_reclaimed\":%lld,"
                  "\"tunnels_open\":%lld,"
                  "\"upstream_connect_errors\":%lld,\"upstream_timeouts\":%lld,"
                  "\"dns_lookups\":%lld,\"dns_lookup_seconds\":%.6f,\"auth_failures\":%lld,"
                  "\"auth_checks\":%lld,\"auth_pending\":%lld,",
                  (long long)stats_total(STAT_BYTES_IN), (long long)stats_total(STAT_BYTES_OUT),
                  (long long)stats_total(STAT_CONNECTIONS_ACCEPTED),
                  (long long)stats_total(STAT_CONNECTIONS_OPEN),
                  (long long)stats_total(STAT_CONNECTIONS_RECLAIMED),
                  (long long)stats_total(STAT_TUNNELS_OPEN),
                  (long long)stats_total(STAT_UPSTREAM_CONNECT_ERRORS),
                  (long long)stats_total(STAT_UPSTREAM_TIMEOUTS),
                  (long long)stats_total(STAT_DNS_LOOKUPS),
                  (double)stats_total(STAT_DNS_MICROSECONDS) / 1e6,
                  (long long)stats_total(STAT_AUTH_FAILURES),
                  (long long)stats_total(STAT_AUTH_CHECKS),
                  (long long)stats_total(STAT_AUTH_PENDING));
    buffer_append_str(b, "\"hooks\":{");
    for (int p = 0; p < STATS_HOOK_PHASES; p++)
        buffer_printf(b, "%s\"%s\":{\"calls\":%lld,\"errors\":%lld,\"timeouts\":%lld,\"seconds\":%.6f}",
                      p ? "," : "", phase_names[p],
                      (long long)stats_total((enum stats_counter)(STAT_HOOK_CALLS + p)),
                      (long long)stats_total((enum stats_counter)(STAT_HOOK_ERRORS + p)),
                      (long long)stats_total((enum stats_counter)(STAT_HOOK_TIMEOUTS + p)),
                      (double)stats_total((enum stats_counter)(STAT_HOOK_MICROSECONDS + p)) / 1e6);
    buffer_append_str(b, "}}\n");
}

static void on_status(struct admin_conn *c, const struct admin_request *r, void *arg)
{
    struct buffer b;
    (void)r;
    (void)arg;
    buffer_init(&b);
    render_status(&b);
    admin_reply_buffer(c, 200, "application/json", &b);
    buffer_free(&b);
}

void metrics_register(struct admin *a)
{
    admin_route(a, "GET", "/metrics", on_metrics, NULL, ADMIN_PUBLIC);
    admin_route(a, "GET", "/status", on_status, NULL, 0);
}
