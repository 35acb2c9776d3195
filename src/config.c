/*
 * config.c - command-line options and their defaults.
 *
 * A bad option or value is reported with the option's name and what was
 * expected; main() turns that into exit status 2. Defaults are the safe
 * ones: listen on loopback, allow only loopback clients, CONNECT only to 443.
 */
#include "config.h"
#include "intercept.h"

#include "admin.h"
#include "http_parse.h"
#include "shared_store.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const char usage_text[] =
    "Usage: luaproxy [OPTIONS]\n"
    "       luaproxy --check SCRIPT...\n"
    "       luaproxy --check -c FILE\n"
    "\n"
    "An HTTP/1.1 forward proxy whose behaviour Lua 5.4 scripts can change.\n"
    "\n"
    "Listening and access:\n"
    "  -l, --listen HOST:PORT     address to listen on (repeatable; IPv6 as [::1]:8080;\n"
    "                             port 0 picks a free port). Default 127.0.0.1:8080\n"
    "      --allow CIDR           clients allowed to use the proxy (repeatable).\n"
    "                             Default 127.0.0.0/8 and ::1; others get 403\n"
    "      --connect-ports LIST   comma-separated ports CONNECT may reach (repeatable;\n"
    "                             the lists add up). Default 443\n"
    "      --allow-local-destinations  let clients on other machines reach this\n"
    "                             machine's loopback and link-local addresses (403\n"
    "                             by default; loopback clients always may)\n"
    "      --max-connections N    clients served at once; at the limit a new one\n"
    "                             closes the longest-idle keep-alive client, or gets\n"
    "                             503 when none is idle. Default: what the file\n"
    "                             descriptor limit allows (two per client, less a\n"
    "                             reserve)\n"
    "\n"
    "Limits and timeouts (SECS: decimal seconds, 0.001 or more, such as 0.5):\n"
    "      --header-timeout SECS  time to send a complete request head (408). Default 10\n"
    "      --idle-timeout SECS    silence allowed on a connection or tunnel, and time\n"
    "                             to wait for a response head (504). Default 60\n"
    "      --connect-timeout SECS DNS plus TCP connect to the upstream (504). Default 10\n"
    "      --max-header-bytes N   largest request or response head (431; a longer\n"
    "                             request target gets 414). Default 32768\n"
    "\n"
    "Scripts:\n"
    "  -s, --script FILE          Lua hook script (repeatable; run in the given order)\n"
    "      --check                load the scripts given as arguments, report problems\n"
    "                             and exit (non-zero on a problem)\n"
    "      --hook-timeout MS      running time one hook call may use (time it waits\n"
    "                             in proxy.sleep, proxy.http or proxy.shared does not\n"
    "                             count). Default 100\n"
    "      --hook-wait-timeout SECS  longest one wait of a hook. Default 30\n"
    "      --lua-memory MB        memory cap of the Lua state. Default 64\n"
    "      --max-body-buffer MB   largest body a script collects whole\n"
    "                             (tx.req.buffer_body; 413 beyond). Default 8\n"
    "      --shared-memory MB     memory for proxy.shared, seen by all workers; the\n"
    "                             least recently used keys go when full. Default 16\n"
    "      --shared redis://HOST:PORT[/DB]  keep proxy.shared in Redis instead\n"
    "                             (HOST: an IP address or localhost)\n"
    "      --hook-errors MODE     closed (a failing hook fails the exchange with 500,\n"
    "                             the default) or open (carry on as if it were absent)\n"
    "\n"
    "Admin interface and flows:\n"
    "      --admin HOST:PORT      serve the flow viewer and its API here (off by\n"
    "                             default; a loopback address unless --admin-allow)\n"
    "      --admin-allow CIDR     clients allowed on --admin (repeatable). Default\n"
    "                             127.0.0.0/8 and ::1\n"
    "      --admin-token TOKEN    the admin token. Default: a random one, logged\n"
    "      --flows N              flows kept for the viewer; 0 turns capture off.\n"
    "                             Default 1000\n"
    "      --flow-body-max BYTES  bytes kept of each body. Default 1048576\n"
    "      --flows-memory MB      memory for all kept flows. Default 64\n"
    "      --har FILE             write the captured flows as HAR when stopping\n"
    "\n"
    "HTTPS interception:\n"
    "      --intercept PATTERN    decrypt CONNECT tunnels to matching hosts (repeatable):\n"
    "                             example.com, *.example.com (subdomains) or *\n"
    "      --no-intercept PATTERN never decrypt these (repeatable; wins over --intercept)\n"
    "      --ca-dir DIR           the CA (ca.pem, ca.key). Default $LUAPROXY_CA_DIR,\n"
    "                             else ~/.luaproxy; made at start if --intercept is\n"
    "                             given and there is none (luaproxy ca init makes one)\n"
    "      --upstream-ca FILE     extra CA certificates (PEM) trusted for upstreams\n"
    "      --insecure-upstream    do not verify upstream certificates (warned at start)\n"
    "      --tls-passthrough-ttl SECS  after a client refuses an intercepted handshake,\n"
    "                             its tunnels to that host pass through this long.\n"
    "                             Default 600; 0 turns it off\n"
    "      --tls-keylog FILE      append TLS secrets of both legs (NSS key log format,\n"
    "                             for Wireshark); also $SSLKEYLOGFILE\n"
    "\n"
    "Logging and other:\n"
    "      --access-log FILE|-    one line per exchange; - is standard output\n"
    "      --log-format FORMAT    common (CLF plus the duration in ms, the default),\n"
    "                             combined (adds referer and user agent) or json\n"
    "                             (one object per line, with upstream and error)\n"
    "  -w, --workers N            worker processes, each with its own event loop and\n"
    "                             Lua state. Default: the number of CPUs\n"
    "  -v, --verbose              debug logging: one line per exchange, and more\n"
    "      --trace                every step of every exchange, one line each on\n"
    "                             stderr, naming the source file:function\n"
    "\n"
    "Proxy authentication:\n"
    "      --auth-file FILE       require Basic proxy credentials from the users of\n"
    "                             this htpasswd file (htpasswd -B, or $6$/$5$ crypt);\n"
    "                             others get 407. Read again on SIGHUP\n"
    "\n"
    "Parent proxy:\n"
    "      --upstream URL         send every request through the parent HTTP proxy\n"
    "                             http://[user:password@]host:port (CONNECT for\n"
    "                             tunnels; 502/504 name the parent when it fails)\n"
    "      --upstream-bypass PAT  go direct for these hosts (repeatable): a name,\n"
    "                             *.domain, an IP address or a CIDR\n"
    "\n"
    "Running as a service:\n"
    "  -c, --config FILE          read options from FILE: one long option per line\n"
    "                             (\"listen 127.0.0.1:3128\", \"verbose\"), # comments;\n"
    "                             only a repeatable option may be on two lines; the\n"
    "                             command line wins; SIGHUP reads it again\n"
    "      --pid-file FILE        write the process id to FILE\n"
    "      --user NAME            drop privileges to NAME after binding\n"
    "      --max-header-fields N  fields in a request head (431 beyond); response\n"
    "                             heads may have 4x as many. Default 100\n"
    "  -h, --help                 this text\n"
    "  -V, --version              the version\n"
    "\n"
    "       luaproxy ca init [--ca-dir DIR] [--force]\n"
    "                             make the interception CA and print how to trust it\n"
    "\n"
    "Signals: SIGINT/SIGTERM stop accepting and finish in-flight exchanges;\n"
    "SIGHUP reloads the config file and the scripts and reopens the access log.\n";

enum long_only {
    OPT_ALLOW = 256,
    OPT_CONNECT_PORTS,
    OPT_HEADER_TIMEOUT,
    OPT_IDLE_TIMEOUT,
    OPT_CONNECT_TIMEOUT,
    OPT_MAX_HEADER_BYTES,
    OPT_MAX_CONNECTIONS,
    OPT_ACCESS_LOG,
    OPT_CHECK,
    OPT_HOOK_TIMEOUT,
    OPT_LUA_MEMORY,
    OPT_HOOK_ERRORS,
    OPT_HOOK_WAIT_TIMEOUT,
    OPT_MAX_BODY_BUFFER,
    OPT_SHARED_MEMORY,
    OPT_SHARED,
    OPT_ADMIN,
    OPT_ADMIN_ALLOW,
    OPT_ADMIN_TOKEN,
    OPT_FLOWS,
    OPT_FLOW_BODY_MAX,
    OPT_FLOWS_MEMORY,
    OPT_HAR,
    OPT_PID_FILE,
    OPT_TRACE,
    OPT_USER,
    OPT_LOG_FORMAT,
    OPT_MAX_HEADER_FIELDS,
    OPT_AUTH_FILE,
    OPT_INTERCEPT,
    OPT_NO_INTERCEPT,
    OPT_CA_DIR,
    OPT_UPSTREAM_CA,
    OPT_INSECURE_UPSTREAM,
    OPT_ALLOW_LOCAL_DESTINATIONS,
    OPT_PASSTHROUGH_TTL,
    OPT_TLS_KEYLOG,
    OPT_UPSTREAM,
    OPT_UPSTREAM_BYPASS,
};

static const struct option long_options[] = {
    {"listen", required_argument, NULL, 'l'},
    {"allow", required_argument, NULL, OPT_ALLOW},
    {"connect-ports", required_argument, NULL, OPT_CONNECT_PORTS},
    {"allow-local-destinations", no_argument, NULL, OPT_ALLOW_LOCAL_DESTINATIONS},
    {"header-timeout", required_argument, NULL, OPT_HEADER_TIMEOUT},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"max-header-bytes", required_argument, NULL, OPT_MAX_HEADER_BYTES},
    {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
    {"access-log", required_argument, NULL, OPT_ACCESS_LOG},
    {"script", required_argument, NULL, 's'},
    {"check", no_argument, NULL, OPT_CHECK},
    {"hook-timeout", required_argument, NULL, OPT_HOOK_TIMEOUT},
    {"lua-memory", required_argument, NULL, OPT_LUA_MEMORY},
    {"hook-errors", required_argument, NULL, OPT_HOOK_ERRORS},
    {"hook-wait-timeout", required_argument, NULL, OPT_HOOK_WAIT_TIMEOUT},
    {"max-body-buffer", required_argument, NULL, OPT_MAX_BODY_BUFFER},
    {"shared-memory", required_argument, NULL, OPT_SHARED_MEMORY},
    {"shared", required_argument, NULL, OPT_SHARED},
    {"admin", required_argument, NULL, OPT_ADMIN},
    {"admin-allow", required_argument, NULL, OPT_ADMIN_ALLOW},
    {"admin-token", required_argument, NULL, OPT_ADMIN_TOKEN},
    {"flows", required_argument, NULL, OPT_FLOWS},
    {"flow-body-max", required_argument, NULL, OPT_FLOW_BODY_MAX},
    {"flows-memory", required_argument, NULL, OPT_FLOWS_MEMORY},
    {"har", required_argument, NULL, OPT_HAR},
    {"intercept", required_argument, NULL, OPT_INTERCEPT},
    {"no-intercept", required_argument, NULL, OPT_NO_INTERCEPT},
    {"ca-dir", required_argument, NULL, OPT_CA_DIR},
    {"upstream-ca", required_argument, NULL, OPT_UPSTREAM_CA},
    {"insecure-upstream", no_argument, NULL, OPT_INSECURE_UPSTREAM},
    {"tls-passthrough-ttl", required_argument, NULL, OPT_PASSTHROUGH_TTL},
    {"tls-keylog", required_argument, NULL, OPT_TLS_KEYLOG},
    {"workers", required_argument, NULL, 'w'},
    {"verbose", no_argument, NULL, 'v'},
    {"config", required_argument, NULL, 'c'},
    {"pid-file", required_argument, NULL, OPT_PID_FILE},
    {"trace", no_argument, NULL, OPT_TRACE},
    {"user", required_argument, NULL, OPT_USER},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"max-header-fields", required_argument, NULL, OPT_MAX_HEADER_FIELDS},
    {"auth-file", required_argument, NULL, OPT_AUTH_FILE},
    {"upstream", required_argument, NULL, OPT_UPSTREAM},
    {"upstream-bypass", required_argument, NULL, OPT_UPSTREAM_BYPASS},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

const struct option *config_option_table(void)
{
    return long_options;
}

/* The options that collect a list, one item or list per use. Any other
 * option holds one value: given twice on the command line the later one
 * wins (the usual convention, so a wrapper can override), given twice in
 * the config file it is refused (config_file.c). */
int config_option_repeatable(const char *name)
{
    static const char *const repeatable[] = {
        "listen", "allow", "connect-ports", "script", "admin-allow", "intercept",
        "no-intercept", "upstream-bypass", NULL,
    };
    for (int i = 0; repeatable[i]; i++)
        if (strcmp(name, repeatable[i]) == 0)
            return 1;
    return 0;
}

int config_parse_listen(const char *text, struct listen_addr *out)
{
    char host[64];
    const char *colon, *port_text;
    char *end;
    long port;

    memset(out, 0, sizeof *out);
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof host)
            return -1;
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        port_text = close + 2;
    } else {
        colon = strrchr(text, ':');
        if (!colon || (size_t)(colon - text) >= sizeof host)
            return -1;
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        port_text = colon + 1;
    }
    if (*port_text < '0' || *port_text > '9' || strlen(port_text) > 5)
        return -1;
    port = strtol(port_text, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535)
        return -1;
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");

    struct sockaddr_in *sin = (struct sockaddr_in *)&out->addr;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->addr;
    if (text[0] != '[' && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        out->addr_len = sizeof *sin;
    } else if (text[0] == '[' && inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        out->addr_len = sizeof *sin6;
    } else {
        return -1;
    }
    snprintf(out->text, sizeof out->text, "%s", text);
    return 0;
}

/* Parses a number of seconds: plain decimal digits with an optional
 * fraction ("10", "0.5"), at least 1 ms and at most <max>. strtod alone
 * would also take "0x10", "1e-300", "inf" and " 5": a timeout written that
 * way is a mistake, and one that rounds to nothing would fire at once. */
#define SECONDS_MIN 0.001
#define SECONDS_TEXT_MAX 20
static int parse_seconds(const char *text, double max, double *out)
{
    size_t digits = strspn(text, "0123456789"), len = digits;
    double v;

    if (text[len] == '.') {
        size_t fraction = strspn(text + len + 1, "0123456789");
        digits += fraction;
        len += 1 + fraction;
    }
    if (digits == 0 || text[len] != '\0' || len > SECONDS_TEXT_MAX)
        return -1;
    v = strtod(text, NULL); /* only digits and one '.' are left: decimal */
    if (v < SECONDS_MIN || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_count(const char *text, long min, long max, long *out)
{
    char *end;
    long v;
    if (*text < '0' || *text > '9' || strlen(text) > 10)
        return -1;
    v = strtol(text, &end, 10);
    if (*end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* The soft descriptor limit, as main() raised it. */
static long fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur > (rlim_t)1 << 30)
        return 1L << 30;
    return (long)rl.rlim_cur;
}

static long fd_reserve(const struct config *cfg)
{
    long reserve = CONFIG_FD_RESERVE + cfg->listen_count;
    if (cfg->admin_enabled && cfg->workers == 1)
        reserve += 1 + ADMIN_CONN_MAX; /* with workers, the supervisor serves it */
    return reserve;
}

/* The descriptors <clients> take: one each, and room for an upstream
 * beside each, up to CONFIG_FD_UPSTREAMS in all. */
static long client_fds(long clients)
{
    return clients + (clients < CONFIG_FD_UPSTREAMS ? clients : CONFIG_FD_UPSTREAMS);
}

/* The most clients <room> descriptors hold (client_fds' inverse). */
static long clients_in(long room)
{
    return room <= 2L * CONFIG_FD_UPSTREAMS ? room / 2 : room - CONFIG_FD_UPSTREAMS;
}

void config_fd_budget(const struct config *cfg, struct config_fds *out)
{
    out->limit = fd_limit();
    out->reserve = fd_reserve(cfg);
    out->spare = out->limit - out->reserve - client_fds(cfg->max_connections);
}

/* What the limit allows (see config_fds), at most 1000000; 0 when it is
 * too low to serve even one client. Each client gets its own descriptor
 * and room for one upstream, up to CONFIG_FD_UPSTREAMS upstreams in all:
 * past that many clients, not every one is in an exchange at the same
 * moment (most of 10,000 keep-alive clients are idle), as nginx's
 * worker_connections assumes. If they all are, a connect that finds no
 * descriptor is answered 503 (upstream.c). */
static int default_max_connections(const struct config *cfg)
{
    long room = fd_limit() - fd_reserve(cfg);
    long spare = room / 4 < CONFIG_FD_SPARE ? room / 4 : CONFIG_FD_SPARE;
    long n = clients_in(room - spare);
    return n < 0 ? 0 : n > 1000000 ? 1000000 : (int)n;
}

static void set_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->header_timeout = 10;
    cfg->idle_timeout = 60;
    cfg->connect_timeout = 10;
    cfg->max_header_bytes = 32768;
    cfg->max_header_fields = 100;
    cfg->hook_timeout = 0.100;
    cfg->lua_memory = (size_t)64 << 20;
    cfg->hook_errors = HOOK_ERRORS_CLOSED;
    cfg->passthrough_ttl = 600;
    cfg->hook_wait_timeout = 30;
    cfg->max_body_buffer = (size_t)8 << 20;
    cfg->shared_memory = (size_t)16 << 20;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = cpus < 1 ? 1 : cpus > 256 ? 256 : (int)cpus;
    acl_parse_ports("443", &cfg->connect_ports);
    cfg->flows_max = 1000;
    cfg->flow_body_max = 1 << 20;
    cfg->flows_memory = (size_t)64 << 20;
}

/* An admin token goes into a cookie and a header: visible ASCII that needs
 * no quoting, and long enough not to be guessed. */
static int valid_token(const char *t)
{
    size_t n = strlen(t);
    if (n < 8 || n > 128)
        return 0;
    for (; *t; t++)
        if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') || (*t >= '0' && *t <= '9') ||
              *t == '-' || *t == '_' || *t == '.' || *t == '~'))
            return 0;
    return 1;
}

static int is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

#define FAIL(...)                                                                        \
    do {                                                                                 \
        snprintf(err, err_len, __VA_ARGS__);                                             \
        return CONFIG_ERROR;                                                             \
    } while (0)

enum config_result config_parse_values(struct config *cfg, int argc, char **argv, char *err,
                                       size_t err_len)
{
    int opt, user_allow = 0, user_ports = 0;
    long n;
    double secs;
    struct port_set ports;

    set_defaults(cfg);
    cfg->argc = argc;
    cfg->argv = argv;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":l:s:w:c:vhV", long_options, NULL)) != -1) {
        switch (opt) {
        case 'l':
            if (cfg->listen_count == CONFIG_MAX_LISTEN)
                FAIL("too many --listen addresses (at most %d)", CONFIG_MAX_LISTEN);
            if (config_parse_listen(optarg, &cfg->listen[cfg->listen_count]) != 0)
                FAIL("invalid --listen '%s': expected IPv4:PORT or [IPv6]:PORT, port 0-65535",
                     optarg);
            cfg->listen_count++;
            break;
        case OPT_ALLOW:
            if (!user_allow) {
                cfg->allow_count = 0; /* the first --allow replaces the defaults */
                user_allow = 1;
            }
            if (cfg->allow_count == CONFIG_MAX_ALLOW)
                FAIL("too many --allow prefixes (at most %d)", CONFIG_MAX_ALLOW);
            if (acl_parse_cidr(optarg, &cfg->allow[cfg->allow_count]) != 0)
                FAIL("invalid --allow '%s': expected an address or CIDR such as 10.0.0.0/8",
                     optarg);
            cfg->allow_count++;
            break;
        case OPT_CONNECT_PORTS:
            /* Repeatable like --allow: the first list replaces the default,
             * the others add to it. */
            if (acl_parse_ports(optarg, &ports) != 0)
                FAIL("invalid --connect-ports '%s': expected ports 1-65535 separated by commas",
                     optarg);
            if (!user_ports) {
                memset(&cfg->connect_ports, 0, sizeof cfg->connect_ports);
                user_ports = 1;
            }
            for (size_t i = 0; i < sizeof ports.bits / sizeof ports.bits[0]; i++)
                cfg->connect_ports.bits[i] |= ports.bits[i];
            break;
        case OPT_HEADER_TIMEOUT:
        case OPT_IDLE_TIMEOUT:
        case OPT_CONNECT_TIMEOUT:
            if (parse_seconds(optarg, 86400, &secs) != 0)
                FAIL("invalid --%s '%s': expected decimal seconds, 0.001 to 86400",
                     opt == OPT_HEADER_TIMEOUT ? "header-timeout"
                     : opt == OPT_IDLE_TIMEOUT ? "idle-timeout"
                                               : "connect-timeout",
                     optarg);
            if (opt == OPT_HEADER_TIMEOUT)
                cfg->header_timeout = secs;
            else if (opt == OPT_IDLE_TIMEOUT)
                cfg->idle_timeout = secs;
            else
                cfg->connect_timeout = secs;
            break;
        case OPT_MAX_HEADER_BYTES:
            if (parse_count(optarg, 256, 1 << 20, &n) != 0)
                FAIL("invalid --max-header-bytes '%s': expected 256 to 1048576", optarg);
            cfg->max_header_bytes = (size_t)n;
            break;
        case OPT_MAX_CONNECTIONS:
            if (parse_count(optarg, 1, 1000000, &n) != 0)
                FAIL("invalid --max-connections '%s': expected 1 to 1000000", optarg);
            cfg->max_connections = (int)n;
            cfg->max_connections_given = 1;
            break;
        case OPT_ACCESS_LOG:
            if (*optarg == '\0')
                FAIL("invalid --access-log '': expected a file name or -");
            cfg->access_log = optarg;
            break;
        case 's':
            if (cfg->script_count == CONFIG_MAX_SCRIPTS)
                FAIL("too many --script files (at most %d)", CONFIG_MAX_SCRIPTS);
            cfg->scripts[cfg->script_count++] = optarg;
            break;
        case OPT_CHECK:
            cfg->check_only = 1;
            break;
        case OPT_HOOK_TIMEOUT:
            if (parse_count(optarg, 1, 3600000, &n) != 0)
                FAIL("invalid --hook-timeout '%s': expected milliseconds, 1 to 3600000", optarg);
            cfg->hook_timeout = (double)n / 1000.0;
            break;
        case OPT_LUA_MEMORY:
            if (parse_count(optarg, 1, 65536, &n) != 0)
                FAIL("invalid --lua-memory '%s': expected megabytes, 1 to 65536", optarg);
            cfg->lua_memory = (size_t)n << 20;
            break;
        case OPT_HOOK_WAIT_TIMEOUT:
            if (parse_seconds(optarg, 86400, &secs) != 0)
                FAIL("invalid --hook-wait-timeout '%s': expected decimal seconds, 0.001 to "
                     "86400", optarg);
            cfg->hook_wait_timeout = secs;
            break;
        case OPT_MAX_BODY_BUFFER:
            if (parse_count(optarg, 1, 4096, &n) != 0)
                FAIL("invalid --max-body-buffer '%s': expected megabytes, 1 to 4096", optarg);
            cfg->max_body_buffer = (size_t)n << 20;
            break;
        case OPT_SHARED_MEMORY:
            if (parse_count(optarg, 1, 65536, &n) != 0)
                FAIL("invalid --shared-memory '%s': expected megabytes, 1 to 65536", optarg);
            cfg->shared_memory = (size_t)n << 20;
            break;
        case OPT_SHARED: {
            char host[64], why[256];
            int port, db;
            if (shared_redis_url_parse(optarg, host, sizeof host, &port, &db, why,
                                       sizeof why) != 0)
                FAIL("%s", why);
            cfg->shared_url = optarg;
            break;
        }
        case OPT_HOOK_ERRORS:
            if (strcmp(optarg, "closed") == 0)
                cfg->hook_errors = HOOK_ERRORS_CLOSED;
            else if (strcmp(optarg, "open") == 0)
                cfg->hook_errors = HOOK_ERRORS_OPEN;
            else
                FAIL("invalid --hook-errors '%s': expected closed or open", optarg);
            break;
        case OPT_ADMIN:
            if (config_parse_listen(optarg, &cfg->admin) != 0)
                FAIL("invalid --admin '%s': expected IPv4:PORT or [IPv6]:PORT, port 0-65535",
                     optarg);
            cfg->admin_enabled = 1;
            break;
        case OPT_ADMIN_ALLOW:
            if (!cfg->admin_allow_given) {
                cfg->admin_allow_count = 0;
                cfg->admin_allow_given = 1;
            }
            if (cfg->admin_allow_count == CONFIG_MAX_ALLOW)
                FAIL("too many --admin-allow prefixes (at most %d)", CONFIG_MAX_ALLOW);
            if (acl_parse_cidr(optarg, &cfg->admin_allow[cfg->admin_allow_count]) != 0)
                FAIL("invalid --admin-allow '%s': expected an address or CIDR", optarg);
            cfg->admin_allow_count++;
            break;
        case OPT_ADMIN_TOKEN:
            if (!valid_token(optarg))
                FAIL("invalid --admin-token: expected 8 to 128 letters, digits or -._~");
            cfg->admin_token = optarg;
            break;
        case OPT_FLOWS:
            if (parse_count(optarg, 0, 1000000, &n) != 0)
                FAIL("invalid --flows '%s': expected 0 to 1000000", optarg);
            cfg->flows_max = (int)n;
            break;
        case OPT_FLOW_BODY_MAX:
            if (parse_count(optarg, 0, 8L << 20, &n) != 0)
                FAIL("invalid --flow-body-max '%s': expected bytes, 0 to 8388608", optarg);
            cfg->flow_body_max = (size_t)n;
            break;
        case OPT_FLOWS_MEMORY:
            if (parse_count(optarg, 1, 65536, &n) != 0)
                FAIL("invalid --flows-memory '%s': expected megabytes, 1 to 65536", optarg);
            cfg->flows_memory = (size_t)n << 20;
            break;
        case OPT_HAR:
            if (*optarg == '\0')
                FAIL("invalid --har '': expected a file name");
            cfg->har_file = optarg;
            break;
        case OPT_INTERCEPT:
        case OPT_NO_INTERCEPT: {
            int *count = opt == OPT_INTERCEPT ? &cfg->intercept_count : &cfg->no_intercept_count;
            const char *name = opt == OPT_INTERCEPT ? "intercept" : "no-intercept";
            if (*count == CONFIG_MAX_INTERCEPT)
                FAIL("too many --%s patterns (at most %d)", name, CONFIG_MAX_INTERCEPT);
            if (!intercept_pattern_valid(optarg))
                FAIL("invalid --%s '%s': expected a host name, *.domain or *", name, optarg);
            (opt == OPT_INTERCEPT ? cfg->intercept : cfg->no_intercept)[(*count)++] = optarg;
            break;
        }
        case OPT_CA_DIR:
            if (*optarg == '\0')
                FAIL("invalid --ca-dir '': expected a directory");
            cfg->ca_dir_option = optarg;
            break;
        case OPT_UPSTREAM_CA:
            if (*optarg == '\0')
                FAIL("invalid --upstream-ca '': expected a PEM file");
            cfg->upstream_ca = optarg;
            break;
        case OPT_INSECURE_UPSTREAM:
            cfg->insecure_upstream = 1;
            break;
        case OPT_ALLOW_LOCAL_DESTINATIONS:
            cfg->allow_local_destinations = 1;
            break;
        case OPT_PASSTHROUGH_TTL:
            if (strcmp(optarg, "0") == 0)
                cfg->passthrough_ttl = 0;
            else if (parse_seconds(optarg, 31 * 86400, &secs) != 0)
                FAIL("invalid --tls-passthrough-ttl '%s': expected decimal seconds, 0 or "
                     "0.001 to 2678400",
                     optarg);
            else
                cfg->passthrough_ttl = secs;
            break;
        case OPT_TLS_KEYLOG:
            if (*optarg == '\0')
                FAIL("invalid --tls-keylog '': expected a file name");
            cfg->tls_keylog = optarg;
            break;
        case 'w':
            if (parse_count(optarg, 1, 256, &n) != 0)
                FAIL("invalid --workers '%s': expected 1 to 256", optarg);
            cfg->workers = (int)n;
            break;
        case 'v':
            cfg->verbose = 1;
            break;
        case 'c':
            if (*optarg == '\0')
                FAIL("invalid --config '': expected a file name");
            cfg->config_file = optarg;
            break;
        case OPT_TRACE:
            cfg->trace = 1;
            break;
        case OPT_PID_FILE:
            if (*optarg == '\0')
                FAIL("invalid --pid-file '': expected a file name");
            cfg->pid_file = optarg;
            break;
        case OPT_USER:
            if (*optarg == '\0')
                FAIL("invalid --user '': expected a user name");
            cfg->user = optarg;
            break;
        case OPT_LOG_FORMAT:
            if (strcmp(optarg, "common") == 0)
                cfg->log_format = LOG_FORMAT_COMMON;
            else if (strcmp(optarg, "combined") == 0)
                cfg->log_format = LOG_FORMAT_COMBINED;
            else if (strcmp(optarg, "json") == 0)
                cfg->log_format = LOG_FORMAT_JSON;
            else
                FAIL("invalid --log-format '%s': expected common, combined or json", optarg);
            break;
        case OPT_UPSTREAM: {
            char why[160];
            if (parent_parse(optarg, &cfg->upstream, why, sizeof why) != 0)
                FAIL("invalid --upstream: %s", why);
            cfg->has_upstream = 1;
            break;
        }
        case OPT_UPSTREAM_BYPASS:
            if (cfg->upstream_bypass_count == CONFIG_MAX_BYPASS)
                FAIL("too many --upstream-bypass patterns (at most %d)", CONFIG_MAX_BYPASS);
            if (!parent_pattern_valid(optarg))
                FAIL("invalid --upstream-bypass '%s': expected a host, *.domain or a CIDR",
                     optarg);
            cfg->upstream_bypass[cfg->upstream_bypass_count++] = optarg;
            break;
        case OPT_AUTH_FILE:
            if (*optarg == '\0')
                FAIL("invalid --auth-file '': expected a file name");
            cfg->auth_file = optarg;
            break;
        case OPT_MAX_HEADER_FIELDS:
            if (parse_count(optarg, 1, HTTP_MAX_FIELDS_LIMIT, &n) != 0)
                FAIL("invalid --max-header-fields '%s': expected 1 to %d", optarg,
                     HTTP_MAX_FIELDS_LIMIT);
            cfg->max_header_fields = (int)n;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return CONFIG_EXIT_OK;
        case 'V':
            printf("luaproxy %s\n", LUAPROXY_VERSION);
            return CONFIG_EXIT_OK;
        case ':':
            FAIL("option '%s' needs a value", argv[optind - 1]);
        default:
            FAIL("unknown option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (cfg->check_only) {
        /* --check takes the scripts as plain arguments too. */
        for (; optind < argc; optind++) {
            if (cfg->script_count == CONFIG_MAX_SCRIPTS)
                FAIL("too many scripts (at most %d)", CONFIG_MAX_SCRIPTS);
            cfg->scripts[cfg->script_count++] = argv[optind];
        }
        if (cfg->script_count == 0 && !cfg->config_file)
            FAIL("--check needs at least one script, or -c FILE");
    } else if (optind < argc) {
        FAIL("unexpected argument '%s' (see --help)", argv[optind]);
    }
    if (cfg->listen_count == 0)
        config_parse_listen("127.0.0.1:8080", &cfg->listen[cfg->listen_count++]);
    if (!user_allow) {
        acl_parse_cidr("127.0.0.0/8", &cfg->allow[cfg->allow_count++]);
        acl_parse_cidr("::1", &cfg->allow[cfg->allow_count++]);
    }
    if (!cfg->admin_allow_given) {
        acl_parse_cidr("127.0.0.0/8", &cfg->admin_allow[cfg->admin_allow_count++]);
        acl_parse_cidr("::1", &cfg->admin_allow[cfg->admin_allow_count++]);
    }
    /* Last: the reserve depends on the listen addresses and --admin. */
    if (!cfg->max_connections_given)
        cfg->max_connections = default_max_connections(cfg);
    return CONFIG_OK;
}

#undef FAIL
#define FAIL(option, ...)                                                                \
    do {                                                                                 \
        *culprit = (option);                                                             \
        snprintf(err, err_len, __VA_ARGS__);                                             \
        return -1;                                                                       \
    } while (0)

int config_check(const struct config *cfg, const char **culprit, char *err, size_t err_len)
{
    if (cfg->admin_enabled && !cfg->admin_allow_given && !is_loopback(&cfg->admin.addr))
        FAIL("admin",
             "--admin '%s' is not a loopback address: give --admin-allow to say who may use it",
             cfg->admin.text);
    if (cfg->har_file && !cfg->admin_enabled)
        FAIL("har", "--har needs --admin (the flows are captured for the admin interface)");
    if (cfg->har_file && cfg->flows_max == 0)
        FAIL("har", "--har needs capture: --flows 0 turns it off");
    /* Accepted beyond what the descriptors hold, clients would take them
     * all and then get 502s for want of an upstream socket, instead of
     * the 503 the limit promises. */
    struct config_fds fds;
    config_fd_budget(cfg, &fds);
    long most = clients_in(fds.limit - fds.reserve);
    if (!cfg->check_only && most < 1)
        FAIL("max-connections",
             "the file descriptor limit (%ld) is too low to serve a client: luaproxy needs "
             "at least %ld (ulimit -n, LimitNOFILE=)",
             fds.limit, fds.reserve + 2);
    if (!cfg->check_only && fds.spare < 0)
        FAIL("max-connections",
             "--max-connections %d needs %ld file descriptors (one per client, one per "
             "upstream up to %d, and %ld more), but the limit is %ld: raise it (ulimit -n, "
             "LimitNOFILE=) or give at most %ld",
             cfg->max_connections, fds.reserve + client_fds(cfg->max_connections),
             CONFIG_FD_UPSTREAMS, fds.reserve,
             fds.limit, most);
    return 0;
}

enum config_result config_parse(struct config *cfg, int argc, char **argv, char *err,
                                size_t err_len)
{
    const char *culprit;
    enum config_result r = config_parse_values(cfg, argc, argv, err, err_len);

    if (r == CONFIG_OK && config_check(cfg, &culprit, err, err_len) != 0)
        return CONFIG_ERROR;
    return r;
}
