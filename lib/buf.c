/*
 * buf.c - growable byte buffers and abort-on-failure allocation (see buf.h).
 */
#include "lib/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char sw_buf_empty[1];

static void oom(size_t n)
{
	fprintf(stderr, "slipway: out of memory allocating %zu bytes\n", n);
	abort();
}

void *sw_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *sw_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom(n * size);
	return p;
}

void *sw_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *sw_strdup(const char *s)
{
	return sw_strndup(s, strlen(s));
}

char *sw_strndup(const char *s, size_t n)
{
	char *p = sw_malloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *sw_asprintf(const char *fmt, ...)
{
	struct sw_buf b = SW_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	sw_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	return sw_buf_detach(&b, NULL);
}

void sw_buf_init(struct sw_buf *b)
{
	b->ptr = sw_buf_empty;
	b->len = b->cap = 0;
}

void sw_buf_grow(struct sw_buf *b, size_t extra)
{
	size_t want = b->len + extra + 1;
	if (want <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < want)
		cap *= 2;
	if (b->cap == 0) {
		b->ptr = sw_malloc(cap);
		b->ptr[0] = '\0';
	} else {
		b->ptr = sw_realloc(b->ptr, cap);
	}
	b->cap = cap;
}

void sw_buf_add(struct sw_buf *b, const void *data, size_t len)
{
	if (!len)
		return;
	sw_buf_grow(b, len);
	memmove(b->ptr + b->len, data, len);
	b->len += len;
	b->ptr[b->len] = '\0';
}

void sw_buf_adds(struct sw_buf *b, const char *s)
{
	sw_buf_add(b, s, strlen(s));
}

void sw_buf_addch(struct sw_buf *b, char c)
{
	sw_buf_add(b, &c, 1);
}

void sw_buf_vaddf(struct sw_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n <= 0)
		return;
	sw_buf_grow(b, (size_t)n);
	vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void sw_buf_addf(struct sw_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sw_buf_vaddf(b, fmt, ap);
	va_end(ap);
}

void sw_buf_truncate(struct sw_buf *b, size_t len)
{
	if (len >= b->len)
		return;
	b->len = len;
	if (b->cap)
		b->ptr[len] = '\0';
}

void sw_buf_consume(struct sw_buf *b, size_t n)
{
	if (n >= b->len) {
		sw_buf_reset(b);
		return;
	}
	memmove(b->ptr, b->ptr + n, b->len - n);
	b->len -= n;
	b->ptr[b->len] = '\0';
}

void sw_buf_reset(struct sw_buf *b)
{
	sw_buf_truncate(b, 0);
}

void sw_buf_release(struct sw_buf *b)
{
	if (b->cap)
		free(b->ptr);
	sw_buf_init(b);
}

char *sw_buf_detach(struct sw_buf *b, size_t *len)
{
	char *p;
	if (len)
		*len = b->len;
	if (b->cap)
		p = b->ptr;
	else
		p = sw_strdup("");
	sw_buf_init(b);
	return p;
}

int sw_buf_read_file(struct sw_buf *b, const char *path)
{
	char tmp[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sw_error_errno("%s", path);
	while ((n = read(fd, tmp, sizeof(tmp))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			sw_error_errno("read %s", path);
			close(fd);
			return SW_ERR;
		}
		sw_buf_add(b, tmp, (size_t)n);
	}
	close(fd);
	return 0;
}
