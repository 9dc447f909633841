/*
 * roles-int.h - who is asking (an actor) and what their role lets them do,
 * without HTTP or storage, so the rules can be unit-tested from a config
 * alone (tests/unit/test_roles.c). Private to daemon/.
 *
 * The rules (docs/api.md "Roles"; the config keys are docs/config.md
 * "access"):
 *  - Roles are ordered: viewer < deployer < admin; a higher role may do
 *    everything a lower one may.
 *  - viewer: read the page and the API. When server.read_access is open
 *    (the default) everyone may read, signed in or not.
 *  - deployer: sync, roll back, cancel and retry on the environments they
 *    deploy. A user is a deployer of environment E when E lists its own
 *    `deployers` and the user matches one of them, or when E lists none and
 *    the user matches access.deployers. An environment's own list replaces
 *    the global one there (it does not add to it): so `deployers: [org/sre]`
 *    on prod keeps the global deployers off prod. A run without an
 *    environment (a pull request's) needs access.deployers.
 *  - admin: everything, on every environment, plus API tokens, the audit
 *    log and backups. server.api_token is an admin.
 *  - An entry is a GitHub login (case-insensitive), an "org/team" name the
 *    user is a member of, or "*" (every signed-in user). A user listed in
 *    some environment's deployers is a viewer too.
 *  - An API token has the one role it was created with; a deployer token
 *    created with --env deploys to those environments only, without --env
 *    to all. Environment lists of users do not apply to tokens: the admin
 *    who made the token chose.
 */
#ifndef SW_DAEMON_ROLES_INT_H
#define SW_DAEMON_ROLES_INT_H

#include <stddef.h>

#include "config/config.h"

enum sw_role { SW_ROLE_NONE, SW_ROLE_VIEWER, SW_ROLE_DEPLOYER, SW_ROLE_ADMIN };

enum sw_actor_kind {
	SW_ACTOR_ANONYMOUS,   /* no credentials */
	SW_ACTOR_API_TOKEN,   /* server.api_token (bearer, or a session made with it) */
	SW_ACTOR_TOKEN,       /* an API token (slipway token create) */
	SW_ACTOR_USER,        /* a GitHub user from a session */
	SW_ACTOR_SYSTEM,      /* slipwayd itself (a reload on SIGHUP) */
};

#define SW_ACTOR_NAME_MAX 128
#define SW_ACTOR_ID_MAX 40
#define SW_ACTOR_CLIENT_MAX 64

/* Who did something. Fixed-size fields: an actor lives on the stack. */
struct sw_actor {
	enum sw_actor_kind kind;
	char name[SW_ACTOR_NAME_MAX];     /* "anonymous", "api_token", token name, login */
	char token_id[SW_ACTOR_ID_MAX];   /* SW_ACTOR_TOKEN: its id */
	char client[SW_ACTOR_CLIENT_MAX]; /* the client address the request came from */
	enum sw_role role;                /* SW_ACTOR_TOKEN: its role */
	char *envs;                       /* SW_ACTOR_TOKEN: comma list, NULL = all (owned) */
	const char *const *teams;         /* SW_ACTOR_USER: "org/team" names */
	size_t nteams;
	char *teams_buf;                  /* owned storage behind `teams`, or NULL */
};
#define SW_ACTOR_INIT { .kind = SW_ACTOR_ANONYMOUS, .name = "anonymous" }
void sw_actor_release(struct sw_actor *a);
/* Make `a` the GitHub user `login` of the '+'-joined `teams` (copied). */
void sw_actor_set_user(struct sw_actor *a, const char *login, const char *teams);

const char *sw_role_str(enum sw_role r);
/* "viewer", "deployer", "admin"; SW_EINVALID otherwise. */
int sw_role_parse(const char *s, enum sw_role *out);
const char *sw_actor_kind_str(enum sw_actor_kind k);

/* Does `login` with `teams` match one of `list` (logins, org/team, "*")? */
int sw_roles_match(const char *const *list, size_t n, const char *login,
		   const char *const *teams, size_t nteams);

/*
 * May `a` do what needs role `need` on environment `env` (NULL: no
 * environment, or a read of anything)? 1 or 0. `read_open` is
 * !server.read_access: token.
 */
int sw_roles_allows(const struct sw_config *c, const struct sw_actor *a, enum sw_role need,
		    const char *env);

/*
 * The refusal, for a 403: "rollback of prod needs the deployer role on
 * prod (token ci has deployer on dev)" into `out` (`n` bytes). `what` is
 * the action ("sync", "the audit log").
 */
void sw_roles_refusal(char *out, size_t n, const struct sw_config *c, const struct sw_actor *a,
		      const char *what, enum sw_role need, const char *env);

/* Is `env` in the comma list `envs`? (NULL = every environment) */
int sw_roles_env_in(const char *envs, const char *env);

#endif
