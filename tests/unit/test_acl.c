/*
 * test_acl.c - unit tests for client CIDR lists, CONNECT port sets and
 * the destinations only this machine can reach.
 *
 * An access list that is too loose makes an open proxy, one that is too
 * strict locks out its users; so the edges get the attention here: /0, the
 * full-length prefixes, prefixes that end inside a byte, IPv4 clients that
 * arrive as IPv4-mapped IPv6 addresses, and every way to write a bad list.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>

#include "acl.h"
#include "tap.h"

static struct sockaddr_storage addr_of(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(12345);
    } else if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(12345);
    } else {
        printf("# bad test address %s\n", text);
        abort();
    }
    return ss;
}

/* Whether <client> matches the single prefix <cidr>. */
static int matches(const char *cidr, const char *client)
{
    struct cidr c;
    struct sockaddr_storage ss = addr_of(client);
    if (acl_parse_cidr(cidr, &c) != 0) {
        printf("# could not parse %s\n", cidr);
        return -1;
    }
    return acl_match(&c, 1, (const struct sockaddr *)&ss);
}

static void test_parse(void)
{
    struct cidr c;
    static const unsigned char ten[4] = {10, 0, 0, 0};
    static const unsigned char loop6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

    is_int(acl_parse_cidr("10.0.0.0/8", &c), 0, "parse 10.0.0.0/8");
    ok(c.family == AF_INET && c.prefix == 8 && memcmp(c.addr, ten, 4) == 0,
       "  ... IPv4, prefix 8, network bytes");
    is_int(acl_parse_cidr("1.2.3.4", &c), 0, "parse a bare IPv4 address");
    is_int(c.prefix, 32, "  ... is a /32");
    is_int(acl_parse_cidr("::1", &c), 0, "parse ::1");
    ok(c.family == AF_INET6 && c.prefix == 128 && memcmp(c.addr, loop6, 16) == 0,
       "  ... IPv6, a /128, network bytes");
    is_int(acl_parse_cidr("fd00::/8", &c), 0, "parse fd00::/8");
    ok(c.family == AF_INET6 && c.prefix == 8, "  ... IPv6, prefix 8");

    static const struct {
        const char *text;
        int prefix;
    } edges[] = {
        {"0.0.0.0/0", 0},     {"1.2.3.4/32", 32}, {"::/0", 0},
        {"::1/128", 128},     {"10.0.0.0/08", 8}, {"2001:db8::/127", 127},
        {"192.168.1.7/24", 24}, /* host bits set: accepted, only the prefix counts */
    };
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        int rc = acl_parse_cidr(edges[i].text, &c);
        ok(rc == 0 && c.prefix == edges[i].prefix, "parse %s: prefix %d", edges[i].text,
           edges[i].prefix);
    }

    static const char *const bad[] = {
        "",
        "/8",
        "10.0.0.0/",
        "10.0.0.0/33",
        "10.0.0.0/-1",
        "10.0.0.0/+8",
        "10.0.0.0/ 8",
        "10.0.0.0/8 ",
        "10.0.0.0/8x",
        "10.0.0.0/0008",
        "10.0.0.0/8/8",
        "10.0.0.0/999",
        "::1/129",
        "::/200",
        "256.0.0.0/8",
        "10.0.0/8",
        "10.0.0.0.0",
        " 10.0.0.0/8",
        "localhost",
        "example.com/8",
        "[::1]",
        "[::1]/128",
        "1.2.3.4:80",
        "0x0a000000/8",
        "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd:eeee/64",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        is_int(acl_parse_cidr(bad[i], &c), -1, bad[i][0] ? bad[i] : "(empty)");
}

static void test_match(void)
{
    /* IPv4 prefixes, whole bytes and inside a byte */
    is_int(matches("10.0.0.0/8", "10.255.255.255"), 1, "10/8 matches 10.255.255.255");
    is_int(matches("10.0.0.0/8", "11.0.0.0"), 0, "10/8 does not match 11.0.0.0");
    is_int(matches("10.0.0.0/8", "9.255.255.255"), 0, "10/8 does not match 9.255.255.255");
    is_int(matches("172.16.0.0/12", "172.31.255.255"), 1, "172.16/12 matches 172.31.255.255");
    is_int(matches("172.16.0.0/12", "172.32.0.0"), 0, "172.16/12 does not match 172.32.0.0");
    is_int(matches("172.16.0.0/12", "172.15.255.255"), 0,
           "172.16/12 does not match 172.15.255.255");
    is_int(matches("192.168.1.128/25", "192.168.1.200"), 1, "/25 matches the upper half");
    is_int(matches("192.168.1.128/25", "192.168.1.127"), 0, "/25 does not match the lower half");
    is_int(matches("192.168.1.7/24", "192.168.1.99"), 1, "host bits in the prefix are ignored");
    is_int(matches("1.2.3.4/31", "1.2.3.5"), 1, "/31 matches its pair");
    is_int(matches("1.2.3.4/31", "1.2.3.6"), 0, "/31 does not match the next pair");

    /* /32 and /0 */
    is_int(matches("1.2.3.4/32", "1.2.3.4"), 1, "/32 matches the address");
    is_int(matches("1.2.3.4/32", "1.2.3.5"), 0, "/32 does not match the next address");
    is_int(matches("1.2.3.4", "1.2.3.4"), 1, "a bare address matches itself");
    is_int(matches("1.2.3.4", "1.2.3.3"), 0, "a bare address matches nothing else");
    is_int(matches("0.0.0.0/0", "255.255.255.255"), 1, "0.0.0.0/0 matches any IPv4");
    is_int(matches("0.0.0.0/0", "0.0.0.0"), 1, "0.0.0.0/0 matches 0.0.0.0");
    is_int(matches("0.0.0.0/0", "::1"), 0, "0.0.0.0/0 does not match IPv6");

    /* IPv6 */
    is_int(matches("::1", "::1"), 1, "::1 matches ::1");
    is_int(matches("::1", "::2"), 0, "::1 does not match ::2");
    is_int(matches("::1/128", "::1"), 1, "::1/128 matches ::1");
    is_int(matches("fd00::/8", "fdff:1::5"), 1, "fd00::/8 matches fdff:1::5");
    is_int(matches("fd00::/8", "fe80::1"), 0, "fd00::/8 does not match fe80::1");
    is_int(matches("2001:db8::/33", "2001:db8:7fff::1"), 1, "/33 matches inside the byte");
    is_int(matches("2001:db8::/33", "2001:db8:8000::1"), 0, "/33 stops at bit 33");
    is_int(matches("::/0", "2001:db8::1"), 1, "::/0 matches any IPv6");
    is_int(matches("::/0", "127.0.0.1"), 0, "::/0 does not match IPv4");
    is_int(matches("::1", "127.0.0.1"), 0, "::1 does not match 127.0.0.1");
    is_int(matches("127.0.0.0/8", "::1"), 0, "127.0.0.0/8 does not match ::1");

    /* IPv4-mapped IPv6 clients count as IPv4 */
    is_int(matches("127.0.0.0/8", "::ffff:127.0.0.1"), 1,
           "127.0.0.0/8 matches ::ffff:127.0.0.1");
    is_int(matches("10.0.0.0/8", "::ffff:10.1.2.3"), 1, "10/8 matches ::ffff:10.1.2.3");
    is_int(matches("10.0.0.0/8", "::ffff:11.1.2.3"), 0, "10/8 does not match ::ffff:11.1.2.3");
    is_int(matches("1.2.3.4/32", "::ffff:1.2.3.4"), 1, "/32 matches its mapped form");
    is_int(matches("0.0.0.0/0", "::ffff:8.8.8.8"), 1, "0.0.0.0/0 matches a mapped address");
    is_int(matches("::/0", "::ffff:8.8.8.8"), 0,
           "::/0 does not match a mapped address (it is IPv4)");
    /* A mapped prefix in the list is the IPv4 prefix it spells: before, it
     * stayed IPv6 and matched nobody, mapped or not. */
    is_int(matches("::ffff:10.0.0.0/104", "10.1.2.3"), 1, "::ffff:10.0.0.0/104 matches 10.1.2.3");
    is_int(matches("::ffff:10.0.0.0/104", "::ffff:10.1.2.3"), 1, "  ... and its mapped form");
    is_int(matches("::ffff:10.0.0.0/104", "11.1.2.3"), 0, "  ... not 11.1.2.3");
    is_int(matches("::ffff:127.0.0.1", "127.0.0.1"), 1, "a bare mapped address is its /32");
    is_int(matches("::ffff:0.0.0.0/96", "8.8.8.8"), 1, "::ffff:0.0.0.0/96 is 0.0.0.0/0");
    is_int(matches("::ffff:0.0.0.0/95", "8.8.8.8"), 0, "a shorter prefix stays IPv6");
    is_int(matches("::ffff:0.0.0.0/95", "::fffe:1.2.3.4"), 1, "  ... and matches IPv6");
    /* Almost mapped: not ::ffff: but ::fffe: or the IPv4-compatible form */
    is_int(matches("10.0.0.0/8", "::fffe:10.1.2.3"), 0, "::fffe:10.1.2.3 is not mapped");
    is_int(matches("10.0.0.0/8", "::10.1.2.3"), 0, "::10.1.2.3 is not mapped");
    is_int(matches("::/0", "::fffe:10.1.2.3"), 1, "  ... it is plain IPv6");

    /* lists */
    struct cidr list[3];
    acl_parse_cidr("10.0.0.0/8", &list[0]);
    acl_parse_cidr("192.168.0.0/16", &list[1]);
    acl_parse_cidr("::1", &list[2]);
    struct sockaddr_storage a = addr_of("192.168.44.1"), b = addr_of("::1"),
                            c = addr_of("172.16.0.1");
    is_int(acl_match(list, 3, (const struct sockaddr *)&a), 1, "list: second entry matches");
    is_int(acl_match(list, 3, (const struct sockaddr *)&b), 1, "list: IPv6 entry matches");
    is_int(acl_match(list, 3, (const struct sockaddr *)&c), 0, "list: no entry matches");
    is_int(acl_match(list, 1, (const struct sockaddr *)&a), 0, "list: only <count> entries count");
    is_int(acl_match(list, 0, (const struct sockaddr *)&a), 0, "an empty list matches nothing");

    /* other address families are never allowed */
    struct sockaddr_storage unix_addr;
    memset(&unix_addr, 0, sizeof unix_addr);
    unix_addr.ss_family = AF_UNIX;
    struct cidr all;
    acl_parse_cidr("0.0.0.0/0", &all);
    is_int(acl_match(&all, 1, (const struct sockaddr *)&unix_addr), 0,
           "an AF_UNIX peer matches nothing");
}

static void test_ports(void)
{
    struct port_set set;

    is_int(acl_parse_ports("443", &set), 0, "parse 443");
    ok(acl_port_allowed(&set, 443), "  ... 443 allowed");
    ok(!acl_port_allowed(&set, 442) && !acl_port_allowed(&set, 444), "  ... 442, 444 not");
    ok(!acl_port_allowed(&set, 0), "  ... 0 not");

    is_int(acl_parse_ports("443,8443,22", &set), 0, "parse 443,8443,22");
    ok(acl_port_allowed(&set, 443) && acl_port_allowed(&set, 8443) && acl_port_allowed(&set, 22),
       "  ... all three allowed");
    ok(!acl_port_allowed(&set, 80), "  ... 80 not");

    is_int(acl_parse_ports("1,65535", &set), 0, "parse the edges 1,65535");
    ok(acl_port_allowed(&set, 1) && acl_port_allowed(&set, 65535), "  ... both allowed");
    ok(!acl_port_allowed(&set, 65536), "  ... 65536 is never allowed");
    ok(!acl_port_allowed(&set, 0xffffffffu), "  ... nor UINT_MAX");
    is_int(acl_parse_ports("63,64,65,127,128", &set), 0, "ports around word boundaries");
    ok(acl_port_allowed(&set, 63) && acl_port_allowed(&set, 64) && acl_port_allowed(&set, 65) &&
           acl_port_allowed(&set, 127) && acl_port_allowed(&set, 128) &&
           !acl_port_allowed(&set, 62) && !acl_port_allowed(&set, 66) &&
           !acl_port_allowed(&set, 129),
       "  ... exactly those bits");

    is_int(acl_parse_ports("443,443", &set), 0, "a repeated port is harmless");
    is_int(acl_parse_ports("0443", &set), 0, "a leading zero is read as decimal");
    ok(acl_port_allowed(&set, 443), "  ... 0443 is 443");

    is_int(acl_parse_ports("80", &set), 0, "parse 80 after other lists");
    ok(acl_port_allowed(&set, 80) && !acl_port_allowed(&set, 443),
       "  ... the set was cleared first");

    static const char *const bad[] = {
        "", "0", "65536", "99999", "1234567", "-1", "+443", " 443", "443 ", "443,", ",443",
        "443,,80", "443;80", "443 80", "80-90", "https", "0x1bb", "443,0", "443,65536",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        is_int(acl_parse_ports(bad[i], &set), -1, bad[i][0] ? bad[i] : "(empty port list)");

    /* every valid port round-trips */
    char text[8];
    int all_good = 1;
    for (unsigned p = 1; p <= 65535; p++) {
        snprintf(text, sizeof text, "%u", p);
        if (acl_parse_ports(text, &set) != 0 || !acl_port_allowed(&set, p) ||
            acl_port_allowed(&set, p - 1) || (p < 65535 && acl_port_allowed(&set, p + 1)))
            all_good = 0;
    }
    ok(all_good, "each of 1..65535 parses alone and sets exactly its bit");
}

/* The addresses a client on another machine must not reach through the
 * proxy: every spelling of them, and the neighbours just outside. */
static void test_machine_local(void)
{
    static const char *const local[] = {
        "127.0.0.1", "127.255.255.254", "127.1.2.3", "0.0.0.0", "0.1.2.3", "169.254.169.254",
        "169.254.0.1", "::1", "::", "fe80::1", "febf:ffff::1", "::ffff:127.0.0.1",
        "::ffff:169.254.169.254", "::ffff:0.0.0.0",
    };
    static const char *const elsewhere[] = {
        "128.0.0.1", "126.255.255.255", "1.0.0.0", "169.253.255.255", "169.255.0.1",
        "10.0.0.1", "192.168.1.1", "192.0.2.2", "::2", "fec0::1", "fe7f::1", "fd00::1",
        "2001:db8::1", "::ffff:10.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1",
    };
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++) {
        struct sockaddr_storage ss = addr_of(local[i]);
        ok(acl_is_machine_local((struct sockaddr *)&ss), "%s is this machine's own", local[i]);
    }
    for (size_t i = 0; i < sizeof elsewhere / sizeof elsewhere[0]; i++) {
        struct sockaddr_storage ss = addr_of(elsewhere[i]);
        ok(!acl_is_machine_local((struct sockaddr *)&ss), "%s is elsewhere", elsewhere[i]);
        ok(!acl_is_loopback((struct sockaddr *)&ss), "  ... and a client there is not loopback");
    }
    /* A client is local only on loopback: link-local and the unspecified
     * address are other machines' (or no one's) as a client's source. */
    static const char *const loopback[] = {"127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"};
    static const char *const not_loopback[] = {"0.0.0.0", "169.254.169.254", "fe80::1", "::"};
    for (size_t i = 0; i < sizeof loopback / sizeof loopback[0]; i++) {
        struct sockaddr_storage ss = addr_of(loopback[i]);
        ok(acl_is_loopback((struct sockaddr *)&ss), "a client at %s is loopback", loopback[i]);
    }
    for (size_t i = 0; i < sizeof not_loopback / sizeof not_loopback[0]; i++) {
        struct sockaddr_storage ss = addr_of(not_loopback[i]);
        ok(!acl_is_loopback((struct sockaddr *)&ss), "a client at %s is not loopback",
           not_loopback[i]);
    }
}

/* A target a parent proxy will resolve, judged by its spelling: every
 * form a resolver reads as a local address, and the localhost names. */
static void test_host_machine_local(void)
{
    static const char *const local[] = {
        "127.0.0.1", "127.1", "2130706433", "0x7f.1", "017700000001", "0", "0.0.0.0",
        "169.254.169.254", "::1", "::", "::ffff:127.0.0.1", "fe80::1%eth0", "localhost",
        "LOCALHOST", "localhost.", "app.localhost", "a.b.localhost.",
    };
    static const char *const elsewhere[] = {
        "10.0.0.1", "192.0.2.2", "1.2.3.4", "fd00::1", "::ffff:10.0.0.1", "example.com",
        "xlocalhost", "localhost.example.com", "localhost..", ".", "127.0.0.1.example",
    };
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++)
        ok(acl_host_is_machine_local(local[i]), "host %s is this machine's own", local[i]);
    for (size_t i = 0; i < sizeof elsewhere / sizeof elsewhere[0]; i++)
        ok(!acl_host_is_machine_local(elsewhere[i]), "host %s may be elsewhere", elsewhere[i]);
}

int main(void)
{
    /* Inputs to the parsers are NUL-terminated C strings by contract
     * (command-line arguments), so guarded copies add nothing here. */
    (void)guarded_copy;
    test_parse();
    test_match();
    test_ports();
    test_machine_local();
    test_host_machine_local();
    return tap_done();
}
