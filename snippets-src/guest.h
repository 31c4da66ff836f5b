/* Working on one running VM: hold its lock, talk QMP to it, attach and
 * detach host USB devices. Every outcome is logged here, naming the VM and
 * the port, so callers only map return values to exit codes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "port.h"
#include "pveconf.h"
#include "settings.h"
#include "usbtree.h"

/* "usbhost" + "999-255.255...": the QEMU id of a passed host port. */
#define GUEST_ID_MAX (PORT_STRLEN + 8)

struct guest;

/* Whether the VM's QEMU runs, as Proxmox tells it: <qmp_socket_dir>/<vmid>.pid
 * names a live process. Touches no socket: a connect() to a busy QMP
 * socket would wait in QEMU's backlog and get in Proxmox's way. */
bool guest_is_running(const struct settings *s, unsigned long vmid);

/* Locks the VM and connects to <qmp_socket_dir>/<vmid>.qmp.
 * -ENOENT / -ECONNREFUSED: the VM is not running (logged as a warning);
 * other errors are logged as errors. */
int guest_open(const struct settings *s, unsigned long vmid, struct guest **ret);

/* Attaches the host device at dev->port with id usbhost<bus>-<port>, at a
 * port of an xHCI controller that suits its speed (see xhci.h), adding the
 * tool's own controller when none has room, and never at a port of the
 * VM's usbN in pve (its Proxmox config, as the caller read it; NULL: none).
 * Already attached counts as success. */
int guest_attach(struct guest *g, const struct usb_device_info *dev, const struct pve_vm *pve);

/* Detaches usbhost<bus>-<port>. Not attached counts as success. */
int guest_detach(struct guest *g, const struct usb_device_info *dev);

/* The host ports the VM holds through this tool: its usb-host devices
 * whose id is usbhost<BUS-PORT>. *ret is malloc()ed, sorted. */
int guest_held(struct guest *g, struct usb_port **ret, size_t *ret_n);

/* Detaches by id alone (sync: the host device may be long gone). */
int guest_detach_port(struct guest *g, const struct usb_port *port, const char *why);

struct guest *guest_close(struct guest *g);

/* "usbhost3-4.1" */
void guest_device_id(const struct usb_port *p, char *buf, size_t n);

/* "3-4.1 (046d:c52b "Receiver")" for messages; product escaped. */
void guest_describe(const struct usb_device_info *dev, char *buf, size_t n);
