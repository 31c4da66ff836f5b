/* What a kind of guest does, as one table of operations (the shape of
 * libusb's struct usbi_os_backend): guest.c keeps what every kind shares
 * (the lock, the state files, the port hint, release markers, the messages
 * every kind words alike) and calls the kind's table for the rest; it
 * never asks which kind a guest is. Kinds: guests reached over QMP
 * (qemu.h: Proxmox VMs, declared QEMU guests, Xen device models) and
 * libvirt domains (libvirt.h).
 *
 * A kind's open() returns its connection as an opaque pointer that every
 * other operation gets back. Nothing here logs above debug: an operation
 * that "notes" something adds it to the report the guest was opened with
 * (base/report.h), in the words the user sees, for the caller to say; the
 * others return -errno for the core to explain with explain(). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/report.h"
#include "base/settings.h"
#include "base/util.h"
#include "guests/target.h"
#include "guests/vdisk.h"
#include "guests/xhci.h"
#include "host/disk.h"
#include "host/usbtree.h"
#include "policy/usbconf.h"

/* What the guest holds through the tool, as the core keeps it: loaded on
 * demand, from the port hint (a guess) or from the guest, and written back
 * to the hint when dirty. */
struct guest_held {
	struct xhci_set set;
	bool loaded;
	bool from_hint; /* a guess: a refusal means asking the guest */
	bool dirty;	/* written once, when the guest is closed */
};

struct guest_ops {
	/* Keeps a port hint (xhci.h) in the state directory: the core loads
	 * what the guest holds (hint or guest) before attach() and keeps
	 * the hint in step. Without one, the guest itself is the record. */
	bool keeps_hint;

	/* Without a connection: whether the guest runs (1, 0, -errno, noted
	 * in rep when it cannot be asked) and an identity of this run of it
	 * ("" when it does not run). */
	int (*running)(struct target *t, const struct settings *s, struct report *rep);
	void (*stamp)(struct target *t, const struct settings *s, char *buf, size_t n);
	/* Whether the guest's own configuration passes dev (then it is the
	 * owner's, and left alone): 1 or 0. NULL: the kind has none. */
	int (*passes)(const struct target *t, const struct usb_device_info *dev);
	/* Without a connection, from the kind's own records: whether some
	 * guest of the kind has the USB device at port and follows the
	 * device nodes of its interfaces (ttyUSB0...), so that a node's own
	 * event is worth a look. NULL: the kind passes no such nodes. */
	bool (*follows_nodes_of)(const struct settings *s, const struct usb_port *port);

	/* Connects to the running guest; every later operation notes in rep.
	 * -ENOENT / -ECONNREFUSED: it does not run (noted as a warning);
	 * other errors are noted. */
	int (*open)(const struct settings *s, struct target *t, struct report *rep, void **ret);
	/* false once the connection broke: every later call would fail. */
	bool (*usable)(const void *c);
	/* Notes "LABEL: WHAT DESC: why" for r, in the kind's words; returns r. */
	int (*explain)(void *c, int r, const char *what, const char *desc);
	void *(*close)(void *c);

	/* The tool's USB devices in the guest (and with a hint, the
	 * controllers the tool may use). */
	int (*held)(void *c, struct xhci_set *ret);
	/* Refuses (-errno, noted) a device the kind cannot pass at all,
	 * before anything is asked. NULL: it can pass any. */
	int (*can_attach)(void *c, const struct usb_device_info *dev, const char *desc);
	/* Attaches dev (desc names it) and notes the outcome; an attached one
	 * for its vendor:product counts as success. With a hint, h is loaded
	 * (hint or guest) and kept in step. */
	int (*attach)(void *c, struct guest_held *h, const struct usb_device_info *dev,
		      const char *desc);
	/* Detaches the device of port: 0, 1 when there was none, or an
	 * error (noted, naming desc). */
	int (*detach)(void *c, const struct usb_port *port, const char *desc);
	/* After release detached every device of before (detached[i]: the
	 * i-th went), what else the kind must do for the guest to be as its
	 * own configuration says; h becomes what is left. NULL: nothing. An
	 * error is noted. */
	int (*release)(void *c, struct guest_held *h, const struct xhci_set *before,
		       const bool *detached);

	/* The tool's disks (vdisk.h). */
	int (*disks)(void *c, struct vdisk_set *ret);
	/* Attaches d's node at path as id (desc names it) and says in where
	 * how it went in: 0, 1 when it is attached already, -EEXIST when
	 * another device holds id (noted: the core detaches that one and
	 * tries again), or an error (noted). */
	int (*disk_attach)(void *c, const struct usb_disk *d, const char *id, const char *path,
			   enum disk_as as, const char *desc, char *where, size_t n);
	/* Detaches the disk id and lets go of it: 0, 1 when it was not there,
	 * -EBUSY when the guest still holds it at the deadline
	 * (VDISK_DEL_WAIT_MS; not noted), or another error (noted). */
	int (*disk_detach)(void *c, const char *id, const char *desc);
};

/* ms from now, or the end of the run if that comes first. */
static inline int64_t backend_deadline_in(const struct settings *s, int ms)
{
	int64_t d = util_now_ms() + ms;

	return s->run_deadline_ms && s->run_deadline_ms < d ? s->run_deadline_ms : d;
}

/* Whether this run's time limit ([run] timeout_ms) is up. */
static inline bool backend_run_is_over(const struct settings *s)
{
	return s->run_deadline_ms && util_remaining_ms(s->run_deadline_ms) == 0;
}
