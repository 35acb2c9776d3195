/*
 * message.c - rewriting heads for forwarding, and local responses. Builds
 * bytes only; endpoint.c sends them.
 *
 * Why hop-by-hop fields are dropped (RFC 9110 7.6.1): Connection, the
 * fields it names, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade and
 * Proxy-Authorization describe one connection, the client's to us, not the
 * message. Passed on, they would make the upstream keep or close the
 * proxy's connection on the client's word, or see credentials meant for
 * the proxy. The framing fields (Content-Length, Transfer-Encoding) are
 * written by the proxy for the framing it chose, never copied.
 */
#include "message.h"

#include <string.h>

/* Adds our Via entry, appending to the last existing Via field (<last>,
 * or -1 for none) so the chain of intermediaries reads in order. */
static int add_via(struct headers *out, int last)
{
    if (last < 0) {
        /* our own constant field: nothing to check */
        static const struct http_field via = {"Via", 3, MESSAGE_VIA, sizeof MESSAGE_VIA - 1,
                                              HTTP_FIELD_VIA};
        return headers_add_parsed(out, &via);
    }

    size_t len;
    const char *v = headers_value(out, (size_t)last, &len);
    char joined[1024];
    if (len + 2 + strlen(MESSAGE_VIA) >= sizeof joined)
        return 0; /* an absurdly long Via chain: leave it as it is */
    memcpy(joined, v, len);
    memcpy(joined + len, ", " MESSAGE_VIA, 2 + strlen(MESSAGE_VIA));
    return headers_set_value(out, (size_t)last, joined, len + 2 + strlen(MESSAGE_VIA));
}

/* Copies the fields that survive forwarding. */
static int import_fields(const struct http_head *head, int is_request, int keep_length,
                         int upgrade, struct headers *out)
{
    /* The last Via, found by the parser's field ids as the fields are
     * copied (names would be compared on every field otherwise). */
    int last_via = -1;
    for (size_t i = 0; i < out->count; i++) {
        size_t len;
        const char *name = headers_name(out, i, &len);
        if (http_token_eq(name, len, "Via"))
            last_via = (int)i;
    }
    for (size_t i = 0; i < head->field_count; i++) {
        const struct http_field *f = &head->fields[i];
        if (f->id == HTTP_FIELD_UPGRADE && upgrade)
            ; /* kept: the upgrade is being negotiated end to end */
        else if (http_is_hop_by_hop(head, i))
            continue;
        if (f->id == HTTP_FIELD_CONTENT_LENGTH && !keep_length)
            continue;
        if (f->id == HTTP_FIELD_TRANSFER_ENCODING || (is_request && f->id == HTTP_FIELD_HOST))
            continue;
        /* An HTTP/1.0 client's Expect means nothing (RFC 9110 10.1.1: a
         * recipient ignores it), and it would go on as HTTP/1.1's. */
        if (is_request && f->id == HTTP_FIELD_EXPECT && head->version_minor == 0)
            continue;
        if (headers_add_parsed(out, f) != 0)
            return -1;
        if (f->id == HTTP_FIELD_VIA)
            last_via = (int)out->count - 1;
    }
    return add_via(out, last_via);
}

int message_import_request(const struct http_head *head, const char *authority,
                           size_t authority_len, int upgrade, struct headers *out)
{
    /* The authority is the proxy's own text, made from a host and port
     * the URL parser accepted: nothing in it to check again. */
    const struct http_field host = {"Host", 4, authority, authority_len, HTTP_FIELD_HOST};
    if (headers_add_parsed(out, &host) != 0)
        return -1;
    return import_fields(head, 1, 0, upgrade, out);
}

int message_import_response(const struct http_head *head, int keep_length, int upgrade,
                            struct headers *out)
{
    return import_fields(head, 0, keep_length, upgrade, out);
}

/* "HTTP/1.1 <status> " and "Content-Length: <n>" are written on every
 * exchange; formatting them by hand costs a tenth of what printf does. */
static int append_status_start(struct buffer *out, int status)
{
    char text[] = "HTTP/1.1 000 ";
    if (status < 0 || status > 999)
        return buffer_printf(out, "HTTP/1.1 %03d ", status);
    text[9] = (char)('0' + status / 100);
    text[10] = (char)('0' + status / 10 % 10);
    text[11] = (char)('0' + status % 10);
    return buffer_append(out, text, sizeof text - 1);
}

static int append_content_length(struct buffer *out, uint64_t length)
{
    /* built from its end in one piece: the digits, then the name */
    char line[sizeof "Content-Length: " - 1 + 20 + 2];
    size_t n = sizeof line - 2;
    line[n] = '\r';
    line[n + 1] = '\n';
    do {
        line[--n] = (char)('0' + length % 10);
        length /= 10;
    } while (length);
    n -= sizeof "Content-Length: " - 1;
    memcpy(line + n, "Content-Length: ", sizeof "Content-Length: " - 1);
    return buffer_append(out, line + n, sizeof line - n);
}

static int write_framing(struct buffer *out, enum http_body_kind kind, uint64_t length)
{
    if (kind == HTTP_BODY_LENGTH)
        return append_content_length(out, length);
    if (kind == HTTP_BODY_CHUNKED)
        return buffer_append_str(out, "Transfer-Encoding: chunked\r\n");
    return 0;
}

/* The request head, in origin-form, or in absolute-form for a parent proxy
 * when <origin> ("http://host:port") is given, with <proxy_auth> as its
 * Proxy-Authorization when given. */
static int write_request(struct buffer *out, const char *origin, const char *proxy_auth,
                         const char *method, size_t method_len, const char *path,
                         size_t path_len, const struct headers *fields,
                         enum http_body_kind kind, uint64_t length, int had_length, int upgrade)
{
    if (buffer_append(out, method, method_len) || buffer_append(out, " ", 1))
        return -1;
    if (origin && buffer_append_str(out, origin))
        return -1;
    /* "http://host?q" has no path: origin-form needs the leading slash.
     * Two targets go as they are: "*" (asterisk-form, to a server) and
     * "" after an origin (a server-wide OPTIONS passed to a parent). */
    int as_is = origin ? path_len == 0 : path_len == 1 && path[0] == '*';
    if (!as_is && (path_len == 0 || path[0] != '/') && buffer_append(out, "/", 1))
        return -1;
    if (buffer_append(out, path, path_len) || buffer_append_str(out, " HTTP/1.1\r\n") ||
        headers_write(fields, out))
        return -1;
    if (proxy_auth && buffer_printf(out, "Proxy-Authorization: %s\r\n", proxy_auth))
        return -1;
    if (kind == HTTP_BODY_NONE && had_length) {
        if (buffer_append_str(out, "Content-Length: 0\r\n"))
            return -1;
    } else if (write_framing(out, kind, length)) {
        return -1;
    }
    /* HTTP/1.1 keeps the upstream connection open by default, so it can go
     * back to the pool after the response. */
    return buffer_append_str(out, upgrade ? "Connection: Upgrade\r\n\r\n" : "\r\n");
}

int message_write_request(struct buffer *out, const char *method, size_t method_len,
                          const char *path, size_t path_len, const struct headers *fields,
                          enum http_body_kind kind, uint64_t length, int had_length,
                          int upgrade)
{
    return write_request(out, NULL, NULL, method, method_len, path, path_len, fields, kind,
                         length, had_length, upgrade);
}

int message_write_proxy_request(struct buffer *out, const char *origin, const char *proxy_auth,
                                const char *method, size_t method_len, const char *path,
                                size_t path_len, const struct headers *fields,
                                enum http_body_kind kind, uint64_t length, int had_length,
                                int upgrade)
{
    return write_request(out, origin, proxy_auth, method, method_len, path, path_len, fields,
                         kind, length, had_length, upgrade);
}

/* The end of a response head: framing, Connection, the empty line. */
static int write_response_tail(struct buffer *out, enum http_body_kind kind, uint64_t length,
                               int keep_alive, int client_minor, int upgrade)
{
    /* the Connection field and the empty line, in one piece */
    const char *end = upgrade             ? "Connection: Upgrade\r\n\r\n"
                      : !keep_alive       ? "Connection: close\r\n\r\n"
                      : client_minor == 0 ? "Connection: keep-alive\r\n\r\n"
                                          : "\r\n";
    if (write_framing(out, kind, length))
        return -1;
    return buffer_append_str(out, end) ? -1 : 0;
}

int message_write_response(struct buffer *out, int status, const char *reason,
                           size_t reason_len, const struct headers *fields,
                           enum http_body_kind kind, uint64_t length, int keep_alive,
                           int client_minor, int upgrade)
{
    if (append_status_start(out, status) || buffer_append(out, reason, reason_len) ||
        buffer_append(out, "\r\n", 2) || headers_write(fields, out))
        return -1;
    return write_response_tail(out, kind, length, keep_alive, client_minor, upgrade);
}

/* Whether field <f> of a parsed head was sent as exactly the line we would
 * write for it, "Name: value" CRLF (one SP after the colon, no trailing
 * whitespace), so its bytes can be copied as they are. The views point
 * into the parsed bytes, where the colon, the OWS and the CRLF are. */
static int line_as_written(const struct http_field *f)
{
    return f->value == f->name + f->name_len + 2 && f->name[f->name_len + 1] == ' ' &&
           f->value[f->value_len] == '\r';
}

int message_write_response_from(struct buffer *out, const struct http_head *head,
                                int keep_length, enum http_body_kind kind, uint64_t length,
                                int keep_alive, int client_minor)
{
    int last_via = -1;
    const char *run = NULL; /* lines to copy as they are, not yet copied */
    size_t run_len = 0;

    /* The same fields, in the same order, as import + write would give. */
    for (int i = http_find_id(head, HTTP_FIELD_VIA, 0); i >= 0;
         i = http_find_id(head, HTTP_FIELD_VIA, (size_t)i + 1))
        if (!http_is_hop_by_hop(head, (size_t)i))
            last_via = i;
    if (append_status_start(out, head->status) ||
        buffer_append(out, head->reason, head->reason_len) || buffer_append(out, "\r\n", 2))
        return -1;
    /* Most servers write their lines as we would, one after the other: a
     * run of kept lines that are contiguous in the parsed bytes is copied
     * in one piece (a dropped field ends a run). */
    for (size_t i = 0; i < head->field_count; i++) {
        const struct http_field *f = &head->fields[i];
        if (http_is_hop_by_hop(head, i) || f->id == HTTP_FIELD_TRANSFER_ENCODING ||
            (f->id == HTTP_FIELD_CONTENT_LENGTH && !keep_length))
            continue;
        if ((int)i != last_via && line_as_written(f)) {
            size_t line_len = f->name_len + 2 + f->value_len + 2;
            if (run && run + run_len == f->name) {
                run_len += line_len;
                continue;
            }
            if (run && buffer_append(out, run, run_len))
                return -1;
            run = f->name;
            run_len = line_len;
            continue;
        }
        if (run && buffer_append(out, run, run_len))
            return -1;
        run = NULL;
        if (buffer_append(out, f->name, f->name_len) || buffer_append(out, ": ", 2) ||
            buffer_append(out, f->value, f->value_len) ||
            ((int)i == last_via && buffer_append_str(out, ", " MESSAGE_VIA)) ||
            buffer_append(out, "\r\n", 2))
            return -1;
    }
    if (run && buffer_append(out, run, run_len))
        return -1;
    if (last_via < 0 && buffer_append_str(out, "Via: " MESSAGE_VIA "\r\n"))
        return -1;
    return write_response_tail(out, kind, length, keep_alive, client_minor, 0);
}

int message_write_error(struct buffer *out, int status, const char *cause, int keep_alive,
                        int client_minor, int head_only)
{
    const char *reason = message_reason(status);
    int body_len = (int)(strlen(reason) + strlen(cause) + 7); /* "NNN " ": " "\n" */
    if (buffer_printf(out,
                         "HTTP/1.1 %03d %s\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n"
                         "Content-Length: %d\r\n"
                         "Via: " MESSAGE_VIA "\r\n"
                         "%s%s"
                         "\r\n",
                         status, reason, body_len,
                         /* RFC 9110 11.7.1: a 407 says how to authenticate */
                         status == 407 ? "Proxy-Authenticate: Basic realm=\"luaproxy\"\r\n" : "",
                         !keep_alive         ? "Connection: close\r\n"
                         : client_minor == 0 ? "Connection: keep-alive\r\n"
                                             : "") != 0)
        return -1;
    /* To a HEAD, the head alone (its length that of the text a GET gets,
     * RFC 9110 9.3.2). */
    if (head_only)
        return 0;
    if (buffer_printf(out, "%03d %s: %s\n", status, reason, cause) != 0)
        return -1;
    return body_len;
}

const char *message_reason(int status)
{
    /* The IANA HTTP Status Code Registry (RFC 9110 section 15 and the
     * RFCs it names), permanent entries. 306 and 418 are registered as
     * "(Unused)": 418 is sent as the phrase it is known by (RFC 2324, the
     * reason RFC 9110 15.5.19 reserves it). */
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 306: return "Unused";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return status < 200 ? "Informational" : status < 300 ? "OK"
                   : status < 400 ? "Redirection" : status < 500 ? "Client Error"
                                                    : "Server Error";
    }
}
