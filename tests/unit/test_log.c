/*
 * test_log.c - unit tests for log_escape, what keeps a diagnostic line one
 * line whatever bytes it carries: control bytes and DEL, every byte that
 * is not part of a well-formed UTF-8 character (stray continuation bytes,
 * overlong forms, surrogates, past U+10FFFF, a character cut short), and
 * the characters a terminal acts on or that reorder the text, all as \xNN;
 * text and real UTF-8 as they are; and never half an escape or half a
 * character when the room runs out.
 */
#include <string.h>

#include "log.h"
#include "tap.h"

static void escapes(const char *in, size_t len, int lines, const char *want, const char *name)
{
    char out[512];
    size_t n = log_escape(out, sizeof out, in, len, lines);
    is_str(out, n, want, name);
}

#define ESC(in, want, name) escapes((in), sizeof(in) - 1, 0, (want), (name))

int main(void)
{
    ESC("plain text, 100% (ok)", "plain text, 100% (ok)", "printable ASCII as it is");
    ESC("a\tb", "a\tb", "a tab as it is");
    ESC("a\nb\r\n", "a\\x0ab\\x0d\\x0a", "CR and LF escaped");
    ESC("\x1b[2J\x07\x7f", "\\x1b[2J\\x07\\x7f", "ESC, BEL and DEL escaped");
    ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
        "UTF-8 of two, three and four bytes as it is");
    ESC("\xc2\x9b" "1m", "\\xc2\\x9b1m", "a C1 control (CSI) in UTF-8 escaped");
    ESC("\xc2\xa0", "\xc2\xa0", "U+00A0, the first past C1, as it is");
    ESC("\x9b" "1m", "\\x9b1m", "a lone continuation byte escaped");
    ESC("\xc0\xaf", "\\xc0\\xaf", "an overlong '/' escaped");
    ESC("\xe0\x80\xaf", "\\xe0\\x80\\xaf", "an overlong three-byte form escaped");
    ESC("\xed\xa0\x80", "\\xed\\xa0\\x80", "a surrogate escaped");
    ESC("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80", "past U+10FFFF escaped");
    ESC("\xff\xfe", "\\xff\\xfe", "bytes that start nothing escaped");
    ESC("ab\xe2\x82", "ab\\xe2\\x82", "a character cut short escaped");
    ESC("\xc3(", "\\xc3(", "a lead byte without its continuation escaped, the next kept");
    ESC("\xe2\x80\xae" "txt.exe", "\\xe2\\x80\\xaetxt.exe", "a right-to-left override escaped");
    ESC("\xe2\x80\xa8", "\\xe2\\x80\\xa8", "U+2028 (a line separator) escaped");
    ESC("\xe2\x81\xa6", "\\xe2\\x81\\xa6", "U+2066 (an isolate) escaped");
    ESC("\xe2\x80\x8f", "\\xe2\\x80\\x8f", "U+200F (a direction mark) escaped");

    const char *trace = "msg\nstack traceback:\n\t[C]: in ?";
    escapes(trace, strlen(trace), 1, "msg\n\tstack traceback:\n\t[C]: in ?",
            "lines: a newline indents what follows once");
    const char *forged = "a\n2026-01-01T00:00:00Z forged\r";
    escapes(forged, strlen(forged), 1, "a\n\t2026-01-01T00:00:00Z forged\\x0d",
            "lines: a line of a client's cannot start at the margin; CR still escaped");
    escapes("a\0b", 3, 0, "a\\x00b", "NUL escaped");
    /* A character cut short at the very end of the input: nothing past it
     * is read (the page after it is unreadable). */
    escapes(guarded_copy("ab\xf0\x9f\x98", 5), 5, 0, "ab\\xf0\\x9f\\x98",
            "a four-byte lead at the end reads no further");

    /* Room runs out: never half an escape, never half a character. */
    char out[16];
    memset(out, '#', sizeof out);
    size_t n = log_escape(out, 6, "abc\x1b", 4, 0);
    is_str(out, n, "abc", "an escape that does not fit is left out whole");
    is_int(out[3], '#', "nothing written past what it returns");
    n = log_escape(out, 5, "abc\xe2\x82\xac", 6, 0);
    is_str(out, n, "abc", "a character that does not fit is left out whole");
    n = log_escape(out, 6, "abc\xe2\x82\xac", 6, 0);
    is_str(out, n, "abc\xe2\x82\xac", "a character that just fits is written");
    n = log_escape(out, 0, "abc", 3, 0);
    is_int(n, 0, "no room, nothing written");
    return tap_done();
}
