/*
 * flows_har.h - one flow as a HAR 1.2 entry.
 *
 * What it owns: the HAR shape of one flow. What it doesn't: walking the
 * store (flows_export.c), reading a record (flows_view.c), undoing codings
 * (body_decode.c).
 */
#ifndef LUAPROXY_FLOWS_HAR_H
#define LUAPROXY_FLOWS_HAR_H

#include "buffer.h"
#include "flows_view.h"

/* One HAR 1.2 entry. */
void flows_har_entry(struct buffer *b, const struct flow_info *fi);

#endif
