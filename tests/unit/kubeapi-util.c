/*
 * kubeapi-util.c - the test API server for unit tests (see kubeapi-util.h).
 */
#include "tests/unit/kubeapi-util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int sw_test_kubeapi_start(struct sw_test_kubeapi *s, const char *bin, int port,
			  int ready_delay_ms, const char *const *extra)
{
	const char *argv[32];
	char listen[64], delay[16], line[256];
	int p[2], n = 0;
	FILE *in;

	memset(s, 0, sizeof(*s));
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(delay, sizeof(delay), "%d", ready_delay_ms);
	argv[n++] = bin;
	argv[n++] = "--listen";
	argv[n++] = listen;
	argv[n++] = "--ready-delay-ms";
	argv[n++] = delay;
	for (int i = 0; extra && extra[i] && n < 30; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	if (pipe(p) < 0)
		return -1;
	s->pid = fork();
	if (s->pid < 0)
		return -1;
	if (s->pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	in = fdopen(dup(p[0]), "r");
	s->out_fd = p[0];
	while (in && fgets(line, sizeof(line), in)) {
		char *u = strstr(line, "listening on ");
		if (u) {
			u += strlen("listening on ");
			u[strcspn(u, "\r\n")] = '\0';
			snprintf(s->url, sizeof(s->url), "%s", u);
			break;
		}
	}
	if (in)
		fclose(in);
	if (!s->url[0])
		return -1;
	s->port = atoi(strrchr(s->url, ':') + 1);
	return 0;
}

void sw_test_kubeapi_stop(struct sw_test_kubeapi *s)
{
	int st;
	if (s->pid <= 0)
		return;
	kill(s->pid, SIGTERM);
	waitpid(s->pid, &st, 0);
	close(s->out_fd);
	s->pid = 0;
}
