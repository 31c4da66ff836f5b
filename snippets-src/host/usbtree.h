/* The host's USB devices, read through libudev (and so from whatever /sys
 * libudev sees: the real one, or a umockdev testbed). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "host/port.h"

#define USB_CLASS_HUB 9

/* A USB string descriptor holds at most 126 UTF-16 units: 378 bytes of
 * UTF-8. Longer "strings" (a faked sysfs) are marked, never cut and
 * compared. */
#define USB_STRING_MAX 384

struct usb_device_info {
	struct usb_port port;
	char controller[PORT_CONTROLLER_MAX]; /* "pci-0000:00:14.0", "" if unknown */
	int dev_class;			      /* bDeviceClass, -1 if unreadable */
	bool have_ids;			      /* vid and pid are known */
	unsigned vid, pid;
	unsigned devnum;		      /* its address on the bus; 0 if unknown */
	bool mass_storage;		      /* it has a mass storage interface (class 08); only
					       * told when asked for (storage) */
	/* serial: raw bytes from the device, exact. serial_known false: not
	 * known (a remove event); serial "" with serial_known: it has none,
	 * or one too long to be real. */
	bool serial_known;
	char serial[USB_STRING_MAX];
	char speed[16];		    /* "480", "" if unknown */
	char product[USB_STRING_MAX]; /* raw bytes from the device: escape before showing */
	char manufacturer[USB_STRING_MAX];
};

/* Every USB device of the host (no root hubs, no interfaces), hubs
 * included, sorted by port. *ret is malloc()ed. storage: tell which have
 * a mass storage interface (a disk rule asks; it costs a read of udev's
 * record of each device). */
int usbtree_scan(bool storage, struct usb_device_info **ret, size_t *ret_n);

struct udev_device;
/* Every device of subsystem that read() takes (returns 0 for), each read
 * into an element of size bytes of *ret (malloc()ed), sorted by cmp. */
int usbtree_collect(const char *subsystem, size_t size,
		    int (*read)(struct udev_device *d, void *out, const void *ctx), const void *ctx,
		    int (*cmp)(const void *a, const void *b), void **ret, size_t *ret_n);

/* The device at sysfs path /sys<devpath>. -ENODEV if it is not there. */
int usbtree_get(const char *devpath, bool storage, struct usb_device_info *ret);

/* Which device is at port now, cheaply (plain reads of its busnum and
 * devnum, no udev; a device plugged in again gets a new devnum): port and
 * devnum in *ret, no ids; -ENODEV when no device is there. For the look
 * again before an attach. */
int usbtree_peek(const struct usb_port *port, struct usb_device_info *ret);

/* The sysfs DEVPATH ("/devices/.../3-4.1") of the USB device named name
 * ("3-4.1"). 0, -ENODEV when there is none, -ENAMETOOLONG. */
int usbtree_devpath(const char *name, char *buf, size_t n);
