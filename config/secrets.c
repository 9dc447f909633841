/*
 * secrets.c - who may have a server secret (see config.h, "scoped
 * secrets", and docs/config.md "secrets"): one pure rule that the engine
 * asks when it plans a run and again before each stage starts.
 */
#include "config/config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/glob.h"
#include "lib/log.h"
#include "lib/strv.h"

static const struct { unsigned bit; const char *name; } events[] = {
	{ SW_SECRET_EV_PULL_REQUEST, "pull_request" },
	{ SW_SECRET_EV_PUSH, "push" },
	{ SW_SECRET_EV_DEPLOY, "deploy" },
};

unsigned sw_secret_event_parse(const char *name)
{
	for (size_t i = 0; name && i < sizeof(events) / sizeof(events[0]); i++)
		if (!strcmp(events[i].name, name))
			return events[i].bit;
	return 0;
}

const char *sw_secret_event_str(unsigned bit)
{
	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++)
		if (events[i].bit == bit)
			return events[i].name;
	return "?";
}

static int list_has(char *const *v, size_t n, const char *s, int nocase)
{
	for (size_t i = 0; s && i < n; i++)
		if (nocase ? !strcasecmp(v[i], s) : !strcmp(v[i], s))
			return 1;
	return 0;
}

/* Whether one entry's scope admits the stage. */
static enum sw_secret_verdict entry_admits(const struct sw_cfg_secret *s,
					   const struct sw_secret_ask *a)
{
	if (!(s->events & a->event))
		return SW_SECRET_NOT_EVENT;
	if (s->nrepositories && !list_has(s->repositories, s->nrepositories, a->repo, 1))
		return SW_SECRET_NOT_REPOSITORY;
	if (s->nbranches && (!a->branch || !sw_glob_any(s->branches, s->nbranches, a->branch)))
		return SW_SECRET_NOT_BRANCH;
	if (s->nenvironments && !list_has(s->environments, s->nenvironments, a->environment, 0))
		return SW_SECRET_NOT_ENVIRONMENT;
	return SW_SECRET_GIVEN;
}

static const struct sw_cfg_secret *find(const struct sw_cfg_secret *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].name && !strcmp(v[i].name, name))
			return &v[i];
	return NULL;
}

/* Whether some environment other than `except` has its own `name`. */
static int other_env_has(const struct sw_config *c, const char *name, const char *except)
{
	for (size_t i = 0; i < c->nenvs; i++)
		if ((!except || !c->envs[i].name || strcmp(c->envs[i].name, except)) &&
		    find(c->envs[i].secrets, c->envs[i].nsecrets, name))
			return 1;
	return 0;
}

enum sw_secret_verdict sw_config_secret_scope(const struct sw_config *c, const char *name,
					      const struct sw_secret_ask *a, const char **value)
{
	const struct sw_cfg_env *env = a->environment ? sw_config_env(c, a->environment) : NULL;
	const struct sw_cfg_secret *own = env ? find(env->secrets, env->nsecrets, name) : NULL;
	const struct sw_cfg_secret *global = find(c->secrets, c->nsecrets, name);
	enum sw_secret_verdict v = SW_SECRET_UNKNOWN, first = SW_SECRET_UNKNOWN;

	*value = NULL;
	if (a->from_fork)    /* a fork's code never reads the server's secrets */
		return own || global || other_env_has(c, name, NULL) ? SW_SECRET_FORK
								     : SW_SECRET_UNKNOWN;
	if (own) {
		if ((first = v = entry_admits(own, a)) == SW_SECRET_GIVEN && own->secret.value) {
			*value = own->secret.value;
			return v;
		}
	}
	if (global) {
		if ((v = entry_admits(global, a)) == SW_SECRET_GIVEN && global->secret.value) {
			*value = global->secret.value;
			return v;
		}
		if (!own)
			first = v;
	}
	if (!own && !global && other_env_has(c, name, a->environment))
		first = SW_SECRET_NOT_ENVIRONMENT;   /* only other environments have one */
	return first == SW_SECRET_GIVEN ? SW_SECRET_UNKNOWN : first;
}

char *sw_config_secret_why(enum sw_secret_verdict v, const char *name,
			   const struct sw_secret_ask *a)
{
	switch (v) {
	case SW_SECRET_GIVEN:
		return NULL;
	case SW_SECRET_FORK:
		return sw_asprintf("secret %s is not given to pull requests from forks", name);
	case SW_SECRET_UNKNOWN:
		return sw_asprintf("secret %s is not configured on the server", name);
	case SW_SECRET_NOT_EVENT:
		return sw_asprintf("secret %s is not available to %s runs", name,
				   sw_secret_event_str(a->event));
	case SW_SECRET_NOT_BRANCH:
		return sw_asprintf("secret %s is not available to branch %s", name,
				   a->branch ? a->branch : "(none)");
	case SW_SECRET_NOT_ENVIRONMENT:
		if (!a->environment)
			return sw_asprintf("secret %s is not available to runs without an environment",
					   name);
		return sw_asprintf("secret %s is not available to environment %s", name,
				   a->environment);
	case SW_SECRET_NOT_REPOSITORY:
		return sw_asprintf("secret %s is not available to repository %s", name,
				   a->repo ? a->repo : "(none)");
	}
	return sw_asprintf("secret %s is not available", name);
}

char **sw_config_secret_names(const struct sw_config *c)
{
	size_t cap = c->nsecrets + 1, n = 0;
	for (size_t i = 0; i < c->nenvs; i++)
		cap += c->envs[i].nsecrets;
	char **v = sw_calloc(cap, sizeof(char *));
	for (size_t e = 0; e <= c->nenvs; e++) {
		const struct sw_cfg_secret *s = e ? c->envs[e - 1].secrets : c->secrets;
		size_t ns = e ? c->envs[e - 1].nsecrets : c->nsecrets;
		for (size_t i = 0; i < ns; i++)
			if (s[i].name && !list_has(v, n, s[i].name, 0))
				v[n++] = sw_strdup(s[i].name);
	}
	v[n] = NULL;
	return v;
}

static void warn_short(const struct sw_config *c, const struct sw_cfg_secret *s, size_t n,
		       const char *env)
{
	for (size_t i = 0; i < n; i++)
		if (s[i].short_form)
			log_warn("config.secret_short_form",
				 "secret=%s env=%s at=%s:%d reason=%s", s[i].name, env ? env : "-",
				 c->file ? c->file : "?", s[i].line,
				 sw_q("written without a scope: only push and deploy stages of tracked "
				      "branches get it, never pull requests (give value: and events: to "
				      "say where it may go)"));
}

void sw_config_warn_secrets(const struct sw_config *c)
{
	warn_short(c, c->secrets, c->nsecrets, NULL);
	for (size_t i = 0; i < c->nenvs; i++)
		warn_short(c, c->envs[i].secrets, c->envs[i].nsecrets, c->envs[i].name);
}
