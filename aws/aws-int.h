/*
 * aws-int.h - what the files of aws/ share: one blocking request.
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

#endif
