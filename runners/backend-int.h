/*
 * backend.h - private to runners/: what a backend provides behind the
 * public interface of runner.h.
 */
#ifndef SW_RUNNERS_BACKEND_H
#define SW_RUNNERS_BACKEND_H

#include "runners/runner.h"

struct sw_runner_ops {
	const char *kind;
	int (*start)(struct sw_runner *r, const struct sw_runner_spec *s,
		     struct sw_runner_step **out);
	void (*cancel)(struct sw_runner_step *s);
	void (*free)(struct sw_runner *r);
};

/* Each backend's runner struct starts with this. */
struct sw_runner {
	const struct sw_runner_ops *ops;
	size_t active;       /* steps started and not yet reported */
};

/* Each backend's step struct starts with this. */
struct sw_runner_step {
	struct sw_runner *runner;
};

/* The commands as one script for `sh -e -c`: joined with newlines. Free it. */
char *sw_runner_script(const char *const *commands);

/* Copy a NULL-terminated string array (NULL stays NULL). */

#endif
