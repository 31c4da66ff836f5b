/* The tool's own state: per-guest lock files (<key>.lock, the key of
 * target.h: "100", "qemu-desktop") and port hints
 * (<key>.ports) in one directory that only root may write, by default
 * /run/pve-usb-hotplug (mode 0700, made by systemd-tmpfiles at boot and by
 * the program when missing). Anyone who could write there could stall every
 * event or steer devices, so the directory is opened without following a
 * link and refused unless it is owned by the user the program runs as
 * (root) and writable by nobody else; every file in it is opened relative to
 * that checked directory. Nothing here logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Makes path (mode 0700) if it is missing, opens and checks it. 0 with the
 * directory's fd in *ret_fd; -EPERM when it is not safe (why says how: the
 * owner, the mode), -ELOOP for a symbolic link, -ENOTDIR, other -errno. */
int state_open(const char *path, int *ret_fd, char *why, size_t why_size);

/* A released VM (see "pve-usb-hotplug release"): <key>.released in the
 * state directory, stamped with the QEMU process it was released in, so a
 * new QEMU (a restart, the migration target) is never held back by it.
 * mark: 0 or -errno; released: true when the marker names stamp; clear: 0
 * or -errno (none is fine). */
int state_mark_released(int dirfd, const char *key, const char *stamp);
bool state_is_released(int dirfd, const char *key, const char *stamp);
int state_clear_released(int dirfd, const char *key);

/* In the state directory while the listener runs: its pid. */
#define STATE_LISTEN_MARKER "listening"

/* Tells a running listener (SIGHUP) that a guest has started or stopped, so
 * it looks again at the ports it holds. The pid from the marker is signalled
 * only when it is a pve-usb-hotplug process (pids are reused). Returns the
 * pid told, or 0 when none runs. */
int state_poke_listener(const char *state_dir);
