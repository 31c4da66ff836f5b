/* What the program does, one call per way it is started: a udev event, a
 * Proxmox hookscript phase, an operator's command. Each logs what it does;
 * the return value maps to the exit code (0: everything wanted is in
 * place). */
#pragma once

#include <stdbool.h>

#include "settings.h"
#include "usbtree.h"
#include "uevent.h"
#include "vms.h"

/* One udev event for a USB device (already filtered by uevent_parse). */
int hotplug_event(const struct settings *s, const struct uevent *ev);

/* plugged PORT: the add of the USB device at PORT ("3-4.1"), read from
 * sysfs, as pve-usb-hotplug@.service runs it once udev has announced the
 * device (then QEMU's libusb knows it and opens it at once). */
int hotplug_plugged(const struct settings *s, const char *name);

/* Hookscript phase for a VM: post-start attaches every device the VM's
 * rules give it (nothing on the target of a live migration: migrated_from,
 * Proxmox's PVE_MIGRATED_FROM, names the source node); pre-start runs the
 * check and only warns; the others do nothing. Unknown phases are ignored
 * with a note. */
int hotplug_hook(const struct settings *s, unsigned long vmid, const char *phase,
		 const char *migrated_from);

struct guest;
/* Attaches devs[i] for each take[i], stopping (with one line) once the QMP
 * connection has failed: every further command would fail at once. */
int hotplug_attach_all(struct guest *g, unsigned long vmid, const struct usb_device_info *devs,
		       const bool *take, size_t n);

/* Logs why a device is not attached to for_vmid (0: to any VM), as p says. */
void hotplug_explain(const struct placement *p, unsigned long for_vmid, const char *desc);

/* check [VMID]: every problem of the .usb.conf files (vmid 0: all) with
 * file and line. pre_start: a VM without a file is fine. -EINVAL if there
 * was any problem. */
int hotplug_check(const struct settings *s, unsigned long vmid, bool pre_start);

/* sync [VMID]: makes running VMs hold what their rules give them now. */
int hotplug_sync(const struct settings *s, unsigned long vmid);

/* release VMID: everything the tool added to the VM goes (devices, its own
 * controllers), and USB events leave the VM alone until sync VMID or its
 * next start: for a migration, a snapshot with RAM, hibernation. */
int hotplug_release(const struct settings *s, unsigned long vmid);

/* status [VMID] [--json]: the host's USB tree and who has what. */
int hotplug_status(const struct settings *s, unsigned long vmid, bool json);

/* identify: waits up to timeout_ms for a USB device to be plugged in and
 * prints the lines that would select it. */
int hotplug_identify(int timeout_ms);
