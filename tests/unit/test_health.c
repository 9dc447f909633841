/*
 * test_health.c - sw_kube_health() on JSON fixtures, one or more per rule
 * of notes/protocols.md (kubectl rollout status / kstatus).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kube.h"

struct fx {
	const char *name;
	enum sw_kube_health want;
	const char *msg_has;     /* substring of the message, or NULL */
	const char *json;
};

#define H SW_KUBE_HEALTHY
#define P SW_KUBE_PROGRESSING
#define D SW_KUBE_DEGRADED
#define U SW_KUBE_UNKNOWN

#define DEP(gen, spec, status) \
	"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\"," \
	"\"generation\":" gen "},\"spec\":" spec ",\"status\":" status "}"

static const struct fx fixtures[] = {
	/* ---- Deployment ---- */
	{ "deployment ready", H, "Deployment web: 3 of 3",
	  DEP("2", "{\"replicas\":3}", "{\"observedGeneration\":2,\"replicas\":3,"
	      "\"updatedReplicas\":3,\"availableReplicas\":3,\"readyReplicas\":3}") },
	{ "deployment generation not observed", P, "generation 3 not yet observed",
	  DEP("3", "{\"replicas\":3}", "{\"observedGeneration\":2,\"replicas\":3,"
	      "\"updatedReplicas\":3,\"availableReplicas\":3}") },
	{ "deployment no status yet", P, "observe",
	  "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\","
	  "\"generation\":1},\"spec\":{\"replicas\":1}}" },
	{ "deployment not all updated", P, "1 of 3 new replicas updated",
	  DEP("2", "{\"replicas\":3}", "{\"observedGeneration\":2,\"replicas\":4,"
	      "\"updatedReplicas\":1,\"availableReplicas\":3}") },
	{ "deployment old replicas left", P, "1 old replicas pending termination",
	  DEP("2", "{\"replicas\":3}", "{\"observedGeneration\":2,\"replicas\":4,"
	      "\"updatedReplicas\":3,\"availableReplicas\":3}") },
	{ "deployment updated not available", P, "2 of 3 updated replicas available",
	  DEP("2", "{\"replicas\":3}", "{\"observedGeneration\":2,\"replicas\":3,"
	      "\"updatedReplicas\":3,\"availableReplicas\":2}") },
	{ "deployment progress deadline", D, "ProgressDeadlineExceeded",
	  DEP("2", "{\"replicas\":3}", "{\"observedGeneration\":2,\"replicas\":3,"
	      "\"updatedReplicas\":1,\"availableReplicas\":0,\"conditions\":[{\"type\":"
	      "\"Progressing\",\"status\":\"False\",\"reason\":\"ProgressDeadlineExceeded\","
	      "\"message\":\"ReplicaSet web-1 has timed out progressing.\"}]}") },
	{ "deployment default one replica", H, NULL,
	  DEP("1", "{}", "{\"observedGeneration\":1,\"replicas\":1,\"updatedReplicas\":1,"
	      "\"availableReplicas\":1}") },
	{ "deployment scaled to zero", H, NULL,
	  DEP("1", "{\"replicas\":0}", "{\"observedGeneration\":1}") },

	/* ---- StatefulSet ---- */
	{ "statefulset ready", H, NULL,
	  "{\"apiVersion\":\"apps/v1\",\"kind\":\"StatefulSet\",\"metadata\":{\"name\":\"db\","
	  "\"generation\":1},\"spec\":{\"replicas\":2},\"status\":{\"observedGeneration\":1,"
	  "\"replicas\":2,\"readyReplicas\":2,\"updatedReplicas\":2,\"currentRevision\":\"db-1\","
	  "\"updateRevision\":\"db-1\"}}" },
	{ "statefulset not ready", P, "1 of 2 replicas ready",
	  "{\"apiVersion\":\"apps/v1\",\"kind\":\"StatefulSet\",\"metadata\":{\"name\":\"db\","
	  "\"generation\":1},\"spec\":{\"replicas\":2},\"status\":{\"observedGeneration\":1,"
	  "\"replicas\":2,\"readyReplicas\":1,\"currentRevision\":\"db-1\","
	  "\"updateRevision\":\"db-1\"}}" },
	{ "statefulset revision rolling", P, "revision db-2",
	  "{\"apiVersion\":\"apps/v1\",\"kind\":\"StatefulSet\",\"metadata\":{\"name\":\"db\","
	  "\"generation\":2},\"spec\":{\"replicas\":2},\"status\":{\"observedGeneration\":2,"
	  "\"replicas\":2,\"readyReplicas\":2,\"updatedReplicas\":1,\"currentRevision\":\"db-1\","
	  "\"updateRevision\":\"db-2\"}}" },
	{ "statefulset partition reached", H, "partitioned",
	  "{\"apiVersion\":\"apps/v1\",\"kind\":\"StatefulSet\",\"metadata\":{\"name\":\"db\","
	  "\"generation\":2},\"spec\":{\"replicas\":3,\"updateStrategy\":{\"type\":"
	  "\"RollingUpdate\",\"rollingUpdate\":{\"partition\":2}}},\"status\":{"
	  "\"observedGeneration\":2,\"replicas\":3,\"readyReplicas\":3,\"updatedReplicas\":1,"
	  "\"currentRevision\":\"db-1\",\"updateRevision\":\"db-2\"}}" },
	{ "statefulset generation not observed", P, "not yet observed",
	  "{\"apiVersion\":\"apps/v1\",\"kind\":\"StatefulSet\",\"metadata\":{\"name\":\"db\","
	  "\"generation\":3},\"spec\":{\"replicas\":1},\"status\":{\"observedGeneration\":2,"
	  "\"readyReplicas\":1}}" },

	/* ---- DaemonSet ---- */
	{ "daemonset ready", H, NULL,
	  "{\"apiVersion\":\"apps/v1\",\"kind\":\"DaemonSet\",\"metadata\":{\"name\":\"agent\","
	  "\"generation\":1},\"status\":{\"observedGeneration\":1,\"desiredNumberScheduled\":3,"
	  "\"updatedNumberScheduled\":3,\"numberAvailable\":3}}" },
	{ "daemonset not updated", P, "2 of 3 updated pods scheduled",
	  "{\"apiVersion\":\"apps/v1\",\"kind\":\"DaemonSet\",\"metadata\":{\"name\":\"agent\","
	  "\"generation\":1},\"status\":{\"observedGeneration\":1,\"desiredNumberScheduled\":3,"
	  "\"updatedNumberScheduled\":2,\"numberAvailable\":3}}" },
	{ "daemonset not available", P, "available",
	  "{\"apiVersion\":\"apps/v1\",\"kind\":\"DaemonSet\",\"metadata\":{\"name\":\"agent\","
	  "\"generation\":1},\"status\":{\"observedGeneration\":1,\"desiredNumberScheduled\":3,"
	  "\"updatedNumberScheduled\":3,\"numberAvailable\":1}}" },

	/* ---- ReplicaSet ---- */
	{ "replicaset ready", H, NULL,
	  "{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\",\"metadata\":{\"name\":\"rs\"},"
	  "\"spec\":{\"replicas\":2},\"status\":{\"replicas\":2,\"readyReplicas\":2,"
	  "\"availableReplicas\":2}}" },
	{ "replicaset not ready", P, "0 of 2",
	  "{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\",\"metadata\":{\"name\":\"rs\"},"
	  "\"spec\":{\"replicas\":2},\"status\":{\"replicas\":2}}" },

	/* ---- Job ---- */
	{ "job complete", H, "complete",
	  "{\"apiVersion\":\"batch/v1\",\"kind\":\"Job\",\"metadata\":{\"name\":\"migrate\"},"
	  "\"status\":{\"succeeded\":1,\"conditions\":[{\"type\":\"Complete\",\"status\":\"True\"}]}}" },
	{ "job failed", D, "BackoffLimitExceeded",
	  "{\"apiVersion\":\"batch/v1\",\"kind\":\"Job\",\"metadata\":{\"name\":\"migrate\"},"
	  "\"status\":{\"failed\":6,\"conditions\":[{\"type\":\"Failed\",\"status\":\"True\","
	  "\"reason\":\"BackoffLimitExceeded\",\"message\":\"Job has reached the specified "
	  "backoff limit\"}]}}" },
	{ "job running", P, "1 active",
	  "{\"apiVersion\":\"batch/v1\",\"kind\":\"Job\",\"metadata\":{\"name\":\"migrate\"},"
	  "\"status\":{\"active\":1}}" },

	/* ---- Pod ---- */
	{ "pod ready", H, NULL,
	  "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"},\"status\":{"
	  "\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}" },
	{ "pod pending", P, "Pending",
	  "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"},\"status\":{"
	  "\"phase\":\"Pending\"}}" },
	{ "pod crashloop", D, "CrashLoopBackOff",
	  "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"},\"status\":{"
	  "\"phase\":\"Running\",\"containerStatuses\":[{\"name\":\"app\",\"state\":{\"waiting\":"
	  "{\"reason\":\"CrashLoopBackOff\"}}}]}}" },
	{ "pod failed", D, "failed",
	  "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"},\"status\":{"
	  "\"phase\":\"Failed\"}}" },
	{ "pod succeeded", H, NULL,
	  "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"},\"status\":{"
	  "\"phase\":\"Succeeded\"}}" },

	/* ---- Service ---- */
	{ "service clusterip", H, NULL,
	  "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"s\"},"
	  "\"spec\":{\"type\":\"ClusterIP\"}}" },
	{ "service lb without address", P, "load balancer",
	  "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"s\"},"
	  "\"spec\":{\"type\":\"LoadBalancer\"},\"status\":{\"loadBalancer\":{}}}" },
	{ "service lb with hostname", H, "elb.example",
	  "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"s\"},"
	  "\"spec\":{\"type\":\"LoadBalancer\"},\"status\":{\"loadBalancer\":{\"ingress\":"
	  "[{\"hostname\":\"elb.example\"}]}}}" },

	/* ---- PersistentVolumeClaim ---- */
	{ "pvc bound", H, NULL,
	  "{\"apiVersion\":\"v1\",\"kind\":\"PersistentVolumeClaim\",\"metadata\":{\"name\":"
	  "\"data\"},\"status\":{\"phase\":\"Bound\"}}" },
	{ "pvc pending", P, "Pending",
	  "{\"apiVersion\":\"v1\",\"kind\":\"PersistentVolumeClaim\",\"metadata\":{\"name\":"
	  "\"data\"},\"status\":{\"phase\":\"Pending\"}}" },

	/* ---- CustomResourceDefinition ---- */
	{ "crd established", H, NULL,
	  "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
	  "\"metadata\":{\"name\":\"widgets.example.com\"},\"status\":{\"conditions\":[{\"type\":"
	  "\"NamesAccepted\",\"status\":\"True\"},{\"type\":\"Established\",\"status\":\"True\"}]}}" },
	{ "crd not established", P, "not established",
	  "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
	  "\"metadata\":{\"name\":\"widgets.example.com\"},\"status\":{\"conditions\":[{\"type\":"
	  "\"Established\",\"status\":\"False\"}]}}" },
	{ "crd names rejected", D, "names not accepted",
	  "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
	  "\"metadata\":{\"name\":\"widgets.example.com\"},\"status\":{\"conditions\":[{\"type\":"
	  "\"NamesAccepted\",\"status\":\"False\",\"reason\":\"ListKindConflict\"}]}}" },

	/* ---- generic ---- */
	{ "custom stalled", D, "stalled: BadConfig",
	  "{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"w\"},"
	  "\"status\":{\"conditions\":[{\"type\":\"Stalled\",\"status\":\"True\",\"reason\":"
	  "\"BadConfig\",\"message\":\"no such size\"}]}}" },
	{ "custom reconciling", P, "reconciling",
	  "{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"w\"},"
	  "\"status\":{\"conditions\":[{\"type\":\"Reconciling\",\"status\":\"True\"}]}}" },
	{ "custom ready false", P, "not ready",
	  "{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"w\"},"
	  "\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"}]}}" },
	{ "custom ready true", H, "ready",
	  "{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"w\"},"
	  "\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}" },
	{ "custom generation not observed", P, "not yet observed",
	  "{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"w\","
	  "\"generation\":5},\"status\":{\"observedGeneration\":4}}" },
	{ "configmap exists", H, "exists",
	  "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"}}" },
	{ "terminating", P, "terminating",
	  "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\","
	  "\"deletionTimestamp\":\"2026-01-01T00:00:00Z\",\"finalizers\":[\"x\"]}}" },
	{ "stalled deployment", D, "stalled",
	  DEP("1", "{\"replicas\":1}", "{\"observedGeneration\":1,\"replicas\":1,"
	      "\"updatedReplicas\":1,\"availableReplicas\":1,\"conditions\":[{\"type\":\"Stalled\","
	      "\"status\":\"True\"}]}") },
	{ "not an object", U, NULL, "[1,2]" },
	{ "no kind", U, NULL, "{\"metadata\":{}}" },
};

static void test_fixtures(void **state)
{
	int failures = 0;

	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		const struct fx *f = &fixtures[i];
		json_error_t jerr;
		json_t *o = json_loads(f->json, 0, &jerr);
		char *msg = NULL;
		enum sw_kube_health h;

		if (!o) {
			fprintf(stderr, "%s: bad fixture JSON: %s\n", f->name, jerr.text);
			failures++;
			continue;
		}
		h = sw_kube_health(o, &msg);
		if (h != f->want || (f->msg_has && !strstr(msg, f->msg_has))) {
			fprintf(stderr, "%s: got %s \"%s\", want %s%s%s\n", f->name,
				sw_kube_health_name(h), msg, sw_kube_health_name(f->want),
				f->msg_has ? " with " : "", f->msg_has ? f->msg_has : "");
			failures++;
		}
		free(msg);
		/* NULL message is allowed. */
		assert_int_equal(sw_kube_health(o, NULL), h);
		json_decref(o);
	}
	assert_int_equal(failures, 0);
}

static void test_null(void **state)
{
	char *msg = NULL;
	assert_int_equal(sw_kube_health(NULL, &msg), SW_KUBE_UNKNOWN);
	assert_non_null(msg);
	free(msg);
	assert_string_equal(sw_kube_health_name(SW_KUBE_DEGRADED), "degraded");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_null),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
