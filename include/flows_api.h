/*
 * flows_api.h - the flow viewer on the admin listener: the page, the JSON
 * API, the event stream, HAR export and replay.
 *
 *   GET    /                           the viewer (HTML; app.css, app.js)
 *   GET    /api/flows?filter=&limit=   summaries, oldest first
 *   GET    /api/flows/ID               everything captured for one flow
 *   GET    /api/flows/ID/request/body  raw bytes (?decoded=1, ?as=received)
 *   GET    /api/flows/ID/response/body
 *   POST   /api/flows/ID/replay        sends the request again: {"id": NEW}
 *   DELETE /api/flows                  clears the store
 *   GET    /api/events                 Server-Sent Events: "start", "flow", "clear"
 *   GET    /api/store                  the store's size against its limits
 *   GET    /flows.har?filter=          HAR 1.2
 */
#ifndef LUAPROXY_FLOWS_API_H
#define LUAPROXY_FLOWS_API_H

#include <sys/socket.h>

struct admin;
struct config;
struct flows_store;
struct flows_api;

/* Makes the store and registers the routes on <a>. NULL when capture is
 * off (--flows 0): then nothing is registered and nothing is kept. */
struct flows_api *flows_api_new(struct admin *a, const struct config *cfg);
struct flows_store *flows_api_store(struct flows_api *api);
/* Where replays are sent: the proxy's first listening address. */
void flows_api_set_proxy(struct flows_api *api, const struct sockaddr *addr, socklen_t len);
/* --har: writes every kept flow to <path>. 0 or -1 (logged). */
int flows_api_write_har(struct flows_api *api, const char *path);
void flows_api_free(struct flows_api *api);
/* In a forked child: frees without touching the loop. */
void flows_api_forget(struct flows_api *api);

#endif
