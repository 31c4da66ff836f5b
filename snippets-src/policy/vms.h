/* The guests of this host as the tool sees them (Proxmox VMs and the guests
 * declared in the settings, target.h): their rules, whether they run,
 * what Proxmox itself passes them, which host ports they hold. Read lazily
 * and at most once per run, so a udev event for a device nobody claims
 * costs no more than reading the rules.
 *
 * vms_place() says where a device belongs:
 *   - only running VMs compete;
 *   - a device Proxmox passes (usbN in a running VM's <vmid>.conf) is left
 *     to Proxmox;
 *   - a device a claiming VM holds already stays there (a VM that starts
 *     takes only what no other running VM holds);
 *   - else the most specific rule wins; two equal claims attach nowhere. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "base/log.h"
#include "policy/place.h"
#include "policy/pveconf.h"
#include "base/settings.h"
#include "guests/target.h"
#include "policy/usbconf.h"
#include "host/usbtree.h"
#include "guests/xhci.h"
#include "host/disk.h"

#define HELD_UNKNOWN 1

struct vm {
	struct target t;
	struct vm_rules *rules; /* NULL: no rules file */
	int running;		/* -1: not asked yet */
	bool released;		/* running, but held back ("release"): competes for nothing */
	int pve_state;		/* -1: not read; 0: read; -ENOENT...: none */
	struct pve_vm pve;
	int held_state;	 /* HELD_UNKNOWN; 0: known; <0: could not be asked */
	bool held_asked; /* held comes from QEMU itself, not the hint */
	struct xhci_dev *held;
	size_t n_held;
};

struct guest;

struct vms {
	const struct settings *s;
	unsigned long starting_vmid; /* post-start: counts as running */
	bool all_listed;	     /* running VMs without a .usb.conf added */
	bool hinted_listed;	     /* VMs with a port hint added */
	bool disk_holders_listed;    /* VMs noted to have had disks added */
	int maps_state;		     /* 1: not read; 0: read; <0: none (-ENOENT...) */
	struct pve_mappings maps;    /* this node's USB resource mappings */
	struct vm **list; /* each vm stays where it is while the list grows */
	size_t n;
	/* the guest this run has open (its lock taken), asked through that
	 * connection: never opened a second time (it would wait for its own
	 * lock); see vms_set_open() */
	struct vm *open_vm;
	struct guest *open_guest;
};

struct placement {
	enum place_kind kind;
	struct vm *vm;
	const struct usb_rule *rule; /* PLACE_VM: the rule that claims it */
	unsigned score;
	bool held;	   /* PLACE_VM: vm holds it already */
	struct vm *rival;  /* PLACE_CONFLICT */
	const struct pve_usb *pve; /* PLACE_PROXMOX */
};

/* The guests without any Proxmox VM's rules: the declared guests only,
 * for a remove while the rules directory cannot be read (pmxcfs
 * restarting or crashed); vms_list_hinted() then adds every VM the tool's
 * own records in the state directory name. */
int vms_load_records(const struct settings *s, struct vms *ret);

/* Reads every .usb.conf (bad lines logged at line_level). With
 * LOG_LVL_DEBUG (udev events) a missing directory is a quiet -ENOENT: at
 * boot udev replays every device before /etc/pve is mounted. */
int vms_load(const struct settings *s, enum log_level line_level, unsigned long starting_vmid,
	     struct vms *ret);
void vms_free(struct vms *v);

/* For the operator's commands: every .usb.conf (bad lines as warnings),
 * every running VM, and the host's USB devices (*devs malloc()ed). Errors
 * are logged; on failure nothing is left to free. */
int vms_load_host(const struct settings *s, struct vms *v, struct usb_device_info **devs,
		  size_t *n_devs);

/* The guest named name: a VMID ("100") or a declared guest's name. */
struct vm *vms_find(struct vms *v, const char *name);

/* Whether a rule of vm claims dev (a deny rule keeps it out). */
bool vms_claims(const struct vm *vm, const struct usb_device_info *dev);
/* Whether vm runs and takes part: a released VM does not (vm->released). */
bool vms_running(struct vms *v, struct vm *vm);

/* Adds the running VMs that have no .usb.conf (Proxmox may pass them USB
 * devices); sorted by vmid afterwards. */
int vms_list_running(struct vms *v);

/* This node's USB resource mappings (read once); NULL when there are none
 * or the file cannot be read. */
const struct pve_mappings *vms_mappings(struct vms *v);

/* The VM's usbN lines, mappings resolved; NULL if it has no <vmid>.conf. */
const struct pve_vm *vms_pve(struct vms *v, struct vm *vm);

/* Adds the VMs that have a port hint in the state directory (the tool has
 * put devices there) but no .usb.conf: they may hold what nobody claims. */
int vms_list_hinted(struct vms *v);

/* What vm holds through the tool for port, or NULL. From the port hint
 * when there is one for its running QEMU, else asked of QEMU once (a VM
 * with neither a .usb.conf nor a hint holds nothing). NULL too when QEMU
 * could not be asked (logged). */
const struct xhci_dev *vms_holds(struct vms *v, struct vm *vm, const struct usb_port *port);
/* Asks QEMU itself what vm holds (status, sync: the truth, not the
 * record). 0 or the error (logged). */
int vms_fetch_held(struct vms *v, struct vm *vm);

/* Whether any guest's rules have a disk rule (deny too): only then does a
 * USB device's mass storage interface matter. */
bool vms_any_disk_rules(const struct vms *v);

/* Adds the VMs the tool has put disks into (<key>.disks in the state
 * directory) but that have no .usb.conf. */
int vms_list_disk_holders(struct vms *v);

/* While g (vm's open connection, its lock held by this run) is open,
 * questions to vm go through it; NULL, NULL when it is closed. */
void vms_set_open(struct vms *v, struct vm *vm, struct guest *g);

/* Where a USB disk belongs now, as a disk: by the guests' disk rules
 * alone (place.h decides; PLACE_PROXMOX never). */
int vms_place_disk(struct vms *v, const struct usb_disk *disk, struct placement *ret);

/* What the decision where dev belongs needs, gathered first: a row per
 * guest of v->list (in its order), as place.h sees it. Only as much as the
 * decision can use: nothing (n 0) for a hub or a device no running guest
 * claims; what each holds (a port hint, or a question to its QEMU) only
 * when several claim it. */
struct vms_snapshot {
	size_t n;
	struct place_view *views;
	const struct usb_rule **rules; /* each guest's best claim; NULL: none */
	const struct pve_usb **pves;   /* what Proxmox passes it; NULL: nothing (or XML) */
};

/* Gathers the snapshot for dev (reads files, may ask QEMU and libvirt):
 * 0 with *ret to free with vms_snapshot_free(), or the error. */
int vms_gather(struct vms *v, const struct usb_device_info *dev, struct vms_snapshot *ret);
void vms_snapshot_free(struct vms_snapshot *snap);

/* Where the device of snap belongs, decided from snap alone (no I/O):
 * place_decide() mapped onto v's guests. A device a claiming guest's disk
 * rule takes is PLACE_DISK. */
void vms_decide(const struct vms *v, const struct vms_snapshot *snap, struct placement *ret);

/* Where dev belongs now: vms_gather(), then vms_decide(). Hubs are never
 * placed (PLACE_NOBODY). */
int vms_place(struct vms *v, const struct usb_device_info *dev, struct placement *ret);
