/*
 * message.h - what the proxy changes in a head on its way through.
 *
 * message_import_* turn a parsed head into the editable list of fields that
 * will be forwarded: hop-by-hop fields (RFC 9110 7.6.1) and the framing
 * fields are dropped, Host is regenerated from the target, Via gets our
 * entry. message_write_* then write the outgoing head with the framing and
 * connection fields the proxy decides on. Local responses (errors, the
 * CONNECT answer) are written here too, so every status line and every body
 * the proxy makes up comes from one place.
 */
#ifndef LUAPROXY_MESSAGE_H
#define LUAPROXY_MESSAGE_H

#include <stdint.h>

#include "buffer.h"
#include "headers.h"
#include "http_parse.h"

#define MESSAGE_VIA "1.1 luaproxy"

/* Copies the end-to-end fields of a request into <out>, with Host first and
 * set to <authority>. Upgrade is kept when <upgrade>. 0 or -1. */
int message_import_request(const struct http_head *head, const char *authority,
                           size_t authority_len, int upgrade, struct headers *out);

/* Copies the end-to-end fields of a response. Content-Length is kept when
 * <keep_length> (answers to HEAD and 304, where it describes a body that is
 * not sent). Upgrade is kept when <upgrade>. 0 or -1. */
int message_import_response(const struct http_head *head, int keep_length, int upgrade,
                            struct headers *out);

/* Writes "METHOD PATH HTTP/1.1" (a PATH without its leading "/" gets
 * one, except "*"), the fields, the framing for <kind> and,
 * when <upgrade>, "Connection: Upgrade" (otherwise HTTP/1.1's default
 * keeps the connection open for reuse). <had_length>
 * keeps an explicit "Content-Length: 0" when the client sent one. */
int message_write_request(struct buffer *out, const char *method, size_t method_len,
                          const char *path, size_t path_len, const struct headers *fields,
                          enum http_body_kind kind, uint64_t length, int had_length,
                          int upgrade);

/* The same for a parent proxy: the target in absolute-form, <origin>
 * ("http://host:port") in front of the path (an empty one stays empty),
 * and <proxy_auth> (a
 * Proxy-Authorization value, or NULL) for the parent. */
int message_write_proxy_request(struct buffer *out, const char *origin, const char *proxy_auth,
                                const char *method, size_t method_len, const char *path,
                                size_t path_len, const struct headers *fields,
                                enum http_body_kind kind, uint64_t length, int had_length,
                                int upgrade);

/* Writes "HTTP/1.1 STATUS REASON", the fields, the framing for <kind> and
 * the Connection field for <keep_alive> (explicit keep-alive only for
 * HTTP/1.0 clients, who would otherwise assume close). */
int message_write_response(struct buffer *out, int status, const char *reason,
                           size_t reason_len, const struct headers *fields,
                           enum http_body_kind kind, uint64_t length, int keep_alive,
                           int client_minor, int upgrade);

/* The same head as message_import_response + message_write_response
 * (without Upgrade), written straight from the parsed head's views: for a
 * response no script will edit, the fields are copied once, into <out>. */
int message_write_response_from(struct buffer *out, const struct http_head *head,
                                int keep_length, enum http_body_kind kind, uint64_t length,
                                int keep_alive, int client_minor);

/* A complete local text response: "NNN Reason: <cause>\n". <cause> must be
 * a fixed string of ours, never client bytes. With <head_only> (an answer
 * to HEAD), the head alone. Returns the body bytes written, or -1 when out
 * of memory. */
int message_write_error(struct buffer *out, int status, const char *cause, int keep_alive,
                        int client_minor, int head_only);

/* The standard reason phrase for <status> ("Bad Gateway"). */
const char *message_reason(int status);

#endif
