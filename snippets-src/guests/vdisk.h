/* USB disks in a guest as virtual disks (through QMP; a libvirt domain is
 * refused for now): a host_device node on the disk's by-id link, a raw
 * node on top, and a scsi-hd on the guest's virtio-scsi controller or a
 * virtio-blk-pci in a free PCI slot. Names: disk.h. Measured (QEMU 7.2
 * and 10): a scsi-hd leaves at once and its nodes can be deleted some
 * 60 ms later; a virtio-blk-pci leaves only once the guest acknowledges
 * the PCI unplug. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "host/disk.h"
#include "guests/guest.h"
#include "policy/usbconf.h"

#define VDISK_MAX 64
/* How long a detach waits for QEMU to let go of a disk's nodes. */
#define VDISK_DEL_WAIT_MS 5000

struct vdisk {
	char id[DISK_ID_MAX];
	char driver[32];  /* "scsi-hd", "virtio-blk-pci"; "" with nodes alone */
	char file[512];	  /* what the node opened ("" when there is none) */
	bool nodes;	  /* its block nodes are there */
};

struct vdisk_set {
	size_t n;
	struct vdisk d[VDISK_MAX];
};

/* The tool's disks in the guest, asked of QEMU. */
int vdisk_list(struct guest *g, struct vdisk_set *ret);

/* The entry for id, or NULL. */
const struct vdisk *vdisk_find(const struct vdisk_set *set, const char *id);

/* "disk usb-WD_Elements_57584C-0:0" (its by-id link's name, which tells
 * the disk), else "disk usbdisk-...", for messages. */
void vdisk_describe(const struct vdisk *e, char *buf, size_t n);

/* Attaches d (its by-id node at path, checked by the caller) as asked. An
 * attached one counts as success. Logs the outcome. */
int vdisk_attach(struct guest *g, const struct usb_disk *d, const char *path, enum disk_as as);

/* Detaches the disk id (desc names it in messages, why says why, may be
 * NULL) and deletes its nodes, waiting up to VDISK_DEL_WAIT_MS for QEMU to
 * let go of them. Not attached counts as success. */
int vdisk_detach(struct guest *g, const char *id, const char *desc, const char *why);
