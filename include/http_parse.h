/*
 * http_parse.h - strict HTTP/1.x head parser and message-framing rules.
 *
 * The parser keeps no state between calls and copies nothing: it fills a
 * struct http_head with pointer+length views into the caller's buffer and
 * answers "bytes consumed", "incomplete" or "malformed". The caller owns the
 * buffer, caps the head size, and must not let a view outlive it.
 *
 * Strictness is the point (RFC 9112, "be conservative"): anything a
 * different implementation could read differently is rejected, so the proxy
 * never forwards an ambiguous message. Rejected: bare CR or LF (lines end in
 * CRLF only), obs-fold, whitespace before a colon, NUL and other control
 * bytes in names or values, a malformed request or status line, an HTTP
 * version other than 1.x.
 *
 * The framing functions apply RFC 9112 section 6 to a parsed head: they
 * decide how long the body is, or that the message is ambiguous.
 */
#ifndef LUAPROXY_HTTP_PARSE_H
#define LUAPROXY_HTTP_PARSE_H

#include <stddef.h>
#include <string.h>
#include <stdint.h>
#include <sys/types.h>

/* Fields a head may carry unless the caller says otherwise (like HAProxy
 * and Apache), the most --max-header-fields accepts, and the room a head
 * has: responses may carry 4x the request limit (a page setting 150
 * cookies is ordinary). */
#define HTTP_MAX_FIELDS 100
#define HTTP_MAX_FIELDS_LIMIT 500
#define HTTP_FIELDS_CAPACITY (4 * HTTP_MAX_FIELDS_LIMIT)

/* The field names the relay looks at on every message. The parser tells
 * them apart once, as it reads each name, so that a lookup or a hop-by-hop
 * test compares a small number instead of the name's bytes (which a head
 * of n fields would otherwise do n times per lookup). */
enum http_field_id {
    HTTP_FIELD_OTHER = 0,
    HTTP_FIELD_CONNECTION,
    HTTP_FIELD_PROXY_CONNECTION,
    HTTP_FIELD_KEEP_ALIVE,
    HTTP_FIELD_TE,
    HTTP_FIELD_TRAILER,
    HTTP_FIELD_TRANSFER_ENCODING,
    HTTP_FIELD_UPGRADE,
    HTTP_FIELD_PROXY_AUTHORIZATION,
    HTTP_FIELD_PROXY_AUTHENTICATE,
    HTTP_FIELD_CONTENT_LENGTH,
    HTTP_FIELD_HOST,
    HTTP_FIELD_VIA,
    HTTP_FIELD_EXPECT,
    HTTP_FIELD_PROXY_AUTHENTICATION_INFO,
};

/* The id of the field name at <name> (<len> bytes, any case). */
enum http_field_id http_field_id(const char *name, size_t len);

struct http_field {
    const char *name;
    size_t name_len;
    const char *value; /* leading and trailing SP/HTAB removed */
    size_t value_len;
    enum http_field_id id; /* set by the parser */
};

struct http_head {
    /* request line (requests only) */
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    /* status line (responses only) */
    int status;         /* 100..999 */
    const char *reason; /* may be empty */
    size_t reason_len;
    /* both */
    int version_minor; /* HTTP/1.<minor>: 0 or 1 (a higher minor reads as 1) */
    size_t field_count;
    /* Bit (1u << id) for each http_field_id some field has (set by the
     * parser): a lookup of a name the head lacks costs one test. */
    uint32_t ids_seen;
    /* Bit min(n, 63) for the length n of each element of each Connection
     * field (set by the parser): most field names cannot be one of them,
     * and the hop-by-hop test then needs no walk of the lists. */
    uint64_t connection_lengths;
    /* Set by the caller before parsing (kept by the parser): at most this
     * many fields, then TOO_MANY_FIELDS. 0 means HTTP_MAX_FIELDS; more
     * than HTTP_FIELDS_CAPACITY counts as HTTP_FIELDS_CAPACITY. */
    size_t field_limit;
    struct http_field fields[HTTP_FIELDS_CAPACITY];
};

/* Why a head or a body was refused. http_error_status() maps each to the
 * status a client should see; http_error_text() to a short, fixed text that
 * never contains client bytes. */
enum http_error {
    HTTP_ERR_NONE = 0,
    HTTP_ERR_REQUEST_LINE,    /* malformed request line (400) */
    HTTP_ERR_STATUS_LINE,     /* malformed status line (502 at the relay) */
    HTTP_ERR_STATUS_CODE,     /* a status of 600 or more (502 at the relay) */
    HTTP_ERR_VERSION,         /* HTTP/2.0, HTTP/0.9 ... (505) */
    HTTP_ERR_FIELD_NAME,      /* empty or non-token name, or space before colon (400) */
    HTTP_ERR_FIELD_VALUE,     /* NUL or control byte in a value (400) */
    HTTP_ERR_OBS_FOLD,        /* line folding (400) */
    HTTP_ERR_BARE_CR_LF,      /* CR not followed by LF, or LF not preceded by CR (400) */
    HTTP_ERR_TOO_MANY_FIELDS, /* more than the head's field_limit (431) */
    HTTP_ERR_CL_TE,           /* both Content-Length and Transfer-Encoding (400) */
    HTTP_ERR_CONTENT_LENGTH,  /* non-numeric, signed, overlong or duplicate CL (400) */
    HTTP_ERR_TE_UNSUPPORTED,  /* a transfer coding other than chunked (501) */
    HTTP_ERR_TE_MALFORMED,    /* empty list element, repeated chunked ... (400) */
    HTTP_ERR_HOST,            /* missing (HTTP/1.1), repeated or malformed Host (400) */
    HTTP_ERR_CHUNK_SIZE,      /* bad hex, overflow, overlong size line (400) */
    HTTP_ERR_CHUNK_FRAMING,   /* missing CRLF after chunk data, bad extension (400) */
    HTTP_ERR_TRAILER,         /* malformed or oversized trailer section (400) */
};

int http_error_status(enum http_error err);
const char *http_error_text(enum http_error err);

/*
 * Parses a request head at <buf>[0, <len>). Empty lines (CRLF) before the
 * request line are skipped, as RFC 9112 2.2 recommends.
 * Returns the number of bytes the head occupies including the final CRLF
 * CRLF (> 0), -2 if the head is incomplete so far, or -1 if malformed, with
 * *<err> saying why. An incomplete head is reported as malformed as soon as
 * the bytes seen so far already break a rule, so the caller can answer early.
 */
ssize_t http_parse_request(const char *buf, size_t len, struct http_head *head,
                           enum http_error *err);

/* The same for a response head ("HTTP/1.1 200 OK"). */
ssize_t http_parse_response(const char *buf, size_t len, struct http_head *head,
                            enum http_error *err);

/* Checks a field section at <buf>[0, <len>): field lines with the same
 * rules as in a head, then the empty line. Nothing is stored. Returns the
 * bytes it occupies including the final CRLF, -2 if incomplete, or -1 with
 * *<err> set. The chunked decoder checks trailer sections with it. */
ssize_t http_parse_fields(const char *buf, size_t len, enum http_error *err);

/* tchar (RFC 9110 5.6.2): the bytes allowed in methods, field names,
 * transfer codings and chunk extension names. */
int http_is_tchar(unsigned char c);

/* Whether the <n> bytes at <a> and <b> are equal, ignoring ASCII case. */
int http_ci_eq(const char *a, const char *b, size_t n);

/* Case-insensitive comparison of a view against a NUL-terminated token.
 * Inline so that, for the literal tokens the callers pass, strlen is a
 * constant and most names are told apart by their length alone: this runs
 * several times per field of every head. */
static inline int http_token_eq(const char *s, size_t len, const char *token)
{
    size_t n = strlen(token);
    return len == n && http_ci_eq(s, token, n);
}

/* Index of the first field named <name> at or after <from>, or -1. */
int http_find_field(const struct http_head *head, const char *name, size_t from);
/* The same for a well-known name (not HTTP_FIELD_OTHER). */
int http_find_id(const struct http_head *head, enum http_field_id id, size_t from);

/* Whether any field called <name> holds <token> in its comma-separated
 * list (case-insensitive, OWS around elements ignored). Used for
 * "Connection: close", "Connection: upgrade", "Expect: 100-continue". */
int http_has_token(const struct http_head *head, const char *name, const char *token);
/* Whether the comma-separated list <value> has an element equal to <token>
 * (case-insensitive, OWS around elements ignored, empty ones skipped). */
int http_list_has(const char *value, size_t value_len, const char *token, size_t token_len);
/* http_has_token for a well-known field: no name to look up, and nothing
 * read when the head has no such field, nor, for Connection, when none of
 * its elements has the token's length ("close" is not in "keep-alive").
 * Inline, so those answers cost no call and a literal's length is known;
 * the list walk is http_has_token_in. */
int http_has_token_in(const struct http_head *head, enum http_field_id id, const char *token,
                      size_t token_len);
static inline int http_has_token_id(const struct http_head *head, enum http_field_id id,
                                    const char *token)
{
    size_t token_len = strlen(token);
    if (!(head->ids_seen & (1u << id)))
        return 0;
    if (id == HTTP_FIELD_CONNECTION &&
        !(head->connection_lengths & ((uint64_t)1 << (token_len < 63 ? token_len : 63))))
        return 0;
    return http_has_token_in(head, id, token, token_len);
}

/* How many bytes at the start of <s> (<len> bytes) are tchar, and how many
 * are field-value bytes (SP, HTAB, VCHAR, obs-text): the parser's own
 * scanners, for checking names and values that come from elsewhere. */
size_t http_token_span(const char *s, size_t len);
size_t http_field_value_span(const char *s, size_t len);

/* Whether field <i> is hop-by-hop (RFC 9110 7.6.1): Connection,
 * Proxy-Connection, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade,
 * Proxy-Authorization, Proxy-Authenticate, Proxy-Authentication-Info (the
 * last two are for the next client alone, RFC 9110 11.7), or any name listed in a
 * Connection field of the same head, except Content-Length and Host, which
 * a client must not be able to strip that way.
 *
 * Inline: it is asked of every field of every forwarded head, and nearly
 * always the field's id, or the lengths of the Connection elements, answer
 * without the walk of the lists (http_listed_in_connection). */
int http_listed_in_connection(const struct http_head *head, const struct http_field *f);
static inline int http_is_hop_by_hop(const struct http_head *head, size_t i)
{
#define HTTP_BIT(id) (1u << HTTP_FIELD_##id)
    const uint32_t always = HTTP_BIT(CONNECTION) | HTTP_BIT(PROXY_CONNECTION) |
                            HTTP_BIT(KEEP_ALIVE) | HTTP_BIT(TE) | HTTP_BIT(TRAILER) |
                            HTTP_BIT(TRANSFER_ENCODING) | HTTP_BIT(UPGRADE) |
                            HTTP_BIT(PROXY_AUTHORIZATION) | HTTP_BIT(PROXY_AUTHENTICATE) |
                            HTTP_BIT(PROXY_AUTHENTICATION_INFO);
    /* "Connection: Content-Length" must not make the proxy drop the field
     * that frames the body, nor "Connection: Host" the one that routes it:
     * a receiver would then read the body as the next request. */
    const uint32_t never = HTTP_BIT(CONTENT_LENGTH) | HTTP_BIT(HOST);
#undef HTTP_BIT

    if (i >= head->field_count)
        return 0;
    const struct http_field *f = &head->fields[i];
    uint32_t bit = 1u << f->id;
    if (bit & always)
        return 1;
    if (bit & never)
        return 0;
    if (!(head->connection_lengths & ((uint64_t)1 << (f->name_len < 63 ? f->name_len : 63))))
        return 0; /* no Connection element has this name's length */
    return http_listed_in_connection(head, f);
}

enum http_body_kind {
    HTTP_BODY_NONE,    /* no body at all */
    HTTP_BODY_LENGTH,  /* exactly <length> bytes */
    HTTP_BODY_CHUNKED, /* chunked transfer coding */
    HTTP_BODY_CLOSE,   /* until the connection closes (responses only) */
};

struct http_framing {
    enum http_body_kind kind;
    uint64_t length; /* for HTTP_BODY_LENGTH */
};

/* Largest Content-Length accepted (and largest chunk size): 2^62. */
#define HTTP_MAX_BODY_LENGTH ((uint64_t)1 << 62)

/* A Content-Length value: 1*DIGIT up to HTTP_MAX_BODY_LENGTH, nothing
 * else (no sign, space or list). 0 with *<out> set, or -1. */
int http_parse_content_length(const char *s, size_t len, uint64_t *out);

/*
 * Framing of a request (RFC 9112 6.1-6.3): Transfer-Encoding whose only
 * coding is "chunked" (case-insensitive) -> CHUNKED; a valid Content-Length
 * -> LENGTH (0 -> NONE); neither -> NONE. Rejects CL together with TE, any
 * TE but exactly one "chunked", and a CL that is repeated (even with the same
 * value), signed, non-decimal, empty or above HTTP_MAX_BODY_LENGTH, and
 * Transfer-Encoding in an HTTP/1.0 message (RFC 9112 6.1: faulty framing).
 * Host: exactly one in HTTP/1.1, at most one in HTTP/1.0, valid per
 * url_host_field_valid() (url.h), else HTTP_ERR_HOST. Returns 0 or -1 with *<err> set.
 */
int http_request_framing(const struct http_head *head, struct http_framing *out,
                         enum http_error *err);

/*
 * Framing of a response to a request with method <method> (RFC 9112 6.3):
 * HEAD requests and 1xx/204/304 statuses -> NONE whatever the fields say;
 * otherwise the same rules as requests, except that neither TE nor CL means
 * CLOSE (and Host is not checked). Content-Length: 0 gives LENGTH with
 * length 0 (unlike requests): the response's framing must be passed on, or
 * a client could not tell where it ends. A 2xx answer to CONNECT is not
 * handled here (the relay tunnels).
 */
int http_response_framing(const struct http_head *head, const char *method, size_t method_len,
                          struct http_framing *out, enum http_error *err);

#endif
