/*
 * headers.h - an ordered, editable list of header fields that owns its text.
 *
 * A parsed head is made of views into a socket buffer that is about to be
 * reused, so the fields to forward are copied once into a struct headers.
 * Everything after that (removing hop-by-hop fields, adding Via, and the
 * scripts' edits) works on this list, and the outgoing head is written from
 * it. All strings live in one text buffer; an edit appends new text and the
 * old bytes are simply left behind until the list is freed.
 *
 * Names compare case-insensitively. Values are checked on the way in: a
 * name must be a token, a value must not contain CR, LF or NUL, so no edit
 * can split a message.
 */
#ifndef LUAPROXY_HEADERS_H
#define LUAPROXY_HEADERS_H

#include <stddef.h>
#include <stdint.h>

#include "buffer.h"

/* The list refuses to grow past this many bytes of text or fields. */
#define HEADERS_MAX_TEXT (1 << 20)
#define HEADERS_MAX_COUNT 1000

struct header {
    uint32_t name_off, name_len;
    uint32_t value_off, value_len;
};

struct headers {
    struct header *items;
    size_t count, cap;
    struct buffer text;
};

void headers_init(struct headers *h);
void headers_free(struct headers *h);

/* Whether <name> is a valid field name and <value> a valid field value. */
int headers_valid_name(const char *name, size_t len);
int headers_valid_value(const char *value, size_t len);

/* Appends a field. Returns 0, or -1 (invalid name/value, or a limit). */
int headers_add(struct headers *h, const char *name, size_t name_len, const char *value,
                size_t value_len);
/* Appends a field known to be valid, which needs no checks: one of a head
 * the parser accepted (http_parse.h), or one of the proxy's own. Returns
 * 0, or -1 at a limit. */
struct http_field;
int headers_add_parsed(struct headers *h, const struct http_field *f);
/*
 * Rebuilding a list from an edited copy of it (a script's list read back):
 * the fields kept as they were stay where their text is, and only the new
 * ones are checked and stored, so an edit costs what it changes, not what
 * the whole head holds. Build the new order in an array of struct header,
 * then hand it over with headers_set_items.
 */
/* Stores the text of a new field (checked as headers_add checks it)
 * without adding it to the list; *<item> describes it. The fields already
 * in the list stay valid. Returns 0, or -1 (invalid, or a limit). */
int headers_store(struct headers *h, const char *name, size_t name_len, const char *value,
                  size_t value_len, struct header *item);
/* Whether field <i> is exactly <name>: <value>, byte for byte. */
int headers_same(const struct headers *h, size_t i, const char *name, size_t name_len,
                 const char *value, size_t value_len);
/* Makes the <count> fields of <items> the list, in that order. Each must
 * be a field of <h> (from h->items or headers_store). Returns 0, or -1
 * (more than HEADERS_MAX_COUNT fields, or no memory) with the list as it
 * was. */
int headers_set_items(struct headers *h, const struct header *items, size_t count);
/* Removes every field called <name>. Returns how many were removed. */
int headers_remove(struct headers *h, const char *name, size_t name_len);
/* Replaces every field called <name> by one field with <value>, placed
 * where the first one was (or at the end). Returns 0 or -1. */
int headers_set(struct headers *h, const char *name, size_t name_len, const char *value,
                size_t value_len);
/* Replaces the value of field <i>. Returns 0 or -1. */
int headers_set_value(struct headers *h, size_t i, const char *value, size_t value_len);

/* Index of the first field called <name> at or after <from>, or -1. */
int headers_find(const struct headers *h, const char *name, size_t name_len, size_t from);

static inline const char *headers_name(const struct headers *h, size_t i, size_t *len)
{
    *len = h->items[i].name_len;
    return buffer_peek(&h->text) + h->items[i].name_off;
}
static inline const char *headers_value(const struct headers *h, size_t i, size_t *len)
{
    *len = h->items[i].value_len;
    return buffer_peek(&h->text) + h->items[i].value_off;
}

/* Writes "Name: value\r\n" for every field. Returns 0 or -1. */
int headers_write(const struct headers *h, struct buffer *out);

#endif
