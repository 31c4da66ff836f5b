/* Proxmox VE containers (LXC) as a kind of guest (backend.h).
 *
 * Running: LXC's monitor of a running container listens on the abstract
 * unix socket "@<lxcpath>/<ctid>/command"; a connect() there is refused
 * when the container does not run (no lxc-info per event). The socket's
 * peer is the monitor, and the container's init is the monitor's child
 * (checked: its parent, and its start time, which stamps this run of it
 * and guards every later use of the pid against its reuse).
 *
 * Passed: while the device is plugged in and the container runs, the
 * container has /dev/bus/usb/BBB/DDD, the host node's numbers and mode,
 * owned by the container's root (its mapped uid and gid), and its device
 * cgroup allows it (<[lxc] cgroup_command> -P LXCPATH -n CTID devices.allow
 * 'c M:m rwm'; devices.deny when it goes). A privileged container's node
 * is made through /proc/<init>/root; an unprivileged one's /dev allows no
 * device nodes, so a node made on a tmpfs of the host's is mounted there,
 * as Proxmox does (devnode.h).
 *
 * The nodes of a passed device's interfaces (a tty, hidraw, video4linux
 * or sound node a host driver made: ifnode.h) go with it: made at the
 * same /dev path (and the link below /dev/serial, /dev/v4l or /dev/snd
 * udev made on the host), allowed likewise, taken when they or the
 * device go.
 *
 * The record of what the tool passed, per run of the container, is
 * <ctid>.ctusb in the state directory: a remove event has no sysfs to say
 * which bus and device number a port had. */
#pragma once

#include "guests/backend.h"

extern const struct guest_ops lxc_guest_ops;

/* Whether a container's record (of any run) holds the USB device at port:
 * the cheap test an event of one of its interfaces' nodes starts with
 * (then the device is looked at again, and attach() brings the nodes of
 * its interfaces in step: made, or taken). No lock, no guest asked. */
bool lxc_holds(const struct settings *s, const struct usb_port *port);
