/* A guest's xHCI controllers and their ports: where a passed device goes.
 *
 * Measured on QEMU 7.2: a qemu-xhci with p2=X,p3=Y has bus ports 1 to
 * max(X,Y); port N carries a USB 2 root port when N <= X and a USB 3 root
 * port when N <= Y, and a device takes the half its speed needs. So a
 * SuperSpeed device needs a port <= p3, any other one a port <= p2
 * (qemu-xhci,p2=15,p3=15: ports 1-15, each good for every speed).
 *
 * Proxmox's "xhci" and the tool's own are p2=15,p3=15; other controllers
 * are asked.
 *
 * Proxmox VE puts its own usbN at port N+1 of "xhci", so ports are used
 * from the top down there, and those of the VM's usbN are never taken. When
 * nothing fits, the tool hot-adds a controller of its own
 * (usbhotplug-xhciN, p2=15,p3=15) behind one of Proxmox's PCI bridges, in
 * a slot Proxmox's own address map does not use. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qmp.h"

#define XHCI_MAX_CTRLS 8
#define XHCI_MAX_PORTS 15
#define XHCI_OWN_PREFIX "usbhotplug-xhci"
#define XHCI_PROXMOX_ID "xhci"

struct xhci_ctrl {
	char id[64];
	unsigned p2, p3;
	bool ours;
	uint32_t taken; /* bit N: port N is in use (or was refused) */
};

/* A device the tool put there, and where. */
struct xhci_dev {
	char id[48];
	unsigned char ctrl, port;
};

struct xhci_set {
	size_t n;
	struct xhci_ctrl c[XHCI_MAX_CTRLS];
	size_t n_devs;
	struct xhci_dev devs[XHCI_MAX_CTRLS * XHCI_MAX_PORTS];
};

/* Reads the guest's xHCI controllers, their port counts and which ports
 * their devices hold. A device without an explicit port holds one we
 * cannot see; device_add then says "in use", and the caller tries the
 * next one. */
int xhci_load(struct qmp *q, struct xhci_set *ret);

/* Pure: the port for a device. The tool's own controllers first, then
 * Proxmox's "xhci" (top down, above port `reserved`), then any other.
 * 0 with *ret_ctrl and *ret_port, or -ENOSPC. */
int xhci_pick(const struct xhci_set *set, bool superspeed, unsigned reserved, size_t *ret_ctrl,
	      unsigned *ret_port);

/* Hot-adds a controller of the tool's own in a free slot of a PCI bridge
 * and appends it to set; msg says where ("pci.1.0x1f"). -ENOSPC when no
 * bridge has a slot to spare (msg says why); other errors from QMP. */
int xhci_add_own(struct qmp *q, struct xhci_set *set, char *msg, size_t msg_size);

/* Bookkeeping of the tool's own devices (usbhost*), for the hint. */
void xhci_note_attached(struct xhci_set *set, size_t ctrl, unsigned port, const char *id);
void xhci_note_detached(struct xhci_set *set, const char *id);

/* The hint: what the set looked like after the last change, kept in a
 * small file next to the VM's lock and stamped with the QEMU process it
 * describes. Asking QEMU costs about a millisecond a question; a hint
 * costs a file read. It is only ever a guess: a port it calls free that is
 * not, or a controller that is gone, makes device_add fail, and the caller
 * asks QEMU after all. 0, or -ENOENT/-EINVAL (no hint, another QEMU,
 * unreadable). */
int xhci_hint_read(const char *path, const char *stamp, struct xhci_set *ret);
int xhci_hint_write(const char *path, const char *stamp, const struct xhci_set *set);

/* SuperSpeed and faster: sysfs speed 5000, 10000, 20000. */
bool xhci_is_superspeed(const char *speed);
