/*
 * flow_record.h - one finished flow as a self-contained byte string.
 *
 * The recorder (flows.c) writes it, a channel carries it between
 * processes unchanged, the store (flows_store.c) keeps it as it is and the
 * API (flows_api.c) reads it. One allocation per flow, no pointers inside,
 * so it can cross a socket and be counted against the memory cap exactly.
 *
 *   struct flow_header | part | part | ...
 *   part: 1 byte enum flow_part, 4 bytes length (host order), the bytes
 *
 * Heads are kept as the raw bytes that crossed (or would have crossed) the
 * wire; the API parses them when asked. Parts that repeat (hooks, log
 * lines, WebSocket messages) appear once per item, in order.
 */
#ifndef LUAPROXY_FLOW_RECORD_H
#define LUAPROXY_FLOW_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define FLOW_MAGIC 0x464c4f57u /* "FLOW" */
/* The largest record a channel accepts (see --flow-body-max's bound). */
#define FLOW_RECORD_MAX ((size_t)64 << 20)

enum flow_part {
    FLOW_PART_CLIENT,      /* "ip:port" */
    FLOW_PART_REQ_IN,      /* request head as received */
    FLOW_PART_REQ_PRE,     /* as the proxy would forward it before the hooks */
    FLOW_PART_REQ_OUT,     /* as forwarded */
    FLOW_PART_RES_IN,      /* response head as received */
    FLOW_PART_RES_PRE,     /* as the proxy would send it before the hooks */
    FLOW_PART_RES_OUT,     /* as sent to the client */
    FLOW_PART_REQ_BODY,    /* request body as forwarded */
    FLOW_PART_REQ_BODY_IN, /* as received, when a hook changed it */
    FLOW_PART_RES_BODY_IN, /* response body as received, when a hook changed it */
    FLOW_PART_RES_BODY,    /* response body as sent */
    FLOW_PART_ERROR,       /* why it failed */
    FLOW_PART_URL,         /* the absolute URL, when the head holds a path only
                            * (inside an intercepted https tunnel) */
    FLOW_PART_HOOK,        /* "script\0hook" */
    FLOW_PART_LOG,         /* "script\0line" */
    FLOW_PART_WS,          /* struct flow_ws_header, then the payload kept */
    FLOW_PART_COUNT,
};

enum flow_mark {
    FLOW_T_DNS,     /* the name was resolved (or needed no lookup) */
    FLOW_T_CONNECT, /* connected (or a kept connection was taken) */
    FLOW_T_TLS,     /* TLS handshake done */
    FLOW_T_SENT,    /* the whole request was handed to the upstream */
    FLOW_T_HEAD,    /* the response head arrived */
    FLOW_T_UPSTREAM, /* the hooks were done: the upstream was looked for */
    FLOW_T_ANSWERED, /* the answer was complete while the request body still
                      * came, and the rest of it is dropped: the exchange
                      * lasts until it is, but its phases end here */
    FLOW_T_COUNT,
};

/* Flags. */
#define FLOW_F_REQ_TRUNCATED 0x01u    /* request body longer than kept */
#define FLOW_F_RES_TRUNCATED 0x02u    /* response body longer than kept */
#define FLOW_F_REQ_IN_TRUNCATED 0x04u
#define FLOW_F_RES_IN_TRUNCATED 0x08u
#define FLOW_F_TUNNEL 0x10u           /* CONNECT or upgrade: bytes both ways */
#define FLOW_F_WEBSOCKET 0x20u
#define FLOW_F_LOCAL 0x40u            /* a script answered (tx:respond) */
#define FLOW_F_WS_DROPPED 0x80u       /* more messages than kept */
#define FLOW_F_BODY_CHANGED 0x100u    /* a hook changed a body */
#define FLOW_F_STARTED 0x200u         /* only the start of a flow still running
                                       * (client and request head), for the
                                       * event stream; never stored */
#define FLOW_F_REUSED 0x400u          /* sent on a kept upstream connection:
                                       * no DNS, connect or TLS of its own */

struct flow_header {
    uint32_t magic;
    uint32_t len; /* the whole record */
    uint64_t id;
    double started, ended; /* seconds since the epoch */
    double marks[FLOW_T_COUNT]; /* 0: did not happen */
    int32_t status;
    uint32_t flags;
    uint64_t req_bytes, res_bytes; /* body bytes that crossed */
    uint64_t req_body_seen, res_body_seen; /* body bytes the tap saw */
};

/* WebSocket opcodes (RFC 6455 5.2) a flow_ws_header may carry. */
enum ws_opcode { WS_TEXT = 1, WS_BINARY = 2, WS_CLOSE = 8, WS_PING = 9, WS_PONG = 10 };

struct flow_ws_header {
    double t;
    uint64_t length;  /* the whole payload */
    uint8_t to_upstream;
    uint8_t opcode;
    uint8_t truncated;
    uint8_t compressed; /* RSV1: permessage-deflate data (ws_inflate.h) */
    uint8_t pad[4];
};

/* Checks that <rec> of <len> bytes is a well-formed record (the channel's
 * input is checked before anything trusts it). 0 or -1. */
int flow_record_check(const char *rec, size_t len);
/* A copy of the header (records carry no alignment promise). */
void flow_record_header(const char *rec, struct flow_header *out);
/* The first part <part>; 0, or -1 when absent (then *data = "", *len = 0). */
int flow_record_find(const char *rec, enum flow_part part, const char **data, size_t *len);
/* Iterates: start with *pos = 0; 1 while there is a part, 0 at the end. */
int flow_record_next(const char *rec, size_t *pos, enum flow_part *part, const char **data,
                     size_t *len);

#endif
