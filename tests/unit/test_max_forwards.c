/*
 * test_max_forwards.c - unit tests for reading Max-Forwards (RFC 9110
 * 7.6.2): which requests it concerns, the count that goes on, and which
 * values are refused. Heads are parsed by the real parser from guarded
 * copies, so a read past a value's end faults.
 */
#include <stdint.h>
#include <stdlib.h>

#include "http_parse.h"
#include "max_forwards.h"
#include "tap.h"

static struct http_head head; /* large: kept out of the stack */

/* The verdict on "<method> http://h/ HTTP/1.1" with <fields> (each ending
 * in CRLF); the count that goes on in *<left>. */
static enum max_forwards check(const char *method, const char *fields, uint64_t *left)
{
    char text[512];
    enum http_error err;
    int len = snprintf(text, sizeof text, "%s http://h/ HTTP/1.1\r\nHost: h\r\n%s\r\n", method,
                       fields);
    const char *copy = guarded_copy(text, (size_t)len);
    if (http_parse_request(copy, (size_t)len, &head, &err) != len) {
        printf("# fixture does not parse (err %d): %s\n", err, text);
        abort();
    }
    *left = UINT64_MAX;
    return max_forwards_check(&head, left);
}

int main(void)
{
    uint64_t left;

    is_int(check("GET", "Max-Forwards: 0\r\n", &left), MAX_FORWARDS_NONE, "GET ignores it");
    is_int(check("TRACE", "", &left), MAX_FORWARDS_NONE, "TRACE without it goes on as it is");
    is_int(check("TRACE", "Max-Forwards: 0\r\n", &left), MAX_FORWARDS_HERE, "0: answered here");
    is_int(check("OPTIONS", "Max-Forwards: 5\r\n", &left), MAX_FORWARDS_ON, "5: goes on");
    is_int(left, 4, "5 goes on as 4");
    is_int(check("TRACE", "Max-Forwards: 007\r\n", &left), MAX_FORWARDS_ON, "leading zeros");
    is_int(left, 6, "007 goes on as 6");

    /* A long numeral is a very large count, not an error. */
    is_int(check("TRACE", "Max-Forwards: 2147483647\r\n", &left), MAX_FORWARDS_ON, "the cap");
    is_int(left, MAX_FORWARDS_CAP - 1, "the cap goes on one lower");
    is_int(check("TRACE", "Max-Forwards: 2147483648\r\n", &left), MAX_FORWARDS_ON,
           "one past the cap");
    is_int(left, MAX_FORWARDS_CAP - 1, "one past the cap is read as the cap");
    is_int(check("OPTIONS", "Max-Forwards: 99999999999999999999999\r\n", &left),
           MAX_FORWARDS_ON, "23 digits go on");
    is_int(left, MAX_FORWARDS_CAP - 1, "23 digits are read as the cap");
    is_int(check("OPTIONS", "Max-Forwards: 18446744073709551616\r\n", &left), MAX_FORWARDS_ON,
           "2^64 does not wrap");
    is_int(left, MAX_FORWARDS_CAP - 1, "2^64 is read as the cap");
    is_int(check("TRACE", "Max-Forwards: 00000000000000000000000\r\n", &left), MAX_FORWARDS_HERE,
           "23 zeros are 0");

    /* Still refused: not one number. */
    is_int(check("TRACE", "Max-Forwards: x\r\n", &left), MAX_FORWARDS_BAD, "not digits");
    is_int(check("TRACE", "Max-Forwards: -1\r\n", &left), MAX_FORWARDS_BAD, "signed");
    is_int(check("TRACE", "Max-Forwards: 1 2\r\n", &left), MAX_FORWARDS_BAD, "two numbers");
    is_int(check("TRACE", "Max-Forwards: 1,2\r\n", &left), MAX_FORWARDS_BAD, "a list");
    is_int(check("TRACE", "Max-Forwards:\r\n", &left), MAX_FORWARDS_BAD, "empty");
    is_int(check("TRACE", "Max-Forwards: 99999999999999999999999x\r\n", &left), MAX_FORWARDS_BAD,
           "a long numeral with a letter at its end");
    is_int(check("TRACE", "Max-Forwards: 3\r\nMax-Forwards: 3\r\n", &left), MAX_FORWARDS_BAD,
           "repeated");
    return tap_done();
}
