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

#define CONFIG_MAX_LISTEN 16
#define CONFIG_MAX_ALLOW 64
#define CONFIG_MAX_SCRIPTS 16

#define LUAPROXY_VERSION "0.1.0"

struct listen_addr {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char text[64]; /* as given, for logs */
};

enum hook_error_mode { HOOK_ERRORS_CLOSED, HOOK_ERRORS_OPEN };

struct config {
    struct listen_addr listen[CONFIG_MAX_LISTEN];
    int listen_count;
    struct cidr allow[CONFIG_MAX_ALLOW];
    int allow_count;
    struct port_set connect_ports;
    double header_timeout;  /* seconds */
    double idle_timeout;
    double connect_timeout;
    size_t max_header_bytes;
    int max_connections;
    const char *access_log; /* NULL: none, "-": stdout */
    const char *scripts[CONFIG_MAX_SCRIPTS];
    int script_count;
    int check_only;         /* --check: load scripts and exit */
    double hook_timeout;    /* seconds */
    size_t lua_memory;      /* bytes */
    enum hook_error_mode hook_errors;
    int workers;
    int verbose;
    /* The admin listener (admin.h) and the flow store (flows.h). */
    int admin_enabled;
    struct listen_addr admin;
    struct cidr admin_allow[CONFIG_MAX_ALLOW];
    int admin_allow_count;
    const char *admin_token; /* NULL: a random one */
    int flows_max;           /* 0: no capture */
    size_t flow_body_max;    /* bytes kept of each body */
    size_t flows_memory;     /* bytes for the whole store */
    const char *har_file;    /* HAR written at stop, or NULL */
};

enum config_result { CONFIG_OK, CONFIG_EXIT_OK, CONFIG_ERROR };

/* Fills <cfg> from argv. CONFIG_EXIT_OK after --help or --version (already
 * printed); CONFIG_ERROR with a message in <err> for a bad option. */
enum config_result config_parse(struct config *cfg, int argc, char **argv, char *err,
                                size_t err_len);

/* Parses "127.0.0.1:8080", "[::1]:8080" or "localhost:8080". 0 or -1. */
int config_parse_listen(const char *text, struct listen_addr *out);

#endif
