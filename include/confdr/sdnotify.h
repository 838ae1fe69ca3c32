/* The systemd notification protocol (sd_notify(3)), written by hand: one
 * datagram to the unix socket named by $NOTIFY_SOCKET, no libsystemd.
 *
 * A daemon under a Type=notify unit says READY=1 once it is connected and
 * has its state, STATUS=... as it changes, STOPPING=1 when it stops, and
 * WATCHDOG=1 at least every half of $WATCHDOG_USEC (a hung loop misses it
 * and systemd restarts the service). Outside systemd nothing is sent. */
#ifndef CONFDR_SDNOTIFY_H
#define CONFDR_SDNOTIFY_H

#include <stdint.h>

/* Sends state ("READY=1", "STATUS=text", several "KEY=value" lines joined by
 * '\n') as one datagram to $NOTIFY_SOCKET: an absolute path, or a name in
 * the abstract namespace written with a leading '@'. Opens and closes its
 * own socket (any thread may call it). Returns 1 when sent, 0 when
 * $NOTIFY_SOCKET is not set (not under systemd), -EINVAL for an empty state
 * or a socket name that is neither, -ENAMETOOLONG, or the -errno of
 * socket(2)/sendto(2). */
int cdr_sd_notify(const char *state);

/* Whether systemd expects watchdog pings from this process: $WATCHDOG_USEC
 * set to a positive number and $WATCHDOG_PID, when set, this process's pid.
 * Returns 1 and *usec, 0 when not (usec untouched), -EINVAL when
 * $WATCHDOG_USEC or $WATCHDOG_PID is not a number. */
int cdr_sd_watchdog_usec(uint64_t *usec);

#endif
