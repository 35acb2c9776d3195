/*
 * body_decode.h - undoing Content-Encoding for the viewer (?decoded=1).
 *
 * gzip, deflate (zlib or raw), br and zstd, through decode.h's decoders,
 * with several codings undone in turn. The output is capped (decode.h's
 * size and ratio caps): a small body must not expand without end.
 */
#ifndef LUAPROXY_BODY_DECODE_H
#define LUAPROXY_BODY_DECODE_H

#include <stddef.h>

#include "buffer.h"

#define BODY_DECODE_MAX ((size_t)32 << 20)

/* Decodes <len> bytes of <data> encoded with <encoding> (a Content-Encoding
 * value; a list is undone right to left) into <out>. 0; -1 with a message
 * in <err> for an unknown coding, corrupt data, or output past the cap. */
int body_decode(const char *encoding, size_t enc_len, const char *data, size_t len,
                struct buffer *out, char *err, size_t err_len);

#endif
