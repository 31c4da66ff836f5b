/* The tool's own state: per-VM lock files (<vmid>.lock) and port hints
 * (<vmid>.ports) in one directory that only root may write, by default
 * /run/pve-usb-hotplug (mode 0700, made by systemd-tmpfiles at boot and by
 * the program when missing). Anyone who could write there could stall every
 * event or steer devices, so the directory is opened without following a
 * link and refused unless it is owned by the user the program runs as
 * (root) and writable by nobody else; every file in it is opened relative to
 * that checked directory. Nothing here logs. */
#pragma once

#include <stddef.h>

/* Makes path (mode 0700) if it is missing, opens and checks it. 0 with the
 * directory's fd in *ret_fd; -EPERM when it is not safe (why says how: the
 * owner, the mode), -ELOOP for a symbolic link, -ENOTDIR, other -errno. */
int state_open(const char *path, int *ret_fd, char *why, size_t why_size);
