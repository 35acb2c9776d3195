/*
 * headers.c - the editable header list.
 */
#include "headers.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_parse.h"

void headers_init(struct headers *h)
{
    h->items = NULL;
    h->count = h->cap = 0;
    buffer_init(&h->text);
}

void headers_free(struct headers *h)
{
    buffer_block_give(h->items, h->cap * sizeof *h->items);
    buffer_free(&h->text);
    headers_init(h);
}

/* Both read with the parser's scanners, so a name or value from a script
 * is held to exactly the grammar of one from the wire. */
int headers_valid_name(const char *name, size_t len)
{
    return len > 0 && http_token_span(name, len) == len;
}

int headers_valid_value(const char *value, size_t len)
{
    /* no control byte but HTAB, no DEL: CR, LF and NUL are among them */
    if (http_field_value_span(value, len) != len)
        return 0;
    /* Leading or trailing whitespace would be stripped by the next parser
     * and so change meaning; refuse it rather than silently trim. */
    if (len > 0 && (value[0] == ' ' || value[0] == '\t' || value[len - 1] == ' ' ||
                    value[len - 1] == '\t'))
        return 0;
    return 1;
}

/* Appends <s> to the text; the offset where it starts goes to *off. */
/* Whether <s> points into the list's own text. */
static int in_text(const struct headers *h, const char *s)
{
    return h->text.data && s >= h->text.data && s < h->text.data + h->text.cap;
}

static int store(struct headers *h, const char *s, size_t len, uint32_t *off)
{
    if (buffer_length(&h->text) + len > HEADERS_MAX_TEXT)
        return -1;
    /* Offsets are relative to the start of the readable text, which never
     * moves because the text buffer is never consumed. */
    *off = (uint32_t)buffer_length(&h->text);
    /* <s> may be a view into this very text (copying one field's value to
     * another); growing the buffer would free it mid-copy, so copy first. */
    if (in_text(h, s)) {
        char *copy = malloc(len ? len : 1);
        int rc;
        if (!copy)
            return -1;
        memcpy(copy, s, len);
        rc = buffer_append(&h->text, copy, len);
        free(copy);
        return rc;
    }
    return buffer_append(&h->text, s, len);
}

/* Makes room for at least <want> items, keeping the first h->count. The
 * items live in a block of the buffers' cache (buffer.c): a list is made
 * and freed on every exchange, and a few dozen at once overflowed
 * malloc's per-thread cache. The capacity is what the block holds, so
 * h->cap items are always the block's size. */
static int grow_items(struct headers *h, size_t want)
{
    size_t bytes = buffer_block_size(want * sizeof *h->items);
    struct header *items = buffer_block_take(bytes);

    if (!items)
        return -1;
    if (h->count > 0) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy(items, h->items, h->count * sizeof *items);
    buffer_block_give(h->items, h->cap * sizeof *h->items);
    h->items = items;
    h->cap = bytes / sizeof *items;
    return 0;
}

/* Appends a field whose name and value are known to be valid. */
static int add_item(struct headers *h, const char *name, size_t name_len, const char *value,
                    size_t value_len)
{
    struct header item;

    if (h->count >= HEADERS_MAX_COUNT || (h->count == h->cap && grow_items(h, h->count * 2 + 1) != 0))
        return -1;
    if (!in_text(h, name) && !in_text(h, value)) {
        /* The usual case, neither string a view into this text (which a
         * growth would free): both copied with one reservation. */
        size_t len = buffer_length(&h->text);
        char *dst;
        if (len + name_len + value_len > HEADERS_MAX_TEXT ||
            (dst = buffer_reserve(&h->text, name_len + value_len)) == NULL)
            return -1;
        memcpy(dst, name, name_len);
        if (value_len > 0)
            memcpy(dst + name_len, value, value_len);
        buffer_commit(&h->text, name_len + value_len);
        item.name_off = (uint32_t)len;
        item.value_off = (uint32_t)(len + name_len);
    } else if (store(h, name, name_len, &item.name_off) != 0 ||
               store(h, value, value_len, &item.value_off) != 0) {
        return -1;
    }
    item.name_len = (uint32_t)name_len;
    item.value_len = (uint32_t)value_len;
    h->items[h->count++] = item;
    return 0;
}

int headers_add(struct headers *h, const char *name, size_t name_len, const char *value,
                size_t value_len)
{
    if (!headers_valid_name(name, name_len) || !headers_valid_value(value, value_len))
        return -1;
    return add_item(h, name, name_len, value, value_len);
}

int headers_add_parsed(struct headers *h, const struct http_field *f)
{
    /* The parser's grammar is stricter than the checks of headers_add: a
     * name is one or more tchar, a value holds only SP, HTAB, VCHAR and
     * obs-text with its outer whitespace removed. Checking again would
     * only read every byte of every forwarded head a second time. */
    return add_item(h, f->name, f->name_len, f->value, f->value_len);
}

int headers_store(struct headers *h, const char *name, size_t name_len, const char *value,
                  size_t value_len, struct header *item)
{
    if (!headers_valid_name(name, name_len) || !headers_valid_value(value, value_len) ||
        store(h, name, name_len, &item->name_off) != 0 ||
        store(h, value, value_len, &item->value_off) != 0)
        return -1;
    item->name_len = (uint32_t)name_len;
    item->value_len = (uint32_t)value_len;
    return 0;
}

int headers_same(const struct headers *h, size_t i, const char *name, size_t name_len,
                 const char *value, size_t value_len)
{
    const struct header *f = &h->items[i];
    const char *text = buffer_peek(&h->text);
    return f->name_len == name_len && f->value_len == value_len &&
           memcmp(text + f->name_off, name, name_len) == 0 &&
           memcmp(text + f->value_off, value, value_len) == 0;
}

int headers_set_items(struct headers *h, const struct header *items, size_t count)
{
    if (count > HEADERS_MAX_COUNT)
        return -1;
    if (count > h->cap && grow_items(h, count) != 0)
        return -1;
    if (count > 0) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy(h->items, items, count * sizeof *items);
    h->count = count;
    return 0;
}

int headers_find(const struct headers *h, const char *name, size_t name_len, size_t from)
{
    for (size_t i = from; i < h->count; i++) {
        size_t len;
        const char *n = headers_name(h, i, &len);
        if (len == name_len && strncasecmp(n, name, len) == 0)
            return (int)i;
    }
    return -1;
}

int headers_remove(struct headers *h, const char *name, size_t name_len)
{
    size_t kept = 0;
    int removed = 0;

    for (size_t i = 0; i < h->count; i++) {
        size_t len;
        const char *n = headers_name(h, i, &len);
        if (len == name_len && strncasecmp(n, name, len) == 0)
            removed++;
        else
            h->items[kept++] = h->items[i];
    }
    h->count = kept;
    return removed;
}

int headers_set_value(struct headers *h, size_t i, const char *value, size_t value_len)
{
    uint32_t off;
    if (i >= h->count || !headers_valid_value(value, value_len) ||
        store(h, value, value_len, &off) != 0)
        return -1;
    h->items[i].value_off = off;
    h->items[i].value_len = (uint32_t)value_len;
    return 0;
}

int headers_set(struct headers *h, const char *name, size_t name_len, const char *value,
                size_t value_len)
{
    int first = headers_find(h, name, name_len, 0);

    if (!headers_valid_name(name, name_len) || !headers_valid_value(value, value_len))
        return -1;
    if (first < 0)
        return headers_add(h, name, name_len, value, value_len);
    if (headers_set_value(h, (size_t)first, value, value_len) != 0)
        return -1;
    /* Drop the later duplicates, keeping the first in place. */
    size_t kept = (size_t)first + 1;
    for (size_t i = kept; i < h->count; i++) {
        size_t len;
        const char *n = headers_name(h, i, &len);
        if (!(len == name_len && strncasecmp(n, name, len) == 0))
            h->items[kept++] = h->items[i];
    }
    h->count = kept;
    return 0;
}

int headers_write(const struct headers *h, struct buffer *out)
{
    /* The room for every line first, then plain stores: four appends a
     * field, each checking for room, cost as much as the copying. */
    size_t total = 0;
    const char *text = buffer_peek(&h->text);
    char *p;

    for (size_t i = 0; i < h->count; i++)
        total += h->items[i].name_len + h->items[i].value_len + 4;
    if (total == 0)
        return 0;
    if ((p = buffer_reserve(out, total)) == NULL)
        return -1;
    for (size_t i = 0; i < h->count; i++) {
        const struct header *f = &h->items[i];
        memcpy(p, text + f->name_off, f->name_len);
        p += f->name_len;
        memcpy(p, ": ", 2);
        p += 2;
        memcpy(p, text + f->value_off, f->value_len);
        p += f->value_len;
        memcpy(p, "\r\n", 2);
        p += 2;
    }
    buffer_commit(out, total);
    return 0;
}
