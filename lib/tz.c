/*
 * tz.c - a TZif reader (RFC 8536): the transition times and the local
 * time types they switch to; version 2+ files are read from their 64-bit
 * block.
 */
#include "lib/tz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/error.h"

#define TZ_MAX_FILE (1 << 20)

struct tz_type {
	long utoff;
	int isdst;
};

struct sw_tz {
	char *name;
	int64_t *at;              /* transition times, ascending */
	unsigned char *idx;       /* the type each switches to */
	size_t nat;
	struct tz_type *types;
	size_t ntypes;
};

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static int valid_name(const char *s)
{
	if (!*s || *s == '/' || strstr(s, "..") || strlen(s) > 128)
		return 0;
	for (; *s; s++)
		if (!(*s >= 'A' && *s <= 'Z') && !(*s >= 'a' && *s <= 'z') &&
		    !(*s >= '0' && *s <= '9') && !strchr("/_+-", *s))
			return 0;
	return 1;
}

/* The data block at `p` (`end` bounds it) with 4- or 8-byte times. */
static int parse_block(struct sw_tz *tz, const unsigned char *p, const unsigned char *end,
		       int wide)
{
	size_t tsz = wide ? 8 : 4;
	if (end - p < 44 || memcmp(p, "TZif", 4))
		return sw_error_setc(SW_EINVALID, "not a TZif file");
	size_t isut = be32(p + 20), isstd = be32(p + 24), leap = be32(p + 28);
	size_t timecnt = be32(p + 32), typecnt = be32(p + 36), charcnt = be32(p + 40);
	p += 44;
	size_t need = timecnt * tsz + timecnt + typecnt * 6 + charcnt + leap * (tsz + 4) +
		      isstd + isut;
	if (typecnt == 0 || typecnt > 256 || timecnt > 100000 || (size_t)(end - p) < need)
		return sw_error_setc(SW_EINVALID, "a TZif file cut short or with bad counts");
	tz->at = sw_calloc(timecnt ? timecnt : 1, sizeof(*tz->at));
	tz->idx = sw_calloc(timecnt ? timecnt : 1, 1);
	tz->types = sw_calloc(typecnt, sizeof(*tz->types));
	for (size_t i = 0; i < timecnt; i++)
		tz->at[i] = wide ? be64(p + i * 8) : (int32_t)be32(p + i * 4);
	p += timecnt * tsz;
	for (size_t i = 0; i < timecnt; i++) {
		if (p[i] >= typecnt)
			return sw_error_setc(SW_EINVALID, "a TZif transition to a type it lacks");
		tz->idx[i] = p[i];
	}
	p += timecnt;
	for (size_t i = 0; i < typecnt; i++, p += 6) {
		tz->types[i].utoff = (int32_t)be32(p);
		tz->types[i].isdst = p[4] != 0;
	}
	tz->nat = timecnt;
	tz->ntypes = typecnt;
	return 0;
}

int sw_tz_load(struct sw_tz **out, const char *name)
{
	struct sw_tz *tz;
	struct sw_buf b = SW_BUF_INIT;
	int rc;

	*out = NULL;
	if (!name || !valid_name(name))
		return sw_error_setc(SW_EINVALID, "time zone %.60s is not a zone name "
				     "(e.g. Europe/Berlin, UTC)", name ? name : "(none)");
	tz = sw_calloc(1, sizeof(*tz));
	tz->name = sw_strdup(name);
	if (!strcmp(name, "UTC")) {
		tz->types = sw_calloc(1, sizeof(*tz->types));
		tz->ntypes = 1;
		*out = tz;
		return 0;
	}
	const char *dir = getenv("TZDIR");
	char *path = sw_asprintf("%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
	rc = sw_buf_read_file(&b, path);
	if (rc < 0) {
		rc = sw_error_setc(SW_ENOTFOUND, "time zone %s: no such zone (%s)", name, path);
	} else if (b.len > TZ_MAX_FILE) {
		rc = sw_error_setc(SW_EINVALID, "time zone %s: %s is too large", name, path);
	} else {
		const unsigned char *p = (const unsigned char *)b.ptr, *end = p + b.len;
		rc = parse_block(tz, p, end, 0);
		if (rc == 0 && p[4] >= '2') {
			/* skip the v1 block; the v2 header and block follow */
			size_t v1 = 44 + be32(p + 32) * 5 + be32(p + 36) * 6 + be32(p + 40) +
				    be32(p + 28) * 8 + be32(p + 24) + be32(p + 20);
			free(tz->at);
			free(tz->idx);
			free(tz->types);
			tz->at = NULL;
			tz->idx = NULL;
			tz->types = NULL;
			rc = parse_block(tz, p + v1, end, 1);
		}
		if (rc < 0)
			sw_error_prefix("time zone %s (%s)", name, path);
	}
	free(path);
	sw_buf_release(&b);
	if (rc < 0) {
		sw_tz_free(tz);
		return rc;
	}
	*out = tz;
	return 0;
}

void sw_tz_free(struct sw_tz *tz)
{
	if (!tz)
		return;
	free(tz->name);
	free(tz->at);
	free(tz->idx);
	free(tz->types);
	free(tz);
}

const char *sw_tz_name(const struct sw_tz *tz)
{
	return tz->name;
}

static const struct tz_type *type_at(const struct sw_tz *tz, int64_t t)
{
	size_t lo = 0, hi = tz->nat;
	if (tz->nat == 0 || t < tz->at[0]) {
		for (size_t i = 0; i < tz->ntypes; i++)   /* before it all: standard time */
			if (!tz->types[i].isdst)
				return &tz->types[i];
		return &tz->types[0];
	}
	while (hi - lo > 1) {     /* the last transition at or before t */
		size_t mid = lo + (hi - lo) / 2;
		if (tz->at[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	return &tz->types[tz->idx[lo]];
}

long sw_tz_offset(const struct sw_tz *tz, int64_t t)
{
	return type_at(tz, t)->utoff;
}

void sw_tz_local(const struct sw_tz *tz, int64_t t, struct tm *out)
{
	const struct tz_type *ty = type_at(tz, t);
	time_t local = (time_t)(t + ty->utoff);
	gmtime_r(&local, out);
	out->tm_isdst = ty->isdst;
	out->tm_gmtoff = ty->utoff;
	out->tm_zone = NULL;
}
