/*
 * version.h - slipway's version, the one definition: `slipwayd -V` and
 * `slipway -V`, the startup log line, GET /api/version, the page footer,
 * slipway_build_info in /metrics and the User-Agent that GitHub and Slack
 * see from the outbox and the CLI.
 */
#ifndef SW_LIB_VERSION_H
#define SW_LIB_VERSION_H

#define SLIPWAY_VERSION "0.1.0"

#endif
