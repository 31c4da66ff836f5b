#include "policy/plan.h"

enum plan_why plan_add_holder(const struct placement *p, const struct vm *holder)
{
	switch (p->kind) {
	case PLACE_VM:
		return p->vm == holder ? PLAN_KEEP : PLAN_MOVES;
	case PLACE_PROXMOX:
		return PLAN_OWNER;
	case PLACE_DISK:
		return PLAN_DISK;
	case PLACE_NOBODY:
	case PLACE_CONFLICT:
		break;
	}
	return PLAN_NO_RULE_NOW;
}

bool plan_remove_detaches(bool running, bool claims, bool holds)
{
	return running && (claims || holds);
}

bool plan_takes(const struct placement *p, const struct vm *vm)
{
	return p->kind == PLACE_VM && p->vm == vm;
}

enum plan_why plan_sync_holder(const struct vm *vm, const struct usb_device_info *dev,
			       bool claims, const struct placement *p)
{
	if (!dev)
		return PLAN_GONE;
	if (dev->dev_class == USB_CLASS_HUB)
		return PLAN_HUB;
	if (!claims || !p)
		return PLAN_UNCLAIMED;
	switch (p->kind) {
	case PLACE_NOBODY:
		return PLAN_NO_RULE;
	case PLACE_PROXMOX:
		return PLAN_OWNER;
	case PLACE_DISK:
		return PLAN_DISK;
	case PLACE_VM:
		return p->vm == vm ? PLAN_KEEP : PLAN_STAYS;
	case PLACE_CONFLICT:
		break;
	}
	return PLAN_KEEP; /* claimed equally: it is not taken away either */
}

bool plan_sync_attaches(const struct usb_device_info *dev, const struct xhci_dev *held)
{
	return !held || (dev->have_ids && (held->vid != dev->vid || held->pid != dev->pid));
}

bool plan_same_device(const struct usb_device_info *planned, const struct usb_device_info *now)
{
	if (!now || !port_equal(&planned->port, &now->port))
		return false;
	if (planned->devnum != now->devnum)
		return false;
	if (planned->have_ids && now->have_ids &&
	    (planned->vid != now->vid || planned->pid != now->pid))
		return false;
	return true;
}

bool plan_port_unchanged(const struct usb_device_info *planned, const struct usb_device_info *now)
{
	return planned ? plan_same_device(planned, now) : !now;
}
