/* A target: a guest the program passes devices to, and how to reach it.
 *
 *   - a Proxmox VE VM (the default): VMID, rules in
 *     <vm_config_dir>/<vmid>.usb.conf, QEMU's QMP socket and pid file in
 *     <qmp_socket_dir>, running when the pid file names a live QEMU that was
 *     started with it;
 *   - a QEMU guest the admin declares in the settings ([qemu NAME]): its
 *     QMP socket (a path, or a glob where it changes from run to run), its
 *     rules file and, optionally, its pid file;
 *   - a Xen HVM guest ([xen NAME]): a QEMU guest whose device model listens
 *     on /var/run/xen/qmp-libxl-<domid>; the domid changes with every start,
 *     so the socket is the one whose QEMU carries the domain's name (-name);
 *   - a libvirt domain ([libvirt NAME]): libvirtd owns its QEMU's monitor,
 *     so devices go through libvirt's API (libvirt.h), loaded only for it;
 *   - a Proxmox VE container (lxc.h): CTID (VMs and containers share one
 *     space of IDs), a container when <lxc_config_dir>/<ctid>.conf exists,
 *     rules in <lxc_config_dir>/<ctid>.usb.conf.
 *
 * This is what a target is and where to find it; what is done with one is
 * its kind's (backend.h), through guest.h.
 *
 * QEMU and Xen guests are reached like a Proxmox VM once their socket is
 * known (QMP); rules, placement, the commands and the state files are
 * shared by every kind. Messages
 * name a target by its label ("VM 100", "QEMU guest desktop"). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "base/log.h"
#include "base/report.h"
#include "base/settings.h"

enum target_kind {
	TARGET_PVE,
	TARGET_QEMU,
	TARGET_XEN,
	TARGET_LIBVIRT,
	TARGET_LXC,
};

struct target {
	enum target_kind kind;
	unsigned long vmid;		     /* TARGET_PVE, TARGET_LXC; 0 for the others */
	char name[SETTINGS_NAME_MAX + 1];    /* "100"; the section's name */
	char label[SETTINGS_NAME_MAX + 24];  /* "VM 100", "QEMU guest desktop" */
	char key[SETTINGS_NAME_MAX + 8];     /* its state files: "100", "qemu-desktop" */
	char qmp[SETTINGS_PATH_MAX];	     /* the socket, or a glob of sockets */
	char qemu_name[SETTINGS_NAME_MAX + 1]; /* of a glob's sockets, the QEMU with this -name */
	char pidfile[SETTINGS_PATH_MAX];     /* "": none */
	char rules[SETTINGS_PATH_MAX];
	char uri[SETTINGS_PATH_MAX];	     /* libvirt: the connection */
	char domain[SETTINGS_PATH_MAX];	     /* libvirt: the domain's name */
	const char *origin; /* where it is declared: "FILE:LINE"; NULL for a Proxmox VM */

	/* the socket found for qmp: 0 when found, 1 before the search, or
	 * why not (-ENOENT: none, -ENOTUNIQ: several) */
	int sock_state;
	char sock[SETTINGS_PATH_MAX];
};

/* "proxmox", "qemu", "xen", "libvirt", "lxc": as status and check print it. */
const char *target_kind_name(enum target_kind kind);

/* A Proxmox VM. -ENAMETOOLONG when the configured directories make a path
 * too long (noted in rep). */
int target_pve(const struct settings *s, unsigned long vmid, struct target *ret, struct report *rep);

/* A Proxmox container. -ENAMETOOLONG as target_pve(). */
int target_lxc(const struct settings *s, unsigned long ctid, struct target *ret,
	       struct report *rep);

/* A Proxmox VM or container by its ID: a container when
 * <lxc_config_dir>/<id>.conf exists. -ENAMETOOLONG as target_pve(). */
int target_by_id(const struct settings *s, unsigned long id, struct target *ret,
		 struct report *rep);

/* A declared guest, from its settings section. */
void target_from_conf(const struct guest_conf *c, struct target *ret);

/* The QMP socket path (t->sock): 0, -ENOENT when none exists, -ENOTUNIQ
 * when a glob finds several and no -name tells them apart. A candidate
 * with a qemu_name counts when a QEMU's command line names it with that
 * -name: read from /proc, with no QMP exchange on a socket whose one
 * client slot is libxl's on a Xen host; without a qemu_name, when
 * something listens on it. Found once per target. Logs nothing. */
int target_socket(struct target *t);

/* Whether the QMP socket is found and something listens on it. Logs
 * nothing. */
bool target_socket_live(struct target *t);

/* The guest a command names: a VMID, or a declared guest's name. -ENOENT
 * (noted in rep) when it is neither. */
int target_by_name(const struct settings *s, const char *name, struct target *ret,
		   struct report *rep);

/* Notes in rep, at level, that t's socket glob finds several QEMUs
 * (-ENOTUNIQ). */
void target_explain_ambiguous(const struct target *t, enum log_level level, struct report *rep);

/* Whether asking if t runs, and what it holds, costs no more than a file
 * read or a local socket: not so for a libvirt domain (loading libvirt,
 * talking to libvirtd), which is asked only about devices its rules claim.
 * Whether it runs, and what it holds: guest.h. */
bool target_cheap(const struct target *t);

/* Nobody else manages the guest's controllers (not a Proxmox VM): its own
 * xHCI controllers are the tool's to use (xhci.h's "any"), and any
 * virtio-scsi controller of it takes the tool's disks. */
bool target_any(const struct target *t);

/* Whether a device the guest holds, whose open state is not known, counts
 * as open: a libvirt domain's hostdev is live only once libvirt opened the
 * device (its QEMU is not asked: a monitor command taints the domain). */
bool target_held_is_open(const struct target *t);
