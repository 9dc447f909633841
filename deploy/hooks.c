/*
 * hooks.c - the hooks of a sync, as Argo CD runs them (docs/argocd.md):
 * objects created around the apply instead of applied with it. A phase's
 * hooks go one at a time in apply order (wave, kind, name): the one
 * before, if BeforeHookCreation, is deleted and gone first; the hook is
 * created (POST, so generateName works); then it is read until it is done
 * (a Job Complete or Failed, a Pod Succeeded or Failed, anything else
 * healthy or degraded) or the environment's health_timeout passes; then
 * deleted as its policy says. Hooks carry the label slipway.dev/hook (the
 * environment), never slipway's tracking label: they are not in the
 * inventory, never pruned and never healed.
 *
 * PreSync, Sync and PostSync hooks must succeed: the first that fails fails
 * the sync and the phase stops. SyncFail hooks all run; their failures are
 * noted only.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "deploy/sync-int.h"
#include "kube/kube.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "manifests/manifests.h"

#define HOOK_LABEL "slipway.dev/hook"

static const char *phase_name(unsigned phase)
{
	switch (phase) {
	case SW_HOOK_PRESYNC: return "PreSync";
	case SW_HOOK_SYNC: return "Sync";
	case SW_HOOK_POSTSYNC: return "PostSync";
	default: return "SyncFail";
	}
}

int sync_has_hooks(const struct run *r, unsigned phase)
{
	if (r->rq->dry_run || (r->hooks_ran & phase))
		return 0;
	for (size_t i = 0; i < r->nhooks; i++)
		if (r->hooks[i].hook & phase)
			return 1;
	return 0;
}

static void hook_next(struct run *r);

static struct sw_obj *current(struct run *r)
{
	return &r->hooks[r->hook_i];
}

/* "batch/Job/default/migrate-x2k9q" */
static void hook_key(struct run *r, struct sw_buf *b)
{
	struct sw_obj *o = current(r);
	sw_obj_key(b, o->api_version, o->kind, r->hook_ns, r->hook_name ? r->hook_name :
		   o->generate_name ? o->generate_name : o->name);
}

static void policy_deleted(const struct sw_kube_result *res, void *arg)
{
	(void)arg;
	if (res->error && res->error != SW_ENOTFOUND)
		log_warn("sync.hook_delete", "err=%s", sw_q(res->error_msg));
}

static void hook_end(struct run *r, int ok, const char *why)
{
	struct sw_obj *o = current(r);
	struct sw_buf key = SW_BUF_INIT;

	hook_key(r, &key);
	if (ok)
		sync_note(r, "%s hook %s: %s", phase_name(r->hook_phase), key.ptr, why);
	else if (r->hook_phase == SW_HOOK_SYNCFAIL)
		sync_note(r, "SyncFail hook %s failed: %s", key.ptr, why);
	else
		sync_fail(r, "%s hook %s failed: %s", phase_name(r->hook_phase), key.ptr, why);
	log_info("sync.hook", "env=%s phase=%s hook=%s ok=%d why=%s", r->cfg.name,
		 phase_name(r->hook_phase), sw_q(key.ptr), ok, sw_q(why));
	/* delete as its policy says; nobody waits for that */
	if (r->hook_name && ((ok && (o->hook_delete & SW_HOOK_DELETE_SUCCEEDED)) ||
			     (!ok && (o->hook_delete & SW_HOOK_DELETE_FAILED))) &&
	    sw_kube_delete(r->s->kube, o->api_version, o->kind, r->hook_ns, r->hook_name,
			   policy_deleted, NULL, NULL) < 0)
		log_warn("sync.hook_delete", "env=%s hook=%s err=%s", r->cfg.name, sw_q(key.ptr),
			 sw_q(sw_error_last()));
	sw_buf_release(&key);
	free(r->hook_name);
	r->hook_name = NULL;
	if (!ok && r->hook_phase != SW_HOOK_SYNCFAIL)
		r->hook_i = r->nhooks;   /* the phase stops */
	else
		r->hook_i++;
	r->hook_step = HOOK_START;
	hook_next(r);
}

/* Done, and how: 1 succeeded, -1 failed (why in *why), 0 not yet. */
static int judge(json_t *o, char **why)
{
	const char *kind = json_string_value(json_object_get(o, "kind"));
	json_t *st = json_object_get(o, "status"), *c;
	size_t i;

	*why = NULL;
	if (kind && !strcmp(kind, "Job")) {
		json_array_foreach(json_object_get(st, "conditions"), i, c) {
			const char *type = json_string_value(json_object_get(c, "type"));
			const char *s = json_string_value(json_object_get(c, "status"));
			if (!type || !s || strcmp(s, "True"))
				continue;
			if (!strcmp(type, "Complete")) {
				*why = sw_strdup("Complete");
				return 1;
			}
			if (!strcmp(type, "Failed")) {
				const char *rs = json_string_value(json_object_get(c, "reason"));
				const char *m = json_string_value(json_object_get(c, "message"));
				*why = sw_asprintf("Failed: %s%s%s", rs ? rs : "", m ? ": " : "",
						   m ? m : "");
				return -1;
			}
		}
		return 0;
	}
	if (kind && !strcmp(kind, "Pod")) {
		const char *ph = json_string_value(json_object_get(st, "phase"));
		if (ph && !strcmp(ph, "Succeeded")) {
			*why = sw_strdup("Succeeded");
			return 1;
		}
		if (ph && !strcmp(ph, "Failed")) {
			const char *rs = json_string_value(json_object_get(st, "reason"));
			*why = sw_asprintf("Failed%s%s", rs ? ": " : "", rs ? rs : "");
			return -1;
		}
		return 0;
	}
	char *m = NULL;
	enum sw_kube_health h = sw_kube_health(o, &m);
	if (h == SW_KUBE_HEALTHY) {
		free(m);
		*why = sw_strdup("healthy");
		return 1;
	}
	if (h == SW_KUBE_DEGRADED) {
		*why = m ? m : sw_strdup("degraded");
		return -1;
	}
	free(m);
	return 0;
}

static void hook_later(struct run *r)
{
	long ms = 25L << (r->hook_polls < 4 ? r->hook_polls : 4);
	if (ms > r->s->health_poll_ms)
		ms = r->s->health_poll_ms;
	r->hook_polls++;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(r->timer, &tv);
}

static void hook_read_done(const struct sw_kube_result *res, void *arg)
{
	struct run *r = arg;
	char *why = NULL;
	int v;

	r->hook_op = NULL;
	if (r->hook_step == HOOK_GONE) {          /* waiting for the last one to go */
		if (res->error == SW_ENOTFOUND) {
			r->hook_step = HOOK_CREATE;
			hook_next(r);
			return;
		}
	} else if (res->error == 0 && (v = judge(res->obj, &why)) != 0) {
		hook_end(r, v > 0, why);
		free(why);
		return;
	} else if (res->error == SW_ENOTFOUND) {
		hook_end(r, 0, "deleted while it ran");
		return;
	}
	if (sw_mono_ms() >= r->hook_deadline) {
		char *m = sw_asprintf("not done after %llds (health_timeout)%s%s",
				      (long long)r->cfg.health_timeout_s, res->error ? ": " : "",
				      res->error ? res->error_msg : "");
		hook_end(r, 0, m);
		free(m);
		return;
	}
	hook_later(r);
}

/* The run's timer, while a hook is being waited on. */
void sync_hook_tick(struct run *r)
{
	struct sw_obj *o = current(r);
	const char *name = r->hook_step == HOOK_GONE ? o->name : r->hook_name;
	if (sw_kube_get(r->s->kube, o->api_version, o->kind, r->hook_ns, name, hook_read_done, r,
			&r->hook_op) < 0)
		hook_end(r, 0, sw_error_last());
}

static void created(const struct sw_kube_result *res, void *arg)
{
	struct run *r = arg;
	r->hook_op = NULL;
	if (res->error) {
		hook_end(r, 0, res->error_msg);
		return;
	}
	const char *name = json_string_value(json_object_get(json_object_get(res->obj,
								"metadata"), "name"));
	r->hook_name = sw_strdup(name ? name : "");
	r->hook_step = HOOK_WAIT;
	r->hook_polls = 0;
	hook_later(r);
}

static void deleted_before(const struct sw_kube_result *res, void *arg)
{
	struct run *r = arg;
	r->hook_op = NULL;
	if (res->error == SW_ENOTFOUND) {
		r->hook_step = HOOK_CREATE;
		hook_next(r);
		return;
	}
	if (res->error) {
		hook_end(r, 0, res->error_msg);
		return;
	}
	r->hook_step = HOOK_GONE;      /* read until it is gone */
	r->hook_polls = 0;
	hook_later(r);
}

/* The object to create: a copy with its namespace and the hook label. */
static json_t *hook_body(struct run *r, struct sw_obj *o)
{
	const struct sw_kubeconfig *kc = sw_kube_config(r->s->kube);
	struct sw_kube_resource res;
	json_t *j = json_deep_copy(o->json), *md = json_object_get(j, "metadata"), *labels;

	free(r->hook_ns);
	r->hook_ns = sw_strdup(o->ns);
	if (!*o->ns && sw_kube_lookup(r->s->kube, o->api_version, o->kind, &res) == 0 &&
	    res.namespaced) {
		free(r->hook_ns);
		r->hook_ns = sw_strdup(r->cfg.ns && *r->cfg.ns ? r->cfg.ns : kc->ns);
		json_object_set_new(md, "namespace", json_string(r->hook_ns));
	}
	labels = json_object_get(md, "labels");
	if (!json_is_object(labels)) {
		labels = json_object();
		json_object_set_new(md, "labels", labels);
	}
	json_object_set_new(labels, HOOK_LABEL, json_string(r->cfg.name));
	return j;
}

static void hook_next(struct run *r)
{
	while (r->hook_i < r->nhooks && !(current(r)->hook & r->hook_phase))
		r->hook_i++;
	if (r->hook_i >= r->nhooks) {
		void (*then)(struct run *) = r->hook_then;
		r->hooks_ran |= r->hook_phase;
		r->hook_phase = 0;
		then(r);
		return;
	}
	struct sw_obj *o = current(r);
	if (r->hook_step == HOOK_START) {
		r->hook_deadline = sw_mono_ms() + r->cfg.health_timeout_s * 1000;
		json_decref(r->hook_json);
		r->hook_json = hook_body(r, o);
		r->hook_step = HOOK_CREATE;
		if (*o->name && (o->hook_delete & SW_HOOK_DELETE_BEFORE)) {
			r->hook_step = HOOK_DELETE;
			if (sw_kube_delete(r->s->kube, o->api_version, o->kind, r->hook_ns, o->name,
					   deleted_before, r, &r->hook_op) < 0)
				hook_end(r, 0, sw_error_last());
			return;
		}
	}
	if (r->hook_step == HOOK_CREATE &&
	    sw_kube_create(r->s->kube, r->hook_json, created, r, &r->hook_op) < 0)
		hook_end(r, 0, sw_error_last());
}

void sync_hooks(struct run *r, unsigned phase, void (*then)(struct run *r))
{
	r->hook_phase = phase;
	r->hook_then = then;
	r->hook_i = 0;
	r->hook_step = HOOK_START;
	hook_next(r);
}
