/*
 * test_headers.c - unit tests for the editable header list.
 *
 * The list is what every edit of a forwarded head goes through (hop-by-hop
 * removal, Via, and later the scripts), so the tests check the three things
 * a caller relies on: names match case-insensitively, the order of fields is
 * kept through every edit, and nothing that could split a message (CR, LF,
 * NUL, a non-token name) ever gets in.
 */
#include <stdint.h>
#include <stdlib.h>

#include "headers.h"
#include "tap.h"

/* add() with NUL-terminated strings. */
static int add(struct headers *h, const char *name, const char *value)
{
    return headers_add(h, name, strlen(name), value, strlen(value));
}

/* The list as it would be written: "Name: value\r\n" lines. */
static void is_written(const struct headers *h, const char *want, const char *name)
{
    struct buffer out;
    buffer_init(&out);
    if (headers_write(h, &out) != 0)
        ok(0, "%s (headers_write failed)", name);
    else
        is_str(buffer_peek(&out), buffer_length(&out), want, name);
    buffer_free(&out);
}

static void test_empty(void)
{
    struct headers h;
    headers_init(&h);
    is_int(h.count, 0, "init: no fields");
    is_int(headers_find(&h, "Host", 4, 0), -1, "find in an empty list: -1");
    is_int(headers_remove(&h, "Host", 4), 0, "remove from an empty list: 0");
    is_written(&h, "", "an empty list writes nothing");
    headers_free(&h);
    headers_free(&h);
    ok(h.items == NULL && h.count == 0, "free twice is harmless");
}

static void test_add_find(void)
{
    struct headers h;
    size_t len;
    const char *s;

    headers_init(&h);
    is_int(add(&h, "Host", "example.com"), 0, "add Host");
    is_int(add(&h, "Accept", "*/*"), 0, "add Accept");
    is_int(add(&h, "X-Empty", ""), 0, "an empty value is allowed");
    is_int(add(&h, "accept", "text/html"), 0, "a second Accept (other case)");
    is_int(h.count, 4, "four fields");

    s = headers_name(&h, 0, &len);
    is_str(s, len, "Host", "name 0 as given");
    s = headers_value(&h, 0, &len);
    is_str(s, len, "example.com", "value 0 as given");
    s = headers_value(&h, 2, &len);
    is_int(len, 0, "the empty value has length 0");

    is_int(headers_find(&h, "host", 4, 0), 0, "find is case-insensitive (host)");
    is_int(headers_find(&h, "HOST", 4, 0), 0, "find is case-insensitive (HOST)");
    is_int(headers_find(&h, "ACCEPT", 6, 0), 1, "find returns the first match");
    is_int(headers_find(&h, "Accept", 6, 2), 3, "find from an index skips earlier fields");
    is_int(headers_find(&h, "Accept", 6, 4), -1, "find from past the end: -1");
    is_int(headers_find(&h, "Accep", 5, 0), -1, "a prefix of a name does not match");
    is_int(headers_find(&h, "Accept-Language", 15, 0), -1, "a longer name does not match");
    /* the name is given with a length, not a NUL */
    is_int(headers_find(&h, "Hostname", 4, 0), 0, "find uses only <name_len> bytes");

    is_written(&h,
               "Host: example.com\r\n"
               "Accept: */*\r\n"
               "X-Empty: \r\n"
               "accept: text/html\r\n",
               "write keeps order and case");
    headers_free(&h);
}

static void test_remove(void)
{
    struct headers h;

    headers_init(&h);
    add(&h, "A", "1");
    add(&h, "X-Hop", "2");
    add(&h, "B", "3");
    add(&h, "x-hop", "4");
    add(&h, "C", "5");
    is_int(headers_remove(&h, "X-HOP", 5), 2, "remove drops every match, any case");
    is_int(h.count, 3, "three fields left");
    is_written(&h, "A: 1\r\nB: 3\r\nC: 5\r\n", "the others keep their order");
    is_int(headers_remove(&h, "X-Hop", 5), 0, "removing again: 0");
    is_int(headers_remove(&h, "A", 1), 1, "remove the first field");
    is_int(headers_remove(&h, "C", 1), 1, "remove the last field");
    is_written(&h, "B: 3\r\n", "only the middle one is left");
    is_int(headers_remove(&h, "B", 1), 1, "remove the only field");
    is_int(h.count, 0, "the list is empty");
    is_int(add(&h, "D", "6"), 0, "add after emptying");
    is_written(&h, "D: 6\r\n", "the list is usable after emptying");
    headers_free(&h);
}

static void test_set(void)
{
    struct headers h;

    headers_init(&h);
    add(&h, "A", "1");
    add(&h, "Cookie", "a=1");
    add(&h, "B", "2");
    add(&h, "cookie", "b=2");
    add(&h, "C", "3");
    is_int(headers_set(&h, "COOKIE", 6, "c=3", 3), 0, "set an existing name");
    is_written(&h, "A: 1\r\nCookie: c=3\r\nB: 2\r\nC: 3\r\n",
               "set: the first keeps its place and name, later duplicates go");

    is_int(headers_set(&h, "D", 1, "4", 1), 0, "set a new name");
    is_written(&h, "A: 1\r\nCookie: c=3\r\nB: 2\r\nC: 3\r\nD: 4\r\n", "set: a new name goes last");

    is_int(headers_set(&h, "A", 1, "", 0), 0, "set to an empty value");
    is_written(&h, "A: \r\nCookie: c=3\r\nB: 2\r\nC: 3\r\nD: 4\r\n", "set: empty value written");

    is_int(headers_set(&h, "B", 1, "bad\r\nX: y", 9), -1, "set refuses CRLF in the value");
    is_int(headers_set(&h, "B C", 3, "ok", 2), -1, "set refuses a bad name");
    is_int(headers_set(&h, "", 0, "ok", 2), -1, "set refuses an empty name");
    is_written(&h, "A: \r\nCookie: c=3\r\nB: 2\r\nC: 3\r\nD: 4\r\n",
               "refused sets leave the list unchanged");
    headers_free(&h);
}

static void test_set_value(void)
{
    struct headers h;
    size_t len;
    const char *s;

    headers_init(&h);
    add(&h, "A", "1");
    add(&h, "B", "2");
    is_int(headers_set_value(&h, 1, "two", 3), 0, "set_value on field 1");
    s = headers_value(&h, 1, &len);
    is_str(s, len, "two", "the new value is seen");
    s = headers_name(&h, 1, &len);
    is_str(s, len, "B", "the name is untouched");
    is_int(headers_set_value(&h, 2, "x", 1), -1, "set_value past the end: -1");
    is_int(headers_set_value(&h, (size_t)-1, "x", 1), -1, "set_value at SIZE_MAX: -1");
    is_int(headers_set_value(&h, 0, "a\nb", 3), -1, "set_value refuses LF");
    is_int(headers_set_value(&h, 0, "a\rb", 3), -1, "set_value refuses CR");
    is_int(headers_set_value(&h, 0, "a\0b", 3), -1, "set_value refuses NUL");
    is_int(headers_set_value(&h, 0, " a", 2), -1, "set_value refuses leading space");
    is_written(&h, "A: 1\r\nB: two\r\n", "refused set_values change nothing");

    /* Many edits: old text is left behind, earlier views must still read
     * right after the text buffer has grown and moved. */
    char v[32];
    int good = 1;
    for (int i = 0; i < 2000; i++) {
        snprintf(v, sizeof v, "value-%d", i);
        if (headers_set_value(&h, (size_t)(i % 2), v, strlen(v)) != 0)
            good = 0;
    }
    ok(good, "2000 set_values succeed");
    is_written(&h, "A: value-1998\r\nB: value-1999\r\n", "the last values win");
    headers_free(&h);
}

static void test_validation(void)
{
    static const char *const good_names[] = {
        "Host", "x-forwarded-for", "X_Y", "!#$%&'*+-.^_`|~", "0", "A1",
    };
    static const struct {
        const char *name;
        size_t len;
        const char *why;
    } bad_names[] = {
        {"", 0, "empty"},
        {"Bad Name", 8, "space"},
        {"Bad:Name", 8, "colon"},
        {"Name:", 5, "trailing colon"},
        {"Bad\rName", 8, "CR"},
        {"Bad\nName", 8, "LF"},
        {"Bad\0Name", 8, "NUL"},
        {"Bad\tName", 8, "tab"},
        {"(comment)", 9, "parentheses"},
        {"a\"b", 3, "quote"},
        {"a/b", 3, "slash"},
        {"a@b", 3, "at"},
        {"a,b", 3, "comma"},
        {"\xc3\xa9t\xc3\xa9", 6, "UTF-8"},
        {"a\x7f", 2, "DEL"},
    };
    static const struct {
        const char *value;
        size_t len;
        const char *why;
    } bad_values[] = {
        {"a\r\nX-Injected: 1", 17, "CRLF"},
        {"a\rb", 3, "bare CR"},
        {"a\nb", 3, "bare LF"},
        {"a\0b", 3, "NUL"},
        {"a\x01" "b", 3, "control 0x01"},
        {"a\x1f" "b", 3, "control 0x1f"},
        {"a\x7f" "b", 3, "DEL"},
        {" a", 2, "leading space"},
        {"a ", 2, "trailing space"},
        {"\ta", 2, "leading tab"},
        {"a\t", 2, "trailing tab"},
        {" ", 1, "only a space"},
        {"\r\n", 2, "only CRLF"},
    };

    /* Every input ends right before an unreadable page (guarded_copy), so
     * a check that looks one byte past <len> faults. */
    for (size_t i = 0; i < sizeof good_names / sizeof good_names[0]; i++) {
        size_t len = strlen(good_names[i]);
        ok(headers_valid_name(guarded_copy(good_names[i], len), len), "valid name '%s'",
           good_names[i]);
    }
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
        ok(!headers_valid_name(guarded_copy(bad_names[i].name, bad_names[i].len),
                               bad_names[i].len),
           "invalid name: %s", bad_names[i].why);
    for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++)
        ok(!headers_valid_value(guarded_copy(bad_values[i].value, bad_values[i].len),
                                bad_values[i].len),
           "invalid value: %s", bad_values[i].why);

    ok(headers_valid_value(guarded_copy("", 0), 0), "valid value: empty");
    ok(headers_valid_value(guarded_copy("a b\tc", 5), 5), "valid value: inner space and tab");
    ok(headers_valid_value(guarded_copy("caf\xc3\xa9", 5), 5), "valid value: obs-text bytes");
    ok(headers_valid_value(guarded_copy("\"quoted, list\"; q=0.5", 21), 21),
       "valid value: punctuation");
    /* A valid name followed (beyond <len>) by junk: only <len> counts. */
    ok(headers_valid_name(guarded_copy("Host: x", 4), 4), "only <len> bytes of a name count");
    ok(headers_valid_value(guarded_copy("ok\r\n", 2), 2), "only <len> bytes of a value count");

    /* Every byte, at every offset of the scanners' steps: a value keeps
     * exactly HTAB, SP, VCHAR and obs-text, a name exactly tchar. */
    int values_ok = 1, names_ok = 1;
    for (int c = 0; c < 256; c++) {
        int value_byte = c == '\t' || (c >= 0x20 && c != 0x7f);
        int name_byte = c < 0x80 && c > 0x20 && c != 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", c);
        for (size_t k = 1; k < 19; k++) {
            char text[20];
            memset(text, 'a', sizeof text);
            text[k] = (char)c;
            if (headers_valid_value(guarded_copy(text, k + 2), k + 2) != value_byte) {
                printf("#   value byte 0x%02x at offset %zu\n", c, k);
                values_ok = 0;
            }
            if (headers_valid_name(guarded_copy(text, k + 2), k + 2) != name_byte) {
                printf("#   name byte 0x%02x at offset %zu\n", c, k);
                names_ok = 0;
            }
        }
    }
    ok(values_ok, "value bytes: each kept or refused at every offset");
    ok(names_ok, "name bytes: each kept or refused at every offset");

    /* The list itself refuses them too and stays unchanged. */
    struct headers h;
    headers_init(&h);
    add(&h, "A", "1");
    is_int(headers_add(&h, "Bad Name", 8, "x", 1), -1, "add refuses a bad name");
    is_int(headers_add(&h, "X", 1, "a\r\nB: 2", 8), -1, "add refuses CRLF in the value");
    is_int(headers_add(&h, "X", 1, "a\0", 2), -1, "add refuses NUL in the value");
    is_int(headers_add(&h, "", 0, "x", 1), -1, "add refuses an empty name");
    is_written(&h, "A: 1\r\n", "refused adds leave the list unchanged");
    headers_free(&h);
}

static void test_limits(void)
{
    struct headers h;
    char name[16];
    int good = 1;

    headers_init(&h);
    for (int i = 0; i < HEADERS_MAX_COUNT; i++) {
        snprintf(name, sizeof name, "X-%d", i);
        if (add(&h, name, "v") != 0)
            good = 0;
    }
    ok(good, "%d fields fit", HEADERS_MAX_COUNT);
    is_int(add(&h, "X-One-More", "v"), -1, "one more field is refused");
    is_int(h.count, HEADERS_MAX_COUNT, "the count stays at the limit");
    is_int(headers_set(&h, "X-New", 5, "v", 1), -1, "set of a new name at the limit: -1");
    is_int(headers_set(&h, "X-7", 3, "w", 1), 0, "set of an existing name at the limit works");
    is_int(headers_remove(&h, "X-0", 3), 1, "remove one");
    is_int(add(&h, "X-After", "v"), 0, "after a remove there is room again");
    is_int(headers_find(&h, "X-After", 7, 0), HEADERS_MAX_COUNT - 1, "it went last");
    headers_free(&h);

    /* Text: the name and value bytes together are capped. */
    size_t big = HEADERS_MAX_TEXT / 2;
    char *v = malloc(HEADERS_MAX_TEXT + 1);
    if (!v) {
        ok(0, "malloc for the text limit test");
        return;
    }
    memset(v, 'a', HEADERS_MAX_TEXT + 1);
    headers_init(&h);
    is_int(headers_add(&h, "A", 1, v, big), 0, "half the text limit fits");
    is_int(headers_add(&h, "B", 1, v, big), -1, "another half (plus names) does not");
    is_int(h.count, 1, "the refused field was not added");
    is_int(headers_set_value(&h, 0, v, big), -1,
           "set_value is refused too (old text is kept until free)");
    size_t len;
    headers_value(&h, 0, &len);
    is_int(len, big, "the refused set_value left the old value");
    headers_free(&h);

    headers_init(&h);
    is_int(headers_add(&h, "A", 1, v, HEADERS_MAX_TEXT + 1), -1, "a value over the limit: -1");
    is_int(h.count, 0, "nothing was added");
    headers_free(&h);
    free(v);
}

/* A list rebuilt from an edited copy (a script's list read back): kept
 * fields keep their text, new ones are checked, nothing leaks into the
 * list on a refusal. */
static void test_rebuild(void)
{
    struct headers h;
    struct header items[4];

    headers_init(&h);
    add(&h, "Host", "a.example");
    add(&h, "User-Agent", "t/1");
    add(&h, "Accept", "*/*");
    ok(headers_same(&h, 1, "User-Agent", 10, "t/1", 3), "same: equal bytes");
    ok(!headers_same(&h, 1, "user-agent", 10, "t/1", 3), "same: a name in another case differs");
    ok(!headers_same(&h, 1, "User-Agent", 10, "t/2", 3), "same: another value differs");
    ok(!headers_same(&h, 1, "User-Agent", 10, "t/1 ", 4), "same: another length differs");

    /* Drop User-Agent, keep the others, add X-New between them. */
    items[0] = h.items[0];
    is_int(headers_store(&h, "X-New", 5, "1", 1, &items[1]), 0, "store a valid field");
    items[2] = h.items[2];
    is_int(h.count, 3, "a stored field is not in the list yet");
    is_int(headers_store(&h, "X-Bad", 5, "a\r\nB: c", 7, &items[3]), -1, "store: CR LF refused");
    is_int(headers_store(&h, "Bad Name", 8, "v", 1, &items[3]), -1, "store: a non-token name refused");
    is_int(headers_store(&h, "X-Ctl", 5, "a\001b", 3, &items[3]), -1, "store: a control byte refused");
    is_int(headers_store(&h, "X-Sp", 4, " v", 2, &items[3]), -1, "store: outer whitespace refused");
    is_int(headers_set_items(&h, items, 3), 0, "set_items");
    is_written(&h, "Host: a.example\r\nX-New: 1\r\nAccept: */*\r\n", "rebuilt in the new order");
    is_int(add(&h, "X-After", "2"), 0, "the list grows on as usual");
    is_written(&h, "Host: a.example\r\nX-New: 1\r\nAccept: */*\r\nX-After: 2\r\n",
               "added after a rebuild");
    is_int(headers_set_items(&h, items, HEADERS_MAX_COUNT + 1), -1, "set_items past the limit: -1");
    is_int(h.count, 4, "... and the list is as it was");
    is_int(headers_set_items(&h, items, 0), 0, "set_items to nothing");
    is_written(&h, "", "an emptied list writes nothing");
    headers_free(&h);

    /* Into a list that had no fields (tx:respond's headers). */
    headers_init(&h);
    is_int(headers_store(&h, "A", 1, "b", 1, &items[0]), 0, "store into an empty list");
    is_int(headers_set_items(&h, items, 1), 0, "set_items into an empty list");
    is_written(&h, "A: b\r\n", "one field");
    headers_free(&h);
}

/* A field added from views into the list's own text, while the text
 * grows and moves: the copy must be taken before the old block goes. */
static void test_add_from_own_text(void)
{
    struct headers h;
    int good = 1;

    headers_init(&h);
    add(&h, "X-Name", "a value long enough to make the text grow soon");
    for (int i = 0; i < 100; i++) {
        size_t nlen, vlen;
        const char *n = headers_name(&h, (size_t)i, &nlen);
        const char *v = headers_value(&h, (size_t)i, &vlen);
        if (headers_add(&h, n, nlen, v, vlen) != 0)
            good = 0;
    }
    for (size_t i = 0; i < h.count; i++) {
        size_t nlen, vlen;
        const char *n = headers_name(&h, i, &nlen);
        const char *v = headers_value(&h, i, &vlen);
        if (nlen != 6 || memcmp(n, "X-Name", 6) != 0 || vlen != 46 ||
            memcmp(v, "a value long enough to make the text grow soon", 46) != 0)
            good = 0;
    }
    ok(good && h.count == 101, "fields added from the list's own text, as it grows");
    headers_free(&h);
}

int main(void)
{
    test_empty();
    test_add_find();
    test_remove();
    test_set();
    test_set_value();
    test_validation();
    test_limits();
    test_rebuild();
    test_add_from_own_text();
    return tap_done();
}
