/* USB disks in a guest as virtual disks: what the tool has put there, as a
 * set, and what every kind of guest words alike about them. How a disk
 * goes in is the guest kind's (guest.h; QMP guests: a host_device node on
 * the disk's by-id link, a raw node on top, and a scsi-hd on the guest's
 * virtio-scsi controller or a virtio-blk-pci in a free PCI slot; libvirt
 * domains: a <disk> of type block). Names: disk.h. Measured (QEMU 7.2
 * and 10): a scsi-hd leaves at once and its nodes can be deleted some
 * 60 ms later; a virtio-blk-pci leaves only once the guest acknowledges
 * the PCI unplug. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "host/disk.h"

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

/* The entry for id, or NULL. */
const struct vdisk *vdisk_find(const struct vdisk_set *set, const char *id);

/* The entry for id, added (zeroed but for its id) when there is none;
 * NULL when the set is full or id too long. */
struct vdisk *vdisk_add(struct vdisk_set *set, const char *id);

/* "disk usb-WD_Elements_57584C-0:0" (its by-id link's name, which tells
 * the disk), else "disk usbdisk-...", for messages. */
void vdisk_describe(const struct vdisk *e, char *buf, size_t n);

/* The serial the guest may be told: d's short serial when it is short
 * and plain (virtio-blk keeps 20 bytes), else NULL. */
const char *vdisk_serial(const struct usb_disk *d);
