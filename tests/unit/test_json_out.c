/*
 * test_json_out.c - unit tests for the JSON output helpers.
 *
 * Base64 against RFC 4648's vectors, and long inputs ending on each side
 * of the encoder's blocks against a plain one-group-at-a-time encoder,
 * each input right before an unreadable page so an over-read faults;
 * strings escaped as JSON requires. UTF-8 checked against a plain
 * checker, and strings and base64 written in slices cut anywhere give the
 * bytes one call gives.
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

/* The textbook UTF-8 check, over the whole string at once. */
static int reference_utf8(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n;
        uint32_t cp;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        if ((p[i] & 0xe0) == 0xc0)
            n = 1, cp = p[i] & 0x1f;
        else if ((p[i] & 0xf0) == 0xe0)
            n = 2, cp = p[i] & 0x0f;
        else if ((p[i] & 0xf8) == 0xf0)
            n = 3, cp = p[i] & 0x07;
        else
            return 0;
        if (len - i <= n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return 0;
        i += n + 1;
    }
    return 1;
}

static uint32_t rnd = 2463534242u;
static uint32_t next_rnd(void)
{
    rnd ^= rnd << 13;
    rnd ^= rnd >> 17;
    rnd ^= rnd << 5;
    return rnd;
}

/* A string of pieces that are mostly text, and now and then a byte or a
 * sequence that is not UTF-8, or one cut short. */
static size_t make_piecemeal(unsigned char *s, size_t max)
{
    static const char *const pieces[] = {
        "ab", "\"", "\\", "\n", "\x01", "\x7f", "\xc3\xa9", "\xe2\x82\xac",
        "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf", /* U+10FFFF */
        "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe0\x80\x80", "\xff",
        "\x80", "\xc3", "\xe2\x82", "\xf0\x9f\x98", "\xf8\x88\x80\x80\x80",
    };
    size_t n = 0, count = sizeof pieces / sizeof pieces[0];
    while (n + 5 < max) {
        /* mostly valid: the invalid pieces (from "\xc0\x80") come rarely */
        size_t k = next_rnd() % 40 == 0 ? 10 + next_rnd() % (count - 10) : next_rnd() % 10;
        size_t l = strlen(pieces[k]);
        memcpy(s + n, pieces[k], l);
        n += l;
        if (next_rnd() % 30 == 0)
            break;
    }
    return n;
}

/* Writes <s> as json_string and as slices of random sizes, and checks
 * the UTF-8 verdicts and the bytes agree. */
static int slices_agree(const unsigned char *s, size_t len)
{
    struct buffer whole, parts;
    struct json_utf8 u = JSON_UTF8_INIT;
    struct json_base64 st = JSON_BASE64_INIT;
    int valid = reference_utf8(s, len), same;

    for (size_t i = 0, n; i < len; i += n) {
        n = 1 + next_rnd() % 9;
        if (n > len - i)
            n = len - i;
        json_utf8_feed(&u, (const char *)s + i, n);
    }
    if (json_utf8_end(&u) != valid || json_utf8_valid((const char *)s, len) != valid)
        return 0;
    buffer_init(&whole);
    buffer_init(&parts);
    json_string(&whole, (const char *)s, len);
    json_base64(&whole, (const char *)s, len);
    buffer_append(&parts, "\"", 1);
    for (size_t i = 0, n; i < len; i += n) {
        n = 1 + next_rnd() % 9;
        if (n > len - i)
            n = len - i;
        json_string_part(&parts, (const char *)s + i, n, valid);
    }
    buffer_append(&parts, "\"\"", 2);
    for (size_t i = 0, n; i < len; i += n) {
        n = next_rnd() % 8; /* empty slices too */
        if (n > len - i)
            n = len - i;
        json_base64_part(&parts, &st, (const char *)s + i, n);
        if (len == 0)
            break;
    }
    json_base64_end(&parts, &st);
    buffer_append(&parts, "\"", 1);
    same = buffer_length(&whole) == buffer_length(&parts) &&
           memcmp(buffer_peek(&whole), buffer_peek(&parts), buffer_length(&parts)) == 0;
    buffer_free(&whole);
    buffer_free(&parts);
    return same;
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

    /* A text cut inside its last character: up to the character before. */
    {
        static const struct {
            const char *s;
            size_t uncut;
        } cut[] = {
            {"abc", 3},                 /* ASCII */
            {"ab\xc3\xa9", 4},          /* é whole */
            {"ab\xc3", 2},              /* é cut after its lead byte */
            {"ab\xe2\x82", 2},          /* € cut after two of three */
            {"ab\xe2\x82\xac", 5},      /* € whole */
            {"a\xf0\x9f\x98", 1},       /* an emoji cut after three of four */
            {"a\xf0\x9f\x98\x80", 5},   /* ... and whole */
            {"\x80\x80", 2},            /* continuation bytes alone: not ours to trim */
            {"a\x80\x80\x80\x80", 5},   /* more of them than any sequence has */
            {"", 0},
        };
        for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++)
            ok(json_utf8_uncut_length(cut[i].s, strlen(cut[i].s)) == cut[i].uncut,
               "uncut length of case %zu is %zu", i, cut[i].uncut);
    }

    /* In slices */
    {
        unsigned char s[200];
        int agree = 1, valid = 0, invalid = 0;
        for (int k = 0; k < 20000 && agree; k++) {
            size_t len = make_piecemeal(s, sizeof s);
            agree = slices_agree(s, len);
            if (reference_utf8(s, len))
                valid++;
            else
                invalid++;
            if (!agree)
                printf("# they differ on case %d (%zu bytes)\n", k, len);
        }
        ok(agree, "UTF-8 checks, strings and base64 in slices agree with whole calls");
        ok(valid > 1000 && invalid > 1000, "both valid (%d) and invalid (%d) strings tried",
           valid, invalid);
    }
    return tap_done();
}
