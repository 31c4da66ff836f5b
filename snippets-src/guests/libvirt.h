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
 * domain's own (its XML passes it) and is never touched. The XML is read
 * by domxml.h.
 *
 * libvirt is a large library that most hosts of this program never need:
 * it is loaded (dlopen) the first time a libvirt domain is asked about, so
 * an event that concerns no libvirt domain never pays for it, and the
 * package only suggests it. libvirt's calls have no deadline of their own:
 * a libvirtd that hangs holds the run until systemd or udev ends it. */
#pragma once

#include "guests/backend.h"

/* The kind's table (backend.h). Whether a domain runs is asked of
 * libvirtd (-errno when libvirt cannot be asked, noted); its stamp is
 * libvirt's id of this run of it and its UUID; its own XML passing a
 * device (a hostdev that is not the tool's, by vendor and product and/or
 * bus and device number) makes that device libvirt's. USB disks (vdisk.h)
 * go in as live <disk> devices of type block on the disk's by-id link,
 * aliased "ua-usbdisk-HASH", on its virtio-scsi controller (bus scsi) or
 * as virtio disks; libvirt names their nodes. */
extern const struct guest_ops lv_guest_ops;
