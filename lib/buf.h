/*
 * buf.h - a growable byte buffer, after git's strbuf.
 *
 *     struct sw_buf b = SW_BUF_INIT;
 *     sw_buf_addf(&b, "run=%d", id);
 *     use(b.ptr, b.len);
 *     sw_buf_release(&b);
 *
 * Invariants: `ptr` is never NULL and always NUL-terminated (ptr[len] == 0),
 * so b.ptr is a C string whenever the contents hold no NUL. Allocation
 * failure aborts the process (there is nothing sensible to do instead).
 */
#ifndef SW_BUF_H
#define SW_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "lib/error.h"

struct sw_buf {
	char *ptr;
	size_t len;
	size_t cap;   /* 0 while ptr points at the shared empty string */
};

extern char sw_buf_empty[];
#define SW_BUF_INIT { sw_buf_empty, 0, 0 }

void sw_buf_init(struct sw_buf *b);
/* Make room for `extra` more bytes (plus the NUL). */
void sw_buf_grow(struct sw_buf *b, size_t extra);
void sw_buf_add(struct sw_buf *b, const void *data, size_t len);
void sw_buf_adds(struct sw_buf *b, const char *s);
void sw_buf_addch(struct sw_buf *b, char c);
void sw_buf_addf(struct sw_buf *b, const char *fmt, ...) SW_PRINTF(2, 3);
void sw_buf_vaddf(struct sw_buf *b, const char *fmt, va_list ap);
/* Shorten to `len` bytes (len <= b->len). */
void sw_buf_truncate(struct sw_buf *b, size_t len);
/* Drop the first `n` bytes. */
void sw_buf_consume(struct sw_buf *b, size_t n);
void sw_buf_reset(struct sw_buf *b);
/* Free the memory; the buffer is SW_BUF_INIT again. */
void sw_buf_release(struct sw_buf *b);
/* Hand the memory to the caller (free() it); the buffer is reset. */
char *sw_buf_detach(struct sw_buf *b, size_t *len);

/* Read a whole file; returns 0, or <0 with the error slot set. */
int sw_buf_read_file(struct sw_buf *b, const char *path);

/* Memory helpers that abort on failure. */
void *sw_malloc(size_t n);
void *sw_calloc(size_t n, size_t size);
void *sw_realloc(void *p, size_t n);
char *sw_strdup(const char *s);
char *sw_strndup(const char *s, size_t n);
char *sw_asprintf(const char *fmt, ...) SW_PRINTF(1, 2);

#endif
