/* Guests reached over QMP (qmp.h) as a kind of guest (backend.h): Proxmox
 * VMs, declared QEMU guests and Xen device models. USB devices go in as
 * usb-host devices on xHCI ports (xhci.h), disks as block nodes with a
 * scsi-hd or virtio-blk-pci on top (vdisk.h). Each holds a port hint. */
#pragma once

#include "guests/backend.h"

/* QEMU keeps usb-host's hostport in a 16-byte buffer (measured): a longer
 * port path is accepted by device_add and never attaches. */
#define QEMU_HOSTPORT_MAX 15

extern const struct guest_ops qemu_guest_ops;
