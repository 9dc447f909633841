/*
 * backend.h - private to runners/: what a backend provides behind the
 * public interface of runner.h.
 */
#ifndef SW_RUNNERS_BACKEND_H
#define SW_RUNNERS_BACKEND_H

#include "runners/runner.h"

struct sw_runner_ops {
	const char *kind;
	int (*start)(struct sw_runner *r, const struct sw_runner_spec *s,
		     struct sw_runner_step **out);
	void (*cancel)(struct sw_runner_step *s);
	void (*free)(struct sw_runner *r);
};

/* Each backend's runner struct starts with this. */
struct sw_runner {
	const struct sw_runner_ops *ops;
	size_t active;       /* steps started and not yet reported */
};

/* Each backend's step struct starts with this. */
struct sw_runner_step {
	struct sw_runner *runner;
};

/*
 * The Docker attach/logs stream of a container without a TTY: frames of an
 * 8-byte header (stream 0 stdin, 1 stdout, 2 stderr; 3 bytes unused; a
 * 32-bit big-endian size) and that many bytes of output. The state carries
 * a header or frame cut between reads; zero it before the first.
 */
struct sw_docker_demux {
	unsigned char hdr[8];
	size_t hdr_len;      /* header bytes read so far */
	int stream;          /* the current frame's stream byte */
	uint32_t left;       /* bytes of the current frame still to come */
};

/* Called with each piece of a frame's payload as it arrives (n > 0). */
typedef void (*sw_docker_demux_fn)(int stream, const char *p, size_t n, void *arg);

/* Feed p[0..n) of the stream; `fn` gets the payload, never a header. */
void sw_docker_demux(struct sw_docker_demux *d, const char *p, size_t n,
		     sw_docker_demux_fn fn, void *arg);

/* The commands as one script for `sh -e -c`: joined with newlines. Free it. */
char *sw_runner_script(const char *const *commands);

/* Copy a NULL-terminated string array (NULL stays NULL). */

#endif
