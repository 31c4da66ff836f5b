/* A host USB port as the kernel names it: BUS-PORT[.PORT...], e.g. "3-4.1.2"
 * (bus 3, root port 4, hub port 1, hub port 2). Pure functions. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* USB allows five hubs between a root port and a device: six numbers. One
 * more for slack. */
#define PORT_MAX_DEPTH 7
#define PORT_MAX_BUS 999
#define PORT_MAX_NUMBER 255
/* "999-255.255.255.255.255.255.255" plus NUL */
#define PORT_STRLEN 32

struct usb_port {
	unsigned bus;
	unsigned depth; /* how many port numbers, 1..PORT_MAX_DEPTH */
	unsigned char num[PORT_MAX_DEPTH];
};

/* Parses exactly "BUS-PORT[.PORT...]" (no spaces, no leading zeros, no
 * trailing bytes). Returns 0, or -EINVAL for anything else (root hubs
 * "usb3" and interfaces "3-4:1.0" included). */
int port_parse(const char *s, struct usb_port *ret);

/* Same over the first len bytes of s. */
int port_parse_n(const char *s, size_t len, struct usb_port *ret);

/* true when dev is prefix itself or below it: same bus, and prefix's port
 * numbers are the first of dev's, compared as whole numbers ("3-4" takes
 * "3-4.1", never "3-40"). */
bool port_is_under(const struct usb_port *dev, const struct usb_port *prefix);

bool port_equal(const struct usb_port *a, const struct usb_port *b);

/* The one order of ports everywhere: by bus, then port numbers as whole
 * numbers, a hub before what is behind it ("3-4" < "3-4.1" < "3-10"). For
 * qsort() over struct usb_port. */
int port_compare(const void *a, const void *b);

/* "3-4.1.2" into buf (PORT_STRLEN is always enough). */
void port_format(const struct usb_port *p, char *buf, size_t n);

/* QEMU's hostport: the part after the dash, "4.1.2". */
void port_format_hostport(const struct usb_port *p, char *buf, size_t n);

/* The port numbers alone, "4.1.2" (as in udev's ID_PATH), into *ret with
 * bus 0. 0 or -EINVAL. */
int port_parse_hostport_n(const char *s, size_t len, struct usb_port *ret);

/* "pci-0000:00:14.0" + "-usb-0:4.1" is udev's ID_PATH of a device: the
 * controller part, as udev's path_id names it, fits in this. */
#define PORT_CONTROLLER_MAX 96

/* The controller part of a USB device's ID_PATH, from its sysfs DEVPATH
 * ("/devices/pci0000:00/0000:00:14.0/usb3/3-4" -> "pci-0000:00:14.0"; a
 * controller that is no PCI function -> "platform-NAME"). Pure string work,
 * so it also serves remove events, when sysfs has nothing left. 0 or
 * -EINVAL. */
int port_controller(const char *devpath, char *buf, size_t n);

/* "pci-0000:00:14.0-usb-0:4.1" into buf. */
void port_format_path(const char *controller, const struct usb_port *p, char *buf, size_t n);
