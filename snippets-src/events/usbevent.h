/* A USB device's udev event (add, remove), and `plugged PORT`, the add as
 * the listener or pve-usb-hotplug@.service hands it over. Each logs what it
 * does; the return value maps to the exit code. */
#pragma once

#include <stdbool.h>

#include "base/settings.h"
#include "host/ifnode.h"
#include "host/uevent.h"

/* One udev event for a USB device (already filtered by uevent_parse).
 * passed (may be NULL): set when an add has gone to a guest (or is
 * Proxmox's own to pass). */
int usbevent_handle(const struct settings *s, const struct uevent *ev, bool *passed);

/* plugged PORT: the add of the USB device at PORT ("3-4.1"), read from
 * sysfs, as pve-usb-hotplug@.service runs it once udev has announced the
 * device (then QEMU's libusb knows it and opens it at once). */
int usbevent_plugged(const struct settings *s, const char *name, bool *passed);

/* An add or remove of a node of a USB device's interface (ifnode.h): when
 * a container holds the device, the device is looked at again as by
 * plugged, and the container's nodes of it follow. Nothing else is read
 * when none holds it. */
int usbevent_node(const struct settings *s, enum uevent_action action, const struct ifnode *n);
