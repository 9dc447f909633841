/*
 * kubeapi-util.h - start and stop the test Kubernetes API server
 * (build/tests/kubeapi) from unit tests.
 */
#ifndef SW_TEST_KUBEAPI_UTIL_H
#define SW_TEST_KUBEAPI_UTIL_H

#include <sys/types.h>

struct sw_test_kubeapi {
	pid_t pid;
	int out_fd;        /* its stdout, kept open until stop */
	char url[128];     /* "http://127.0.0.1:PORT" */
	int port;
};

/*
 * Start `bin` on 127.0.0.1:`port` (0 = any free port) with
 * --ready-delay-ms `ready_delay_ms` and the NULL-terminated `extra`
 * arguments; returns once it says where it listens (url, port filled).
 * Returns 0, or -1 when it exited without saying so.
 */
int sw_test_kubeapi_start(struct sw_test_kubeapi *s, const char *bin, int port,
			  int ready_delay_ms, const char *const *extra);

/* SIGTERM, wait, close. A stopped or never-started server is a no-op. */
void sw_test_kubeapi_stop(struct sw_test_kubeapi *s);

#endif
