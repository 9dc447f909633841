/*
 * render.c - desired state from a checkout: walk the manifest paths, read
 * YAML and JSON files, run kustomize and helm under a time limit, and
 * gather every object with the place it came from (see manifests.h,
 * "Rendering desired state").
 *
 * Runs on a worker thread: it blocks on files and on its children (poll()
 * with a deadline). Children are spawned with posix_spawn into their own
 * process group, which is killed when the time runs out; they are reaped
 * by pid, never by waitpid(-1), so lib/proc's children are left alone.
 */
#include "manifests/manifests.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/utf8.h"
#include "lib/yaml.h"

extern char **environ;

#define DEF_TIMEOUT_MS 60000
#define DEF_MAX_FILE ((size_t)16 << 20)
#define DEF_MAX_OUTPUT ((size_t)64 << 20)
#define DEF_MAX_OBJECTS 50000
#define DEF_MAX_ERRORS 50
#define MAX_STDERR 16384       /* bytes of a tool's stderr kept for the message */
#define MAX_WALK_DEPTH 64      /* directory nesting under one path */
#define EXIT_GRACE_MS 1000     /* wait for pipes after the tool exited */

enum entry_type { ENT_FILE, ENT_KUSTOMIZE, ENT_HELM };

struct entry {
	char *rel;             /* relative to the checkout; "" is the checkout itself */
	enum entry_type type;
};

struct entries {
	struct entry *v;
	size_t n, cap;
};

struct render {
	const char *root;
	char *root_real;           /* realpath(root), for the "inside the checkout" check */
	struct sw_render_opts o;   /* defaults filled in */
	struct sw_objset *set;
	struct sw_buf errors;      /* problems, one per line */
	size_t nerrors;
	int stop;                  /* too many problems or a limit reached */
	char **seen;               /* "k:DIR", "t:DIR": kustomizations and chart trees checked */
	size_t nseen;
};

/* --- problems ----------------------------------------------------------- */

/*
 * Record one problem. Multi-line text (a tool's stderr) is indented after
 * its first line so that each problem still starts a line of its own.
 */
static void add_error(struct render *r, const char *text)
{
	if (r->stop)
		return;
	if (r->errors.len)
		sw_buf_addch(&r->errors, '\n');
	for (const char *p = text; *p; p++) {
		if (*p == '\n') {
			if (p[1])
				sw_buf_adds(&r->errors, "\n    ");
		} else {
			sw_buf_addch(&r->errors, *p);
		}
	}
	if (++r->nerrors >= r->o.max_errors) {
		sw_buf_addf(&r->errors, "\nstopped after %zu problems", r->nerrors);
		r->stop = 1;
	}
}

static void add_errorf(struct render *r, const char *fmt, ...) SW_PRINTF(2, 3);

static void add_errorf(struct render *r, const char *fmt, ...)
{
	struct sw_buf b = SW_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	sw_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	add_error(r, b.ptr);
	sw_buf_release(&b);
}

/* A fatal limit: recorded, and nothing more is read. */
static void add_fatal(struct render *r, const char *text)
{
	add_error(r, text);
	r->stop = 1;
}

/* --- paths -------------------------------------------------------------- */

static char *join(const char *dir, const char *name)
{
	return *dir ? sw_asprintf("%s/%s", dir, name) : sw_strdup(name);
}

static char *abs_of(const struct render *r, const char *rel)
{
	return *rel ? sw_asprintf("%s/%s", r->root, rel) : sw_strdup(r->root);
}

/* 1 when `real` (a resolved path) is the checkout or under it. */
static int real_inside(const struct render *r, const char *real)
{
	size_t n = strlen(r->root_real);
	return !strcmp(r->root_real, "/") ||
	       (!strncmp(real, r->root_real, n) && (real[n] == '/' || real[n] == '\0'));
}

/* 1 when `abs` resolves to a place inside the checkout, 0 when outside, <0 on error. */
static int inside_root(const struct render *r, const char *abs)
{
	char *real = realpath(abs, NULL);
	int in;

	if (!real)
		return -1;
	in = real_inside(r, real);
	free(real);
	return in;
}

/* `path` (under the checkout's real path) relative to the checkout, for messages. */
static const char *rel_of(const struct render *r, const char *path)
{
	size_t n = strlen(r->root_real);
	if (!strcmp(r->root_real, "/"))
		return path + 1;
	return path[n] == '/' ? path + n + 1 : path + n;
}

static int has_ext(const char *name)
{
	const char *dot = strrchr(name, '.');
	return dot && (!strcmp(dot, ".yaml") || !strcmp(dot, ".yml") || !strcmp(dot, ".json"));
}

static int is_regular(const char *dir, const char *name)
{
	struct stat st;
	char *p = sw_asprintf("%s/%s", dir, name);
	int ok = stat(p, &st) == 0 && S_ISREG(st.st_mode);
	free(p);
	return ok;
}

/* What a directory is rendered with: kustomize, helm, or its files (-1). */
static int dir_kind(const char *abs)
{
	if (is_regular(abs, "kustomization.yaml") || is_regular(abs, "kustomization.yml") ||
	    is_regular(abs, "Kustomization"))
		return ENT_KUSTOMIZE;
	if (is_regular(abs, "Chart.yaml"))
		return ENT_HELM;
	return -1;
}

static void entries_add(struct entries *e, char *rel, enum entry_type t)
{
	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 32;
		e->v = sw_realloc(e->v, e->cap * sizeof(*e->v));
	}
	e->v[e->n].rel = rel;
	e->v[e->n].type = t;
	e->n++;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->rel, ((const struct entry *)b)->rel);
}

/* Collect what is under directory `rel` (not itself a kustomization or chart). */
static void walk(struct render *r, const char *rel, int depth, struct entries *out)
{
	char *abs = abs_of(r, rel);
	DIR *d;
	struct dirent *de;

	if (depth > MAX_WALK_DEPTH) {
		add_errorf(r, "%s: directories nested deeper than %d levels", rel, MAX_WALK_DEPTH);
		goto done;
	}
	if (!(d = opendir(abs))) {
		add_errorf(r, "%s: %s", *rel ? rel : ".", strerror(errno));
		goto done;
	}
	while (!r->stop && (de = readdir(d))) {
		struct stat st;
		char *crel, *cabs;
		int k;

		if (de->d_name[0] == '.')
			continue;   /* ., .., .git, .github: not manifests */
		crel = join(rel, de->d_name);
		cabs = abs_of(r, crel);
		if (lstat(cabs, &st) < 0) {
			add_errorf(r, "%s: %s", crel, strerror(errno));
		} else if (S_ISLNK(st.st_mode) && has_ext(de->d_name)) {
			/* only a link that would be read matters; links to directories are not followed */
			int in = inside_root(r, cabs);
			if (in < 0)
				add_errorf(r, "%s: symbolic link: %s", crel, strerror(errno));
			else if (!in)
				add_errorf(r, "%s: symbolic link leads outside the checkout", crel);
			else if (stat(cabs, &st) == 0 && S_ISREG(st.st_mode)) {
				entries_add(out, crel, ENT_FILE);
				crel = NULL;
			}
		} else if (S_ISDIR(st.st_mode)) {
			if ((k = dir_kind(cabs)) >= 0) {
				entries_add(out, crel, (enum entry_type)k);
				crel = NULL;
			} else {
				walk(r, crel, depth + 1, out);
			}
		} else if (S_ISREG(st.st_mode) && has_ext(de->d_name)) {
			entries_add(out, crel, ENT_FILE);
			crel = NULL;
		}
		free(crel);
		free(cabs);
	}
	closedir(d);
done:
	free(abs);
}

/* "./a/b/" -> "a/b"; "." -> "". NULL for a path that may not be used. */
static char *normalize(const char *path)
{
	char *p, *s;
	size_t n;

	if (path[0] == '/')
		return NULL;
	s = sw_strdup(path);
	p = s;
	while (p[0] == '.' && (p[1] == '/' || p[1] == '\0')) {
		p += p[1] ? 2 : 1;
		while (*p == '/')
			p++;
	}
	n = strlen(p);
	while (n > 0 && p[n - 1] == '/')
		p[--n] = '\0';
	memmove(s, p, n + 1);
	/* refuse ".." components outright; links are checked with realpath */
	for (char *c = s; *c;) {
		size_t l = strcspn(c, "/");
		if (l == 2 && c[0] == '.' && c[1] == '.') {
			free(s);
			return NULL;
		}
		c += l;
		while (*c == '/')
			c++;
	}
	return s;
}

/* --- reading files -------------------------------------------------------- */

static int read_manifest(struct render *r, const char *rel, struct sw_buf *b)
{
	char *abs = abs_of(r, rel);
	char tmp[65536];
	struct stat st;
	ssize_t k;
	int fd, rc = 0;

	/* O_NONBLOCK: a FIFO named x.yaml must not hang the worker */
	fd = open(abs, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	free(abs);
	if (fd < 0)
		return sw_error_errno("%s", rel);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return sw_error_setc(SW_EINVALID, "%s: not a regular file", rel);
	}
	if ((size_t)st.st_size > r->o.max_file_bytes) {
		close(fd);
		return sw_error_setc(SW_EINVALID, "%s: file is %lld bytes, more than the limit of %zu",
				     rel, (long long)st.st_size, r->o.max_file_bytes);
	}
	while ((k = read(fd, tmp, sizeof(tmp))) != 0) {
		if (k < 0) {
			if (errno == EINTR)
				continue;
			rc = sw_error_errno("read %s", rel);
			break;
		}
		if (b->len + (size_t)k > r->o.max_file_bytes) {   /* grew while we read */
			rc = sw_error_setc(SW_EINVALID, "%s: file is more than the limit of %zu bytes",
					   rel, r->o.max_file_bytes);
			break;
		}
		sw_buf_add(b, tmp, (size_t)k);
	}
	close(fd);
	return rc;
}

/* An integral real (1.0) becomes an integer, as kubectl's round trip through Go makes it. */
static json_t *integral_reals(json_t *j)
{
	const char *k;
	json_t *v;
	void *it;
	size_t i;

	if (json_is_real(j)) {
		double d = json_real_value(j);
		/* the range first: converting a real out of it is undefined */
		if (d > -9.2e18 && d < 9.2e18 && d == (double)(json_int_t)d) {
			json_decref(j);
			return json_integer((json_int_t)d);
		}
	} else if (json_is_object(j)) {
		json_object_foreach_safe(j, it, k, v)
			json_object_set_new(j, k, integral_reals(json_incref(v)));
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v)
			json_array_set_new(j, i, integral_reals(json_incref(v)));
	}
	return j;
}

/* --- documents into objects ------------------------------------------------ */

static int kind_is_list(const char *kind)
{
	size_t n = strlen(kind);
	return n >= 4 && !strcmp(kind + n - 4, "List");
}

static void add_object(struct render *r, json_t *obj, const char *source, int line, int col,
		       int rendered)
{
	if (r->stop) {
		json_decref(obj);
		return;
	}
	if (r->set->n >= r->o.max_objects) {
		struct sw_buf b = SW_BUF_INIT;
		json_decref(obj);
		sw_buf_addf(&b, "%s:%d:%d: more than %zu objects; stopped reading", source, line,
			    col, r->o.max_objects);
		add_fatal(r, b.ptr);
		sw_buf_release(&b);
		return;
	}
	if (sw_objset_add(r->set, obj, source, line, col, rendered) < 0)
		add_error(r, sw_error_last());
}

/*
 * One document: skip it when empty, expand a List into its items (each
 * located at its own node when the YAML tree is at hand; a List in a List
 * too), else add it.
 */
static void add_document(struct render *r, json_t *doc, const struct sw_yaml_node *root,
			 const char *source, int line, int col, int rendered, int depth)
{
	json_t *items, *kind;

	if (json_is_null(doc)) {
		json_decref(doc);
		return;
	}
	kind = json_object_get(doc, "kind");
	items = json_object_get(doc, "items");
	if (json_is_string(kind) && kind_is_list(json_string_value(kind)) && json_is_array(items) &&
	    depth < 8) {
		const struct sw_yaml_node *yitems = sw_yaml_get(root, "items");
		json_t *it;
		size_t i;

		if (yitems && (yitems->type != SW_YAML_SEQ || yitems->n != json_array_size(items)))
			yitems = NULL;
		json_array_foreach(items, i, it) {
			int l = yitems ? yitems->items[i]->mark.line : line;
			int c = yitems ? yitems->items[i]->mark.col : col;
			if (json_is_null(it))
				continue;
			add_document(r, json_incref(it), yitems ? yitems->items[i] : NULL, source, l, c,
				     rendered, depth + 1);
		}
		json_decref(doc);
		return;
	}
	add_object(r, doc, source, line, col, rendered);
}

/* A stream of JSON values (kubectl reads a file starting with '{' this way). */
static void parse_json_stream(struct render *r, const char *source, const char *data, size_t len,
			      int rendered)
{
	size_t off = 0;

	while (!r->stop) {
		json_error_t jerr;
		json_t *doc;
		size_t zl, zc;
		int line, col;

		while (off < len && strchr(" \t\r\n", data[off]))
			off++;
		if (off >= len)
			break;
		sw_utf8_position(data, off, &zl, &zc);
		line = (int)zl;
		col = (int)zc;
		doc = json_loadb(data + off, len - off,
				 JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
		if (!doc) {
			/* jansson counts from where this value started */
			int el = line + jerr.line - 1;
			int ec = jerr.line <= 1 ? col + jerr.column - 1 : jerr.column;
			add_errorf(r, "%s:%d:%d: %s", source, el, ec > 0 ? ec : 1, jerr.text);
			return;
		}
		off += (size_t)jerr.position;
		add_document(r, integral_reals(doc), NULL, source, line, col, rendered, 0);
	}
}

static void parse_yaml_stream(struct render *r, const char *source, const char *data, size_t len,
			      int rendered)
{
	struct sw_yaml_stream *s;

	if (sw_yaml_parse(&s, source, data, len) < 0) {
		add_error(r, sw_error_last());
		return;
	}
	for (size_t i = 0; i < s->ndocs && !r->stop; i++) {
		json_t *doc;
		if (sw_yaml_to_json(&doc, s, s->docs[i].root, 0) < 0) {
			add_error(r, sw_error_last());
			continue;
		}
		/* located at its content (the line after a `---`), where an editor should jump */
		const struct sw_yaml_node *root = s->docs[i].root;
		add_document(r, doc, root, source, root ? root->mark.line : s->docs[i].start.line,
			     root ? root->mark.col : s->docs[i].start.col, rendered, 0);
	}
	sw_yaml_free(s);
}

static void parse_stream(struct render *r, const char *source, const char *data, size_t len,
			 int rendered)
{
	size_t i = 0;
	/* skip a UTF-8 BOM and blanks, then decide as kubectl's YAMLOrJSONDecoder does */
	if (len >= 3 && !memcmp(data, "\xef\xbb\xbf", 3))
		i = 3;
	while (i < len && strchr(" \t\r\n", data[i]))
		i++;
	if (i < len && data[i] == '{')
		parse_json_stream(r, source, data, len, rendered);
	else
		parse_yaml_stream(r, source, data, len, rendered);
}

static void render_file(struct render *r, const char *rel)
{
	struct sw_buf b = SW_BUF_INIT;

	if (read_manifest(r, rel, &b) < 0)
		add_error(r, sw_error_last());
	else
		parse_stream(r, rel, b.ptr, b.len, 0);
	sw_buf_release(&b);
}

/* --- what kustomize and helm would read ------------------------------------- */

/*
 * Both tools read files of their own choosing, so before either runs every
 * place it would read is resolved (links followed) and must lie inside the
 * checkout. kustomize's own root-only loader already keeps a kustomization's
 * files inside its directory, but a base, component or generator directory
 * starts a new root anywhere (`resources: [../../outside/base]`), and a remote
 * one is fetched: here each path a kustomization names is checked, and each
 * directory it names is checked as a kustomization in turn.
 */

/*
 * 1 the first time `dir` is checked as `what` ('k' kustomization, 't' tree)
 * within the depth limit, else 0 (a loop of links ends here).
 */
static int enter(struct render *r, char what, const char *dir, int depth)
{
	if (r->stop)
		return 0;
	for (size_t i = 0; i < r->nseen; i++)
		if (r->seen[i][0] == what && !strcmp(r->seen[i] + 2, dir))
			return 0;
	if (depth > MAX_WALK_DEPTH) {
		add_errorf(r, "%s: nested deeper than %d levels", rel_of(r, dir), MAX_WALK_DEPTH);
		return 0;
	}
	r->seen = sw_realloc(r->seen, (r->nseen + 1) * sizeof(*r->seen));
	r->seen[r->nseen++] = sw_asprintf("%c:%s", what, dir);
	return 1;
}

/* A kustomization being checked: its directory (real path) and file (for messages). */
struct kz {
	struct render *r;
	const char *dir;
	const char *file;
	int depth;
};

enum ref_kind {
	REF_FILE,      /* a file (or a directory kustomize reads as a whole) */
	REF_ANY,       /* a file, or a directory holding a kustomization */
	REF_INLINE,    /* REF_ANY, or YAML written in place (several lines, or "{...}") */
};

static void check_kustomization(struct render *r, const char *dir, int depth);

/* One path the kustomization names, as `field` ("resources[0]"). */
static void check_ref(const struct kz *k, const char *field, const char *ref, enum ref_kind kind)
{
	struct render *r = k->r;
	char *abs, *real;
	struct stat st;

	if (!*ref || (kind == REF_INLINE && (strchr(ref, '\n') || ref[0] == '{')))
		return;
	abs = ref[0] == '/' ? sw_strdup(ref) : sw_asprintf("%s/%s", k->dir, ref);
	real = realpath(abs, NULL);
	if (!real && (errno == ENOENT || errno == ENOTDIR))
		add_errorf(r, "%s: %s: '%s' is not in the checkout", k->file, field, ref);
	else if (!real)
		add_errorf(r, "%s: %s: '%s': %s", k->file, field, ref, strerror(errno));
	else if (!real_inside(r, real))
		add_errorf(r, "%s: %s: '%s' leads outside the checkout", k->file, field, ref);
	else if (kind != REF_FILE && stat(real, &st) == 0 && S_ISDIR(st.st_mode))
		check_kustomization(r, real, k->depth + 1);
	free(real);
	free(abs);
}

/* A list of paths (`v` a string for a field that holds one). */
static void check_refs(const struct kz *k, const char *field, json_t *v, enum ref_kind kind,
		       int key_eq)
{
	size_t i;
	json_t *it;

	if (json_is_string(v)) {
		const char *s = json_string_value(v), *eq = key_eq ? strchr(s, '=') : NULL;
		check_ref(k, field, eq ? eq + 1 : s, kind);   /* "key=path" in a generator */
		return;
	}
	json_array_foreach(v, i, it) {
		if (json_is_string(it)) {
			char *f = sw_asprintf("%s[%zu]", field, i);
			check_refs(k, f, it, kind, key_eq);
			free(f);
		}
	}
}

/*
 * The fields of each object in `v` (one object or a list) that name files:
 * `keys` is "key" or "key=" (a list of key=path), all file paths.
 */
static void check_objects(const struct kz *k, const char *field, json_t *v,
			  const char *const *keys)
{
	size_t i, n = json_is_array(v) ? json_array_size(v) : 1;

	for (i = 0; i < n; i++) {
		json_t *o = json_is_array(v) ? json_array_get(v, i) : v, *fv;
		const char *key;
		if (!json_is_object(o))
			continue;
		json_object_foreach(o, key, fv) {
			for (const char *const *want = keys; *want; want++) {
				size_t wl = strcspn(*want, "=");
				if (strlen(key) != wl || strncasecmp(key, *want, wl))
					continue;
				char *f = json_is_array(v) ? sw_asprintf("%s[%zu].%s", field, i, key)
							   : sw_asprintf("%s.%s", field, key);
				check_refs(k, f, fv, REF_FILE, (*want)[wl] == '=');
				free(f);
			}
		}
	}
}

/*
 * The fields of a kustomization that name what kustomize reads (api/types
 * Kustomization, v5, with the deprecated ones it still reads). Go's JSON
 * decoder matches field names in any case, so this does too.
 */
static void check_fields(const struct kz *k, json_t *doc)
{
	static const char *const path[] = { "path", NULL };
	static const char *const gen[] = { "files=", "envs", "env", NULL };
	static const char *const helm_globals[] = { "chartHome", "configHome", NULL };
	static const char *const helm_charts[] = { "valuesFile", "additionalValuesFiles", NULL };
	static const struct {
		const char *name;
		int kind;                      /* enum ref_kind, or -1 with `keys` */
		const char *const *keys;       /* objects with these path fields */
	} fields[] = {
		{ "resources", REF_ANY, NULL }, { "bases", REF_ANY, NULL },
		{ "components", REF_ANY, NULL }, { "crds", REF_FILE, NULL },
		{ "configurations", REF_FILE, NULL }, { "generators", REF_INLINE, NULL },
		{ "transformers", REF_INLINE, NULL }, { "validators", REF_INLINE, NULL },
		{ "patchesStrategicMerge", REF_INLINE, NULL },
		{ "patches", -1, path }, { "patchesJson6902", -1, path },
		{ "replacements", -1, path }, { "openapi", -1, path },
		{ "configMapGenerator", -1, gen }, { "secretGenerator", -1, gen },
		{ "helmGlobals", -1, helm_globals }, { "helmCharts", -1, helm_charts },
	};
	const char *key;
	json_t *v;

	json_object_foreach(doc, key, v) {
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
			if (strcasecmp(key, fields[i].name))
				continue;
			if (fields[i].keys)
				check_objects(k, key, v, fields[i].keys);
			else
				check_refs(k, key, v, (enum ref_kind)fields[i].kind, 0);
		}
	}
}

/* The kustomization in directory `dir` (a real path inside the checkout). */
static void check_kustomization(struct render *r, const char *dir, int depth)
{
	static const char *const names[] = { "kustomization.yaml", "kustomization.yml",
					     "Kustomization", NULL };
	struct sw_buf b = SW_BUF_INIT;
	struct sw_yaml_stream *ys = NULL;
	json_t *doc = NULL;
	char *file = NULL, *real = NULL;
	struct stat st;

	if (!enter(r, 'k', dir, depth))
		return;
	for (const char *const *n = names; *n && !file; n++) {
		char *p = sw_asprintf("%s/%s", dir, *n);
		if (lstat(p, &st) == 0)
			file = join(rel_of(r, dir), *n);
		free(p);
	}
	if (!file)
		return;   /* not a kustomization: kustomize says so */
	{
		char *abs = abs_of(r, file);
		real = realpath(abs, NULL);
		free(abs);
	}
	if (!real || !real_inside(r, real)) {
		add_errorf(r, "%s: leads outside the checkout", file);
	} else if (read_manifest(r, file, &b) < 0 || sw_yaml_parse(&ys, file, b.ptr, b.len) < 0 ||
		   (ys->ndocs && sw_yaml_to_json(&doc, ys, ys->docs[0].root, 0) < 0)) {
		add_error(r, sw_error_last());
	} else if (json_is_object(doc)) {
		struct kz k = { r, dir, file, depth };
		check_fields(&k, doc);
	}
	if (doc)
		json_decref(doc);
	sw_yaml_free(ys);
	sw_buf_release(&b);
	free(real);
	free(file);
}

/* Every link under chart directory `dir` (real) stays inside; helm follows them. */
static void check_tree(struct render *r, const char *dir, int depth)
{
	struct dirent *de;
	DIR *d;

	if (!enter(r, 't', dir, depth))
		return;
	if (!(d = opendir(dir))) {
		add_errorf(r, "%s: %s", rel_of(r, dir), strerror(errno));
		return;
	}
	while (!r->stop && (de = readdir(d))) {
		char *p, *real = NULL;
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		p = sw_asprintf("%s/%s", dir, de->d_name);
		if (lstat(p, &st) < 0) {
			add_errorf(r, "%s: %s", rel_of(r, p), strerror(errno));
		} else if (S_ISLNK(st.st_mode)) {
			if ((real = realpath(p, NULL)) && !real_inside(r, real))
				add_errorf(r, "%s: symbolic link leads outside the checkout", rel_of(r, p));
			else if (real && stat(real, &st) == 0 && S_ISDIR(st.st_mode))
				check_tree(r, real, depth + 1);
			/* a dangling link: helm reports it */
		} else if (S_ISDIR(st.st_mode)) {
			check_tree(r, p, depth + 1);
		}
		free(real);
		free(p);
	}
	closedir(d);
}

/* Check what the tool for `rel` would read; 0 when it may run. */
static int check_tool_input(struct render *r, const char *rel, enum entry_type t)
{
	char *abs = abs_of(r, rel), *real = realpath(abs, NULL);
	size_t before = r->nerrors;

	if (!real)
		add_errorf(r, "%s: %s", *rel ? rel : ".", strerror(errno));
	else if (t == ENT_KUSTOMIZE)
		check_kustomization(r, real, 0);
	else
		check_tree(r, real, 0);
	free(real);
	free(abs);
	return r->nerrors > before || r->stop ? -1 : 0;
}

/* --- tools ------------------------------------------------------------------ */

/* The first executable `name` on PATH, or NULL. */
static char *which(const char *name)
{
	const char *path = getenv("PATH");
	char *copy, *dir, *save = NULL, *found = NULL;

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	copy = sw_strdup(path);
	for (dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
		char *cand = sw_asprintf("%s/%s", *dir ? dir : ".", name);
		struct stat st;
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
			found = cand;
		else
			free(cand);
	}
	free(copy);
	return found;
}

/*
 * The environment a tool gets: what kustomize and helm need to find their
 * caches and settings, nothing of the daemon's own (tokens, webhook
 * secrets). The strings are borrowed from environ.
 */
static char **tool_env(void)
{
	static const char *const keep[] = { "PATH=", "HOME=", "USER=", "LANG=", "LC_", "TZ=",
					    "TMPDIR=", "XDG_", "HELM_", "KUSTOMIZE_", NULL };
	size_t n = 0, k = 0;
	char **env;

	for (char **e = environ; e && *e; e++)
		n++;
	env = sw_calloc(n + 1, sizeof(*env));
	for (char **e = environ; e && *e; e++)
		for (const char *const *p = keep; *p; p++)
			if (!strncmp(*e, *p, strlen(*p))) {
				env[k++] = *e;
				break;
			}
	env[k] = NULL;
	return env;
}

/* Add a tool's stderr (trimmed) to a message. */
static void add_stderr(struct sw_buf *msg, const struct sw_buf *err, int cut)
{
	size_t n = err->len;
	while (n > 0 && strchr(" \t\r\n", err->ptr[n - 1]))
		n--;
	if (!n)
		return;
	sw_buf_adds(msg, ": ");
	sw_buf_add(msg, err->ptr, n);
	if (cut)
		sw_buf_adds(msg, "\n[stderr cut]");
}

/*
 * Run argv[0] (a path) with stdin from /dev/null, stdout into `out`, under
 * the time limit. On failure returns <0 with the full message (stderr
 * included) in `msg`.
 */
static int run_tool(struct render *r, char *const argv[], const char *what,
		    struct sw_buf *out, struct sw_buf *msg)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	struct sw_buf err = SW_BUF_INIT;
	int op[2] = { -1, -1 }, ep[2] = { -1, -1 };
	int rc = SW_ERR, status = 0, timed_out = 0, too_big = 0, err_cut = 0, exited = 0, leftover = 0, e;
	int64_t start = sw_mono_ms(), deadline = start + r->o.timeout_ms, exit_at = 0, last_read = 0;
	char **envp;
	pid_t pid;

	if (pipe2(op, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0) {
		sw_buf_addf(msg, "%s: pipe: %s", what, strerror(errno));
		goto done;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, op[1], 1);
	posix_spawn_file_actions_adddup2(&fa, ep[1], 2);
	posix_spawnattr_init(&at);
	/* a clean start: the worker's blocked and ignored signals are not the tool's */
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGHUP);
	sigaddset(&dfl, SIGCHLD);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setpgroup(&at, 0);   /* its own group, killed as a whole */
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
				      POSIX_SPAWN_SETSIGDEF);
	envp = tool_env();
	e = posix_spawn(&pid, argv[0], &fa, &at, argv, envp);
	free(envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(op[1]);
	close(ep[1]);
	op[1] = ep[1] = -1;
	if (e) {
		sw_buf_addf(msg, "%s: cannot run %s: %s", what, argv[0], strerror(e));
		goto done;
	}
	fcntl(op[0], F_SETFL, O_NONBLOCK);
	fcntl(ep[0], F_SETFL, O_NONBLOCK);

	for (;;) {
		struct pollfd pf[2];
		int np = 0, wait_ms;
		int64_t now = sw_mono_ms();
		siginfo_t si;

		if (now >= deadline) {
			timed_out = 1;
			break;
		}
		if (!exited) {
			/* WNOWAIT: the zombie keeps the group id ours until we kill and reap */
			memset(&si, 0, sizeof(si));
			if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
			    si.si_pid == pid) {
				exited = 1;
				exit_at = now;
			}
		}
		if (op[0] >= 0)
			pf[np++] = (struct pollfd){ .fd = op[0], .events = POLLIN };
		if (ep[0] >= 0)
			pf[np++] = (struct pollfd){ .fd = ep[0], .events = POLLIN };
		if (exited && np == 0)
			break;   /* exited, and its output read to the end */
		/*
		 * Exited, but something it started still holds the pipes and has
		 * been silent for a while. Never parse output that may be cut short:
		 * missing objects would look like objects to prune.
		 */
		if (exited && now - (last_read > exit_at ? last_read : exit_at) > EXIT_GRACE_MS) {
			leftover = 1;
			break;
		}
		wait_ms = (int)(deadline - now);
		if (wait_ms > (np ? 100 : 10))
			wait_ms = np ? 100 : 10;
		if (poll(pf, (nfds_t)np, wait_ms) < 0 && errno != EINTR) {
			sw_buf_addf(msg, "%s: poll: %s", what, strerror(errno));
			kill(-pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			goto done;
		}
		for (int i = 0; i < np; i++) {
			char tmp[65536];
			ssize_t k;
			int is_out = pf[i].fd == op[0];

			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			k = read(pf[i].fd, tmp, sizeof(tmp));
			if (k < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (k <= 0) {
				close(pf[i].fd);
				*(is_out ? &op[0] : &ep[0]) = -1;
				continue;
			}
			last_read = now;
			if (is_out) {
				if (out->len + (size_t)k > r->o.max_output_bytes) {
					too_big = 1;
					break;
				}
				sw_buf_add(out, tmp, (size_t)k);
			} else if (err.len < MAX_STDERR) {
				size_t room = MAX_STDERR - err.len;
				sw_buf_add(&err, tmp, (size_t)k < room ? (size_t)k : room);
				err_cut |= (size_t)k > room;
			} else {
				err_cut = 1;
			}
		}
		if (too_big)
			break;
	}
	/* the whole group goes: a timed-out tool, or what a finished one left behind */
	kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	log_debug("manifests.tool", "tool=%s ms=%lld out_bytes=%zu", sw_q(what),
		  (long long)(sw_mono_ms() - start), out->len);

	if (timed_out) {
		sw_buf_addf(msg, "%s: timed out after %d ms; its process group was killed", what,
			    r->o.timeout_ms);
		add_stderr(msg, &err, err_cut);
	} else if (too_big) {
		sw_buf_addf(msg, "%s: output is more than the limit of %zu bytes", what,
			    r->o.max_output_bytes);
	} else if (leftover) {
		sw_buf_addf(msg, "%s: exited, but a process it started kept its output open; "
			    "the output may be incomplete and was not used", what);
		add_stderr(msg, &err, err_cut);
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		rc = 0;
	} else if (WIFEXITED(status)) {
		sw_buf_addf(msg, "%s: exit status %d", what, WEXITSTATUS(status));
		add_stderr(msg, &err, err_cut);
	} else {
		sw_buf_addf(msg, "%s: killed by signal %d", what, WTERMSIG(status));
		add_stderr(msg, &err, err_cut);
	}
done:
	for (int i = 0; i < 2; i++) {
		if (op[i] >= 0)
			close(op[i]);
		if (ep[i] >= 0)
			close(ep[i]);
	}
	sw_buf_release(&err);
	return rc;
}

/* Run a tool and read its output as manifests named `source`. */
static void render_tool(struct render *r, char *const argv[], const char *source)
{
	struct sw_buf out = SW_BUF_INIT, msg = SW_BUF_INIT;

	if (run_tool(r, argv, source, &out, &msg) < 0)
		add_error(r, msg.ptr);
	else
		parse_stream(r, source, out.ptr, out.len, 1);
	sw_buf_release(&out);
	sw_buf_release(&msg);
}

static void render_kustomize(struct render *r, const char *rel)
{
	char *abs = abs_of(r, rel), *kz = which("kustomize"), *kc = NULL;
	char *source = sw_asprintf("kustomize %s", *rel ? rel : ".");

	if (check_tool_input(r, rel, ENT_KUSTOMIZE) < 0) {
		/* reported */
	} else if (kz) {
		char *argv[] = { kz, "build", abs, "--load-restrictor", "LoadRestrictionsRootOnly", NULL };
		render_tool(r, argv, source);
	} else if ((kc = which("kubectl"))) {
		char *argv[] = { kc, "kustomize", abs, "--load-restrictor", "LoadRestrictionsRootOnly",
				 NULL };
		render_tool(r, argv, source);
	} else {
		add_errorf(r, "%s: kustomization found but neither kustomize nor kubectl is installed",
			   *rel ? rel : ".");
	}
	free(kz);
	free(kc);
	free(abs);
	free(source);
}

static void render_helm(struct render *r, const char *rel)
{
	char *abs = abs_of(r, rel), *helm = which("helm");
	char *source = sw_asprintf("helm %s", *rel ? rel : ".");
	char *base = NULL;

	if (check_tool_input(r, rel, ENT_HELM) < 0) {
		/* reported */
	} else if (!helm) {
		add_errorf(r, "%s: Chart.yaml found but helm is not installed", *rel ? rel : ".");
	} else {
		const char *release = r->o.helm_release;
		const char *ns = r->o.helm_namespace ? r->o.helm_namespace : "default";
		if (!release) {
			char *real = realpath(abs, NULL);
			const char *slash = real ? strrchr(real, '/') : NULL;
			base = sw_strdup(slash && slash[1] ? slash + 1 : "release");
			free(real);
			release = base;
		}
		char *argv[] = { helm, "template", (char *)release, abs, "--namespace", (char *)ns,
				 "--include-crds", NULL };
		render_tool(r, argv, source);
	}
	free(base);
	free(helm);
	free(abs);
	free(source);
}

/* --- the whole render -------------------------------------------------------- */

static void render_path(struct render *r, const char *path)
{
	struct entries ents = { NULL, 0, 0 };
	char *rel = normalize(path), *abs = NULL;
	struct stat st;
	int in, k;

	if (!rel) {
		add_errorf(r, "%s: a manifest path must be relative and stay inside the checkout", path);
		return;
	}
	abs = abs_of(r, rel);
	if (stat(abs, &st) < 0) {
		add_errorf(r, "%s: %s in the checkout", *rel ? rel : ".", strerror(errno));
		goto done;
	}
	if ((in = inside_root(r, abs)) <= 0) {
		add_errorf(r, "%s: leads outside the checkout", *rel ? rel : ".");
		goto done;
	}
	if (S_ISDIR(st.st_mode)) {
		if ((k = dir_kind(abs)) >= 0)
			entries_add(&ents, sw_strdup(rel), (enum entry_type)k);
		else
			walk(r, rel, 0, &ents);
	} else if (S_ISREG(st.st_mode)) {
		entries_add(&ents, sw_strdup(rel), ENT_FILE);
	} else {
		add_errorf(r, "%s: not a file or a directory", rel);
	}
	if (ents.n)   /* qsort(NULL, 0, ...) is undefined */
		qsort(ents.v, ents.n, sizeof(*ents.v), cmp_entry);
	for (size_t i = 0; i < ents.n && !r->stop; i++) {
		switch (ents.v[i].type) {
		case ENT_FILE: render_file(r, ents.v[i].rel); break;
		case ENT_KUSTOMIZE: render_kustomize(r, ents.v[i].rel); break;
		case ENT_HELM: render_helm(r, ents.v[i].rel); break;
		}
	}
done:
	for (size_t i = 0; i < ents.n; i++)
		free(ents.v[i].rel);
	free(ents.v);
	free(rel);
	free(abs);
}

/*
 * The error slot holds about 2 KiB: keep whole lines and say how many more
 * there are (opts->errors has them all).
 */
static int set_error_lines(const struct sw_buf *errors)
{
	const size_t room = 1800;
	size_t cut, more = 0;

	if (errors->len <= room)
		return sw_error_setc(SW_EINVALID, "%s", errors->ptr);
	cut = room;
	while (cut > 0 && errors->ptr[cut] != '\n')
		cut--;
	for (size_t i = cut; i < errors->len; i++)
		if (errors->ptr[i] == '\n' && strncmp(errors->ptr + i + 1, "    ", 4))
			more++;
	return sw_error_setc(SW_EINVALID, "%.*s\n... and %zu more", (int)cut, errors->ptr, more);
}

int sw_render_dir(struct sw_objset **out, const char *checkout_root,
		  const char *const *paths, size_t npaths, const struct sw_render_opts *opts)
{
	struct render r;
	int rc = 0;

	*out = NULL;
	memset(&r, 0, sizeof(r));
	if (opts)
		r.o = *opts;
	if (r.o.timeout_ms <= 0)
		r.o.timeout_ms = DEF_TIMEOUT_MS;
	if (!r.o.max_file_bytes)
		r.o.max_file_bytes = DEF_MAX_FILE;
	if (!r.o.max_output_bytes)
		r.o.max_output_bytes = DEF_MAX_OUTPUT;
	if (!r.o.max_objects)
		r.o.max_objects = DEF_MAX_OBJECTS;
	if (!r.o.max_errors)
		r.o.max_errors = DEF_MAX_ERRORS;
	r.root = checkout_root;
	sw_buf_init(&r.errors);
	if (!(r.root_real = realpath(checkout_root, NULL)))
		return sw_error_errno("checkout %s", checkout_root);
	r.set = sw_objset_new();

	for (size_t i = 0; i < npaths && !r.stop; i++)
		render_path(&r, paths[i]);
	if (!r.stop) {
		/* one problem per duplicate, under the same limit as the rest */
		struct sw_buf dups = SW_BUF_INIT;
		char *save = NULL;
		if (sw_objset_check_duplicates(r.set, &dups) < 0)
			for (char *l = strtok_r(dups.ptr, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
				add_error(&r, l);
		sw_buf_release(&dups);
	}
	if (r.nerrors) {
		if (r.o.errors)
			sw_buf_add(r.o.errors, r.errors.ptr, r.errors.len);
		rc = set_error_lines(&r.errors);
		sw_objset_free(r.set);
	} else {
		log_debug("manifests.render", "root=%s paths=%zu objects=%zu", sw_q(checkout_root),
			  npaths, r.set->n);
		*out = r.set;
	}
	sw_buf_release(&r.errors);
	for (size_t i = 0; i < r.nseen; i++)
		free(r.seen[i]);
	free(r.seen);
	free(r.root_real);
	return rc;
}
