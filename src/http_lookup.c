/*
 * http_lookup.c - fields of a parsed head looked up by name (see
 * http_parse.h), for the callers off the relay's path: the admin pages,
 * the flow views, the proxy's own HTTP client. The relay looks fields up
 * by the ids the parser gave them (http_find_id, http_has_token_id).
 */
#include "http_parse.h"

#include <string.h>

int http_find_field(const struct http_head *head, const char *name, size_t from)
{
    size_t n = strlen(name);
    enum http_field_id id = http_field_id(name, n);
    if (id != HTTP_FIELD_OTHER)
        return http_find_id(head, id, from);
    for (size_t i = from; i < head->field_count; i++)
        if (head->fields[i].name_len == n && http_ci_eq(head->fields[i].name, name, n))
            return (int)i;
    return -1;
}

int http_has_token(const struct http_head *head, const char *name, const char *token)
{
    size_t token_len = strlen(token);
    for (int i = http_find_field(head, name, 0); i >= 0;
         i = http_find_field(head, name, (size_t)i + 1)) {
        const struct http_field *f = &head->fields[i];
        if (http_list_has(f->value, f->value_len, token, token_len))
            return 1;
    }
    return 0;
}
