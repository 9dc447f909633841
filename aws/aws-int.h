/*
 * aws-int.h - what the files of aws/ share: the blocking requests of
 * aws/call.c.
 */
#ifndef SW_AWS_INT_H
#define SW_AWS_INT_H

#include "aws/aws.h"

/* The largest answer read (STS, IMDS and EKS answers are a few kB). */
#define AWS_MAX_ANSWER (1024 * 1024)

struct aws_answer {
	long status;
	struct sw_buf body;
};

/*
 * `method` `url` with "Name: value" `headers` (NULL-terminated) and `body`
 * (NULL: none), waiting up to `timeout_ms`. 0 with a->status whatever it
 * is, or SW_ERR when no answer came (the message names the URL without its
 * query). Release `a` either way.
 */
int aws_request(struct aws_answer *a, const char *method, const char *url,
		const char *const *headers, const char *body, long timeout_ms);
void aws_answer_release(struct aws_answer *a);

/* The "host[:port]" (free it) and the path ("/" when none) of a base URL;
 * returns the length of its "scheme://host[:port]". */
int aws_split_url(const char *url, char **host, const char **path);

/*
 * One request to an AWS service, signed with `cred` (NULL: sent unsigned,
 * as STS AssumeRoleWithWebIdentity is): `service` is the signing name and,
 * unless `endpoint` says otherwise, the AWS_ENDPOINT_URL_<ID> and default
 * host name (sw_aws_endpoint). 0 for a 2xx answer; an AWS refusal is an
 * error with AWS's code and message (aws_refused), the answer kept in `a`
 * either way (release it).
 */
struct aws_call {
	const char *service;      /* "sts", "eks", "pricing", "ce" */
	const char *endpoint;     /* sw_aws_endpoint's name when not `service` */
	const char *region;       /* to sign for and to build the host name */
	const char *method;
	const char *path;         /* after the endpoint's own path; NULL: "/" */
	const char *query;        /* NULL: none */
	const char *content_type; /* sent and signed; NULL: none */
	const char *target;       /* X-Amz-Target (JSON protocols); NULL: none */
	const char *accept;       /* a whole header line; NULL: JSON */
	const char *body;         /* NULL: none */
	long timeout_ms;
	int64_t now_ms;           /* 0: the clock's */
};
int aws_call(struct aws_answer *a, const struct aws_call *c, const struct sw_aws_cred *cred);

/*
 * A non-2xx answer as an error in the slot, returned: SW_EAGAIN for
 * throttling (429, Throttling*, TooManyRequests), SW_ENOTFOUND for a 404,
 * SW_EINVALID for other 4xx (AccessDenied names the action AWS wanted),
 * SW_ERR else. aws_error_text is its message (free it).
 */
int aws_refused(const struct aws_answer *a);
char *aws_error_text(const struct aws_answer *a);

#endif
