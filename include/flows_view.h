/*
 * flows_view.h - reading a stored flow for people: its parsed heads, what
 * the hooks changed, and its JSON and HAR forms.
 *
 * What it owns: the meaning of a record's parts for display. What it
 * doesn't: routes and connections (flows_api.c), keeping flows
 * (flows_store.c), the HAR entry (flows_har.c).
 */
#ifndef LUAPROXY_FLOWS_VIEW_H
#define LUAPROXY_FLOWS_VIEW_H

#include <stddef.h>
#include <sys/types.h>

#include "buffer.h"
#include "flow_filter.h"
#include "flow_record.h"
#include "http_parse.h"

struct flow_info {
    const char *rec;
    struct flow_header h;
    const char *part[FLOW_PART_COUNT]; /* first occurrence; "" when absent */
    size_t len[FLOW_PART_COUNT];
    int has[FLOW_PART_COUNT];
    struct http_head req; /* the request as received */
    int req_ok;
    size_t req_head_len;
    const char *method, *url, *host;
    size_t method_len, url_len, host_len;
    const char *res_body; /* as sent */
    size_t res_body_len;
    int modified;
};

/* Fills <fi> from a checked record. */
void flow_info_load(struct flow_info *fi, const char *rec);
/* What the filter sees of it. */
void flow_info_view(const struct flow_info *fi, struct flow_view *v);

/* {"id":..., "method":..., ...}: the list's fields. */
void flows_json_summary(struct buffer *b, const struct flow_info *fi);
/* Everything captured (bodies apart: they have their own endpoints). */
void flows_json_detail(struct buffer *b, const struct flow_info *fi);
/* Parses a head of a record, every field of it (it crossed once: all of
 * it is shown); its length, or <= 0 when it is not a head. */
ssize_t flows_parse_head(const char *data, size_t len, int response, struct http_head *head);
/* "2024-05-06T07:08:09.123Z", quoted: <t> (seconds since the epoch) in UTC. */
void flows_json_time(struct buffer *b, double t);

/* A flow's phases in milliseconds, from its record's marks: -1 for an
 * optional phase that did not happen. */
struct flow_timings {
    double blocked, dns, connect, tls, send, wait, receive;
};
void flow_timings_get(const struct flow_info *fi, struct flow_timings *t);
/* <t> as a JSON object, with the flow JSON's names and order, or (<har>)
 * HAR's. */
void flow_timings_json(struct buffer *b, const struct flow_timings *t, int har);

/* The value of header <name> in the head at <data> (a response's as sent,
 * say); 0, or -1 when absent. */
int flows_head_field(const char *data, size_t len, int response, const char *name,
                     const char **value, size_t *value_len);

#endif
