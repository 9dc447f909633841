/*
 * infra-int.h - what the files of infra/ share: text from Terraform and
 * the user's repository made safe for a PR comment.
 */
#ifndef SW_INFRA_INT_H
#define SW_INFRA_INT_H

#include "infra/infra.h"
#include "lib/buf.h"

/*
 * Append s[0..n) cleaned: invalid UTF-8 becomes U+FFFD, ANSI escapes and
 * control characters other than \n and \t are dropped; in `code` mode a
 * backtick becomes U+02CB so a fence or span cannot be closed from inside,
 * in `cell` mode '|' is escaped and newlines become spaces as well.
 */
enum { CL_CODE = 1, CL_CELL = 2 };
void tf_add_clean(struct sw_buf *b, const char *s, size_t n, int mode);

#endif
