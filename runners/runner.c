/*
 * runner.c - the backend-independent half of runner.h: dispatch and the
 * helpers backends share.
 */
#include "runners/backend-int.h"

#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/strv.h"

int sw_runner_start(struct sw_runner *r, const struct sw_runner_spec *s,
		    struct sw_runner_step **out)
{
	if (out)
		*out = NULL;
	if (!s->commands || !s->commands[0])
		return sw_error_setc(SW_EINVALID, "%s step: no commands", r->ops->kind);
	return r->ops->start(r, s, out);
}

void sw_runner_cancel(struct sw_runner_step *s)
{
	if (s)
		s->runner->ops->cancel(s);
}

size_t sw_runner_active(const struct sw_runner *r)
{
	return r->active;
}

void sw_runner_free(struct sw_runner *r)
{
	if (r)
		r->ops->free(r);
}

const char *sw_runner_kind(const struct sw_runner *r)
{
	return r->ops->kind;
}

char *sw_runner_script(const char *const *commands)
{
	struct sw_buf b = SW_BUF_INIT;
	for (size_t i = 0; commands[i]; i++) {
		if (i)
			sw_buf_addch(&b, '\n');
		sw_buf_adds(&b, commands[i]);
	}
	return sw_buf_detach(&b, NULL);
}

