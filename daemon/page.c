/*
 * page.c - the status page and /metrics.
 */
#include "daemon/daemon.h"

const struct sw_route sw_page_routes[] = {
	{ 0, NULL, NULL },
};
