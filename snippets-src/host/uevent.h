/* A udev event as the environment of a RUN+= program describes it. Pure:
 * the caller passes a lookup function (getenv in the program, a table in
 * the tests). Everything in it is validated; nothing is trusted. */
#pragma once

#include <stdbool.h>

#include "host/port.h"

#define UEVENT_DEVPATH_MAX 1024

enum uevent_action {
	UEVENT_ADD,
	UEVENT_REMOVE,
};

struct uevent {
	enum uevent_action action;
	struct usb_port port;
	char devpath[UEVENT_DEVPATH_MAX]; /* "/devices/.../3-4.1" */
	int dev_class;			  /* bDeviceClass from TYPE, -1 if not given */
	bool have_ids;			  /* vid/pid from PRODUCT */
	unsigned vid, pid;
};

typedef const char *(*uevent_lookup_fn)(const char *key, void *userdata);

/* Returns 1 when the event is a USB device being added or removed that is
 * not a hub (as far as the environment tells), filling *ret. Returns 0 when
 * the event is to be ignored, with a short reason in *ret_reason (an
 * interface, a root hub, a hub, another action, another subsystem, or
 * malformed values). */
int uevent_parse(uevent_lookup_fn lookup, void *userdata, struct uevent *ret,
		 const char **ret_reason);

/* A DEVPATH fit to use: "/devices/..." of printable ASCII, without "." or
 * ".." or empty components, shorter than UEVENT_DEVPATH_MAX. */
bool uevent_devpath_ok(const char *devpath);
