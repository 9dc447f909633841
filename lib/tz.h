/*
 * tz.h - local time in a named time zone ("Europe/Berlin"), read from the
 * system's tz database (TZif files in $TZDIR or /usr/share/zoneinfo),
 * without touching the process's TZ: many zones at once, from any thread.
 *
 *     struct sw_tz *tz;
 *     if (sw_tz_load(&tz, "Europe/Berlin") < 0) ... sw_error_last() says why
 *     struct tm tm;
 *     sw_tz_local(tz, time(NULL), &tm);      // tm_gmtoff is the offset
 *     sw_tz_free(tz);
 *
 * "UTC" needs no file. Past the file's last transition the last rule's
 * offset holds (Debian's files list transitions to 2037; the POSIX rule in
 * their footer is not read).
 */
#ifndef SW_TZ_H
#define SW_TZ_H

#include <stdint.h>
#include <time.h>

struct sw_tz;

/* SW_EINVALID for a name that is not a zone name (absolute, "..", odd
 * bytes) or a file that is not TZif; SW_ENOTFOUND when there is no such zone. */
int sw_tz_load(struct sw_tz **out, const char *name);
void sw_tz_free(struct sw_tz *tz);   /* NULL is a no-op */
const char *sw_tz_name(const struct sw_tz *tz);

/* Seconds east of UTC at `t`. */
long sw_tz_offset(const struct sw_tz *tz, int64_t t);
/* `t` as local time in `tz` (tm_gmtoff and tm_isdst set). */
void sw_tz_local(const struct sw_tz *tz, int64_t t, struct tm *out);

#endif
