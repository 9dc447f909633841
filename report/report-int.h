/*
 * report-int.h - what the files of report/ share: Slack's text escaping.
 */
#ifndef SW_REPORT_INT_H
#define SW_REPORT_INT_H

#include "lib/buf.h"
#include "report/report.h"

/* `s` as Slack mrkdwn text (&, <, > escaped; invalid UTF-8 and control
 * characters cleaned), at most `max` characters; `one_line` folds newlines. */
void report_slack_text(struct sw_buf *b, const char *s, size_t max, int one_line);

#endif
