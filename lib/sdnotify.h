/*
 * sdnotify.h - telling the service manager how slipwayd is doing, with
 * systemd's notify protocol written directly (no libsystemd): one datagram
 * of "KEY=VALUE\n" lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a
 * path, or "@name" in the abstract namespace). Without $NOTIFY_SOCKET every
 * call is a no-op, so slipwayd behaves the same under any supervisor.
 *
 *     sw_sd_notify("READY=1\nSTATUS=listening on 127.0.0.1:8080");
 *     sw_sd_notify_reloading();          // RELOADING=1 + MONOTONIC_USEC
 *     sw_sd_notify("STOPPING=1");
 */
#ifndef SW_SDNOTIFY_H
#define SW_SDNOTIFY_H

/* Send `state`. 0 (also when there is no $NOTIFY_SOCKET), or -1 with errno
 * when the datagram could not be sent; callers log it and go on. */
int sw_sd_notify(const char *state);

/* "RELOADING=1" with the CLOCK_MONOTONIC time systemd 253 asks for. */
int sw_sd_notify_reloading(void);

#endif
