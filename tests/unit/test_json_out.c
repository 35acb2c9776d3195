/*
 * test_json_out.c - unit tests for the JSON output helpers.
 *
 * Base64 against RFC 4648's vectors, and long inputs ending on each side
 * of the encoder's blocks against a plain one-group-at-a-time encoder,
 * each input right before an unreadable page so an over-read faults;
 * strings escaped as JSON requires.
 */
#include <stdint.h>
#include <stdlib.h>

#include "json_out.h"
#include "tap.h"

/* The textbook encoder, one group of three at a time. */
static void reference_base64(struct buffer *b, const unsigned char *p, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    buffer_append(b, "\"", 1);
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        char out[4] = {tab[v >> 18 & 63], tab[v >> 12 & 63], i + 1 < len ? tab[v >> 6 & 63] : '=',
                       i + 2 < len ? tab[v & 63] : '='};
        buffer_append(b, out, 4);
    }
    buffer_append(b, "\"", 1);
}

static int encodes_to(const char *in, const char *want)
{
    struct buffer b;
    int same;
    buffer_init(&b);
    json_base64(&b, in, strlen(in));
    same = buffer_length(&b) == strlen(want) && memcmp(buffer_peek(&b), want, strlen(want)) == 0;
    if (!same)
        printf("# got %.*s\n", (int)buffer_length(&b), buffer_peek(&b));
    buffer_free(&b);
    return same;
}

int main(void)
{
    /* RFC 4648, section 10 */
    ok(encodes_to("", "\"\""), "base64 of nothing");
    ok(encodes_to("f", "\"Zg==\""), "base64 f");
    ok(encodes_to("fo", "\"Zm8=\""), "base64 fo");
    ok(encodes_to("foo", "\"Zm9v\""), "base64 foo");
    ok(encodes_to("foob", "\"Zm9vYg==\""), "base64 foob");
    ok(encodes_to("fooba", "\"Zm9vYmE=\""), "base64 fooba");
    ok(encodes_to("foobar", "\"Zm9vYmFy\""), "base64 foobar");

    /* Long inputs, ending on each side of a block, after something else
     * in the buffer. */
    size_t sizes[] = {3 * 16384 - 1, 3 * 16384, 3 * 16384 + 1, 3 * 16384 + 2, 1000003};
    unsigned char *in = malloc(1000003);
    for (size_t i = 0; i < 1000003; i++)
        in[i] = (unsigned char)(i * 7 + i / 256);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        struct buffer got, want;
        buffer_init(&got);
        buffer_init(&want);
        buffer_append(&got, "x", 1);
        buffer_append(&want, "x", 1);
        json_base64(&got, guarded_copy((const char *)in, sizes[k]), sizes[k]);
        reference_base64(&want, in, sizes[k]);
        ok(buffer_length(&got) == buffer_length(&want) &&
               memcmp(buffer_peek(&got), buffer_peek(&want), buffer_length(&want)) == 0,
           "base64 of %zu bytes", sizes[k]);
        buffer_free(&got);
        buffer_free(&want);
    }
    free(in);

    /* strings */
    {
        struct buffer b;
        buffer_init(&b);
        json_string(&b, "a\"b\\c\n\x01\xff", 8);
        is_str(buffer_peek(&b), buffer_length(&b), "\"a\\\"b\\\\c\\n\\u0001\\u00ff\"",
               "escapes, and bytes of invalid UTF-8 one by one");
        buffer_free(&b);
    }
    return tap_done();
}
