/*
 * spec.c - read and check `.slipway.yml`, and pick the stages a run
 * executes (see spec.h, docs/pipeline.md).
 *
 * Parsing walks the located YAML tree (lib/yaml.h) and reports each error
 * against the node at fault, collecting them all so a user sees every
 * problem of a file at once. Names in `depends_on` are resolved in a second
 * pass, once every stage name is known; cycles are found by a depth-first
 * search over the resolved edges.
 */
#include "pipeline/pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "config/config.h"
#include "lib/glob.h"
#include "lib/strv.h"
#include "lib/yaml.h"
#include "lib/yamlschema.h"

#define MAX_NAME 63

typedef const struct sw_yaml_node node_t;

struct reader {
	struct sw_yaml_reader y;
	const struct sw_spec_check *chk;
};

static int valid_stage_name(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= MAX_NAME && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static int valid_env_name(const char *s)
{
	if (!(*s == '_' || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')))
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") == strlen(s);
}

/* Per-stage things kept only while parsing. */
struct pstage {
	node_t *node;                /* the stage's mapping */
	node_t *name_node;
	node_t *deps_node;           /* `depends_on`, or NULL */
	node_t **dep_items;          /* one per name in depends_on */
	char **dep_names;
	size_t ndep_names;
	node_t **edge_at;            /* where each resolved edge was written */
};

static const char *const stage_keys[] = {
	"name", "image", "commands", "env", "secrets", "when", "timeout", "depends_on", NULL
};
static const char *const when_keys[] = { "event", "branch", "environment", NULL };

unsigned sw_spec_event_parse(const char *name)
{
	if (!strcmp(name, "pull_request"))
		return SW_SPEC_PULL_REQUEST;
	if (!strcmp(name, "push"))
		return SW_SPEC_PUSH;
	if (!strcmp(name, "deploy"))
		return SW_SPEC_DEPLOY;
	return 0;
}

static void read_when(struct reader *r, node_t *n, const char *path, struct sw_spec_stage *st)
{
	node_t *v;
	char *p;

	if (sw_yaml_want_map(&r->y, n, path, when_keys) < 0)
		return;
	if ((v = sw_yaml_get(n, "event"))) {
		char **names;
		node_t **at;
		p = sw_asprintf("%s.event", path);
		size_t cnt = sw_yaml_want_strv(&names, &at, &r->y, v, p, SW_YAML_NONEMPTY);
		if (cnt)
			st->events = 0;
		for (size_t i = 0; i < cnt; i++) {
			unsigned ev = sw_spec_event_parse(names[i]);
			if (!ev)
				sw_yaml_error(&r->y, at[i], p,
					      "unknown event '%s' (expected pull_request, push or deploy)",
				    names[i]);
			st->events |= ev;
			free(names[i]);
		}
		if (cnt && !st->events)
			st->events = SW_SPEC_ALL_EVENTS;   /* only errors: keep the stage sane */
		free(names);
		free(at);
		free(p);
	}
	if ((v = sw_yaml_get(n, "branch"))) {
		node_t **at;
		p = sw_asprintf("%s.branch", path);
		st->nbranches = sw_yaml_want_strv(&st->branches, &at, &r->y, v, p, SW_YAML_NONEMPTY);
		for (size_t i = 0; i < st->nbranches; i++) {
			const char *why = sw_glob_problem(st->branches[i]);
			if (why)
				sw_yaml_error(&r->y, at[i], p,
					      "invalid glob '%s': %s", st->branches[i], why);
		}
		free(at);
		free(p);
	}
	if ((v = sw_yaml_get(n, "environment"))) {
		p = sw_asprintf("%s.environment", path);
		st->nenvironments = sw_yaml_want_strv(&st->environments, NULL, &r->y, v, p,
						       SW_YAML_NONEMPTY);
		free(p);
	}
}

static void read_stage(struct reader *r, node_t *n, const char *path, struct sw_spec_stage *st,
		       struct pstage *ps)
{
	node_t *v;
	char *p;

	st->events = SW_SPEC_ALL_EVENTS;
	st->line = n->mark.line;
	ps->node = n;
	if (sw_yaml_want_map(&r->y, n, path, stage_keys) < 0)
		return;

	p = sw_asprintf("%s.name", path);
	if (!(v = sw_yaml_get(n, "name"))) {
		sw_yaml_error(&r->y, n, p, "missing (every stage needs a name)");
	} else if ((st->name = sw_yaml_want_str(&r->y, v, p))) {
		ps->name_node = v;
		if (!valid_stage_name(st->name)) {
			sw_yaml_error(&r->y, v, p,
				      "invalid name '%s' (use 1 to %d of a-z, 0-9, _ and -)",
			    st->name, MAX_NAME);
		}
	}
	free(p);

	p = sw_asprintf("%s.image", path);
	if ((v = sw_yaml_get(n, "image")))
		st->image = sw_yaml_want_str(&r->y, v, p);
	else if (r->chk && r->chk->require_image)
		sw_yaml_error(&r->y, n, p,
			      "missing (the docker runner needs an image for every stage)");
	free(p);

	p = sw_asprintf("%s.commands", path);
	if (!(v = sw_yaml_get(n, "commands"))) {
		sw_yaml_error(&r->y, n, p, "missing (a list of shell commands)");
	} else if (v->type != SW_YAML_SEQ) {
		sw_yaml_error(&r->y, v, p,
			      "expected a list of commands, found %s", sw_yaml_describe(v));
	} else if (v->n == 0) {
		sw_yaml_error(&r->y, v, p, "empty (a stage needs at least one command)");
	} else {
		st->commands = sw_calloc(v->n, sizeof(char *));
		for (size_t i = 0; i < v->n; i++) {
			node_t *c = v->items[i];
			if (c->type != SW_YAML_SCALAR || sw_yaml_is_null(c))
				sw_yaml_error(&r->y, c, p,
					      "[%zu]: expected a command string, found %s", i, sw_yaml_describe(c));
			else
				st->commands[st->ncommands++] = sw_strdup(c->value);
		}
	}
	free(p);

	if ((v = sw_yaml_get(n, "env"))) {
		p = sw_asprintf("%s.env", path);
		if (v->type != SW_YAML_MAP) {
			sw_yaml_error(&r->y, v, p, "expected a mapping of NAME: value, found %s",
				      sw_yaml_describe(v));
		} else {
			/* any name may be a key; this reports keys that are no
			 * scalar or are written twice */
			sw_yaml_want_map(&r->y, v, p, NULL);
			st->env = sw_calloc(v->n ? v->n : 1, sizeof(*st->env));
			for (size_t i = 0; i < v->n; i++) {
				node_t *k = v->items[2 * i], *val = v->items[2 * i + 1];
				if (k->type != SW_YAML_SCALAR)
					continue;
				if (!valid_env_name(k->value)) {
					sw_yaml_error(&r->y, k, p,
						      "invalid variable name '%s'", k->value);
					continue;
				}
				if (val->type != SW_YAML_SCALAR) {
					sw_yaml_error(&r->y, val, p,
						      "%s: expected a plain value, found %s (secrets go in `secrets`)",
					    k->value, sw_yaml_describe(val));
					continue;
				}
				/* values are taken as written (`yes` stays "yes"); null is "" */
				st->env[st->nenv].name = sw_strdup(k->value);
				st->env[st->nenv].value = sw_strdup(sw_yaml_is_null(val) ? "" : val->value);
				st->nenv++;
			}
		}
		free(p);
	}

	if ((v = sw_yaml_get(n, "secrets"))) {
		node_t **at;
		p = sw_asprintf("%s.secrets", path);
		st->nsecrets = sw_yaml_want_strv(&st->secrets, &at, &r->y, v, p, SW_YAML_NONEMPTY);
		for (size_t i = 0; i < st->nsecrets; i++) {
			const char *s = st->secrets[i];
			int known = !r->chk || !r->chk->secrets;
			if (!valid_env_name(s)) {
				sw_yaml_error(&r->y, at[i], p,
					      "invalid secret name '%s' (it becomes an environment variable)", s);
				continue;
			}
			for (size_t j = 0; !known && j < r->chk->nsecrets; j++)
				known = !strcmp(r->chk->secrets[j], s);
			if (!known)
				sw_yaml_error(&r->y, at[i], p,
					      "unknown secret '%s' (not in the server config's `secrets`)", s);
			for (size_t j = 0; j < st->nenv; j++)
				if (!strcmp(st->env[j].name, s))
					sw_yaml_error(&r->y, at[i], p,
						      "'%s' is also set in `env`", s);
		}
		free(at);
		free(p);
	}

	if ((v = sw_yaml_get(n, "when"))) {
		p = sw_asprintf("%s.when", path);
		read_when(r, v, p, st);
		free(p);
	}

	if ((v = sw_yaml_get(n, "timeout"))) {
		p = sw_asprintf("%s.timeout", path);
		int64_t t = v->type == SW_YAML_SCALAR && !sw_yaml_is_null(v) ? sw_parse_duration(v->value) : -1;
		if (t <= 0)
			sw_yaml_error(&r->y, v, p,
				      "invalid duration '%s' (expected e.g. 90s, 10m or 1h30m)",
			    v->type == SW_YAML_SCALAR ? v->value : sw_yaml_describe(v));
		else
			st->timeout_s = t;
		free(p);
	}

	if ((v = sw_yaml_get(n, "depends_on"))) {
		p = sw_asprintf("%s.depends_on", path);
		st->explicit_deps = 1;
		ps->deps_node = v;
		if (v->type == SW_YAML_SEQ && v->n == 0)
			ps->ndep_names = 0;   /* `depends_on: []`: starts at once */
		else
			ps->ndep_names = sw_yaml_want_strv(&ps->dep_names, &ps->dep_items, &r->y,
							   v, p, SW_YAML_NONEMPTY);
		free(p);
	}
}

static void add_edge(struct sw_spec_stage *st, struct pstage *ps, size_t to, node_t *at)
{
	for (size_t i = 0; i < st->ndeps; i++)
		if (st->deps[i] == to)
			return;
	st->deps = sw_realloc(st->deps, (st->ndeps + 1) * sizeof(*st->deps));
	ps->edge_at = sw_realloc(ps->edge_at, (st->ndeps + 1) * sizeof(*ps->edge_at));
	st->deps[st->ndeps] = to;
	ps->edge_at[st->ndeps] = at;
	st->ndeps++;
}

/* Depth-first search for cycles; each back edge is reported once. */
struct dfs {
	struct reader *r;
	struct sw_spec *spec;
	struct pstage *ps;
	char *color;          /* 0 white, 1 on the stack, 2 done */
	size_t *stack;
	size_t depth;
};

/* A stage in messages: its name, or "stages[N]" when it has none (an error
 * reported on its own, but the other checks still run). */
static void stage_label(struct sw_buf *b, const struct sw_spec *spec, size_t i)
{
	if (spec->stages[i].name)
		sw_buf_adds(b, spec->stages[i].name);
	else
		sw_buf_addf(b, "stages[%zu]", i);
}

static void dfs_visit(struct dfs *d, size_t u)
{
	struct sw_spec_stage *st = &d->spec->stages[u];
	d->color[u] = 1;
	d->stack[d->depth++] = u;
	for (size_t i = 0; i < st->ndeps; i++) {
		size_t v = st->deps[i];
		if (d->color[v] == 0) {
			dfs_visit(d, v);
		} else if (d->color[v] == 1) {
			struct sw_buf cyc = SW_BUF_INIT;
			size_t from = d->depth;
			while (from > 0 && d->stack[from - 1] != v)
				from--;
			for (size_t k = from - 1; k < d->depth; k++) {
				stage_label(&cyc, d->spec, d->stack[k]);
				sw_buf_adds(&cyc, " -> ");
			}
			stage_label(&cyc, d->spec, v);
			char *p = sw_asprintf("stages[%zu].depends_on", u);
			sw_yaml_error(&d->r->y, d->ps[u].edge_at[i], p,
			    "dependency cycle: %s (each stage depends on the next)", cyc.ptr);
			free(p);
			sw_buf_release(&cyc);
		}
	}
	d->depth--;
	d->color[u] = 2;
}

static void resolve_deps(struct reader *r, struct sw_spec *spec, struct pstage *ps)
{
	for (size_t i = 0; i < spec->nstages; i++) {
		struct sw_spec_stage *st = &spec->stages[i];
		if (!st->explicit_deps) {
			if (i > 0)
				add_edge(st, &ps[i], i - 1, ps[i].node);
			continue;
		}
		char *p = sw_asprintf("stages[%zu].depends_on", i);
		for (size_t k = 0; k < ps[i].ndep_names; k++) {
			const char *want = ps[i].dep_names[k];
			size_t j;
			for (j = 0; j < spec->nstages; j++)
				if (spec->stages[j].name && !strcmp(spec->stages[j].name, want))
					break;
			if (j == spec->nstages)
				sw_yaml_error(&r->y, ps[i].dep_items[k], p,
					      "unknown stage '%s'", want);
			else
				add_edge(st, &ps[i], j, ps[i].dep_items[k]);
		}
		free(p);
	}

	struct dfs d = { .r = r, .spec = spec, .ps = ps };
	d.color = sw_calloc(spec->nstages, 1);
	d.stack = sw_calloc(spec->nstages, sizeof(*d.stack));
	for (size_t i = 0; i < spec->nstages; i++)
		if (!d.color[i])
			dfs_visit(&d, i);
	free(d.color);
	free(d.stack);
}

void sw_spec_free(struct sw_spec *spec)
{
	if (!spec)
		return;
	for (size_t i = 0; i < spec->nstages; i++) {
		struct sw_spec_stage *st = &spec->stages[i];
		free(st->name);
		free(st->image);
		sw_strv_freen(st->commands, st->ncommands);
		for (size_t j = 0; j < st->nenv; j++) {
			free(st->env[j].name);
			free(st->env[j].value);
		}
		free(st->env);
		sw_strv_freen(st->secrets, st->nsecrets);
		sw_strv_freen(st->branches, st->nbranches);
		sw_strv_freen(st->environments, st->nenvironments);
		free(st->deps);
	}
	free(spec->stages);
	free(spec->file);
	free(spec);
}

int sw_spec_parse(struct sw_spec **out, const char *file, const char *data, size_t len,
		  const struct sw_spec_check *chk)
{
	struct sw_yaml_stream *ys = NULL;
	struct reader r = { SW_YAML_READER_INIT(file), chk };
	struct sw_spec *spec = NULL;
	struct pstage *ps = NULL;
	size_t nps = 0;
	node_t *root, *stages;
	int rc;

	*out = NULL;
	if ((rc = sw_yaml_parse(&ys, file, data, len)) < 0)
		return rc;
	spec = sw_calloc(1, sizeof(*spec));
	spec->file = sw_strdup(file);
	root = ys->ndocs ? ys->docs[0].root : NULL;
	if (ys->ndocs > 1) {
		struct sw_yaml_node at = { .mark = ys->docs[1].start };
		sw_yaml_error(&r.y, &at, "", "expected one YAML document, found %zu", ys->ndocs);
	}
	if (!root || sw_yaml_is_null(root)) {
		sw_yaml_error(&r.y, NULL, "", "empty file (expected a mapping with `stages`)");
		goto done;
	}
	static const char *const top_keys[] = { "stages", NULL };
	if (sw_yaml_want_map(&r.y, root, "", top_keys) < 0)
		goto done;
	if (!(stages = sw_yaml_get(root, "stages"))) {
		sw_yaml_error(&r.y, root, "stages", "missing (a list of stages)");
		goto done;
	}
	if (stages->type != SW_YAML_SEQ) {
		sw_yaml_error(&r.y, stages, "stages",
			      "expected a list of stages, found %s", sw_yaml_describe(stages));
		goto done;
	}
	if (stages->n == 0) {
		sw_yaml_error(&r.y, stages, "stages", "empty (define at least one stage)");
		goto done;
	}
	spec->nstages = stages->n;
	spec->stages = sw_calloc(stages->n, sizeof(*spec->stages));
	ps = sw_calloc(stages->n, sizeof(*ps));
	nps = stages->n;
	for (size_t i = 0; i < stages->n; i++) {
		char path[48];
		snprintf(path, sizeof(path), "stages[%zu]", i);
		read_stage(&r, stages->items[i], path, &spec->stages[i], &ps[i]);
		if (!spec->stages[i].name)
			continue;
		for (size_t j = 0; j < i; j++) {
			if (spec->stages[j].name && !strcmp(spec->stages[j].name, spec->stages[i].name)) {
				snprintf(path, sizeof(path), "stages[%zu].name", i);
				sw_yaml_error(&r.y, ps[i].name_node, path,
					      "duplicate stage name '%s' (first at line %d)",
				    spec->stages[i].name, spec->stages[j].line);
				break;
			}
		}
	}
	resolve_deps(&r, spec, ps);

done:
	if ((rc = sw_yaml_reader_done(&r.y)) < 0) {
		sw_spec_free(spec);
	} else {
		*out = spec;
		rc = 0;
	}
	for (size_t i = 0; i < nps; i++) {
		sw_strv_freen(ps[i].dep_names, ps[i].ndep_names);
		free(ps[i].dep_items);
		free(ps[i].edge_at);
	}
	free(ps);
	sw_yaml_free(ys);
	return rc;
}

const struct sw_spec_stage *sw_spec_stage(const struct sw_spec *spec, const char *name)
{
	for (size_t i = 0; spec && i < spec->nstages; i++)
		if (!strcmp(spec->stages[i].name, name))
			return &spec->stages[i];
	return NULL;
}

static int list_has(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], s))
			return 1;
	return 0;
}

static int stage_applies(const struct sw_spec_stage *st, const struct sw_spec_ctx *ctx)
{
	if (!(st->events & ctx->event))
		return 0;
	if (st->nbranches && (!ctx->branch || !sw_glob_any(st->branches, st->nbranches, ctx->branch)))
		return 0;
	if (st->nenvironments && (!ctx->environment ||
				  !list_has(st->environments, st->nenvironments, ctx->environment)))
		return 0;
	return 1;
}

/*
 * The selected stages `u` depends on: its selected dependencies, and for
 * each unselected one, that one's (recursively). `seen` stops revisits.
 */
static void sel_deps(const struct sw_spec *spec, const char *sel, size_t u, char *seen,
		     size_t *out, size_t *nout)
{
	const struct sw_spec_stage *st = &spec->stages[u];
	for (size_t i = 0; i < st->ndeps; i++) {
		size_t v = st->deps[i];
		if (seen[v])
			continue;
		seen[v] = 1;
		if (sel[v])
			out[(*nout)++] = v;
		else
			sel_deps(spec, sel, v, seen, out, nout);
	}
}

void sw_spec_plan_free(struct sw_spec_plan *plan)
{
	if (!plan)
		return;
	for (size_t i = 0; i < plan->n; i++)
		free(plan->stages[i].deps);
	free(plan->stages);
	free(plan);
}

int sw_spec_select(struct sw_spec_plan **out, const struct sw_spec *spec,
		   const struct sw_spec_ctx *ctx)
{
	size_t n = spec->nstages, nsel = 0;
	char *sel, *seen, *placed;
	size_t **deps, *ndeps, *pos;
	struct sw_spec_plan *plan;

	*out = NULL;
	if (!ctx || (ctx->event != SW_SPEC_PULL_REQUEST && ctx->event != SW_SPEC_PUSH &&
		     ctx->event != SW_SPEC_DEPLOY))
		return sw_error_setc(SW_EINVALID, "select stages: no or several events given");
	sel = sw_calloc(n, 1);
	seen = sw_calloc(n, 1);
	placed = sw_calloc(n, 1);
	deps = sw_calloc(n, sizeof(*deps));
	ndeps = sw_calloc(n, sizeof(*ndeps));
	pos = sw_calloc(n, sizeof(*pos));
	for (size_t i = 0; i < n; i++)
		nsel += (sel[i] = (char)stage_applies(&spec->stages[i], ctx));
	for (size_t i = 0; i < n; i++) {
		if (!sel[i])
			continue;
		memset(seen, 0, n);
		deps[i] = sw_calloc(n, sizeof(size_t));
		sel_deps(spec, sel, i, seen, deps[i], &ndeps[i]);
	}

	plan = sw_calloc(1, sizeof(*plan));
	plan->stages = sw_calloc(nsel ? nsel : 1, sizeof(*plan->stages));
	/*
	 * Kahn's algorithm, always taking the first ready stage in file order;
	 * O(n^2 * deps), fine for the handful of stages a pipeline has. The
	 * spec has no cycle (sw_spec_parse checked), so each round places one.
	 */
	while (plan->n < nsel) {
		size_t pick = n;
		for (size_t i = 0; i < n && pick == n; i++) {
			if (!sel[i] || placed[i])
				continue;
			size_t k;
			for (k = 0; k < ndeps[i] && placed[deps[i][k]]; k++)
				;
			if (k == ndeps[i])
				pick = i;
		}
		if (pick == n)
			break;   /* unreachable for a parsed spec */
		struct sw_spec_plan_stage *ps = &plan->stages[plan->n];
		ps->stage = &spec->stages[pick];
		ps->deps = sw_calloc(ndeps[pick] ? ndeps[pick] : 1, sizeof(size_t));
		for (size_t k = 0; k < ndeps[pick]; k++)
			ps->deps[k] = pos[deps[pick][k]];
		ps->ndeps = ndeps[pick];
		placed[pick] = 1;
		pos[pick] = plan->n++;
	}
	for (size_t i = 0; i < n; i++)
		free(deps[i]);
	free(deps);
	free(ndeps);
	free(pos);
	free(sel);
	free(seen);
	free(placed);
	*out = plan;
	return 0;
}
