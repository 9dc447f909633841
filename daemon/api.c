/*
 * api.c - the JSON API, /api/v1/... (see docs/api.md).
 */
#include "daemon/daemon.h"

const struct sw_route sw_api_routes[] = {
	{ 0, NULL, NULL },
};
