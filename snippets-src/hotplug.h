/* The two ways the program is started, each one call: a udev event, or a
 * Proxmox hookscript phase. Both log what they do; the return value maps to
 * the exit code (0: everything wanted is in place). */
#pragma once

#include "settings.h"
#include "uevent.h"

/* One udev event for a USB device (already filtered by uevent_parse). */
int hotplug_event(const struct settings *s, const struct uevent *ev);

/* Hookscript phase for a VM: post-start attaches every device under the
 * VM's rules; pre-start checks the rules and only warns; the others do
 * nothing. Unknown phases are ignored with a note. */
int hotplug_hook(const struct settings *s, unsigned long vmid, const char *phase);

/* check [VMID]: reports every problem of the VM's .usb.conf (vmid 0: every
 * .usb.conf) with file and line. -EINVAL if there was any. */
int hotplug_check(const struct settings *s, unsigned long vmid);
