/*
 * test_intercept.c - unit tests for interception patterns and the
 * pass-through table.
 *
 * A pattern that matches too much decrypts traffic nobody asked to see; one
 * that matches too little leaves a user puzzled. So: exact names, the
 * subdomain form at several depths (and not the bare domain, nor a name
 * that merely ends in the same letters), case, --no-intercept winning, and
 * a table that expires entries and stays bounded.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "intercept.h"
#include "tap.h"

int main(void)
{
    struct config cfg;
    struct intercept *ic;
    char ip[64], host[64];

    ok(intercept_pattern_valid("example.com"), "a host name is a pattern");
    ok(intercept_pattern_valid("*.example.com"), "*.domain is a pattern");
    ok(intercept_pattern_valid("*"), "* is a pattern");
    ok(intercept_pattern_valid("::1") && intercept_pattern_valid("127.0.0.1"), "IP literals");
    ok(!intercept_pattern_valid(""), "empty is not");
    ok(!intercept_pattern_valid("*.") && !intercept_pattern_valid("a.*.com"), "stray stars");
    ok(!intercept_pattern_valid("exa mple.com") && !intercept_pattern_valid("a/b"), "bad bytes");

    ok(intercept_pattern_match("example.com", "EXAMPLE.com"), "exact, any case");
    ok(!intercept_pattern_match("example.com", "www.example.com"), "exact is not subdomains");
    ok(intercept_pattern_match("*.example.com", "www.example.com"), "one level down");
    ok(intercept_pattern_match("*.example.com", "a.b.example.com"), "two levels down");
    ok(!intercept_pattern_match("*.example.com", "example.com"), "not the bare domain");
    ok(!intercept_pattern_match("*.example.com", "badexample.com"), "not a suffix of letters");
    ok(intercept_pattern_match("*", "anything.invalid"), "* matches all");
    /* Names are C strings: the NUL right before an unreadable page is the
     * last byte read. */
    ok(intercept_pattern_match("*.example.com", guarded_copy("x.example.com", 14)),
       "no read past the name's end");
    ok(!intercept_pattern_match("*.example.com", guarded_copy("", 1)), "empty name");

    memset(&cfg, 0, sizeof cfg);
    cfg.intercept[cfg.intercept_count++] = "*";
    cfg.no_intercept[cfg.no_intercept_count++] = "*.bank.example";
    ok(intercept_by_patterns(&cfg, "shop.example"), "--intercept *");
    ok(!intercept_by_patterns(&cfg, "www.bank.example"), "--no-intercept wins");
    cfg.intercept_count = 0;
    ok(!intercept_by_patterns(&cfg, "shop.example"), "nothing intercepted by default");

    ic = intercept_new(600);
    ok(!intercept_passing_through(ic, "127.0.0.1", "a.example", 1000), "empty table");
    is_int(intercept_note_refusal(ic, "127.0.0.1", "a.example", 1000), 1, "news is logged");
    is_int(intercept_note_refusal(ic, "127.0.0.1", "A.example", 1001), 0, "once");
    ok(intercept_passing_through(ic, "127.0.0.1", "a.example", 1500), "within the ttl");
    ok(!intercept_passing_through(ic, "127.0.0.2", "a.example", 1500), "per client");
    ok(!intercept_passing_through(ic, "127.0.0.1", "b.example", 1500), "per host");
    ok(!intercept_passing_through(ic, "127.0.0.1", "a.example", 1600), "expired");
    for (int i = 0; i < INTERCEPT_TABLE_MAX + 10; i++) {
        snprintf(ip, sizeof ip, "10.0.%d.%d", i / 256, i % 256);
        snprintf(host, sizeof host, "h%d.example", i);
        intercept_note_refusal(ic, ip, host, 2000 + i);
    }
    ok(intercept_passing_through(ic, "10.0.4.9", "h1033.example", 2000 + 1040),
       "the newest entry survives a full table");
    ok(!intercept_passing_through(ic, "10.0.0.0", "h0.example", 2000 + 1040),
       "the oldest made room");
    intercept_free(ic);

    /* One client refusing host after host keeps to its share and does
     * not push out another client's entry. */
    ic = intercept_new(600);
    intercept_note_refusal(ic, "192.0.2.1", "pinned.example", 3000);
    for (int i = 0; i < INTERCEPT_TABLE_MAX + 10; i++) {
        snprintf(host, sizeof host, "h%d.example", i);
        intercept_note_refusal(ic, "198.51.100.7", host, 3001 + i * 0.01);
    }
    ok(intercept_passing_through(ic, "192.0.2.1", "pinned.example", 3100),
       "another client's entry survives one client's flood");
    snprintf(host, sizeof host, "h%d.example", INTERCEPT_TABLE_MAX + 9);
    ok(intercept_passing_through(ic, "198.51.100.7", host, 3100), "  ... whose newest entry is kept");
    snprintf(host, sizeof host, "h%d.example", INTERCEPT_TABLE_MAX + 10 - INTERCEPT_PER_CLIENT_MAX);
    ok(intercept_passing_through(ic, "198.51.100.7", host, 3100),
       "  ... and so are its %d newest", INTERCEPT_PER_CLIENT_MAX);
    snprintf(host, sizeof host, "h%d.example", INTERCEPT_TABLE_MAX + 9 - INTERCEPT_PER_CLIENT_MAX);
    ok(!intercept_passing_through(ic, "198.51.100.7", host, 3100), "  ... but not one more");
    intercept_free(ic);

    ic = intercept_new(0);
    is_int(intercept_note_refusal(ic, "127.0.0.1", "a.example", 1000), 0, "ttl 0: off");
    ok(!intercept_passing_through(ic, "127.0.0.1", "a.example", 1000), "ttl 0: never");
    intercept_free(ic);
    return tap_done();
}
