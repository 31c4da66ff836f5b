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

/* The guests as a udev event sees them (bad lines at debug level): 0, 1
 * when there is no rules directory (yet; nothing to load, nothing to
 * free), or the error. */
int hotplug_load_event(const struct settings *s, struct vms *v);

/* One udev event for a USB device (already filtered by uevent_parse).
 * passed (may be NULL): set when an add has gone to a guest (or is
 * Proxmox's own to pass). */
int hotplug_event(const struct settings *s, const struct uevent *ev, bool *passed);

struct usb_disk;
struct guest;
/* One udev event for a USB disk (disk_from_event()): an add attaches it to
 * the running guest whose disk rule names it; a remove detaches it from
 * every guest that may have it. */
int hotplug_disk_event(const struct settings *s, enum uevent_action action,
		       const struct usb_disk *disk);

/* The disks part of post-start (attach what mine's disk rules give it),
 * sync (also detach what it should not have) and release (detach every
 * disk of the tool's), on g, mine's open guest. */
int hotplug_disks_attach(struct vms *v, struct vm *mine, struct guest *g);
int hotplug_disks_sync(struct vms *v, struct vm *vm, struct guest *g);
int hotplug_disks_release(struct guest *g);
/* Whether vm's disks are worth a look: it has disk rules, or the tool has
 * put disks into it. */
bool hotplug_disks_concern(const struct settings *s, const struct vm *vm);

/* plugged PORT: the add of the USB device at PORT ("3-4.1"), read from
 * sysfs, as pve-usb-hotplug@.service runs it once udev has announced the
 * device (then QEMU's libusb knows it and opens it at once). */
int hotplug_plugged(const struct settings *s, const char *name, bool *passed);

/* Hookscript phase for a VM: post-start attaches every device the VM's
 * rules give it (nothing on the target of a live migration: migrated_from,
 * Proxmox's PVE_MIGRATED_FROM, names the source node); pre-start runs the
 * check and only warns; the others do nothing. Unknown phases are ignored
 * with a note. */
int hotplug_hook(const struct settings *s, unsigned long vmid, const char *phase,
		 const char *migrated_from);

/* Attaches devs[i] for each take[i], stopping (with one line) once the QMP
 * connection has failed: every further command would fail at once. */
int hotplug_attach_all(struct guest *g, const struct target *t,
		       const struct usb_device_info *devs, const bool *take, size_t n);

/* Opens the guest p places a device (desc) in. -EAGAIN when that guest
 * counted as running but does not answer: it is marked as not running
 * (logged), and the caller places the device again. */
int hotplug_open_placed(const struct settings *s, const struct placement *p, const char *desc,
			struct guest **ret);

/* Why a PLACE_PROXMOX device is its owner's: "Proxmox passes it itself
 * (usb0 of VM 101)", or a libvirt domain's own XML. */
void owner_passes(const struct placement *p, char *buf, size_t n);

/* "DESC is kept out of VM 100 by 'deny 3-4.4' (FILE:LINE)" */
void hotplug_explain_denial(const struct vm *vm, const struct usb_rule *deny, const char *desc);

/* Logs why a device is not attached to for_vm (NULL: to any guest), as p
 * says. */
void hotplug_explain(const struct placement *p, const struct vm *for_vm, const char *desc);

/* The commands below take a guest's name: a VMID, or the name of a guest
 * declared in the settings; NULL: every guest. */

/* check [NAME]: every problem of the rules files with file and line.
 * pre_start: a VM without a file is fine. -EINVAL if there was any
 * problem. */
int hotplug_check(const struct settings *s, const char *name, bool pre_start);

/* sync [NAME]: makes running guests hold what their rules give them now. */
int hotplug_sync(const struct settings *s, const char *name);

/* release NAME: everything the tool added to the VM goes (devices, its own
 * controllers), and USB events leave the VM alone until sync VMID or its
 * next start: for a migration, a snapshot with RAM, hibernation. */
int hotplug_release(const struct settings *s, const char *name);

/* status [NAME] [--json]: the host's USB tree and who has what. */
int hotplug_status(const struct settings *s, const char *name, bool json);

/* listen [--events N]: follows plugs from udev's monitor, each handled as
 * 'plugged PORT' in a child, until SIGTERM (or N adds were handled and
 * their children ended). config: the settings file each child reads. */
int hotplug_listen(const struct settings *s, const char *config, unsigned max_events);
/* In the state directory while the listener runs: its pid. */
#define LISTEN_MARKER "listening"
/* Tells a running listener that a guest has started or stopped: it holds
 * the ports the running guests' rules name (hold.h). Quiet when none runs. */
void hotplug_listen_poke(const struct settings *s);

/* identify: waits up to timeout_ms for a USB device to be plugged in and
 * prints the lines that would select it. */
int hotplug_identify(int timeout_ms);
