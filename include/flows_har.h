/*
 * flows_har.h - one flow as a HAR 1.2 entry, written a step at a time.
 *
 * An entry carries the flow's kept bodies (megabytes each), JSON-escaped
 * or in base64, and a compressed response decoded (up to 8 MiB). Written
 * whole, one entry would hold the event loop, which with --workers 1 is
 * the proxy's own, for tens of milliseconds, and sit whole in memory. So
 * an entry is a small state, and each step writes a bounded piece: a head
 * part, or a slice of a body (HAR_SLICE bytes looked at, escaped or
 * decoded; a response is decoded HAR_DECODE_PART at a time). What an
 * entry holds between steps is a decoder's state when it decodes, and
 * about a slice; never a whole body.
 *
 * A body is gone through twice: first to learn what the entry says before
 * its text (whether it is UTF-8, so a string, or else base64; decoded,
 * its size and whether it decodes at all), then to write it. The bytes
 * are those of the whole entry written at once, whatever the steps.
 *
 * What it owns: the HAR shape of one flow. What it doesn't: walking the
 * store (flows_export.c), reading a record (flows_view.c), undoing codings
 * (body_decode.c).
 */
#ifndef LUAPROXY_FLOWS_HAR_H
#define LUAPROXY_FLOWS_HAR_H

#include "buffer.h"
#include "flows_view.h"

/* Body bytes one step looks at, escapes or encodes (a multiple of 3, so
 * base64 needs no group carried between slices; a decoder may make up to
 * 16 KiB past it). One step writes at most 6 times that (a body of control
 * bytes, each "\u00XX"). */
#define HAR_SLICE (48 * 1024)
/* Decoded bytes asked of the decoder per step while a response is
 * measured (body_decode.h: the work is in proportion). */
#define HAR_DECODE_PART (256 * 1024)

enum har_step {
    HAR_STEP_MORE,   /* call again */
    HAR_STEP_DONE,   /* the entry is complete */
    HAR_STEP_FAILED, /* out of memory: the entry cannot be finished */
};

struct har_entry;

/* An entry for <fi>, which (and the record it reads) must stay as it is
 * until the entry is freed. NULL when out of memory. */
struct har_entry *har_entry_new(const struct flow_info *fi);
/* Appends the next piece of the entry to <out>. */
enum har_step har_entry_step(struct har_entry *e, struct buffer *out);
void har_entry_free(struct har_entry *e);

#endif
