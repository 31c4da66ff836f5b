/* A guest's xHCI controllers and their ports: where a passed device goes.
 *
 * Measured on QEMU 7.2 and 10: a qemu-xhci with p2=X,p3=Y has bus ports 1 to
 * max(X,Y); port N carries a USB 2 root port when N <= X and a USB 3 root
 * port when N <= Y, and a device takes the half its speed needs. So a
 * SuperSpeed device needs a port <= p3, any other one a port <= p2.
 *
 * Proxmox VE owns its controller "xhci": it hot-adds usbN at port N+1 there
 * (through HMP, never reading the answer, so a port the tool holds makes its
 * add fail without a word) and unplugs the controller with everything on it
 * when the last usbN goes. Proxmox has at most 14 usbN, so port 15 of a
 * qemu-xhci with 15 ports is never Proxmox's: that one port is the only one
 * the tool takes there. An nec-usb-xhci (Proxmox's layout for older machine
 * versions, 4 ports) and any other controller are left alone. Everything
 * else goes to the tool's own controllers (usbhotplug-xhciN, qemu-xhci
 * p2=15,p3=15), hot-added behind one of Proxmox's PCI bridges in a slot
 * Proxmox's own address map never uses.
 *
 * Any other QEMU guest (a set loaded with "any") is nobody else's to
 * manage: every port of each of its qemu-xhci and nec-usb-xhci controllers
 * that has an id may be used, those first; the tool's own controller goes behind any PCI
 * bridge the guest has, else on an i440fx root bus (which takes hot-plugged
 * devices), else on an empty pcie-root-port. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/port.h"
#include "guests/qmp.h"

#define XHCI_MAX_CTRLS 8
#define XHCI_MAX_PORTS 15
#define XHCI_OWN_PREFIX "usbhotplug-xhci"
#define XHCI_PROXMOX_ID "xhci"
/* The one port of Proxmox's "xhci" that Proxmox never uses. */
#define XHCI_PROXMOX_FREE_PORT 15
/* A device on no controller of the set (on UHCI, on a user's controller). */
#define XHCI_NO_CTRL 0xff
/* Devices the tool can hold in one guest: every port of every controller. */
#define XHCI_MAX_DEVS (XHCI_MAX_CTRLS * XHCI_MAX_PORTS)

struct xhci_ctrl {
	char id[64];
	unsigned p2, p3;
	bool ours;
	bool whole; /* every port may be used: the tool's own, or an "any" guest's */
	uint32_t taken; /* bit N: port N is in use (or was refused) */
};

/* A host port the guest holds through the tool: usb-host "usbhost<port>". */
struct xhci_dev {
	struct usb_port port;
	unsigned char ctrl; /* index in the set, or XHCI_NO_CTRL */
	unsigned char guest_port;
	unsigned vid, pid; /* what it was pinned to; 0:0 when not pinned */
	signed char open;  /* QOM "attached": QEMU has the host device open; -1 unknown */
};

struct xhci_set {
	bool any; /* not a Proxmox VM: the guest's own qemu-xhci are usable whole */
	size_t n;
	struct xhci_ctrl c[XHCI_MAX_CTRLS];
	size_t n_devs;
	struct xhci_dev devs[XHCI_MAX_DEVS];
};

/* Reads the controllers the tool may use (its own, and Proxmox's "xhci"
 * when it is a qemu-xhci; with any, every qemu-xhci with an id), which of
 * their ports are taken, and every usbhost* device with its host port and
 * vendor/product, in one batch of questions. On failure *ret is
 * untouched. */
int xhci_load(struct qmp *q, bool any, struct xhci_set *ret);

/* Pure: the port for a device, top down in each controller: an "any"
 * guest's own controllers first, then the tool's, then port 15 of
 * Proxmox's "xhci" when it has one. 0 with *ret_ctrl and *ret_port, or
 * -ENOSPC. */
int xhci_pick(const struct xhci_set *set, bool superspeed, size_t *ret_ctrl, unsigned *ret_port);

/* Hot-adds a controller of the tool's own in a free PCI slot (see above)
 * and appends it to set; msg says where ("pci.1.0x1f"). -ENOSPC when there
 * is none to spare (msg says why); other errors from QMP. */
int xhci_add_own(struct qmp *q, struct xhci_set *set, char *msg, size_t msg_size);

/* Hot-adds the PCI device props (stolen: "driver", "id" and the rest, not
 * "bus" or "addr") in a free slot, chosen as for the tool's own controller:
 * a Proxmox VM's spare bridge slots, or with any, any guest's. 0 with msg
 * saying where; -ENOSPC (msg says why), -ENOMEM, other errors from QMP
 * (QEMU's last refusal is in qmp_error_desc()). */
int xhci_add_in_free_slot(struct qmp *q, bool any, json_t *props, char *msg, size_t msg_size);

/* Bookkeeping of the tool's own devices. */
void xhci_note_attached(struct xhci_set *set, size_t ctrl, unsigned guest_port,
			const struct usb_port *port, unsigned vid, unsigned pid);
void xhci_note_detached(struct xhci_set *set, const struct usb_port *port);
/* The device the guest holds for port, or NULL. */
const struct xhci_dev *xhci_find(const struct xhci_set *set, const struct usb_port *port);

/* The hint: what the set looked like after the last change, kept in the
 * state directory as <key>.ports and stamped with the QEMU process it
 * describes. Asking QEMU costs about a millisecond a question; a hint
 * costs a file read. It is a guess for placement (a port it calls free
 * that is not makes device_add fail, and the caller asks QEMU after all)
 * and the record of what the tool holds where. A Proxmox VM's may name
 * only "xhci" and the tool's own controllers. Parse: 0, or -EINVAL (malformed, another
 * QEMU). Read: 0, -ENOENT (none), -EINVAL. Write: atomic (a new file
 * renamed over the old), never following or blocking on what is there. */
int xhci_hint_parse(const char *text, size_t len, const char *stamp, bool any,
		    struct xhci_set *ret);
int xhci_hint_read(int dirfd, const char *key, const char *stamp, bool any,
		   struct xhci_set *ret);
int xhci_hint_write(int dirfd, const char *key, const char *stamp, const struct xhci_set *set);
int xhci_hint_remove(int dirfd, const char *key);

/* SuperSpeed and faster: sysfs speed 5000, 10000, 20000. */
bool xhci_is_superspeed(const char *speed);

/* "usbhost3-4.1": the QEMU id of a passed host port. */
#define XHCI_DEV_ID_MAX (PORT_STRLEN + 8)
void xhci_dev_id(const struct usb_port *p, char *buf, size_t n);
/* The host port of such an id; 0 or -EINVAL (not one of the tool's). */
int xhci_parse_dev_id(const char *id, struct usb_port *ret);
