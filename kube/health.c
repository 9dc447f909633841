/*
 * health.c - is a live object ready? (see kube.h)
 *
 * The rules follow `kubectl rollout status` for the workload kinds and
 * kstatus (sigs.k8s.io/cli-utils) for the rest, as summarised in
 * notes/protocols.md. Pure functions of the JSON: the sync engine calls
 * this on every watch event, so it must stay cheap and never block.
 */
#include "kube/kube.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"

const char *sw_kube_health_name(enum sw_kube_health h)
{
	switch (h) {
	case SW_KUBE_HEALTHY: return "healthy";
	case SW_KUBE_PROGRESSING: return "progressing";
	case SW_KUBE_DEGRADED: return "degraded";
	case SW_KUBE_UNKNOWN: break;
	}
	return "unknown";
}

/* A value by dotted path ("status.loadBalancer.ingress"); NULL when absent. */
static const json_t *jget(const json_t *v, const char *path)
{
	char key[64];
	const char *dot;

	while (v && *path) {
		size_t n;
		dot = strchr(path, '.');
		n = dot ? (size_t)(dot - path) : strlen(path);
		if (n >= sizeof(key))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		v = json_is_object(v) ? json_object_get(v, key) : NULL;
		path += n + (dot ? 1 : 0);
	}
	return v;
}

static const char *jstr(const json_t *v, const char *path)
{
	const json_t *s = jget(v, path);
	return json_is_string(s) ? json_string_value(s) : NULL;
}

static long long jint(const json_t *v, const char *path, long long def)
{
	const json_t *n = jget(v, path);
	return json_is_integer(n) ? json_integer_value(n) : def;
}

/* The condition of `type` in status.conditions, or NULL. */
static const json_t *cond(const json_t *obj, const char *type)
{
	const json_t *conds = jget(obj, "status.conditions"), *c;
	size_t i;

	if (!json_is_array(conds))
		return NULL;
	json_array_foreach(conds, i, c) {
		const char *t = jstr(c, "type");
		if (t && strcmp(t, type) == 0)
			return c;
	}
	return NULL;
}

/* 1 when condition `type` has status `want` ("True"/"False"). */
static int cond_is(const json_t *obj, const char *type, const char *want)
{
	const json_t *c = cond(obj, type);
	const char *s = c ? jstr(c, "status") : NULL;
	return s && strcmp(s, want) == 0;
}

/* "reason: message" of a condition, for messages. */
static void cond_text(struct sw_buf *b, const json_t *c)
{
	const char *r = jstr(c, "reason"), *m = jstr(c, "message");
	if (r && *r)
		sw_buf_adds(b, r);
	if (m && *m)
		sw_buf_addf(b, "%s%s", (r && *r) ? ": " : "", m);
	if (!(r && *r) && !(m && *m))
		sw_buf_adds(b, "(no reason given)");
}

struct judge {
	enum sw_kube_health h;
	struct sw_buf msg;
};

static enum sw_kube_health say(struct judge *j, enum sw_kube_health h, const char *fmt, ...)
	SW_PRINTF(3, 4);

static enum sw_kube_health say(struct judge *j, enum sw_kube_health h, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sw_buf_vaddf(&j->msg, fmt, ap);
	va_end(ap);
	j->h = h;
	return h;
}

/* Generation not yet observed by the controller? */
static int gen_pending(const json_t *obj, long long *gen, long long *seen)
{
	*gen = jint(obj, "metadata.generation", -1);
	*seen = jint(obj, "status.observedGeneration", -1);
	return *gen >= 0 && *seen >= 0 && *seen < *gen;
}

static int gen_unobserved(struct judge *j, const json_t *obj)
{
	long long gen, seen;
	if (!gen_pending(obj, &gen, &seen))
		return 0;
	say(j, SW_KUBE_PROGRESSING, "generation %lld not yet observed (observed %lld)", gen, seen);
	return 1;
}

static void deployment(struct judge *j, const json_t *o)
{
	const json_t *prog = cond(o, "Progressing");
	long long want = jint(o, "spec.replicas", 1);
	long long replicas = jint(o, "status.replicas", 0);
	long long updated = jint(o, "status.updatedReplicas", 0);
	long long avail = jint(o, "status.availableReplicas", 0);
	const char *r;

	/* Without a status at all the controller has not seen it yet. */
	if (!jget(o, "status.observedGeneration") && jint(o, "metadata.generation", -1) >= 0) {
		say(j, SW_KUBE_PROGRESSING, "waiting for the controller to observe it");
		return;
	}
	if (gen_unobserved(j, o))
		return;
	if (prog && (r = jstr(prog, "reason")) && strcmp(r, "ProgressDeadlineExceeded") == 0) {
		say(j, SW_KUBE_DEGRADED, "exceeded its progress deadline: ");
		cond_text(&j->msg, prog);
		return;
	}
	if (updated < want)
		say(j, SW_KUBE_PROGRESSING, "%lld of %lld new replicas updated", updated, want);
	else if (replicas > updated)
		say(j, SW_KUBE_PROGRESSING, "%lld old replicas pending termination",
		    replicas - updated);
	else if (avail < updated)
		say(j, SW_KUBE_PROGRESSING, "%lld of %lld updated replicas available", avail, updated);
	else
		say(j, SW_KUBE_HEALTHY, "%lld of %lld replicas updated and available", avail, want);
}

static void statefulset(struct judge *j, const json_t *o)
{
	long long want = jint(o, "spec.replicas", 1);
	long long ready = jint(o, "status.readyReplicas", 0);
	long long updated = jint(o, "status.updatedReplicas", 0);
	const json_t *part = jget(o, "spec.updateStrategy.rollingUpdate.partition");
	const char *strategy = jstr(o, "spec.updateStrategy.type");
	const char *cur = jstr(o, "status.currentRevision");
	const char *upd = jstr(o, "status.updateRevision");

	if (!jget(o, "status.observedGeneration") && jint(o, "metadata.generation", -1) >= 0) {
		say(j, SW_KUBE_PROGRESSING, "waiting for the controller to observe it");
		return;
	}
	if (gen_unobserved(j, o))
		return;
	if (ready < want) {
		say(j, SW_KUBE_PROGRESSING, "%lld of %lld replicas ready", ready, want);
		return;
	}
	if (strategy && strcmp(strategy, "RollingUpdate") != 0) {
		/* OnDelete: nothing to roll out, readiness is all there is. */
		say(j, SW_KUBE_HEALTHY, "%lld of %lld replicas ready", ready, want);
		return;
	}
	if (json_is_integer(part) && json_integer_value(part) > 0) {
		long long need = want - json_integer_value(part);
		if (need < 0)
			need = 0;
		if (updated < need)
			say(j, SW_KUBE_PROGRESSING, "partitioned roll out: %lld of %lld updated",
			    updated, need);
		else
			say(j, SW_KUBE_HEALTHY, "partitioned roll out complete: %lld updated", updated);
		return;
	}
	if (upd && (!cur || strcmp(cur, upd) != 0)) {
		say(j, SW_KUBE_PROGRESSING, "rolling update to revision %s: %lld of %lld updated",
		    upd, updated, want);
		return;
	}
	say(j, SW_KUBE_HEALTHY, "%lld of %lld replicas ready at the current revision", ready, want);
}

static void daemonset(struct judge *j, const json_t *o)
{
	long long desired = jint(o, "status.desiredNumberScheduled", 0);
	long long updated = jint(o, "status.updatedNumberScheduled", 0);
	long long avail = jint(o, "status.numberAvailable", 0);

	if (!jget(o, "status.observedGeneration") && jint(o, "metadata.generation", -1) >= 0) {
		say(j, SW_KUBE_PROGRESSING, "waiting for the controller to observe it");
		return;
	}
	if (gen_unobserved(j, o))
		return;
	if (updated < desired)
		say(j, SW_KUBE_PROGRESSING, "%lld of %lld updated pods scheduled", updated, desired);
	else if (avail < desired)
		say(j, SW_KUBE_PROGRESSING, "%lld of %lld updated pods available", avail, desired);
	else
		say(j, SW_KUBE_HEALTHY, "%lld of %lld pods updated and available", avail, desired);
}

static void replicaset(struct judge *j, const json_t *o)
{
	long long want = jint(o, "spec.replicas", 1);
	long long ready = jint(o, "status.readyReplicas", 0);
	long long avail = jint(o, "status.availableReplicas", 0);
	const json_t *fail = cond(o, "ReplicaFailure");

	if (gen_unobserved(j, o))
		return;
	if (fail && cond_is(o, "ReplicaFailure", "True")) {
		/* kstatus: in progress (a quota may yet be raised), but say why. */
		say(j, SW_KUBE_PROGRESSING, "replica failure: ");
		cond_text(&j->msg, fail);
	} else if (ready < want)
		say(j, SW_KUBE_PROGRESSING, "%lld of %lld replicas ready", ready, want);
	else if (avail < want)
		say(j, SW_KUBE_PROGRESSING, "%lld of %lld replicas available", avail, want);
	else
		say(j, SW_KUBE_HEALTHY, "%lld of %lld replicas available", avail, want);
}

static void job(struct judge *j, const json_t *o)
{
	if (cond_is(o, "Failed", "True")) {
		say(j, SW_KUBE_DEGRADED, "failed: ");
		cond_text(&j->msg, cond(o, "Failed"));
	} else if (cond_is(o, "Complete", "True"))
		say(j, SW_KUBE_HEALTHY, "complete (%lld succeeded)", jint(o, "status.succeeded", 0));
	else if (cond_is(o, "Suspended", "True"))
		say(j, SW_KUBE_PROGRESSING, "suspended");
	else
		say(j, SW_KUBE_PROGRESSING, "running: %lld active, %lld succeeded, %lld failed",
		    jint(o, "status.active", 0), jint(o, "status.succeeded", 0),
		    jint(o, "status.failed", 0));
}

/* Waiting reasons that will not clear up by themselves. */
static int bad_waiting(const char *reason)
{
	static const char *const bad[] = {
		"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
		"CreateContainerConfigError", "CreateContainerError", "RunContainerError",
	};
	for (size_t i = 0; reason && i < sizeof(bad) / sizeof(bad[0]); i++)
		if (strcmp(reason, bad[i]) == 0)
			return 1;
	return 0;
}

static void pod(struct judge *j, const json_t *o)
{
	const char *phase = jstr(o, "status.phase");
	const char *lists[] = { "status.initContainerStatuses", "status.containerStatuses" };

	if (phase && strcmp(phase, "Succeeded") == 0) {
		say(j, SW_KUBE_HEALTHY, "succeeded");
		return;
	}
	if (phase && strcmp(phase, "Failed") == 0) {
		const char *m = jstr(o, "status.message"), *r = jstr(o, "status.reason");
		say(j, SW_KUBE_DEGRADED, "failed%s%s%s%s", r ? ": " : "", r ? r : "",
		    m ? ": " : "", m ? m : "");
		return;
	}
	for (size_t l = 0; l < 2; l++) {
		const json_t *cs = jget(o, lists[l]), *c;
		size_t i;
		if (!json_is_array(cs))
			continue;
		json_array_foreach(cs, i, c) {
			const char *r = jstr(c, "state.waiting.reason");
			if (bad_waiting(r)) {
				const char *m = jstr(c, "state.waiting.message");
				say(j, SW_KUBE_DEGRADED, "container %s: %s%s%s",
				    jstr(c, "name") ? jstr(c, "name") : "?", r, m ? ": " : "",
				    m ? m : "");
				return;
			}
		}
	}
	if (cond_is(o, "Ready", "True"))
		say(j, SW_KUBE_HEALTHY, "running and ready");
	else
		say(j, SW_KUBE_PROGRESSING, "%s, not ready", phase ? phase : "no phase yet");
}

static void service(struct judge *j, const json_t *o)
{
	const char *type = jstr(o, "spec.type");
	const json_t *ing = jget(o, "status.loadBalancer.ingress"), *it;
	size_t i;

	if (!type || strcmp(type, "LoadBalancer") != 0) {
		say(j, SW_KUBE_HEALTHY, "%s", type ? type : "ClusterIP");
		return;
	}
	if (json_is_array(ing))
		json_array_foreach(ing, i, it) {
			const char *a = jstr(it, "ip");
			if (!a || !*a)
				a = jstr(it, "hostname");
			if (a && *a) {
				say(j, SW_KUBE_HEALTHY, "load balancer at %s", a);
				return;
			}
		}
	say(j, SW_KUBE_PROGRESSING, "waiting for a load balancer address");
}

static void pvc(struct judge *j, const json_t *o)
{
	const char *phase = jstr(o, "status.phase");
	if (phase && strcmp(phase, "Bound") == 0)
		say(j, SW_KUBE_HEALTHY, "bound");
	else if (phase && strcmp(phase, "Lost") == 0)
		say(j, SW_KUBE_DEGRADED, "lost its volume");
	else
		say(j, SW_KUBE_PROGRESSING, "%s, not bound", phase ? phase : "no phase yet");
}

static void crd(struct judge *j, const json_t *o)
{
	if (cond_is(o, "Established", "True"))
		say(j, SW_KUBE_HEALTHY, "established");
	else if (cond_is(o, "NamesAccepted", "False")) {
		say(j, SW_KUBE_DEGRADED, "names not accepted: ");
		cond_text(&j->msg, cond(o, "NamesAccepted"));
	} else
		say(j, SW_KUBE_PROGRESSING, "not established yet");
}

/* Ready / observedGeneration for kinds without rules of their own. */
static void generic(struct judge *j, const json_t *o)
{
	if (gen_unobserved(j, o))
		return;
	if (cond_is(o, "Ready", "False")) {
		say(j, SW_KUBE_PROGRESSING, "not ready: ");
		cond_text(&j->msg, cond(o, "Ready"));
	} else if (cond_is(o, "Ready", "True"))
		say(j, SW_KUBE_HEALTHY, "ready");
	else
		say(j, SW_KUBE_HEALTHY, "exists");
}

/* "apps" from "apps/v1", "" from "v1". */
static int group_is(const json_t *o, const char *group)
{
	const char *av = jstr(o, "apiVersion"), *slash;
	size_t n;
	if (!av)
		return 0;
	slash = strchr(av, '/');
	n = slash ? (size_t)(slash - av) : 0;
	return strlen(group) == n && strncmp(av, group, n) == 0;
}

enum sw_kube_health sw_kube_health(const json_t *obj, char **message)
{
	struct judge j = { SW_KUBE_UNKNOWN, SW_BUF_INIT };
	const char *kind = jstr(obj, "kind"), *name = jstr(obj, "metadata.name");
	struct sw_buf head = SW_BUF_INIT;

	if (!json_is_object(obj) || !kind) {
		say(&j, SW_KUBE_UNKNOWN, "not a Kubernetes object");
		goto done;
	}
	if (jget(obj, "metadata.deletionTimestamp") &&
	    !json_is_null(jget(obj, "metadata.deletionTimestamp"))) {
		say(&j, SW_KUBE_PROGRESSING, "terminating");
		goto done;
	}
	/* kstatus: these two conditions speak for any kind that sets them. */
	if (cond_is(obj, "Stalled", "True")) {
		say(&j, SW_KUBE_DEGRADED, "stalled: ");
		cond_text(&j.msg, cond(obj, "Stalled"));
		goto done;
	}
	if (cond_is(obj, "Reconciling", "True")) {
		say(&j, SW_KUBE_PROGRESSING, "reconciling: ");
		cond_text(&j.msg, cond(obj, "Reconciling"));
		goto done;
	}
	if (group_is(obj, "apps") && strcmp(kind, "Deployment") == 0)
		deployment(&j, obj);
	else if (group_is(obj, "apps") && strcmp(kind, "StatefulSet") == 0)
		statefulset(&j, obj);
	else if (group_is(obj, "apps") && strcmp(kind, "DaemonSet") == 0)
		daemonset(&j, obj);
	else if (group_is(obj, "apps") && strcmp(kind, "ReplicaSet") == 0)
		replicaset(&j, obj);
	else if (group_is(obj, "batch") && strcmp(kind, "Job") == 0)
		job(&j, obj);
	else if (group_is(obj, "") && strcmp(kind, "Pod") == 0)
		pod(&j, obj);
	else if (group_is(obj, "") && strcmp(kind, "Service") == 0)
		service(&j, obj);
	else if (group_is(obj, "") && strcmp(kind, "PersistentVolumeClaim") == 0)
		pvc(&j, obj);
	else if (group_is(obj, "apiextensions.k8s.io") &&
		 strcmp(kind, "CustomResourceDefinition") == 0)
		crd(&j, obj);
	else
		generic(&j, obj);
done:
	if (message) {
		if (kind)
			sw_buf_addf(&head, "%s %s: ", kind, name ? name : "?");
		sw_buf_add(&head, j.msg.ptr, j.msg.len);
		*message = sw_buf_detach(&head, NULL);
	}
	sw_buf_release(&head);
	sw_buf_release(&j.msg);
	return j.h;
}
