/* A libvirt domain's XML, as libvirtd writes it (libvirt.h): the tool's
 * devices in it, what its owner passes, where the next device goes, and
 * the XML of a device to add. Pure: a string in, values out; never trusts
 * its input (fuzz_domxml). Not a general XML parser: the few elements and
 * attributes libvirt writes, in its own layout. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "guests/vdisk.h"
#include "guests/xhci.h"
#include "host/port.h"
#include "host/usbtree.h"

/* A user alias: "ua-" and then only letters, digits, '_' and '-' (libvirt
 * quietly drops one with a '.', measured): the port's dots become '_'. */
#define DOMXML_ALIAS_PREFIX "ua-"
#define DOMXML_ALIAS_MAX (XHCI_DEV_ID_MAX + 4)

/* "ua-usbhost3-4_1" for 3-4.1. */
void domxml_alias(const struct usb_port *port, char *buf, size_t n);

/* The tool's hostdevs (aliased by domxml_alias()) in a domain's XML, as a
 * set of devices (no controllers: libvirt places them; open is unknown,
 * -1). Always 0. */
int domxml_held(const char *xml, struct xhci_set *ret);

/* Whether the domain's own XML passes dev (a hostdev that is not the
 * tool's, by vendor and product and/or bus and device number). */
bool domxml_passes(const char *xml, const struct usb_device_info *dev);

/* The xHCI port for the next device (bus, port); -ENOSPC, or -ENOENT
 * without an xHCI controller. */
int domxml_pick_port(const char *xml, bool superspeed, unsigned *ret_bus, unsigned *ret_port);

/* The tool's disks (aliased "ua-usbdisk-HASH") in a domain's XML, as a
 * set (file: the source; nodes: false), and whether it has a virtio-scsi
 * controller. Always 0. */
int domxml_disks(const char *xml, struct vdisk_set *ret, bool *ret_scsi);

/* The first target name PREFIX[a-z]{1,2} none of its disks has: 0,
 * -ENOSPC, -ENAMETOOLONG. */
int domxml_pick_target(const char *xml, const char *prefix, char *buf, size_t n);

/* s with &, <, >, ' and " as XML entities (malloc()ed), or NULL. */
char *domxml_escape(const char *s);
