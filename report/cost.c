/*
 * cost.c - what the environments cost, in words and pictures: the month so
 * far against the month before from Cost Explorer's daily figures, the
 * services that moved most, the Slack report, a one-line trend and a small
 * SVG chart of the last 30 days. Pure functions, as the other bodies.
 *
 * Days are Cost Explorer's: UTC dates. "So far" is the month of yesterday
 * up to and with yesterday (today is not over), compared with the month
 * before up to the same day of the month; on the 1st that is the whole
 * month just ended against the one before.
 */
#include "report/report-int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/store.h"

static const char *const month_names[] = { "January", "February", "March", "April", "May",
	"June", "July", "August", "September", "October", "November", "December" };

/* "YYYY-MM-DD" <-> days since 1970-01-01 */
static int64_t day_num(const char *s)
{
	struct tm tm = { 0 };
	if (!s || sscanf(s, "%4d-%2d-%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday) != 3)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) / 86400;
}

static void day_str(char out[11], int64_t n, struct tm *tm_out)
{
	time_t t = (time_t)(n * 86400);
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, 11, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	if (tm_out)
		*tm_out = tm;
}

/* The first of the month `back` months before the month of day `n`. */
static int64_t month_start(int64_t n, int back)
{
	struct tm tm;
	char s[11];
	day_str(s, n, &tm);
	tm.tm_mday = 1;
	tm.tm_mon -= back;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	return (int64_t)timegm(&tm) / 86400;
}

void sw_report_utc_day(char out[11], int64_t now_s)
{
	day_str(out, now_s >= 0 ? now_s / 86400 : (now_s - 86399) / 86400, NULL);
}

int sw_report_cost_window(char from[11], const char *today)
{
	int64_t t = day_num(today);
	if (t < 0)
		return sw_error_setc(SW_EINVALID, "%.20s is not a day", today ? today : "(none)");
	day_str(from, month_start(t - 1, 1), NULL);
	return 0;
}

void sw_report_cost_title(char *buf, size_t size, const char *day, int weekly)
{
	static const char *const wd[] = { "Sunday", "Monday", "Tuesday", "Wednesday",
		"Thursday", "Friday", "Saturday" };
	int64_t n = day_num(day);
	struct tm tm;
	char s[11];
	if (n < 0) {
		snprintf(buf, size, "%s", weekly ? "Weekly cost report" : "Cost report");
		return;
	}
	day_str(s, n, &tm);
	snprintf(buf, size, "%s, %s %d %s", weekly ? "Weekly cost report" : "Cost report",
		 wd[tm.tm_wday], tm.tm_mday, month_names[tm.tm_mon]);
}

struct mover_acc { const char *service; int64_t now, before; };

int sw_report_cost_sum(struct sw_report_cost *out, const struct sw_store_cost *rows, size_t n,
		       const char *today)
{
	int64_t t = day_num(today), y = t - 1;
	struct mover_acc *acc = NULL;
	size_t nacc = 0;
	struct tm tm;
	char s[11];

	memset(out, 0, sizeof(*out));
	if (t < 0)
		return sw_error_setc(SW_EINVALID, "%.20s is not a day", today ? today : "(none)");
	int64_t m0 = month_start(y, 0), p0 = month_start(y, 1);
	day_str(s, y, &tm);
	out->days = tm.tm_mday;
	snprintf(out->month, sizeof(out->month), "%s", month_names[tm.tm_mon]);
	day_str(s, p0, &tm);
	snprintf(out->prev_month, sizeof(out->prev_month), "%s", month_names[tm.tm_mon]);
	int64_t plen = m0 - p0, same_end = p0 + (out->days < plen ? out->days : plen);
	day_str(out->first_day, y - (SW_REPORT_COST_DAYS - 1), NULL);

	for (size_t i = 0; i < n; i++) {
		int64_t d = day_num(rows[i].day), v = rows[i].micro_usd;
		int now = d >= m0 && d <= y, before = d >= p0 && d < same_end;
		if (d < 0)
			continue;
		if (now) {
			out->so_far += v;
			out->estimated |= rows[i].estimated;
		}
		if (before)
			out->prev_same += v;
		if (d >= p0 && d < m0)
			out->prev_whole += v;
		if (d > y - SW_REPORT_COST_DAYS && d <= y)
			out->daily[d - (y - (SW_REPORT_COST_DAYS - 1))] += v;
		if (!now && !before)
			continue;
		size_t k;
		for (k = 0; k < nacc && strcmp(acc[k].service, rows[i].service); k++)
			;
		if (k == nacc) {
			acc = sw_realloc(acc, (nacc + 1) * sizeof(*acc));
			acc[nacc++] = (struct mover_acc){ rows[i].service, 0, 0 };
		}
		if (now)
			acc[k].now += v;
		else
			acc[k].before += v;
	}
	/* the biggest moves, up or down, first */
	for (size_t m = 0; m < SW_REPORT_COST_MOVERS; m++) {
		size_t best = nacc;
		int64_t bd = 0;
		for (size_t k = 0; k < nacc; k++) {
			int64_t dd = llabs(acc[k].now - acc[k].before);
			if (acc[k].service && dd >= 5000 && dd > bd) {   /* half a cent */
				best = k;
				bd = dd;
			}
		}
		if (best == nacc)
			break;
		out->movers[m].service = acc[best].service;
		out->movers[m].now = acc[best].now;
		out->movers[m].before = acc[best].before;
		out->nmovers++;
		acc[best].service = NULL;
	}
	free(acc);
	out->have = n > 0;
	return 0;
}

/* $1,234.56 (rounded to the cent) */
void sw_report_usd(char *buf, size_t size, int64_t micro)
{
	int neg = micro < 0;
	uint64_t cents = (uint64_t)((neg ? -micro : micro) + 5000) / 10000;
	uint64_t whole = cents / 100;
	char digits[32], grouped[48];
	size_t nd = (size_t)snprintf(digits, sizeof(digits), "%" PRIu64, whole), g = 0;
	for (size_t i = 0; i < nd; i++) {
		if (i && (nd - i) % 3 == 0)
			grouped[g++] = ',';
		grouped[g++] = digits[i];
	}
	grouped[g] = 0;
	snprintf(buf, size, "%s$%s.%02u", neg ? "-" : "", grouped, (unsigned)(cents % 100));
}

/* "+23%", "-4%", "new" (nothing before), "" (nothing either way) */
static void change(char *buf, size_t size, int64_t now, int64_t before)
{
	if (before <= 0)
		snprintf(buf, size, "%s", now > 0 ? "new" : "");
	else
		snprintf(buf, size, "%+.0f%%", 100.0 * (double)(now - before) / (double)before);
}

char *sw_report_cost_line(const struct sw_report_cost *c)
{
	char a[32], b[32], ch[16];
	if (c->error && !c->have)
		return sw_asprintf("no cost figures: %s", c->error);
	if (!c->have)
		return sw_strdup("no cost figures yet");
	sw_report_usd(a, sizeof(a), c->so_far);
	sw_report_usd(b, sizeof(b), c->prev_same);
	change(ch, sizeof(ch), c->so_far, c->prev_same);
	return sw_asprintf("%s in %s so far (%d day%s%s); %s in %s's first %d: %s", a, c->month,
			   c->days, c->days == 1 ? "" : "s", c->estimated ? ", estimated" : "",
			   b, c->prev_month, c->days, *ch ? ch : "nothing before");
}

/* One environment's section. */
static void env_section(struct sw_buf *b, const struct sw_report_cost *c)
{
	char a[32], p[32], w[32], ch[16];
	sw_buf_adds(b, "*");
	report_slack_text(b, c->env, 60, 1);
	sw_buf_adds(b, "*");
	if (!c->have) {
		sw_buf_adds(b, ": no figures");
		if (c->error) {
			sw_buf_adds(b, ": ");
			report_slack_text(b, c->error, 600, 1);
		}
		sw_buf_adds(b, "\n");
		return;
	}
	sw_report_usd(a, sizeof(a), c->so_far);
	sw_report_usd(p, sizeof(p), c->prev_same);
	sw_report_usd(w, sizeof(w), c->prev_whole);
	change(ch, sizeof(ch), c->so_far, c->prev_same);
	sw_buf_addf(b, "  %s 1\xe2\x80\x93" "%d: *%s*%s  \xc2\xb7  %s 1\xe2\x80\x93" "%d: %s%s%s%s  "
		    "\xc2\xb7  %s: %s\n", c->month, c->days, a, c->estimated ? " (estimated)" : "",
		    c->prev_month, c->days, p, *ch ? " (" : "", ch, *ch ? ")" : "",
		    c->prev_month, w);
	for (size_t i = 0; i < c->nmovers; i++) {
		char now[32], d[32];
		sw_report_usd(now, sizeof(now), c->movers[i].now);
		sw_report_usd(d, sizeof(d), c->movers[i].now - c->movers[i].before);
		sw_buf_addf(b, "\xe2\x80\xa2 ");
		report_slack_text(b, c->movers[i].service, 80, 1);
		sw_buf_addf(b, ": %s (%s%s)\n", now, c->movers[i].now >= c->movers[i].before ?
			    "+" : "", d);
	}
	if (c->error) {
		sw_buf_adds(b, "_kept from before: ");
		report_slack_text(b, c->error, 400, 1);
		sw_buf_adds(b, "_\n");
	}
}

json_t *sw_report_cost_slack(const struct sw_report_cost *envs, size_t n, const char *title,
			     const char *note)
{
	json_t *blocks = json_array();
	struct sw_buf b = SW_BUF_INIT;
	char *head = sw_report_utf8_cut(title ? title : "Cost", 140);

	json_array_append_new(blocks, json_pack("{s:s, s:{s:s, s:s, s:b}}", "type", "header",
		"text", "type", "plain_text", "text", head, "emoji", 1));
	/* one section per environment, within Slack's 50 blocks */
	for (size_t i = 0; i < n && i < 45; i++) {
		sw_buf_reset(&b);
		env_section(&b, &envs[i]);
		char *text = sw_report_utf8_cut(b.ptr, SW_REPORT_SLACK_SECTION_MAX - 10);
		json_array_append_new(blocks, json_pack("{s:s, s:{s:s, s:s}}", "type", "section",
			"text", "type", "mrkdwn", "text", text));
		free(text);
	}
	if (n > 45)
		json_array_append_new(blocks, json_pack("{s:s, s:{s:s, s:s}}", "type", "section",
			"text", "type", "mrkdwn", "text", "\xe2\x80\xa6" "and more on the status page"));
	if (note) {
		sw_buf_reset(&b);
		report_slack_text(&b, note, 600, 1);
		json_array_append_new(blocks, json_pack("{s:s, s:[{s:s, s:s}]}", "type", "context",
			"elements", "type", "mrkdwn", "text", b.ptr));
	}
	sw_buf_reset(&b);
	sw_buf_adds(&b, head);
	for (size_t i = 0; i < n && i < 10; i++) {
		char a[32];
		sw_report_usd(a, sizeof(a), envs[i].so_far);
		sw_buf_addf(&b, "%s %s %s", i ? "," : ":", envs[i].env, envs[i].have ? a : "no figures");
	}
	char *fallback = sw_report_utf8_cut(b.ptr, 300);
	json_t *msg = json_pack("{s:s, s:o}", "text", fallback, "blocks", blocks);
	free(fallback);
	free(head);
	sw_buf_release(&b);
	return msg;
}

char *sw_report_cost_svg(const struct sw_report_cost *c)
{
	const int w = 4 * SW_REPORT_COST_DAYS, h = 40;
	struct sw_buf b = SW_BUF_INIT;
	int64_t max = 0;

	for (int i = 0; i < SW_REPORT_COST_DAYS; i++)
		if (c->daily[i] > max)
			max = c->daily[i];
	sw_buf_addf(&b, "<svg class=\"cost\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
		    "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"daily cost, "
		    "last %d days\">", w, h, w, h, SW_REPORT_COST_DAYS);
	int64_t first = day_num(c->first_day);
	for (int i = 0; i < SW_REPORT_COST_DAYS; i++) {
		char day[11], usd[32];
		int bh = max > 0 ? (int)((c->daily[i] * (h - 2) + max - 1) / max) : 0;
		day_str(day, first + i, NULL);
		sw_report_usd(usd, sizeof(usd), c->daily[i]);
		sw_buf_addf(&b, "<rect x=\"%d\" y=\"%d\" width=\"3\" height=\"%d\"><title>%s: %s"
			    "</title></rect>", i * 4, h - (bh ? bh : 1), bh ? bh : 1, day, usd);
	}
	sw_buf_adds(&b, "</svg>");
	return sw_buf_detach(&b, NULL);
}
