/*
 * strv.h - NULL-terminated arrays of owned strings ("K=V" environments,
 * argv, lists read from YAML), the one copy every room uses.
 *
 *     char **v = sw_strv_dupn(names, n);    // n copies and a NULL
 *     ...
 *     sw_strv_free(v);                      // NULL is a no-op
 *
 * Allocation failure aborts (sw_calloc), so nothing here fails.
 */
#ifndef SW_LIB_STRV_H
#define SW_LIB_STRV_H

#include <stddef.h>

/* Entries before the NULL; 0 for NULL. */
size_t sw_strv_len(const char *const *v);
/* A copy of v up to its NULL; NULL for NULL. */
char **sw_strv_dup(const char *const *v);
/* A copy of the first n entries of v, NULL-terminated (never NULL). */
char **sw_strv_dupn(const char *const *v, size_t n);
/* Free each entry up to the NULL, then the array. NULL is a no-op. */
void sw_strv_free(char **v);
/* The same for an array of n entries, NULL-terminated or not. */
void sw_strv_freen(char **v, size_t n);
/* sw_strv_free, zeroing each string first: for arrays that may hold
 * secrets (a stage's environment). */
void sw_strv_free_wipe(char **v);

#endif
