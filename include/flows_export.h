/*
 * flows_export.h - the flow list and the HAR export, over the whole store.
 *
 *   GET /api/flows?filter=&limit=   summaries, oldest first (the newest N)
 *   GET /flows.har?filter=          HAR 1.2
 *   --har FILE                      the same HAR, written when the proxy stops
 *
 * What it owns: walking the store for them, a bounded part at a time, and
 * the filter's use there. What it doesn't: the HTTP side of streaming
 * (admin.c), the JSON and HAR shapes of one flow (flows_view.c), keeping
 * flows (flows_store.c).
 */
#ifndef LUAPROXY_FLOWS_EXPORT_H
#define LUAPROXY_FLOWS_EXPORT_H

#include "admin.h"

struct flows_store;

/* Route handlers (admin_handler); <arg> is the struct flows_store. */
void flows_export_list(struct admin_conn *c, const struct admin_request *r, void *arg);
void flows_export_har(struct admin_conn *c, const struct admin_request *r, void *arg);

/* Writes the HAR of every flow in <st> to <path>, a part at a time.
 * Returns the number of entries written, or -1 with errno set. */
long flows_export_har_file(struct flows_store *st, const char *path);

#endif
