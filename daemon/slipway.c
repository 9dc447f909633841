/*
 * slipway.c - the command-line client (grows with the status/API issue).
 */
#include <stdio.h>
#include <string.h>

#include "daemon/daemon.h"

int main(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version"))) {
		printf("slipway %s\n", SLIPWAY_VERSION);
		return 0;
	}
	fprintf(stderr, "usage: slipway --version\n");
	return argc > 1 && !strcmp(argv[1], "--help") ? 0 : 2;
}
