/* What Proxmox VE itself passes to a VM: the usbN lines of
 * <vmid>.conf ("usb0: host=046d:c52b,usb3=1", "usb1: host=3-4.1"). The
 * tool leaves those devices to Proxmox, and keeps the guest ports Proxmox
 * gives them free. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "base/log.h"
#include "host/port.h"
#include "host/usbtree.h"

/* Proxmox numbers them usb0..usb13 today; room for more. */
#define PVE_USB_MAX 32
/* A VM config with many snapshots is large, but not this large. */
#define PVECONF_MAX_SIZE (8 * 1024 * 1024)

enum pve_usb_kind {
	PVE_USB_ID,    /* host=VID:PID */
	PVE_USB_PORT,  /* host=BUS-PORT[.PORT...] */
	PVE_USB_MAPPING, /* mapping=NAME: resolved through /etc/pve/mapping/usb.cfg */
	PVE_USB_OTHER,	 /* spice: takes a guest port, matches no host device */
};

/* Proxmox's mapping names: a letter first, then letters, digits, '-', '_',
 * '.'; at most 128 characters. */
#define PVE_MAPPING_NAME_MAX 129

struct pve_usb {
	unsigned index; /* N of usbN */
	enum pve_usb_kind kind;
	struct usb_port port;
	unsigned vid, pid;
	char mapping[PVE_MAPPING_NAME_MAX]; /* MAPPING: its name */
	/* MAPPING, once resolved for this node: vid/pid, and port when the
	 * map line has a path (then only the device at that port is it) */
	bool resolved, have_port;
};

/* One "map" line of /etc/pve/mapping/usb.cfg for this node. */
struct pve_mapping {
	char name[PVE_MAPPING_NAME_MAX];
	unsigned vid, pid;
	bool have_port;
	struct usb_port port;
};

struct pve_mappings {
	size_t n;
	struct pve_mapping *m;
	unsigned n_errors; /* malformed lines (reported at parse time) */
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

/* Parses /etc/pve/mapping/usb.cfg text (a section per mapping: its name
 * alone on a line, then indented "map node=NODE,id=VID:PID[,path=PORT]"
 * and other property lines), keeping the map lines of node. Malformed
 * lines are reported as "NAME:LINE: ..." at line_level and counted. Only
 * fails on memory. */
int pveconf_mappings_parse(const char *text, size_t len, const char *name, const char *node,
			   enum log_level line_level, struct pve_mappings *ret);

/* Reads the file at path the same way. -ENOENT when there is none (not
 * logged); other read errors logged at line_level. */
int pveconf_mappings_load(const char *path, const char *node, enum log_level line_level,
			  struct pve_mappings *ret);
void pveconf_mappings_free(struct pve_mappings *m);

/* Fills in vid/pid/port of vm's mapping=NAME lines from maps. */
void pveconf_resolve(struct pve_vm *vm, const struct pve_mappings *maps);

/* This node's name as Proxmox names it: the short host name. */
void pveconf_node_name(char *buf, size_t n);

/* The usbN of vm that passes dev, or NULL. */
const struct pve_usb *pveconf_passes(const struct pve_vm *vm, const struct usb_device_info *dev);
