/*
 * slipwayd.c - the server's main: arguments, then the daemon's life cycle.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "daemon/daemon.h"
#include "config/config.h"
#include "github/github.h"
#include "lib/log.h"
#include "lib/version.h"
#include "storage/store.h"

/*
 * --check with github.app: fetch an installation token for every
 * repository (blocking is fine here). The number of repositories GitHub
 * refused; an unreachable GitHub is said, not counted.
 */
static int check_github_app(const struct sw_config *cfg)
{
	struct sw_github_app *app;
	int failed;

	if (!cfg->github_app.id)
		return 0;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	sw_log_set_level(SW_LOG_ERROR);
	sw_github_app_new(&app, NULL, NULL);
	sw_github_app_set_config(app, cfg);
	failed = sw_github_app_check(app, cfg, stdout);
	sw_github_app_free(app);
	curl_global_cleanup();
	return failed;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: slipwayd -c FILE [--check | --backup DEST]\n"
		"       slipwayd --version\n"
		"\n"
		"  -c, --config FILE   the YAML config file (see contrib/slipway.example.yaml)\n"
		"      --check         validate the config, print every error, and exit\n"
		"                      (0 when valid, 2 when not)\n"
		"      --backup DEST   write a consistent copy of the database to DEST and exit;\n"
		"                      safe while slipwayd runs (see docs/operations.md)\n"
		"      --version       print the version and exit\n"
		"  -h, --help          this text\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop cleanly, SIGHUP reloads the config.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ "backup", required_argument, NULL, 'B' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cfg_path = NULL, *backup = NULL;
	int check = 0, c;
	struct sw_daemon *d;

	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cfg_path = optarg; break;
		case 'k': check = 1; break;
		case 'B': backup = optarg; break;
		case 'V': printf("slipwayd %s\n", SLIPWAY_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "slipwayd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!cfg_path) {
		fprintf(stderr, "slipwayd: no config file given (use -c FILE)\n");
		usage(stderr);
		return 2;
	}
	if (check) {
		struct sw_config *cfg;
		if (sw_config_load(&cfg, cfg_path) < 0) {
			fprintf(stderr, "%s\n", sw_error_last());
			return 2;
		}
		sw_config_warn_secrets(cfg);
		printf("%s: ok (%zu repositories, %zu environments)\n", cfg_path, cfg->nrepos,
		       cfg->nenvs);
		int failed = check_github_app(cfg);
		sw_config_free(cfg);
		return failed ? 1 : 0;
	}
	if (backup) {
		struct sw_config *cfg;
		int64_t bytes = 0;
		if (sw_config_load(&cfg, cfg_path) < 0) {
			fprintf(stderr, "%s\n", sw_error_last());
			return 2;
		}
		int rc = sw_store_backup(cfg->data_dir, backup, &bytes);
		sw_config_free(cfg);
		if (rc < 0) {
			fprintf(stderr, "slipwayd: %s\n", sw_error_last());
			return 1;
		}
		printf("%s: %lld bytes\n", backup, (long long)bytes);
		return 0;
	}
	if (sw_daemon_new(&d, cfg_path) < 0) {
		/* one clear line per problem, and nothing left running */
		fprintf(stderr, "slipwayd: %s\n", sw_error_last());
		return 1;
	}
	int rc = sw_daemon_run(d);
	sw_daemon_free(d);
	return rc;
}
