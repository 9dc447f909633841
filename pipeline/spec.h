/*
 * spec.h - `.slipway.yml`, a repository's pipeline definition: its stages,
 * when each runs and what each waits for. The format is described in
 * docs/pipeline.md; contrib/examples/slipway.yml is a complete example.
 *
 * Life cycle: sw_spec_parse() -> sw_spec_select() per run context ->
 * sw_spec_plan_free(), sw_spec_free(). A parsed spec is immutable, so one
 * may be shared by threads.
 */
#ifndef SW_PIPELINE_SPEC_H
#define SW_PIPELINE_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

/* Events a stage can be limited to (bits of sw_spec_stage.events). */
enum sw_spec_event {
	SW_SPEC_PULL_REQUEST = 1 << 0,
	SW_SPEC_PUSH = 1 << 1,
	SW_SPEC_DEPLOY = 1 << 2,
};
#define SW_SPEC_ALL_EVENTS (SW_SPEC_PULL_REQUEST | SW_SPEC_PUSH | SW_SPEC_DEPLOY)

/* "pull_request", "push", "deploy" -> the bit; 0 when unknown. */
unsigned sw_spec_event_parse(const char *name);

struct sw_spec_env {
	char *name;
	char *value;
};

struct sw_spec_stage {
	char *name;              /* [a-z0-9_-]+, unique in the spec */
	char *image;             /* container image; NULL when not given */
	char **commands;         /* ncommands >= 1, run in order by `sh -e` */
	size_t ncommands;
	struct sw_spec_env *env; /* plain values, in file order */
	size_t nenv;
	char **secrets;          /* names of server-config secrets, exposed as env vars */
	size_t nsecrets;
	unsigned events;         /* SW_SPEC_* bits; SW_SPEC_ALL_EVENTS when `when.event` is absent */
	char **branches;         /* fnmatch globs; nbranches == 0 = any branch */
	size_t nbranches;
	char **environments;     /* nenvironments == 0 = any (or none) */
	size_t nenvironments;
	int64_t timeout_s;       /* 0 = the runner's default */
	size_t *deps;            /* stages this one waits for: indexes into sw_spec.stages
				    (explicit `depends_on`, or the stage before it) */
	size_t ndeps;
	int explicit_deps;       /* `depends_on` was written (possibly empty) */
	int line;                /* where the stage starts, for messages */
};

struct sw_spec {
	char *file;              /* name used in messages */
	struct sw_spec_stage *stages;
	size_t nstages;          /* >= 1 */
};

/* What sw_spec_parse() checks beyond the file itself. All optional. */
struct sw_spec_check {
	const char *const *secrets;  /* names of configured secrets; NULL = do not check */
	size_t nsecrets;
	int require_image;           /* every stage needs `image` (the docker runner) */
};

/*
 * Parse `data` (`len` bytes; `file` names it in messages). On success *out
 * is a new spec to free with sw_spec_free(). On failure returns SW_EINVALID
 * and the slot holds every error found, one per line, each as
 *   .slipway.yml:12:7: stages[1].when.event: unknown event 'pr' (...)
 * `chk` may be NULL.
 */
int sw_spec_parse(struct sw_spec **out, const char *file, const char *data, size_t len,
		  const struct sw_spec_check *chk);
void sw_spec_free(struct sw_spec *spec);

/* The stage named `name`, or NULL. */
const struct sw_spec_stage *sw_spec_stage(const struct sw_spec *spec, const char *name);

/* A run's context: which stages apply. */
struct sw_spec_ctx {
	unsigned event;          /* exactly one SW_SPEC_* bit */
	const char *branch;      /* the branch pushed or deployed; a PR's base branch; may be NULL */
	const char *environment; /* deploy: the environment being deployed; may be NULL */
};

struct sw_spec_plan_stage {
	const struct sw_spec_stage *stage;  /* borrowed from the spec */
	size_t *deps;            /* indexes into sw_spec_plan.stages, all < this one's */
	size_t ndeps;
};

struct sw_spec_plan {
	struct sw_spec_plan_stage *stages;  /* in a valid execution order */
	size_t n;                /* may be 0: nothing to run */
};

/*
 * Choose the stages that run in `ctx`: a stage runs when every condition
 * in its `when` holds (event, branch glob, environment). The plan lists
 * them in topological order, ties broken by file order. Dependencies are
 * restricted to the selected stages: a dependency on a stage that does not
 * run is replaced by that stage's own dependencies (transitively), so
 * `lint -> build -> test` without `build` still runs `test` after `lint`.
 * *out borrows from `spec`, which must outlive it; free it with
 * sw_spec_plan_free(). Fails only on a bad ctx (SW_EINVALID).
 */
int sw_spec_select(struct sw_spec_plan **out, const struct sw_spec *spec,
		   const struct sw_spec_ctx *ctx);
void sw_spec_plan_free(struct sw_spec_plan *plan);

#endif
