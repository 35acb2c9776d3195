/*
 * http_error.c - what each of the parser's refusals means to the peer: the
 * status it gets and a short fixed text (see http_parse.h). Kept apart
 * from the grammar, which only says which rule a message broke.
 */
#include "http_parse.h"

int http_error_status(enum http_error err)
{
    switch (err) {
    case HTTP_ERR_STATUS_LINE:
    case HTTP_ERR_STATUS_CODE:
        return 502;
    case HTTP_ERR_VERSION:
        return 505;
    case HTTP_ERR_TOO_MANY_FIELDS:
        return 431;
    case HTTP_ERR_TE_UNSUPPORTED:
        return 501;
    case HTTP_ERR_REQUEST_LINE:
    case HTTP_ERR_FIELD_NAME:
    case HTTP_ERR_FIELD_VALUE:
    case HTTP_ERR_OBS_FOLD:
    case HTTP_ERR_BARE_CR_LF:
    case HTTP_ERR_CL_TE:
    case HTTP_ERR_CONTENT_LENGTH:
    case HTTP_ERR_TE_MALFORMED:
    case HTTP_ERR_HOST:
    case HTTP_ERR_CHUNK_SIZE:
    case HTTP_ERR_CHUNK_FRAMING:
    case HTTP_ERR_TRAILER:
        return 400;
    case HTTP_ERR_NONE:
    default:
        /* asking for the status of "no error" is a caller bug */
        return 500;
    }
}

const char *http_error_text(enum http_error err)
{
    switch (err) {
    case HTTP_ERR_NONE: return "no error";
    case HTTP_ERR_REQUEST_LINE: return "malformed request line";
    case HTTP_ERR_STATUS_LINE: return "malformed status line";
    case HTTP_ERR_STATUS_CODE: return "status code outside 100-599";
    case HTTP_ERR_VERSION: return "unsupported HTTP version";
    case HTTP_ERR_FIELD_NAME: return "whitespace or invalid character in a field name";
    case HTTP_ERR_FIELD_VALUE: return "invalid character in a field value";
    case HTTP_ERR_OBS_FOLD: return "obsolete line folding";
    case HTTP_ERR_BARE_CR_LF: return "bare CR or LF";
    case HTTP_ERR_TOO_MANY_FIELDS: return "too many header fields";
    case HTTP_ERR_CL_TE: return "Content-Length together with Transfer-Encoding";
    case HTTP_ERR_CONTENT_LENGTH: return "invalid or duplicate Content-Length";
    case HTTP_ERR_TE_UNSUPPORTED: return "unsupported Transfer-Encoding";
    case HTTP_ERR_TE_MALFORMED: return "malformed Transfer-Encoding";
    case HTTP_ERR_HOST: return "missing, duplicate or invalid Host";
    case HTTP_ERR_CHUNK_SIZE: return "invalid chunk size";
    case HTTP_ERR_CHUNK_FRAMING: return "invalid chunk framing";
    case HTTP_ERR_TRAILER: return "invalid trailer section";
    }
    return "unknown error";
}
