/* USB disks of the host: whole disks (SUBSYSTEM=block, DEVTYPE=disk) on a
 * USB device, read through libudev (the real /sys, or a umockdev testbed),
 * or from a udev event's environment (a remove: sysfs is gone by then).
 *
 * A disk is named by the serials udev gives it, never by sdX; it reaches a
 * guest through its /dev/disk/by-id link, under a directory the settings
 * name ([paths] disk_dir), checked to be the very block device the event
 * is about. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/port.h"
#include "host/uevent.h"
#include "policy/usbconf.h"
#include "host/usbtree.h"

#define DISK_NAME_MAX 32
#define DISK_LINK_MAX 256
/* QEMU's names for a disk: device id and node name "usbdisk-<16 hex>" (a
 * hash of the disk's serial), and "<that>-file" for the host_device node
 * under it: within QEMU's 31 characters for a node name, and apart from
 * every name Proxmox uses (scsiN, virtioN, drive-*, [aefz] + hex). */
#define DISK_ID_PREFIX "usbdisk-"
#define DISK_ID_MAX 32

struct usb_disk {
	char devpath[UEVENT_DEVPATH_MAX]; /* "/devices/.../block/sdb" */
	char name[DISK_NAME_MAX];	  /* "sdb" */
	unsigned major, minor;
	struct usb_port port; /* the USB device that carries it */
	char serial[USB_STRING_MAX];	   /* ID_SERIAL: "WD_Elements_57584C-0:0" */
	char serial_bare[USB_STRING_MAX];  /* without udev's "-0:0" (the SCSI LUN) */
	char serial_short[USB_STRING_MAX]; /* ID_SERIAL_SHORT */
	char usb_serial[USB_STRING_MAX];   /* ID_USB_SERIAL (differs with ATA passthrough) */
	char usb_serial_short[USB_STRING_MAX];
	char model[128];	 /* ID_MODEL, for messages */
	char link[DISK_LINK_MAX]; /* its /dev/disk/by-id link's name: "usb-WD_Elements_57584C-0:0" */
	uint64_t size;		 /* bytes; 0: no medium (a card reader without a card) */
};

/* Every USB disk of the host, sorted by name. *ret is malloc()ed. */
int disk_scan(struct usb_disk **ret, size_t *ret_n);

/* The disk at sysfs path /sys<devpath>. -ENODEV if it is not there, or is
 * no USB disk. */
int disk_get(const char *devpath, struct usb_disk *ret);

/* A udev event for a block device: 1 when it is a USB whole disk being
 * added or removed, filling *ret_action and *ret from the environment
 * alone (size unknown: 0); 0 with a short reason when it is to be
 * ignored. A change of medium (DISK_MEDIA_CHANGE=1, a card reader) counts
 * as an add: the disk is looked at again. Pure. */
int disk_from_event(uevent_lookup_fn lookup, void *userdata, enum uevent_action *ret_action,
		    struct usb_disk *ret, const char **ret_reason);

/* The serials a disk rule is matched against. udev's ID_SERIAL of a USB
 * disk ends in its LUN ("-0:0", measured on Debian 12), as its by-id link
 * does; a rule may name it with or without. */
void disk_serials(const struct usb_disk *d, struct disk_serials *ret);

/* The serial that names the disk in QEMU and in messages: ID_SERIAL, else
 * the short one, else its link, else its kernel name. */
const char *disk_key(const struct usb_disk *d);

/* "usbdisk-0123456789abcdef" for the disk named key. */
void disk_qemu_id(const char *key, char *buf, size_t n);

/* "<dir>/<link>" when it is the disk's block device (major:minor); 0,
 * -ENOENT (no link: why says so), -ESTALE (the link is another device's or
 * no block device), -ENAMETOOLONG. */
int disk_node_path(const char *dir, const struct usb_disk *d, char *buf, size_t n);

/* Whether the host itself uses the disk: a filesystem of it (or of a
 * partition) mounted, swap on it, a holder (LVM, dm-crypt, md). 0, or
 * -EBUSY with why ("/dev/sdb1 is mounted on /mnt/backup"). */
int disk_host_busy(const struct usb_disk *d, char *why, size_t n);

/* The kernel's word, right before an attach: whether path (the disk's
 * checked node) can be opened exclusively (O_EXCL), which fails while a
 * filesystem of the disk or of a partition is mounted in any mount
 * namespace (btrfs and ZFS included), or swap, a dm/md/LVM holder or a
 * program claims it. 0; -EBUSY with why naming the mount (and the
 * namespace's process) where it can be told; another -errno with why when
 * the node cannot be opened. */
int disk_claim_check(const char *path, const struct usb_disk *d, char *why, size_t n);

/* "disk WD_Elements_57584C-0:0 (sdb, 2.0 TB)" for messages. */
void disk_describe(const struct usb_disk *d, char *buf, size_t n);

/* "2.0 TB" */
void disk_format_size(uint64_t bytes, char *buf, size_t n);

/* The USB port in a disk's DEVPATH ("/devices/.../3-4.1/3-4.1:1.0/host6/
 * .../block/sdb" -> 3-4.1): 0, or -EINVAL when it lies on no USB device. */
int disk_port_of(const char *devpath, struct usb_port *ret);
