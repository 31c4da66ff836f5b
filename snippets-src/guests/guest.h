/* Working on one running guest of any kind: hold its lock, connect to it,
 * attach and detach host USB devices and disks. What every kind shares is
 * here; what a kind does is its table's (backend.h), never asked which
 * kind a guest is. Nothing here logs above debug: every outcome and
 * failure is noted, in the words the user sees (naming the guest and the
 * port), in the report the caller gives (base/report.h), and the caller
 * says it once, with report_say(), right after the call (so its lines
 * keep their order with the caller's own). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "host/port.h"
#include "base/report.h"
#include "base/settings.h"
#include "guests/target.h"
#include "host/usbtree.h"
#include "guests/vdisk.h"
#include "guests/xhci.h"
#include "host/disk.h"
#include "policy/usbconf.h"

struct guest;

/* Without any connection: whether t runs (notes in rep only when its kind
 * cannot be asked at all), and whether its own configuration passes dev
 * (then the device is its owner's, and left alone; 1 or 0). */
bool guest_running(const struct settings *s, struct target *t, struct report *rep);

/* Whether a guest of some kind has the USB device at port and follows the
 * device nodes of its interfaces (a container: its ttyUSB0...), from the
 * kinds' own records, without asking any guest: the cheap first test of a
 * node's udev event. */
bool guest_follows_nodes_of(const struct settings *s, const struct usb_port *port);
int guest_passes(const struct target *t, const struct usb_device_info *dev);

/* Opens the state directory (see state.h), takes the guest's lock and
 * connects to it (a QMP socket, target_socket(); a libvirt domain).
 * -ENOENT / -ECONNREFUSED: the guest is not running (noted as a warning);
 * other errors are noted as errors. Every wait ends by the run's
 * deadline. Every later operation on the guest notes in rep too: t and
 * rep must outlive the guest. */
int guest_open(const struct settings *s, struct target *t, struct report *rep, struct guest **ret);

/* The report g was opened with, for functions handed only g. */
struct report *guest_report(struct guest *g);

/* Attaches the host device at dev->port, pinned to the device's vendor and
 * product (one left behind can then only ever take the same model), at a
 * port that suits its speed. QMP guests: usb-host usbhost<bus>-<port> on
 * an xHCI port (xhci.h), adding the tool's own controller when none has
 * room (qemu.h); libvirt: a <hostdev> (libvirt.h). Already attached for this
 * vendor/product counts as success; one pinned to another device is
 * replaced. */
int guest_attach(struct guest *g, const struct usb_device_info *dev);

/* Detaches the device of port (usbhost<port>); desc names it in messages, why (may be NULL)
 * says why. Not attached counts as success. */
int guest_detach(struct guest *g, const struct usb_port *port, const char *desc, const char *why);

/* What the guest holds through the tool (its usbhost* devices), from the
 * guest when ask_qemu, else from the hint when its kind keeps one and there
 * is one for this run of it. *ret points into g. */
int guest_held(struct guest *g, bool ask_qemu, const struct xhci_set **ret);

/* false once the connection broke (a timeout, a reset): every later
 * command would fail at once, so callers stop. */
bool guest_usable(const struct guest *g);

/* release: detaches every device the tool holds in the guest and does what
 * else its kind needs (QMP guests: unplugs the tool's own controllers and
 * waits, with a deadline, until QEMU has them gone), so the guest is as
 * its configuration describes it and can be migrated, snapshotted with RAM
 * or hibernated. The VM is then held back: events
 * leave it alone until guest_unrelease() (sync VMID) or a new QEMU. */
int guest_release(struct guest *g);
bool guest_is_released(const struct settings *s, struct target *t);
/* Lifts the hold (notes it in rep when there was one). */
int guest_unrelease(const struct settings *s, struct target *t, struct report *rep);

struct guest *guest_close(struct guest *g);

/* Notes one line for a failed command, in its kind's words ("VM 100: WHAT
 * DESC: QEMU says: ..."), returning r. */
int guest_failed(struct guest *g, int r, const char *what, const char *desc);

/* USB disks (vdisk.h). The tool's disks in the guest. */
int guest_disks(struct guest *g, struct vdisk_set *ret);

/* Attaches d (its by-id node at path, checked by the caller) as asked. An
 * attached one counts as success. Notes the outcome. */
int guest_disk_attach(struct guest *g, const struct usb_disk *d, const char *path,
		      enum disk_as as);

/* Detaches the disk id (desc names it in messages, why says why, may be
 * NULL) and lets go of it, waiting up to VDISK_DEL_WAIT_MS for the guest
 * to. Not attached counts as success. Notes the outcome. */
int guest_disk_detach(struct guest *g, const char *id, const char *desc, const char *why);

/* Without any connection: what the port hint says the guest's running
 * QEMU holds. 0; -ENOENT when there is no hint at all; -ESTALE when there
 * is one, but not for this QEMU (or it is unreadable, or the kind keeps
 * none). Notes nothing. */
int guest_peek_held(const struct settings *s, struct target *t, struct xhci_set *ret);

/* "3-4.1 (046d:c52b "Receiver")" for messages; product escaped. */
void guest_describe(const struct usb_device_info *dev, char *buf, size_t n);
