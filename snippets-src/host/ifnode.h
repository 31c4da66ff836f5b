/* The device nodes of a USB device's interfaces: what a host driver made
 * for it (a tty such as /dev/ttyUSB0, a hidraw, a video4linux or a sound
 * node), from their udev event or, for a device plugged in already, from
 * sysfs below the USB device. Names and links are validated: one fit to
 * use below a container's /dev, or none. Nothing here logs. */
#pragma once

#include <stddef.h>

#include "host/port.h"
#include "host/uevent.h"

#define IFNODE_NAME_MAX 64
#define IFNODE_LINK_MAX 192
#define IFNODE_MAX 16 /* per USB device, at most */

struct ifnode {
	struct usb_port port;	     /* the USB device it belongs to */
	char name[IFNODE_NAME_MAX];  /* below /dev: "ttyUSB0", "snd/controlC1" */
	char link[IFNODE_LINK_MAX];  /* below /dev: "serial/by-id/usb-..._if00-port0", or "" */
	unsigned major, minor;
};

/* Whether subsystem is one whose nodes go with their USB device: tty,
 * hidraw, video4linux, sound. */
bool ifnode_subsystem(const char *subsystem);

/* Whether name ("ttyUSB0", "serial/by-id/x") is fit to put below /dev:
 * printable ASCII, no empty, "." or ".." component. */
bool ifnode_name_ok(const char *name);

/* An add or remove of such a node on a USB device, as udev's environment
 * tells it: 1 with *ret, or 0 with a short reason (another subsystem, no
 * DEVNAME, on no USB device, malformed values). The link: the first of
 * DEVLINKS below /dev/serial, /dev/v4l or /dev/snd. */
int ifnode_from_event(uevent_lookup_fn lookup, void *ud, enum uevent_action *ret_action,
		      struct ifnode *ret, const char **ret_reason);

/* The nodes below the USB device at devpath ("/devices/.../3-4"), as udev
 * knows them now: 0 with up to max of them, or -errno. */
int ifnode_list(const char *devpath, struct ifnode *ret, size_t max, size_t *ret_n);
