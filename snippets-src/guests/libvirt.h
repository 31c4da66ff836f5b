/* libvirt domains as a kind of guest (backend.h): libvirtd owns the domain's QEMU
 * monitor, so devices go through libvirt's API, live only, as
 *
 *   <hostdev mode='subsystem' type='usb'>
 *     <source> vendor, product, host bus and device number </source>
 *     <alias name='ua-usbhost3-4.1'/>          the tool's, by host port
 *     <address type='usb' bus='N' port='P'/>   a free port of an xHCI
 *   </hostdev>
 *
 * and come off by that alias. A hostdev without such an alias is the
 * domain's own (its XML passes it) and is never touched.
 *
 * libvirt is a large library that most hosts of this program never need:
 * it is loaded (dlopen) the first time a libvirt domain is asked about, so
 * an event that concerns no libvirt domain never pays for it, and the
 * package only suggests it. libvirt's calls have no deadline of their own:
 * a libvirtd that hangs holds the run until systemd or udev ends it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "guests/backend.h"
#include "guests/vdisk.h"
#include "guests/xhci.h"
#include "host/usbtree.h"

/* The kind's table (backend.h). Whether a domain runs is asked of
 * libvirtd (-errno when libvirt cannot be asked, logged); its stamp is
 * libvirt's id of this run of it and its UUID; its own XML passing a
 * device (a hostdev that is not the tool's, by vendor and product and/or
 * bus and device number) makes that device libvirt's. USB disks (vdisk.h)
 * go in as live <disk> devices of type block on the disk's by-id link,
 * aliased "ua-usbdisk-HASH", on its virtio-scsi controller (bus scsi) or
 * as virtio disks; libvirt names their nodes. */
extern const struct guest_ops lv_guest_ops;

/* Pure, for the tests: the tool's hostdevs in a domain's XML, and the xHCI
 * port for the next one (bus, port; -ENOSPC, or -ENOENT without an xHCI
 * controller). */
int lv_parse_held(const char *xml, struct xhci_set *ret);
int lv_pick_port(const char *xml, bool superspeed, unsigned *ret_bus, unsigned *ret_port);
bool lv_parse_passes(const char *xml, const struct usb_device_info *dev);

/* Pure, for the tests: the tool's disks in a domain's XML and whether it
 * has a virtio-scsi controller; the first target name PREFIX[a-z]{1,2}
 * none of its disks has. */
int lv_parse_disks(const char *xml, struct vdisk_set *ret, bool *ret_scsi);
int lv_pick_target(const char *xml, const char *prefix, char *buf, size_t n);
