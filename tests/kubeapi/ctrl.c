/*
 * ctrl.c - simulated controllers. There are no nodes and no kubelet; these
 * stand in for what the controller manager and kubelet would report, so
 * that health checks (kubectl rollout status, kubectl wait, kstatus rules)
 * see workloads progress and become ready:
 *
 *   Deployment, ReplicaSet, StatefulSet, DaemonSet, ReplicationController:
 *       replicas all updated/ready/available; Deployment conditions
 *       Available and Progressing (NewReplicaSetAvailable)
 *   Job: Complete (and SuccessCriteriaMet), or with never-ready Failed
 *   (BackoffLimitExceeded); Pod: Running and Ready, or with a restartPolicy
 *   other than Always Succeeded (never-ready: Failed, exit code 1);
 *   PersistentVolumeClaim: Bound; Service type LoadBalancer: an ingress IP;
 *   CustomResourceDefinition: NamesAccepted and Established.
 *
 * Each new generation of an object resets it: right away a status for the
 * new generation that is still progressing, and the outcome after
 * --ready-delay-ms. With the annotation kubeapi.slipway.dev/never-ready:
 * "true" the outcome is a failure instead (Deployment: Progressing=False,
 * reason ProgressDeadlineExceeded; nothing ready). Timers, never sleeps.
 *
 * With --ready-after-reads N the outcome waits for events instead of time:
 * it is reported right after the object was handed out by N gets or lists
 * since the new generation was written, however slow the machine is, so a
 * client's number of health reads is known.
 */
#include "tests/kubeapi/kubeapi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { K_NONE, K_DEPLOY, K_RS, K_STS, K_DS, K_RC, K_JOB, K_POD, K_PVC, K_SVC, K_CRD };

static enum kind kind_of(const struct ka_rtype *rt)
{
	const char *g = rt->group, *p = rt->plural;
	if (!strcmp(g, "apps")) {
		if (!strcmp(p, "deployments"))
			return K_DEPLOY;
		if (!strcmp(p, "replicasets"))
			return K_RS;
		if (!strcmp(p, "statefulsets"))
			return K_STS;
		if (!strcmp(p, "daemonsets"))
			return K_DS;
	} else if (!*g) {
		if (!strcmp(p, "replicationcontrollers"))
			return K_RC;
		if (!strcmp(p, "pods"))
			return K_POD;
		if (!strcmp(p, "persistentvolumeclaims"))
			return K_PVC;
		if (!strcmp(p, "services"))
			return K_SVC;
	} else if (!strcmp(g, "batch") && !strcmp(p, "jobs"))
		return K_JOB;
	else if (!strcmp(g, "apiextensions.k8s.io") && !strcmp(p, "customresourcedefinitions"))
		return K_CRD;
	return K_NONE;
}

static bool never_ready(json_t *o)
{
	json_t *ann = ka_jpath(o, "metadata.annotations");
	const char *v = json_string_value(json_object_get(ann, "kubeapi.slipway.dev/never-ready"));
	return v && !strcmp(v, "true");
}

/* Kinds without metadata.generation count as generation 1: done once. */
static int64_t gen_of(json_t *o)
{
	json_t *g = ka_jpath(o, "metadata.generation");
	return json_is_integer(g) ? json_integer_value(g) : 1;
}

static json_t *cond(const char *type, bool ok, const char *reason, const char *msg, bool deploy)
{
	char ts[32];
	ka_time_now(ts);
	json_t *c = json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", type, "status", ok ? "True" : "False",
	    "lastTransitionTime", ts, "reason", reason, "message", msg);
	if (deploy)
		json_object_set_new(c, "lastUpdateTime", json_string(ts));
	return c;
}

static json_int_t replicas(json_t *o)
{
	json_t *r = ka_jpath(o, "spec.replicas");
	return json_is_integer(r) ? json_integer_value(r) : 1;
}

/* The status for object o: progress (!done) or the outcome (done). NULL when
 * this kind reports nothing at this point. */
static json_t *status_for(enum kind k, json_t *o, bool done)
{
	bool bad = never_ready(o);
	bool ok = done && !bad;
	int64_t gen = gen_of(o);
	json_int_t r = replicas(o);
	const char *name = ka_jstr(o, "metadata.name");
	char ts[32], rev[300], msg[400];
	ka_time_now(ts);
	snprintf(rev, sizeof(rev), "%s-%06llx", name ? name : "x",
	    (unsigned long long)((uint64_t)gen * 2654435761u) & 0xffffffu);
	json_t *old = json_object_get(o, "status");

	switch (k) {
	case K_DEPLOY: {
		json_t *s = json_pack("{s:I,s:I}", "observedGeneration", (json_int_t)gen, "replicas", r);
		json_t *conds = json_array();
		if (!done) {
			json_object_set_new(s, "updatedReplicas", json_integer(0));
			json_t *ra = json_object_get(old, "readyReplicas"), *aa = json_object_get(old, "availableReplicas");
			json_object_set_new(s, "readyReplicas", json_integer(json_integer_value(ra)));
			json_object_set_new(s, "availableReplicas", json_integer(json_integer_value(aa)));
			json_object_set_new(s, "unavailableReplicas", json_integer(r - json_integer_value(aa)));
			bool avail = json_integer_value(aa) >= r;
			json_array_append_new(conds, cond("Available", avail,
			    avail ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable",
			    avail ? "Deployment has minimum availability." : "Deployment does not have minimum availability.", true));
			snprintf(msg, sizeof(msg), "ReplicaSet \"%s\" is progressing.", rev);
			json_array_append_new(conds, cond("Progressing", true, "ReplicaSetUpdated", msg, true));
		} else {
			json_object_set_new(s, "updatedReplicas", json_integer(r));
			json_object_set_new(s, "readyReplicas", json_integer(ok ? r : 0));
			json_object_set_new(s, "availableReplicas", json_integer(ok ? r : 0));
			if (!ok)
				json_object_set_new(s, "unavailableReplicas", json_integer(r));
			json_array_append_new(conds, cond("Available", ok,
			    ok ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable",
			    ok ? "Deployment has minimum availability." : "Deployment does not have minimum availability.", true));
			if (ok)
				snprintf(msg, sizeof(msg), "ReplicaSet \"%s\" has successfully progressed.", rev);
			else
				snprintf(msg, sizeof(msg), "ReplicaSet \"%s\" has timed out progressing.", rev);
			json_array_append_new(conds, cond("Progressing", ok,
			    ok ? "NewReplicaSetAvailable" : "ProgressDeadlineExceeded", msg, true));
		}
		json_object_set_new(s, "conditions", conds);
		return s;
	}
	case K_RS:
	case K_RC:
		return json_pack("{s:I,s:I,s:I,s:I,s:I}", "observedGeneration", (json_int_t)gen,
		    "replicas", r, "fullyLabeledReplicas", r, "readyReplicas", (json_int_t)(ok ? r : 0),
		    "availableReplicas", (json_int_t)(ok ? r : 0));
	case K_STS: {
		const char *cur = done ? rev : ka_jstr(o, "status.currentRevision");
		return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:s,s:i}", "observedGeneration",
		    (json_int_t)gen, "replicas", r, "readyReplicas", (json_int_t)(ok ? r : 0),
		    "currentReplicas", (json_int_t)(done ? r : 0), "updatedReplicas", (json_int_t)(done ? r : 0),
		    "availableReplicas", (json_int_t)(ok ? r : 0), "currentRevision", cur ? cur : rev,
		    "updateRevision", rev, "collisionCount", 0);
	}
	case K_DS: {
		json_t *s = json_pack("{s:I,s:i,s:i,s:i,s:i,s:i,s:i}", "observedGeneration", (json_int_t)gen,
		    "currentNumberScheduled", 1, "desiredNumberScheduled", 1, "numberMisscheduled", 0,
		    "numberReady", ok ? 1 : 0, "updatedNumberScheduled", done ? 1 : 0,
		    "numberAvailable", ok ? 1 : 0);
		if (!ok)
			json_object_set_new(s, "numberUnavailable", json_integer(1));
		return s;
	}
	case K_JOB: {
		const char *start = ka_jstr(o, "status.startTime");
		json_t *s = json_pack("{s:s,s:i,s:i}", "startTime", start ? start : ts, "ready", 0,
		    "terminating", 0);
		if (done && bad) {   /* as a Job whose pods keep failing ends */
			json_object_set_new(s, "failed", json_integer(1));
			json_object_set_new(s, "conditions", json_pack("[o,o]",
			    cond("FailureTarget", true, "BackoffLimitExceeded", "Job has reached the specified backoff limit", false),
			    cond("Failed", true, "BackoffLimitExceeded", "Job has reached the specified backoff limit", false)));
			return s;
		}
		if (!ok) {
			json_object_set_new(s, "active", json_integer(1));
			return s;
		}
		json_t *c = json_object_get(ka_jpath(o, "spec"), "completions");
		json_object_set_new(s, "succeeded", json_integer(json_is_integer(c) ? json_integer_value(c) : 1));
		json_object_set_new(s, "completionTime", json_string(ts));
		json_object_set_new(s, "conditions", json_pack("[o,o]",
		    cond("SuccessCriteriaMet", true, "CompletionsReached", "Reached expected number of succeeded pods", false),
		    cond("Complete", true, "CompletionsReached", "Reached expected number of succeeded pods", false)));
		return s;
	}
	case K_POD: {
		const char *restart = ka_jstr(o, "spec.restartPolicy");
		if (done && restart && strcmp(restart, "Always")) {
			/* a pod that runs to its end: Succeeded, or Failed when never-ready */
			json_t *cs = json_array();
			size_t i;
			json_t *c;
			json_array_foreach(ka_jpath(o, "spec.containers"), i, c)
				json_array_append_new(cs, json_pack("{s:s,s:b,s:i,s:{s:{s:i,s:s,s:s}}}",
				    "name", ka_jstr(c, "name") ? ka_jstr(c, "name") : "", "ready", 0,
				    "restartCount", 0, "state", "terminated", "exitCode", bad ? 1 : 0,
				    "reason", bad ? "Error" : "Completed", "finishedAt", ts));
			return json_pack("{s:s,s:o,s:s}", "phase", bad ? "Failed" : "Succeeded",
			    "containerStatuses", cs, "startTime", ts);
		}
		json_t *cs = json_array();
		size_t i;
		json_t *c;
		json_array_foreach(ka_jpath(o, "spec.containers"), i, c) {
			char cid[80], uid[37];
			ka_uuid(uid);
			snprintf(cid, sizeof(cid), "containerd://%s", uid);
			const char *img = ka_jstr(c, "image");
			json_t *st = json_pack("{s:s,s:b,s:b,s:i,s:s,s:s,s:s}", "name", ka_jstr(c, "name") ?
			    ka_jstr(c, "name") : "", "ready", ok, "started", done, "restartCount", 0,
			    "image", img ? img : "", "imageID", "", "containerID", cid);
			if (done)
				json_object_set_new(st, "state", json_pack("{s:{s:s}}", "running", "startedAt", ts));
			else
				json_object_set_new(st, "state", json_pack("{s:{s:s}}", "waiting", "reason", "ContainerCreating"));
			json_array_append_new(cs, st);
		}
		json_t *conds = json_pack("[o,o,o,o]",
		    cond("PodScheduled", true, "Scheduled", "", false),
		    cond("Initialized", true, "Initialized", "", false),
		    cond("ContainersReady", ok, ok ? "ContainersReady" : "ContainersNotReady", "", false),
		    cond("Ready", ok, ok ? "PodReady" : "ContainersNotReady", "", false));
		return json_pack("{s:s,s:o,s:s,s:s,s:s,s:o,s:s}", "phase", done ? "Running" : "Pending",
		    "conditions", conds, "hostIP", "10.0.0.10", "podIP", "10.244.0.10", "startTime", ts,
		    "containerStatuses", cs, "qosClass", "BestEffort");
	}
	case K_PVC: {
		if (!done)
			return NULL;
		if (!ok)
			return json_pack("{s:s}", "phase", "Pending");
		json_t *s = json_pack("{s:s}", "phase", "Bound");
		json_t *am = ka_jpath(o, "spec.accessModes");
		if (am)
			json_object_set(s, "accessModes", am);
		const char *size = ka_jstr(o, "spec.resources.requests.storage");
		if (size)
			json_object_set_new(s, "capacity", json_pack("{s:s}", "storage", size));
		return s;
	}
	case K_SVC: {
		const char *type = ka_jstr(o, "spec.type");
		if (!done || !ok || !type || strcmp(type, "LoadBalancer"))
			return NULL;
		static unsigned next_ip = 10;
		char ip[32];
		snprintf(ip, sizeof(ip), "192.0.2.%u", next_ip++ % 240 + 10);
		return json_pack("{s:{s:[{s:s,s:s}]}}", "loadBalancer", "ingress", "ip", ip, "ipMode", "VIP");
	}
	case K_CRD: {
		if (!done)
			return NULL;
		json_t *names = ka_jpath(o, "spec.names");
		json_t *stored = json_array();
		size_t i;
		json_t *v;
		json_array_foreach(ka_jpath(o, "spec.versions"), i, v)
			if (json_is_true(json_object_get(v, "storage")))
				json_array_append(stored, json_object_get(v, "name"));
		return json_pack("{s:O,s:o,s:[o,o]}", "acceptedNames", names ? names : json_object(),
		    "storedVersions", stored,
		    "conditions", cond("NamesAccepted", true, "NoConflicts", "no conflicts found", false),
		    cond("Established", true, "InitialNamesAccepted", "the initial names have been accepted", false));
	}
	case K_NONE:
		break;
	}
	return NULL;
}

/* How long until the outcome of a generation is reported. */
static struct timeval outcome_delay(enum kind k)
{
	int ms = k == K_CRD && ka_set.ready_delay_ms > 100 ? 100 : ka_set.ready_delay_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	if (ka_set.ready_after_reads > 0) {
		/* ka_ctrl_on_read brings it forward */
		tv.tv_sec = 24 * 3600;
		tv.tv_usec = 0;
	}
	return tv;
}

static void fire(evutil_socket_t fd, short what, void *arg)
{
	struct ka_obj *ob = arg;
	enum kind k = kind_of(ob->rt);
	int64_t gen = gen_of(ob->o);
	bool done = ob->ctrl_phase == 1;
	if (gen != ob->ctrl_gen)
		return; /* superseded; on_write has rescheduled */
	if (done)
		ob->ctrl_done_gen = gen;
	json_t *st = status_for(k, ob->o, done);
	if (!done) {
		/* Progress reported; the outcome comes after the ready delay. */
		ob->ctrl_phase = 1;
		ob->ctrl_reads = 0;
		struct timeval tv = outcome_delay(k);
		event_add(ob->ctrl_ev, &tv);
	}
	if (st && !json_equal(st, json_object_get(ob->o, "status")))
		ka_controller_write_status(ob, st); /* may re-enter on_write; gen unchanged */
	json_decref(st);
}

void ka_ctrl_on_write(struct ka_obj *ob, json_t *old)
{
	enum kind k = kind_of(ob->rt);
	if (k == K_NONE || ka_jpath(ob->o, "metadata.deletionTimestamp"))
		return;
	int64_t gen = gen_of(ob->o);
	if (gen == ob->ctrl_done_gen || (ob->ctrl_ev && ob->ctrl_gen == gen &&
	    event_pending(ob->ctrl_ev, EV_TIMEOUT, NULL)))
		return;
	if (!ob->ctrl_ev)
		ob->ctrl_ev = evtimer_new(ka_base, fire, ob);
	ob->ctrl_gen = gen;
	/* An object that already had a status first reports progress for the
	 * new generation; a fresh one just waits for the outcome. */
	ob->ctrl_phase = json_object_get(ob->o, "status") && k != K_CRD ? 0 : 1;
	ob->ctrl_reads = 0;
	struct timeval now = {0, 0}, tv = ob->ctrl_phase == 0 ? now : outcome_delay(k);
	evtimer_add(ob->ctrl_ev, &tv);
}

void ka_ctrl_on_read(struct ka_obj *ob)
{
	struct timeval now = {0, 0};
	if (ka_set.ready_after_reads <= 0 || !ob->ctrl_ev || ob->ctrl_phase != 1 ||
	    !event_pending(ob->ctrl_ev, EV_TIMEOUT, NULL))
		return;
	if (++ob->ctrl_reads >= ka_set.ready_after_reads)
		evtimer_add(ob->ctrl_ev, &now); /* after this answer, before the next read */
}

void ka_ctrl_on_delete(struct ka_obj *ob)
{
	if (ob->ctrl_ev) {
		event_free(ob->ctrl_ev);
		ob->ctrl_ev = NULL;
	}
}
