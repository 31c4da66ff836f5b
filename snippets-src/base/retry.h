/* A detach that could not reach QEMU (its QMP socket busy past the
 * deadline, the VM's lock held, the connection broken) leaves a usb-host in
 * the guest, and QEMU's 2 s rescan lets it take what is plugged into that
 * port next. So it is tried again later without waiting for the next plug:
 * "pve-usb-hotplug sync VMID" in a transient systemd timer unit
 * (systemd-run --on-active), which outlives this run (udev ends whatever a
 * RUN program leaves behind). A sync that fails again schedules the next
 * try, up to RETRY_MAX in all. */
#pragma once

#include <errno.h>
#include <stdbool.h>

#include "base/settings.h"
#include "guests/target.h"

#define RETRY_MAX 5

/* Whether a failure r means QEMU was not reached (the lock, a timeout, a
 * broken connection), as opposed to QEMU refusing, the VM being gone or
 * memory: only the first is worth trying again. */
static inline bool retry_worth(int r)
{
	return r < 0 && r != -EREMOTEIO && r != -ENOENT && r != -ECONNREFUSED && r != -ENOMEM;
}

/* Schedules the retry for t (sync NAME) and logs what it did; 0 or -errno. */
int retry_schedule(const struct settings *s, const struct target *t);
