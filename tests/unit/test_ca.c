/*
 * test_ca.c - unit tests for the interception CA's certificate cache.
 *
 * A minted certificate is kept and given again for the same name (any
 * case), and one about to end is made again rather than shown past its
 * end: a proxy may well run longer than a leaf's validity.
 */
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca.h"
#include "tap.h"

int main(void)
{
    char dir[] = "/tmp/luaproxy-test-ca.XXXXXX", err[256] = "", cmd[300];
    struct ca *ca;
    X509 *first, *again, *fresh;
    time_t soon = time(NULL) + 86400;

    if (!mkdtemp(dir))
        return 1;
    ok(ca_create(dir, 0, err, sizeof err) == 0, "a CA is made %s", err);
    ca = ca_load(dir, err, sizeof err);
    ok(ca != NULL, "and loaded %s", ca ? "" : err);
    if (!ca)
        return tap_done();

    first = ca_certificate(ca, "example.test");
    again = ca_certificate(ca, guarded_copy("EXAMPLE.test", sizeof "EXAMPLE.test"));
    ok(first && first == again, "the same name (any case) gets the cached certificate");
    ok(X509_cmp_time(X509_get0_notAfter(first), &soon) > 0, "which ends well after a day");

    /* As if the proxy had run for the leaf's whole validity. */
    X509_gmtime_adj(X509_getm_notAfter(first), 3600);
    X509_up_ref(first); /* kept past the cache's eviction, as an SSL object would */
    fresh = ca_certificate(ca, "example.test");
    ok(fresh && fresh != first, "one that ends within a day is made again");
    ok(fresh && X509_cmp_time(X509_get0_notAfter(fresh), &soon) > 0,
       "and the new one ends well after a day");
    ok(ca_certificate(ca, "example.test") == fresh, "and is cached in its place");
    X509_free(first);

    ca_free(ca);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    return tap_done();
}
