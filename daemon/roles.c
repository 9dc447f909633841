/*
 * roles.c - the role rules (see roles-int.h): pure functions of the
 * config and the actor.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/roles-int.h"
#include "lib/buf.h"

static const char *const role_names[] = { "none", "viewer", "deployer", "admin" };
static const char *const kind_names[] = { "anonymous", "api_token", "token", "user", "system" };

void sw_actor_release(struct sw_actor *a)
{
	free(a->envs);
	a->envs = NULL;
	if (a->teams_buf) {
		free((void *)a->teams);
		free(a->teams_buf);
		a->teams = NULL;
		a->nteams = 0;
		a->teams_buf = NULL;
	}
}

void sw_actor_set_user(struct sw_actor *a, const char *login, const char *teams)
{
	size_t n = 0, cap = 1;
	a->kind = SW_ACTOR_USER;
	snprintf(a->name, sizeof(a->name), "%s", login);
	a->teams_buf = sw_strdup(teams ? teams : "");
	for (const char *p = a->teams_buf; *p; p++)
		cap += *p == '+';
	const char **v = sw_calloc(cap + 1, sizeof(char *));
	for (char *p = a->teams_buf, *save = NULL, *t = strtok_r(p, "+", &save); t;
	     t = strtok_r(NULL, "+", &save))
		v[n++] = t;
	a->teams = v;
	a->nteams = n;
}

const char *sw_role_str(enum sw_role r)
{
	return (unsigned)r < 4 ? role_names[r] : "none";
}

int sw_role_parse(const char *s, enum sw_role *out)
{
	for (int i = SW_ROLE_VIEWER; s && i <= SW_ROLE_ADMIN; i++)
		if (!strcmp(s, role_names[i])) {
			*out = (enum sw_role)i;
			return 0;
		}
	return sw_error_setc(SW_EINVALID, "unknown role '%s' (viewer, deployer or admin)",
			     s ? s : "");
}

const char *sw_actor_kind_str(enum sw_actor_kind k)
{
	return (unsigned)k < 5 ? kind_names[k] : "anonymous";
}

int sw_roles_match(const char *const *list, size_t n, const char *login,
		   const char *const *teams, size_t nteams)
{
	if (!login || !*login)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const char *e = list[i];
		if (!strcmp(e, "*") || (!strchr(e, '/') && !strcasecmp(e, login)))
			return 1;
		for (size_t t = 0; strchr(e, '/') && t < nteams; t++)
			if (!strcasecmp(e, teams[t]))
				return 1;
	}
	return 0;
}

int sw_roles_env_in(const char *envs, const char *env)
{
	size_t len = env ? strlen(env) : 0;
	if (!envs)
		return 1;
	if (!env)
		return 0;
	for (const char *p = envs; *p;) {
		const char *comma = strchr(p, ',');
		size_t l = comma ? (size_t)(comma - p) : strlen(p);
		if (l == len && !strncmp(p, env, l))
			return 1;
		p += l + (comma != NULL);
	}
	return 0;
}

#define MATCH(list, n) sw_roles_match((const char *const *)(list), (n), a->name, a->teams, \
				      a->nteams)

/* A user's role from access: alone (environment lists aside). */
static enum sw_role user_role(const struct sw_config *c, const struct sw_actor *a)
{
	if (MATCH(c->access.admins, c->access.nadmins))
		return SW_ROLE_ADMIN;
	if (MATCH(c->access.deployers, c->access.ndeployers))
		return SW_ROLE_DEPLOYER;
	if (MATCH(c->access.viewers, c->access.nviewers))
		return SW_ROLE_VIEWER;
	for (size_t i = 0; i < c->nenvs; i++)
		if (c->envs[i].has_deployers && MATCH(c->envs[i].deployers, c->envs[i].ndeployers))
			return SW_ROLE_VIEWER;
	return SW_ROLE_NONE;
}

static int user_deploys(const struct sw_config *c, const struct sw_actor *a, const char *env)
{
	const struct sw_cfg_env *e = env ? sw_config_env(c, env) : NULL;
	if (e && e->has_deployers)
		return MATCH(e->deployers, e->ndeployers);
	return MATCH(c->access.deployers, c->access.ndeployers);
}

int sw_roles_allows(const struct sw_config *c, const struct sw_actor *a, enum sw_role need,
		    const char *env)
{
	if (need <= SW_ROLE_NONE)
		return 1;
	if (need == SW_ROLE_VIEWER && !c->read_requires_token)
		return 1;
	switch (a->kind) {
	case SW_ACTOR_API_TOKEN:
	case SW_ACTOR_SYSTEM:
		return 1;
	case SW_ACTOR_TOKEN:
		if (a->role == SW_ROLE_ADMIN)
			return 1;
		if (need == SW_ROLE_DEPLOYER && a->role == SW_ROLE_DEPLOYER)
			return sw_roles_env_in(a->envs, env);
		return a->role >= need && need != SW_ROLE_ADMIN;
	case SW_ACTOR_USER: {
		enum sw_role r = user_role(c, a);
		if (r == SW_ROLE_ADMIN)
			return 1;
		if (need == SW_ROLE_DEPLOYER)
			return user_deploys(c, a, env);
		return r >= need;
	}
	default:
		return 0;
	}
}

void sw_roles_refusal(char *out, size_t n, const struct sw_config *c, const struct sw_actor *a,
		      const char *what, enum sw_role need, const char *env)
{
	int k;
	if (env)
		k = snprintf(out, n, "%s of %s needs the %s role on %s", what, env, sw_role_str(need),
			     env);
	else
		k = snprintf(out, n, "%s needs the %s role", what, sw_role_str(need));
	if (k < 0 || (size_t)k >= n)
		return;
	if (a->kind == SW_ACTOR_TOKEN)
		snprintf(out + k, n - (size_t)k, " (token %s has %s%s%s)", a->name,
			 sw_role_str(a->role), a->role == SW_ROLE_DEPLOYER ? " on " : "",
			 a->role == SW_ROLE_DEPLOYER ? (a->envs ? a->envs : "every environment") : "");
	else if (a->kind == SW_ACTOR_USER)
		snprintf(out + k, n - (size_t)k, " (%s has %s)", a->name,
			 sw_role_str(user_role(c, a)));
}
