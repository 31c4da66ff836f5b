/* A libvirt domain as a target (target.h): libvirtd owns the domain's QEMU
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
#include <stdint.h>

#include "guests/target.h"
#include "host/usbtree.h"
#include "guests/xhci.h"

struct lv;

/* Whether the domain runs: 1, 0 (not running, or no such domain), or
 * -errno when libvirt cannot be asked (logged, once a run). With buf, an
 * identity of this run of the domain ("" when it does not run). */
int lv_probe(const struct target *t, char *buf, size_t n);

/* Whether the running domain's own XML passes dev (a hostdev that is not
 * the tool's, by vendor and product and/or bus and device number): then
 * it is libvirt's, and left alone. 1 or 0 (also when it cannot be told). */
int lv_passes(const struct target *t, const struct usb_device_info *dev);

/* Connects and finds the running domain. -ENOENT: not running (logged as a
 * warning); other errors are logged. */
int lv_open(const struct target *t, struct lv **ret);

/* The tool's hostdevs in the live domain, as a set of devices (no
 * controllers: libvirt places them). open is unknown (-1). */
int lv_held(struct lv *l, struct xhci_set *ret);

/* Attaches dev (desc names it in messages); an attached one pinned to
 * this vendor:product counts as success. Logs the outcome. */
int lv_attach(struct lv *l, const struct usb_device_info *dev, const char *desc);

/* Detaches the hostdev of port: 0, 1 when there was none, or an error
 * (logged by the caller with lv_error()). */
int lv_detach(struct lv *l, const struct usb_port *port);

/* libvirt's last message, for a log line. */
const char *lv_error(void);

struct lv *lv_close(struct lv *l);

/* Pure, for the tests: the tool's hostdevs in a domain's XML, and the xHCI
 * port for the next one (bus, port; -ENOSPC, or -ENOENT without an xHCI
 * controller). */
int lv_parse_held(const char *xml, struct xhci_set *ret);
int lv_pick_port(const char *xml, bool superspeed, unsigned *ret_bus, unsigned *ret_port);
bool lv_parse_passes(const char *xml, const struct usb_device_info *dev);

/* USB disks (vdisk.h) in the domain: live <disk> devices of type block on
 * the disk's by-id link, aliased "ua-usbdisk-HASH", on its virtio-scsi
 * controller (bus scsi) or as virtio disks; libvirt names their nodes. */
struct vdisk_set;
enum disk_as;
/* The tool's disks, as a set (file: the source; nodes: false). */
int lv_disks(struct lv *l, struct vdisk_set *ret);
/* Attaches the disk id from path (serial, may be NULL: what the guest is
 * told); where says how it went in. An attached one counts as success.
 * Failures are logged. */
int lv_disk_attach(struct lv *l, const char *id, const char *path, enum disk_as as,
		   const char *serial, const char *desc, char *where, size_t n);
/* Detaches the disk id and waits until libvirt has it gone (deadline:
 * util_now_ms() based): 0, 1 when it was not there, -EBUSY when still there
 * at deadline, -EIO (lv_error() says why). */
int lv_disk_detach(struct lv *l, const char *id, int64_t deadline);

/* Pure, for the tests: the tool's disks in a domain's XML and whether it
 * has a virtio-scsi controller; the first target name PREFIX[a-z]{1,2}
 * none of its disks has. */
int lv_parse_disks(const char *xml, struct vdisk_set *ret, bool *ret_scsi);
int lv_pick_target(const char *xml, const char *prefix, char *buf, size_t n);
