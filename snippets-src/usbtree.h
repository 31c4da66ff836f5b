/* The host's USB devices, read through libudev (and so from whatever /sys
 * libudev sees: the real one, or a umockdev testbed). */
#pragma once

#include <stddef.h>

#include "port.h"

#define USB_CLASS_HUB 9

struct usb_device_info {
	struct usb_port port;
	int dev_class; /* bDeviceClass, -1 if unreadable */
	unsigned vid, pid;
	char speed[16];	   /* "480", "" if unknown */
	char product[256]; /* raw bytes from the device: escape before showing */
};

/* Every USB device of the host (no root hubs, no interfaces), hubs
 * included, sorted by port. *ret is malloc()ed. */
int usbtree_scan(struct usb_device_info **ret, size_t *ret_n);

/* The device at sysfs path /sys<devpath>. -ENODEV if it is not there. */
int usbtree_get(const char *devpath, struct usb_device_info *ret);
