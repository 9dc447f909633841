/*
 * strv.c - NULL-terminated string arrays (strv.h).
 */
#include "lib/strv.h"

#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"

size_t sw_strv_len(const char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

char **sw_strv_dup(const char *const *v)
{
	return v ? sw_strv_dupn(v, sw_strv_len(v)) : NULL;
}

char **sw_strv_dupn(const char *const *v, size_t n)
{
	char **c = sw_calloc(n + 1, sizeof(*c));
	for (size_t i = 0; i < n; i++)
		c[i] = sw_strdup(v[i]);
	return c;
}

void sw_strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

void sw_strv_freen(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

void sw_strv_free_wipe(char **v)
{
	for (char **p = v; p && *p; p++) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
	}
	free(v);
}
