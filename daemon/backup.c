/*
 * backup.c - POST /api/v1/backup: the whole database as one consistent
 * SQLite file, streamed to the client (docs/api.md, docs/operations.md).
 *
 * A pool worker writes the copy with SQLite's online backup API
 * (sw_store_backup: one read snapshot, no writer blocked) into the data
 * directory; the loop then unlinks the file (the open descriptor keeps it)
 * and sends it in pieces of BACKUP_PIECE bytes, the next one when the last
 * has left, so a database of any size costs one piece of memory. The reply
 * carries Content-Length: a client that got fewer bytes knows.
 *
 * libevent: as in sse.c, when the client goes away the close callback runs
 * after evhttp detached the unfinished request (req->evcon == NULL), and
 * evhttp_send_reply_end() frees such a request.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/auth-int.h"
#include "daemon/daemon.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/pool.h"
#include "storage/store.h"

#define BACKUP_PIECE (256 * 1024)
#define BACKUP_TIMEOUT_S 600

struct backup {
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	char *data_dir, *path;
	int rc;
	char *err;
	int64_t bytes, sent;
	int fd;
	int gone;      /* the client went away */
	int64_t t0;
};

static void backup_free(struct backup *b)
{
	if (b->fd >= 0)
		close(b->fd);
	free(b->data_dir);
	free(b->path);
	free(b->err);
	free(b);
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
	struct backup *b = arg;
	log_info("backup.aborted", "sent=%lld bytes=%lld", (long long)b->sent,
		 (long long)b->bytes);
	b->gone = 1;
	if (b->fd >= 0) {
		/* streaming: nothing else will touch it */
		if (!evhttp_request_get_connection(b->req))
			evhttp_send_reply_end(b->req);
		backup_free(b);
	}
	/* else the worker still writes the copy; backup_done() cleans up */
}

static void send_piece(struct evhttp_connection *evcon, void *arg)
{
	struct backup *b = arg;
	struct evbuffer *out = evbuffer_new();
	int n = evbuffer_read(out, b->fd, BACKUP_PIECE);

	if (n > 0) {
		b->sent += n;
		evhttp_send_reply_chunk_with_cb(b->req, out, send_piece, b);
		evbuffer_free(out);
		return;
	}
	evbuffer_free(out);
	if (n < 0 || b->sent != b->bytes)
		log_error("backup.short", "sent=%lld bytes=%lld err=%s", (long long)b->sent,
			  (long long)b->bytes, sw_q(n < 0 ? strerror(errno) : "file shrank"));
	else
		log_info("backup.sent", "bytes=%lld ms=%lld", (long long)b->bytes,
			 (long long)(sw_mono_ms() - b->t0));
	evhttp_connection_set_closecb(b->evcon, NULL, NULL);
	evhttp_send_reply_end(b->req);
	backup_free(b);
}

static void backup_work(void *arg)
{
	struct backup *b = arg;
	b->rc = sw_store_backup(b->data_dir, b->path, &b->bytes);
	if (b->rc < 0)
		b->err = sw_strdup(sw_error_last());
}

static void backup_done(void *arg)
{
	struct backup *b = arg;

	if (b->rc == 0) {
		b->fd = open(b->path, O_RDONLY | O_CLOEXEC);
		if (b->fd < 0) {
			b->rc = sw_error_errno("open backup %s", b->path);
			b->err = sw_strdup(sw_error_last());
		}
		unlink(b->path);   /* the descriptor keeps it until sent */
	}
	if (b->gone) {
		evhttp_send_reply_end(b->req);   /* detached: frees it */
		backup_free(b);
		return;
	}
	if (b->rc < 0) {
		log_error("backup.failed", "err=%s", sw_q(b->err));
		evhttp_connection_set_closecb(b->evcon, NULL, NULL);
		sw_reply_error(b->req, 500, "backup failed: %s", b->err);
		backup_free(b);
		return;
	}
	struct evkeyvalq *h = evhttp_request_get_output_headers(b->req);
	char len[32];
	snprintf(len, sizeof(len), "%lld", (long long)b->bytes);
	evhttp_add_header(h, "Content-Type", "application/vnd.sqlite3");
	evhttp_add_header(h, "Content-Disposition", "attachment; filename=\"slipway-backup.db\"");
	evhttp_add_header(h, "Content-Length", len);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply_start(b->req, 200, "OK");
	send_piece(b->evcon, b);
}

void sw_backup_post(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	static unsigned seq;
	struct backup *b;

	if (sw_auth_check_write(d, req) < 0)
		return;
	b = sw_calloc(1, sizeof(*b));
	b->req = req;
	b->evcon = evhttp_request_get_connection(req);
	b->fd = -1;
	b->t0 = sw_mono_ms();
	b->data_dir = sw_strdup(d->cfg->data_dir);
	b->path = sw_asprintf("%s/backup-%ld-%u.db", d->cfg->data_dir, (long)getpid(), ++seq);
	if (sw_pool_submit(d->pool, backup_work, backup_done, b) < 0) {
		sw_reply_error(req, 503, "backup: the server is stopping");
		backup_free(b);
		return;
	}
	/* writing and sending a big file takes longer than the idle timeout */
	evhttp_connection_set_timeout(b->evcon, BACKUP_TIMEOUT_S);
	evhttp_connection_set_closecb(b->evcon, on_close, b);
	log_info("backup.start", "path=%s", sw_q(b->path));
}
