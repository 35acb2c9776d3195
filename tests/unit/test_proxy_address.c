/*
 * test_proxy_address.c - unit tests for the text of a client's address.
 *
 * IPv4 addresses are formatted by hand (proxy.c): every byte value, at
 * every place of the address, must read as inet_ntop would write it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>

#include "proxy.h"
#include "tap.h"

static int same_as_inet_ntop(const unsigned char b[4], int port)
{
    struct sockaddr_in sin;
    char got[INET6_ADDRSTRLEN], want[INET6_ADDRSTRLEN];
    int got_port = -1;

    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    memcpy(&sin.sin_addr, b, 4);
    memset(got, 'x', sizeof got);
    proxy_client_address((const struct sockaddr *)&sin, got, sizeof got, &got_port);
    inet_ntop(AF_INET, &sin.sin_addr, want, sizeof want);
    return strcmp(got, want) == 0 && got_port == port;
}

int main(void)
{
    int bad = 0;
    for (int place = 0; place < 4; place++)
        for (int v = 0; v < 256; v++) {
            unsigned char b[4] = {127, 0, 0, 1};
            b[place] = (unsigned char)v;
            if (!same_as_inet_ntop(b, 40000 + v))
                bad++;
        }
    is_int(bad, 0, "each byte value in each place reads as inet_ntop's");
    ok(same_as_inet_ntop((const unsigned char[]){255, 255, 255, 255}, 65535),
       "the longest IPv4 address and port");
    ok(same_as_inet_ntop((const unsigned char[]){0, 0, 0, 0}, 0), "the shortest");

    struct sockaddr_in6 sin6;
    char text[INET6_ADDRSTRLEN];
    int port = -1;
    memset(&sin6, 0, sizeof sin6);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(8080);
    inet_pton(AF_INET6, "::1", &sin6.sin6_addr);
    proxy_client_address((const struct sockaddr *)&sin6, text, sizeof text, &port);
    is_str(text, strlen(text), "::1", "IPv6 loopback");
    is_int(port, 8080, "IPv6 port");
    (void)guarded_copy;
    return tap_done();
}
