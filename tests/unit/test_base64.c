/*
 * test_base64.c - unit tests for base64 in both alphabets.
 *
 * The RFC 4648 vectors show the encoder and decoder agree with the
 * standard; the refusals show the decoder is strict: every text it takes
 * is the one spelling of its bytes, so a check that compares decoded
 * credentials cannot be passed with a second spelling.
 */
#include <string.h>

#include "base64.h"
#include "tap.h"

static void round_trip(const char *bytes, const char *standard, const char *url)
{
    char text[64];
    unsigned char back[64];
    size_t len = strlen(bytes);
    size_t n = base64_encoded_len(len, BASE64_STANDARD);
    long got;

    base64_encode((const unsigned char *)bytes, len, text, BASE64_STANDARD);
    text[n] = '\0';
    ok(strcmp(text, standard) == 0, "\"%s\" encodes to %s (got %s)", bytes, standard, text);
    n = base64_encoded_len(len, BASE64_URL);
    base64_encode((const unsigned char *)bytes, len, text, BASE64_URL);
    text[n] = '\0';
    ok(strcmp(text, url) == 0, "\"%s\" encodes URL-safe to %s (got %s)", bytes, url, text);

    got = base64_decode(standard, strlen(standard), back, sizeof back, BASE64_STANDARD);
    ok(got == (long)len && memcmp(back, bytes, len) == 0, "%s decodes to \"%s\"", standard,
       bytes);
    got = base64_decode(url, strlen(url), back, sizeof back, BASE64_URL);
    ok(got == (long)len && memcmp(back, bytes, len) == 0, "%s decodes URL-safe to \"%s\"", url,
       bytes);
}

static void refused(const char *text, enum base64_alphabet alphabet, const char *why)
{
    unsigned char out[64];
    /* Right before an unreadable page: the decoder must not look past the
     * end of what it was given. */
    const char *guarded = guarded_copy(text, strlen(text));
    ok(base64_decode(guarded, strlen(text), out, sizeof out, alphabet) == -1,
       "refuses %s (%s)", text, why);
}

int main(void)
{
    unsigned char out[8];
    const unsigned char high[] = {0xfb, 0xff, 0xbf};
    char text[8];

    /* RFC 4648 section 10. */
    round_trip("", "", "");
    round_trip("f", "Zg==", "Zg");
    round_trip("fo", "Zm8=", "Zm8");
    round_trip("foo", "Zm9v", "Zm9v");
    round_trip("foob", "Zm9vYg==", "Zm9vYg");
    round_trip("fooba", "Zm9vYmE=", "Zm9vYmE");
    round_trip("foobar", "Zm9vYmFy", "Zm9vYmFy");

    /* The two alphabets differ in their last two digits. */
    base64_encode(high, sizeof high, text, BASE64_STANDARD);
    ok(memcmp(text, "+/+/", 4) == 0, "0xfbffbf is +/+/ in the standard alphabet");
    base64_encode(high, sizeof high, text, BASE64_URL);
    ok(memcmp(text, "-_-_", 4) == 0, "0xfbffbf is -_-_ in the URL alphabet");
    refused("-_-_", BASE64_STANDARD, "URL digits in standard text");
    refused("+/+/", BASE64_URL, "standard digits in URL text");

    refused("Zg", BASE64_STANDARD, "padding missing");
    refused("Zg=", BASE64_STANDARD, "padding short");
    refused("Zg===", BASE64_STANDARD, "too much padding");
    refused("Z===", BASE64_STANDARD, "one digit in a group");
    refused("Zg==Zg==", BASE64_STANDARD, "padding inside");
    refused("Zm=v", BASE64_STANDARD, "a digit after padding");
    refused("Zg==", BASE64_URL, "padding in URL text");
    refused("Z", BASE64_URL, "one digit left over");
    refused("Zm9vY", BASE64_URL, "one digit left over after a group");
    refused("Zh==", BASE64_STANDARD, "leftover bits not zero");
    refused("Zm9=", BASE64_STANDARD, "leftover bits not zero, two bytes");
    refused("Zh", BASE64_URL, "leftover bits not zero, URL");
    refused("Zm 9v", BASE64_URL, "a space");
    refused("Zm9v\n", BASE64_URL, "a newline");

    is_int(base64_decode("Zm9vYmFy", 8, out, 5, BASE64_STANDARD), -1,
           "refuses bytes that do not fit");
    is_int(base64_decode("Zm9vYmFy", 8, out, 6, BASE64_STANDARD), 6, "takes bytes that just fit");
    return tap_done();
}
