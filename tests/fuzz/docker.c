/*
 * docker.c - fuzz target: the Docker attach/logs stream demultiplexer
 * (sw_docker_demux, runners/docker.c through backend-int.h), which turns a
 * container's framed output into stdout and stderr. A step's output is
 * whatever the pipeline's commands print, and the frames come from Podman
 * or Docker. The input is the stream; its first byte picks how it is cut
 * into reads (a frame header or payload split anywhere). Checked against a
 * whole-buffer reading of the same frames: the same bytes on the same
 * streams, in order, and the same cut-off state at the end.
 */
#include "fuzz.h"
#include "runners/backend-int.h"

struct out {
	unsigned char *p;
	size_t n, cap;
	const unsigned char *want;   /* the reference output */
	size_t nwant;
};

/* Each payload byte is recorded with its stream (byte, stream) pairs. */
static void got(int stream, const char *p, size_t n, void *arg)
{
	struct out *o = arg;
	if (o->n + 2 * n > o->cap)
		abort();
	for (size_t i = 0; i < n; i++) {
		o->p[o->n++] = (unsigned char)p[i];
		o->p[o->n++] = (unsigned char)stream;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sw_docker_demux d = { .hdr_len = 0 };
	struct out o = { .n = 0 }, ref = { .n = 0 };
	size_t cut, i, left = 0, tail = 0;
	int stream = 0;

	fuzz_init();
	if (!size)
		return 0;
	cut = (size_t)data[0] % 17 + 1;
	data++;
	size--;
	o.cap = ref.cap = 2 * size + 2;
	o.p = malloc(o.cap);
	ref.p = malloc(ref.cap);
	if (!o.p || !ref.p)
		abort();

	/* The reference: frames read from the whole buffer. */
	for (i = 0; i < size;) {
		if (size - i < 8) {
			tail = size - i;   /* a header cut short by the end */
			break;
		}
		stream = data[i];
		left = (size_t)data[i + 4] << 24 | (size_t)data[i + 5] << 16 |
		       (size_t)data[i + 6] << 8 | data[i + 7];
		i += 8;
		size_t take = left < size - i ? left : size - i;
		got(stream, (const char *)data + i, take, &ref);
		i += take;
		left -= take;
	}
	/* The demultiplexer, fed in reads of `cut` bytes (the last may be short). */
	for (i = 0; i < size; i += cut)
		sw_docker_demux(&d, (const char *)data + i, size - i < cut ? size - i : cut, got, &o);

	if (o.n != ref.n || memcmp(o.p, ref.p, o.n) != 0) {
		fprintf(stderr, "fuzz docker: demuxed %zu bytes, expected %zu\n", o.n / 2,
			ref.n / 2);
		abort();
	}
	if (d.left != left || d.hdr_len != tail) {
		fprintf(stderr, "fuzz docker: at the end %u frame bytes and %zu header bytes, "
			"expected %zu and %zu\n", d.left, d.hdr_len, left, tail);
		abort();
	}
	free(o.p);
	free(ref.p);
	return 0;
}
