/*
 * log.c - key=value log lines on stderr (see log.h).
 */
#include "lib/log.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum sw_log_level min_level = SW_LOG_INFO;
static const char *names[] = { "debug", "info", "warn", "error" };

void sw_log_set_level(enum sw_log_level lvl)
{
	min_level = lvl;
}

int sw_log_parse_level(const char *s, enum sw_log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (!strcmp(s, names[i])) {
			*out = (enum sw_log_level)i;
			return 0;
		}
	}
	return SW_EINVALID;
}

void sw_log(enum sw_log_level lvl, const char *event, const char *fmt, ...)
{
	char line[8192];
	struct timeval tv;
	struct tm tm;
	size_t n;
	va_list ap;

	if (lvl < min_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03dZ level=%s event=%s",
			      (int)(tv.tv_usec / 1000), names[lvl], event);
	if (fmt && *fmt && n < sizeof(line) - 2) {
		line[n++] = ' ';
		va_start(ap, fmt);
		int w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
		if (w > 0)
			n += (size_t)w;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t r = write(STDERR_FILENO, line, n);
	(void)r;
}

const char *sw_q(const char *s)
{
	static _Thread_local char bufs[8][512];
	static _Thread_local unsigned next;
	char *out = bufs[next++ % 8];
	size_t o = 0, cap = sizeof(bufs[0]) - 8;
	int needs = 0;

	if (!s)
		return "\"\"";
	if (!*s)
		return "\"\"";
	for (const char *p = s; *p; p++)
		if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20 || *p == '\\')
			needs = 1;
	if (!needs) {
		snprintf(out, sizeof(bufs[0]), "%s", s);
		return out;
	}
	out[o++] = '"';
	for (const char *p = s; *p && o < cap; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else if (c < 0x20) {
			out[o++] = ' ';
		} else {
			out[o++] = (char)c;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

static void libevent_cb(int severity, const char *msg)
{
	enum sw_log_level l = SW_LOG_DEBUG;
	if (severity == EVENT_LOG_MSG)
		l = SW_LOG_INFO;
	else if (severity == EVENT_LOG_WARN)
		l = SW_LOG_WARN;
	else if (severity == EVENT_LOG_ERR)
		l = SW_LOG_ERROR;
	sw_log(l, "libevent", "msg=%s", sw_q(msg));
}

void sw_log_route_libevent(void)
{
	event_set_log_callback(libevent_cb);
}
