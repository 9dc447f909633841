/*
 * docker-int.h - private to runners/: what the docker backend's two files
 * share. docker.c runs steps (one container each); docker-api.c holds the
 * requests to the engine and what the runner does besides steps (image
 * import, leftovers).
 */
#ifndef SW_RUNNERS_DOCKER_INT_H
#define SW_RUNNERS_DOCKER_INT_H

#include <stddef.h>

#include "lib/buf.h"
#include "lib/http.h"
#include "runners/backend-int.h"

#define CONTROL_TIMEOUT_MS 60000L    /* inspect, create, start, kill, remove */
#define PULL_TIMEOUT_MS    600000L
#define LOG_DRAIN_MS       10000L    /* after wait, how long the stream may trail */
#define API_MAX_RESPONSE   (4u * 1024 * 1024)

struct docker_runner {
	struct sw_runner base;
	struct event_base *evbase;
	struct sw_http *http;
	char *socket;
	char *prefix;                 /* "http://docker/v1.41" */
	long pull_timeout_ms;
	long settle_ms;               /* see sw_docker_opts */
	struct docker_step *steps;
};

extern const struct sw_runner_ops docker_ops;

/* Start a request to the engine: `path` below /v1.41, a body of `len`
 * bytes of `ctype` (NULL: none), answers of at most API_MAX_RESPONSE. */
int docker_request(struct docker_runner *dr, const char *method, const char *path,
		   const char *ctype, const void *body, size_t len, long timeout_ms,
		   sw_http_data_fn on_data, sw_http_done_fn on_done, void *arg,
		   struct sw_http_call **call);

/* A long-lived stream (attach): no overall timeout, output through on_data. */
int docker_request_stream(struct docker_runner *dr, const char *method, const char *path,
			  sw_http_response_fn on_response, sw_http_data_fn on_data,
			  sw_http_done_fn on_done, void *arg, struct sw_http_call **call);

/* The engine's error message from a JSON body {"message": ...}, else the
 * body itself (cut), into `out`. */
void docker_api_message(struct sw_buf *out, const struct sw_http_result *r);

/* Image references (and container ids): what a registry allows, nothing a
 * URL could misread. */
int docker_valid_image(const char *s);

/* The error of a pull/import progress stream: each line a JSON object,
 * failure as {"error": "..."} even with status 200. NULL when none; free it. */
char *docker_stream_error(const struct sw_buf *body);

/*
 * The label slipway.instance of this process's containers: tells them from
 * an earlier daemon's (leftovers). One per process, not per runner: the
 * step runner and the Terraform runner must not sweep each other's.
 */
const char *docker_instance_id(void);

#endif
