/*
 * config.h - the command line, parsed once into a read-only struct config.
 *
 * Every loop reads the same struct config; nothing writes it after startup.
 */
#ifndef LUAPROXY_CONFIG_H
#define LUAPROXY_CONFIG_H

#include <stddef.h>
#include <sys/socket.h>

#include "acl.h"
#include "parent.h"

#define CONFIG_MAX_LISTEN 16
#define CONFIG_MAX_ALLOW 64
#define CONFIG_MAX_SCRIPTS 16
#define CONFIG_MAX_INTERCEPT 64

#define LUAPROXY_VERSION "0.1.0"

struct listen_addr {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char text[64]; /* as given, for logs */
};

enum hook_error_mode { HOOK_ERRORS_CLOSED, HOOK_ERRORS_OPEN };

enum log_format { LOG_FORMAT_COMMON, LOG_FORMAT_COMBINED, LOG_FORMAT_JSON };

#define CONFIG_MAX_BYPASS 64

/* A file as it was when it was read (its identity, size and times), so
 * that a reload can tell whether it must read it again. */
struct file_stamp {
    int found;
    unsigned long long dev, ino;
    long long size, mtime_sec, mtime_nsec, ctime_sec, ctime_nsec;
};

struct config {
    struct listen_addr listen[CONFIG_MAX_LISTEN];
    int listen_count;
    struct cidr allow[CONFIG_MAX_ALLOW];
    int allow_count;
    struct port_set connect_ports;
    /* --allow-local-destinations: clients on other machines may reach this
     * machine's loopback and link-local addresses (acl_is_machine_local) */
    int allow_local_destinations;
    double header_timeout;  /* seconds */
    double idle_timeout;
    double connect_timeout;
    size_t max_header_bytes;
    int max_connections;    /* see config_fds */
    int max_connections_given; /* not the default: what the limit allows */
    const char *access_log; /* NULL: none, "-": stdout */
    const char *scripts[CONFIG_MAX_SCRIPTS];
    int script_count;
    int check_only;         /* --check: load scripts and exit */
    double hook_timeout;    /* seconds */
    size_t lua_memory;      /* bytes */
    double hook_wait_timeout; /* seconds one wait of a hook may last */
    size_t max_body_buffer; /* bytes a script may collect whole */
    size_t shared_memory;   /* bytes of the proxy.shared region */
    const char *shared_url; /* --shared redis://...: NULL for shared memory */
    enum hook_error_mode hook_errors;
    int workers;
    int verbose;
    int trace;                 /* --trace: every step of every exchange */
    /* The admin listener (admin.h) and the flow store (flows.h). */
    int admin_enabled;
    struct listen_addr admin;
    struct cidr admin_allow[CONFIG_MAX_ALLOW];
    int admin_allow_count;
    int admin_allow_given;   /* --admin-allow replaced the loopback default */
    const char *admin_token; /* NULL: a random one */
    int flows_max;           /* 0: no capture */
    size_t flow_body_max;    /* bytes kept of each body */
    size_t flows_memory;     /* bytes for the whole store */
    const char *har_file;    /* HAR written at stop, or NULL */
    /* Operating the proxy as a service. */
    const char *config_file; /* -c: options read from this file first */
    const char *pid_file;
    const char *user;        /* drop privileges to this user after binding */
    enum log_format log_format;
    int max_header_fields;   /* request heads; responses get 4x */
    const char *auth_file;   /* htpasswd file: proxy users, or NULL */
    int has_upstream;        /* --upstream: everything goes via a parent proxy */
    struct parent_proxy upstream;
    const char *upstream_bypass[CONFIG_MAX_BYPASS]; /* hosts reached directly */
    int upstream_bypass_count;
    /* The command line as given, so a reload can read the file again and
     * let the command line win once more. */
    int argc;
    char **argv;
    /* HTTPS interception (see tls.h). */
    const char *intercept[CONFIG_MAX_INTERCEPT];    /* --intercept patterns */
    int intercept_count;
    const char *no_intercept[CONFIG_MAX_INTERCEPT]; /* --no-intercept (wins) */
    int no_intercept_count;
    const char *ca_dir_option;  /* --ca-dir as given, or NULL */
    const char *upstream_ca;    /* --upstream-ca FILE */
    int insecure_upstream;
    double passthrough_ttl;     /* seconds; 0: never pass a refusing client through */
    const char *tls_keylog;     /* --tls-keylog FILE, else $SSLKEYLOGFILE */
    /* Filled once at start by tls_prepare, before any worker. */
    int use_ca;                 /* a CA is loaded from ca_dir */
    char ca_dir[4096];
    unsigned char ticket_keys[80];
    int have_ticket_keys;
    /* The certificates upstreams are verified against (the system's, and
     * --upstream-ca's): an OpenSSL X509_STORE (tls_trust.h), read at start
     * so the workers share it, and on a reload only if a file of it
     * changed. NULL with --insecure-upstream. */
    void *upstream_trust;
    struct file_stamp upstream_trust_files[2]; /* the bundle and --upstream-ca, as read */
};

enum config_result { CONFIG_OK, CONFIG_EXIT_OK, CONFIG_ERROR };

/* Fills <cfg> from argv. CONFIG_EXIT_OK after --help or --version (already
 * printed); CONFIG_ERROR with a message in <err> for a bad option. Both
 * halves below: config_parse_values, then config_check. */
enum config_result config_parse(struct config *cfg, int argc, char **argv, char *err,
                                size_t err_len);
/* Each option and its value on its own, with defaults for what is not
 * given; no rule between options. The config file checks a line alone with
 * it, since a rule may be met by another line or the command line. */
enum config_result config_parse_values(struct config *cfg, int argc, char **argv, char *err,
                                       size_t err_len);
/* The rules between options (--har needs --admin, ...), on a whole
 * configuration. 0, or -1 with <err> and *<culprit> the long name of the
 * option at fault, so a config file can name its line. */
int config_check(const struct config *cfg, const char **culprit, char *err, size_t err_len);
/*
 * The file descriptors of a process that serves clients (a worker, or the
 * only process), against its limit (RLIMIT_NOFILE, raised at start to the
 * hard one):
 *
 *   limit = reserve + 2 x --max-connections + spare
 *
 * reserve: open whatever the clients do: CONFIG_FD_RESERVE (the standard
 *   streams, the loop's own, the resolver's sockets, the access log, the
 *   key log, Redis, the flows channel and the supervisor's pipe, the files
 *   a reload opens before it closes the old ones), one per --listen
 *   address, and, when this process serves --admin, its listener and
 *   connections.
 * 2 per client: its own socket and its upstream's. With workers, each
 *   process has the whole limit and may get every client: --max-connections
 *   counts them all, so the budget is one worker's.
 * spare: what the rest may use: refused clients waiting for their 403 or
 *   503, idle upstream connections kept in the pool, splice pipes, the
 *   sockets of the scripts' proxy.http calls. These give way when it is
 *   short: fewer refused clients are answered (the others are closed), the
 *   pool keeps fewer, a body is copied instead of spliced.
 *
 * By default --max-connections is what the limit allows with a spare of a
 * quarter of what is left after the reserve, up to CONFIG_FD_SPARE, and
 * room for an upstream beside each client up to CONFIG_FD_UPSTREAMS (see
 * default_max_connections); a --max-connections the limit cannot hold
 * with an upstream each is refused only when given.
 */
#define CONFIG_FD_RESERVE 32
#define CONFIG_FD_SPARE 2048
#define CONFIG_FD_UPSTREAMS 4096
struct config_fds {
    long limit;   /* the soft RLIMIT_NOFILE */
    long reserve;
    long spare;   /* < 0: the limit cannot hold --max-connections */
};
void config_fd_budget(const struct config *cfg, struct config_fds *out);

/* Whether the option <name> (long, without dashes) collects a list and may
 * be given more than once in the config file. */
int config_option_repeatable(const char *name);

/* The option table shared by the command line and the config file: every
 * long option is a config file line. */
struct option;
const struct option *config_option_table(void);

/* The command line and, with -c, the config file under it (config_file.c):
 * the whole configuration. Same results as config_parse; a bad file line is
 * reported as "FILE:LINE: ...". */
enum config_result config_load(struct config *cfg, int argc, char **argv, char *err,
                               size_t err_len);

/* SIGHUP: reads the file and the command line again into <fresh>. Options
 * that cannot change while running (listen, workers, user) keep <running>'s
 * values, with a warning for each that changed. 0, or -1 with <err> (the
 * running configuration stays). */
int config_reload(const struct config *running, struct config *fresh, char *err,
                  size_t err_len);

/* A stable copy of <s>, kept until config_strings_free: strings from the
 * file outlive a reload, since scripts loaded earlier still name them. */
char *config_intern(const char *s);
/* How many strings config_intern keeps (a failed load keeps none). */
size_t config_strings_count(void);
void config_strings_free(void);

/* Parses "127.0.0.1:8080", "[::1]:8080" or "localhost:8080". 0 or -1. */
int config_parse_listen(const char *text, struct listen_addr *out);

#endif
