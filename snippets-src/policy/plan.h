/* Plan, then act: what an add, a remove, post-start and sync change, decided
 * by pure functions (no sysfs, no sockets, no logging) from a snapshot the
 * caller has gathered first: the devices (usbtree.h), the guests with their
 * rules and what each holds (vms.h), where a device belongs (vms_place(),
 * whose decision is place.h's). The caller then opens the guest (which takes
 * its lock), looks again at what the plan assumed (plan_same_device()) and
 * acts; never the other way round, so a remove that runs between the plan
 * and the act cannot leave a usb-host behind for a device that is gone. */
#pragma once

#include <stdbool.h>

#include "host/usbtree.h"
#include "guests/xhci.h"
#include "policy/vms.h"

/* Why a guest gives up a host port it holds (the text: deliver_why()). */
enum plan_why {
	PLAN_KEEP,	  /* it keeps the port */
	PLAN_GONE,	  /* nothing is plugged in there any more */
	PLAN_HUB,	  /* a hub is there now */
	PLAN_UNCLAIMED,	  /* no rule of this guest claims it any more */
	PLAN_NO_RULE,	  /* sync: no running guest's rule gives it to this one */
	PLAN_NO_RULE_NOW, /* an add: the same, as a plug says it */
	PLAN_OWNER,	  /* Proxmox (or a domain's own XML) passes it to p->vm */
	PLAN_DISK,	  /* it carries a disk that p->vm takes as a disk */
	PLAN_MOVES,	  /* an add: it goes to p->vm now */
	PLAN_STAYS,	  /* sync: p->vm has it as well and keeps it */
};

/* An add: what holder, a running guest that holds the device's port now,
 * does once p has placed the device: PLAN_KEEP when it is the guest p
 * gives it to, else why it loses the port (a usb-host left there would take
 * the device, or the next one plugged in there, by QEMU's rescan). */
enum plan_why plan_add_holder(const struct placement *p, const struct vm *holder);

/* A remove: whether a guest loses the port of the device that is gone:
 * when it runs, and its rules claim the device (its record may be behind)
 * or it holds the port. */
bool plan_remove_detaches(bool running, bool claims, bool holds);

/* Post-start and sync: whether vm is to have the device p places. */
bool plan_takes(const struct placement *p, const struct vm *vm);

/* Sync: why vm gives up a port it holds. dev: what is plugged in there now
 * (NULL: nothing); claims: whether vm's rules claim dev; p: where dev
 * belongs, read only when dev is there, no hub, and claimed (the caller
 * places it only then: NULL otherwise). */
enum plan_why plan_sync_holder(const struct vm *vm, const struct usb_device_info *dev,
			       bool claims, const struct placement *p);

/* Sync: whether a device placed with vm is to be attached, given what vm
 * holds at its port (NULL: nothing): when it holds nothing there, or a
 * usb-host pinned to another vendor/product (guest_attach replaces it). */
bool plan_sync_attaches(const struct usb_device_info *dev, const struct xhci_dev *held);

/* The look again, right before acting: whether the device read now (now;
 * NULL: gone) is the one the plan was made for: the same port, bus and
 * device number (a device plugged in again gets a new one), the same
 * vendor and product when both are known. */
bool plan_same_device(const struct usb_device_info *planned, const struct usb_device_info *now);

/* The same for a port the plan found empty (planned NULL): unchanged when
 * it is still empty, or still holds the device planned for. */
bool plan_port_unchanged(const struct usb_device_info *planned, const struct usb_device_info *now);
