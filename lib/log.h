/*
 * log.h - structured log lines to stderr, one event per line:
 *
 *   ts=2026-11-21T22:01:02.345Z level=info event=http.listen addr=127.0.0.1:8080
 *
 * `event` is a short dotted name; the rest is key=value pairs written by the
 * caller. Values that may hold spaces or quotes go through sw_q(), which
 * quotes and escapes them. Never log a secret.
 *
 * Thread-safe: each line is formatted first and written with one write(2).
 */
#ifndef SW_LOG_H
#define SW_LOG_H

#include "lib/error.h"

enum sw_log_level { SW_LOG_DEBUG, SW_LOG_INFO, SW_LOG_WARN, SW_LOG_ERROR };

void sw_log_set_level(enum sw_log_level lvl);
/* Parse "debug", "info", "warn" or "error"; returns 0 or SW_EINVALID. */
int sw_log_parse_level(const char *s, enum sw_log_level *out);

void sw_log(enum sw_log_level lvl, const char *event, const char *fmt, ...) SW_PRINTF(3, 4);

#define log_debug(ev, ...) sw_log(SW_LOG_DEBUG, ev, __VA_ARGS__)
#define log_info(ev, ...)  sw_log(SW_LOG_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...)  sw_log(SW_LOG_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...) sw_log(SW_LOG_ERROR, ev, __VA_ARGS__)

/*
 * Quote a value for a log line when it needs it ("a b" -> "\"a b\"").
 * Returns a pointer into one of 8 rotating thread-local buffers, so up to 8
 * sw_q() results can appear in one sw_log() call. Long values are cut.
 */
const char *sw_q(const char *s);

/* Route libevent's internal log messages into ours. */
void sw_log_route_libevent(void);

#endif
