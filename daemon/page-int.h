/*
 * page-int.h - what the status page's files (page.c, sse.c, metrics.c)
 * share. Private to daemon/.
 */
#ifndef SW_DAEMON_PAGE_INT_H
#define SW_DAEMON_PAGE_INT_H

#include <stdint.h>

#include "daemon/daemon.h"

/* Poll storage for new log bytes this often per live-log connection. */
#define SW_SSE_POLL_MS 250
/* At most this many live-log connections at once (then 503). */
#define SW_SSE_MAX_STREAMS 256

/*
 * GET /runs/{run_id}/stages/{stage}/events: the stage's log as Server-Sent
 * Events, from byte `?offset=` (or the Last-Event-ID header, which is the
 * offset after the last event sent), converted to HTML (page-html.h), then
 * new bytes as the engine stores them, until the stage is final: then an
 * `end` event with its status and the stream closes. Replies itself.
 */
void sw_sse_log(struct sw_daemon *d, struct evhttp_request *req, int64_t run_id,
		const char *stage);

/* Live-log connections open now (for /metrics). */
int sw_sse_active(void);

#endif
