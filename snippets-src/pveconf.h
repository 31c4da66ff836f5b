/* What Proxmox VE itself passes to a VM: the usbN lines of
 * <vmid>.conf ("usb0: host=046d:c52b,usb3=1", "usb1: host=3-4.1"). The
 * tool leaves those devices to Proxmox, and keeps the guest ports Proxmox
 * gives them free. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "port.h"
#include "usbtree.h"

/* Proxmox numbers them usb0..usb13 today; room for more. */
#define PVE_USB_MAX 32
/* A VM config with many snapshots is large, but not this large. */
#define PVECONF_MAX_SIZE (8 * 1024 * 1024)

enum pve_usb_kind {
	PVE_USB_ID,    /* host=VID:PID */
	PVE_USB_PORT,  /* host=BUS-PORT[.PORT...] */
	PVE_USB_OTHER, /* spice, a mapping: takes a guest port, matches no host device here */
};

struct pve_usb {
	unsigned index; /* N of usbN */
	enum pve_usb_kind kind;
	struct usb_port port;
	unsigned vid, pid;
};

struct pve_vm {
	unsigned long vmid;
	size_t n;
	struct pve_usb usb[PVE_USB_MAX];
};

/* The current configuration's usbN lines (snapshot sections are skipped).
 * Lines it does not understand are left out. Pure. */
void pveconf_parse_text(const char *text, size_t len, struct pve_vm *ret);

/* Reads <dir>/<vmid>.conf. 0; -ENOENT when there is none (not logged);
 * other errors logged. */
int pveconf_load(const char *dir, unsigned long vmid, struct pve_vm *ret);

/* The usbN of vm that passes dev, or NULL. */
const struct pve_usb *pveconf_passes(const struct pve_vm *vm, const struct usb_device_info *dev);
