/*
 * error.c - the thread-local error slot (see error.h).
 */
#include "lib/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define SLOT_SIZE 2048

static _Thread_local char slot[SLOT_SIZE];

static void vset(const char *fmt, va_list ap)
{
	vsnprintf(slot, sizeof(slot), fmt, ap);
}

int sw_error_set(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(fmt, ap);
	va_end(ap);
	return SW_ERR;
}

int sw_error_setc(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(fmt, ap);
	va_end(ap);
	return code;
}

int sw_error_prefix(const char *fmt, ...)
{
	char old[SLOT_SIZE], pre[SLOT_SIZE];
	va_list ap;

	memcpy(old, slot, sizeof(old));
	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	if (old[0])
		snprintf(slot, sizeof(slot), "%s: %s", pre, old);
	else
		snprintf(slot, sizeof(slot), "%s", pre);
	return SW_ERR;
}

int sw_error_errno(const char *fmt, ...)
{
	char pre[SLOT_SIZE];
	int e = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	snprintf(slot, sizeof(slot), "%s: %s", pre, strerror(e));
	errno = e;
	return SW_ERR;
}

const char *sw_error_last(void)
{
	return slot;
}

void sw_error_clear(void)
{
	slot[0] = '\0';
}
