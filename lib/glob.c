/*
 * glob.c - checking and matching fnmatch patterns (see glob.h).
 */
#include "lib/glob.h"

#include <fnmatch.h>

const char *sw_glob_problem(const char *g)
{
	if (!*g)
		return "empty pattern";
	for (const char *p = g; *p; p++) {
		if (*p == '\\') {
			if (!*++p)
				return "ends with a backslash";
		} else if (*p == '[') {
			const char *q = p + 1;
			if (*q == '!' || *q == '^')
				q++;
			if (*q == ']')
				q++;    /* a leading ] is a member */
			while (*q && *q != ']')
				q++;
			if (!*q)
				return "'[' without a closing ']'";
			if (q == p + 1)
				return "empty '[]'";
			p = q;
		}
	}
	return NULL;
}

int sw_glob_any(char *const *globs, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (fnmatch(globs[i], s, 0) == 0)
			return 1;
	return 0;
}
