/* Working on one running VM: hold its lock, talk QMP to it, attach and
 * detach host USB devices. Every outcome is logged here, naming the VM and
 * the port, so callers only map return values to exit codes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "host/port.h"
#include "base/settings.h"
#include "guests/target.h"
#include "host/usbtree.h"
#include "guests/xhci.h"

struct guest;

/* QEMU keeps usb-host's hostport in a 16-byte buffer (measured): a longer
 * port path is accepted by device_add and never attaches. */
#define QEMU_HOSTPORT_MAX 15

/* Opens the state directory (see state.h), takes the guest's lock and
 * connects to its QMP socket (target_socket()). -ENOENT / -ECONNREFUSED:
 * the guest is not running (logged as a warning); other errors are logged
 * as errors. Every wait ends by the run's deadline. t must outlive the
 * guest. */
int guest_open(const struct settings *s, struct target *t, struct guest **ret);

/* Attaches the host device at dev->port as usb-host usbhost<bus>-<port>,
 * pinned to the device's vendor and product (a usb-host left behind can
 * then only ever take the same model), at a port that suits its speed (see
 * xhci.h), adding the tool's own controller when none has room. Already
 * attached for this vendor/product counts as success; one pinned to
 * another device is replaced. */
int guest_attach(struct guest *g, const struct usb_device_info *dev);

/* Detaches usbhost<port>; desc names it in messages, why (may be NULL)
 * says why. Not attached counts as success. */
int guest_detach(struct guest *g, const struct usb_port *port, const char *desc, const char *why);

/* What the VM holds through the tool (its usbhost* devices), from QEMU
 * when ask_qemu, else from the hint when there is one for this QEMU.
 * *ret points into g. */
int guest_held(struct guest *g, bool ask_qemu, const struct xhci_set **ret);

/* false once the QMP connection broke (a timeout, a reset): every later
 * command would fail at once, so callers stop. */
bool guest_usable(const struct guest *g);

/* release: detaches every device the tool holds in the VM, unplugs the
 * tool's own controllers and waits (with a deadline) until QEMU has them
 * gone, so the VM is as its <vmid>.conf describes it and can be migrated,
 * snapshotted with RAM or hibernated. The VM is then held back: events
 * leave it alone until guest_unrelease() (sync VMID) or a new QEMU. */
int guest_release(struct guest *g);
bool guest_is_released(const struct settings *s, struct target *t);
/* Lifts the hold (logs it when there was one). */
int guest_unrelease(const struct settings *s, struct target *t);

struct guest *guest_close(struct guest *g);

/* For the disk code (vdisk.h): the guest's QMP connection (NULL for a
 * libvirt domain), what it is, the settings; and one line for a failed
 * command ("VM 100: attaching DESC: QEMU says: ..."), returning r. */
struct qmp *guest_qmp(struct guest *g);
/* A libvirt domain's connection (libvirt.h), NULL for any other guest. */
struct lv *guest_lv(struct guest *g);
const struct target *guest_target(const struct guest *g);
const struct settings *guest_settings(const struct guest *g);
int guest_failed(struct guest *g, int r, const char *what, const char *desc);
/* When a wait of ms from now must end: then, or at the end of the run. */
int64_t guest_deadline_in(const struct guest *g, int ms);
/* Notes in the state directory that the guest may hold disks of the
 * tool's (<key>.disks), so that a disk's remove finds it even when its
 * rules change. */
void guest_note_disks(struct guest *g);

/* Without any connection: what the port hint says the VM's running QEMU
 * holds. 0; -ENOENT when there is no hint at all; -ESTALE when there is
 * one, but not for this QEMU (or it is unreadable). Logs nothing. */
int guest_peek_held(const struct settings *s, struct target *t, struct xhci_set *ret);

/* "3-4.1 (046d:c52b "Receiver")" for messages; product escaped. */
void guest_describe(const struct usb_device_info *dev, char *buf, size_t n);
