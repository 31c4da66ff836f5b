#include "act/deliver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guests/guest.h"
#include "base/log.h"
#include "base/report.h"
#include "base/retry.h"
#include "policy/usbconf.h"
#include "host/uevent.h"
#include "host/usbtree.h"
#include "base/util.h"
#include "policy/vms.h"

void deliver_explain(const struct placement *p, const struct vm *for_vm, const char *desc)
{
	char rule[USB_STRING_MAX * 4 + 32];

	switch (p->kind) {
	case PLACE_NOBODY:
		if (for_vm)
			log_info("%s: %s is not claimed by it now", for_vm->t.label, desc);
		else
			log_info("%s: no running VM claims it; nothing to do", desc);
		break;
	case PLACE_PROXMOX:
		if (!p->pve)
			log_info("%s is passed by %s's own XML; left to libvirt", desc, p->vm->t.label);
		else if (p->pve->kind == PVE_USB_MAPPING)
			log_info("%s is passed by Proxmox itself (usb%u in VM %lu's config, mapping '%s'); left to Proxmox",
				 desc, p->pve->index, p->vm->t.vmid, p->pve->mapping);
		else
			log_info("%s is passed by Proxmox itself (usb%u in VM %lu's config); left to Proxmox",
				 desc, p->pve->index, p->vm->t.vmid);
		break;
	case PLACE_CONFLICT:
		log_error("%s is claimed equally by %s (%s) and %s (%s), both running: attached to neither; %s",
			  desc, p->vm->t.label, p->vm->rules->path, p->rival->t.label, p->rival->rules->path,
			  p->rule->kind == RULE_DISK ? "keep the disk rule in one of them"
						     : "make one rule more specific");
		break;
	case PLACE_DISK:
		if (p->rival) {
			log_info("%s carries a disk that %s and %s both take as a disk; the USB device itself is passed to no VM",
				 desc, p->vm->t.label, p->rival->t.label);
			break;
		}
		usbconf_format_rule(p->rule, rule, sizeof(rule));
		log_info("%s carries a disk that %s takes as a disk ('%s', %s:%u); the USB device itself is passed to no VM",
			 desc, p->vm->t.label, rule, p->vm->rules->path, p->rule->line);
		break;
	case PLACE_VM:
		usbconf_format_rule(p->rule, rule, sizeof(rule));
		if (p->held && p->vm != for_vm)
			log_info("%s stays with %s, which has it now ('%s', %s:%u)", desc, p->vm->t.label,
				 rule, p->vm->rules->path, p->rule->line);
		else if (for_vm && p->vm != for_vm)
			log_info("%s: %s is left to %s, whose rule is more specific ('%s', %s:%u)",
				 for_vm->t.label, desc, p->vm->t.label, rule, p->vm->rules->path,
				 p->rule->line);
		break;
	}
}

void deliver_owner_passes(const struct placement *p, char *buf, size_t n)
{
	if (p->pve)
		snprintf(buf, n, "Proxmox passes it itself (usb%u of VM %lu)", p->pve->index,
			 p->vm->t.vmid);
	else
		snprintf(buf, n, "%s's own XML passes it", p->vm->t.label);
}

void deliver_why(enum plan_why why, const struct placement *p, char *buf, size_t n)
{
	switch (why) {
	case PLAN_KEEP:
		snprintf(buf, n, "it stays");
		break;
	case PLAN_GONE:
		snprintf(buf, n, "no device is plugged in there any more");
		break;
	case PLAN_HUB:
		snprintf(buf, n, "a hub is there now, and hubs are never passed");
		break;
	case PLAN_UNCLAIMED:
		snprintf(buf, n, "no rule of this VM claims it any more");
		break;
	case PLAN_NO_RULE:
		snprintf(buf, n, "no rule of a running VM gives it to this one");
		break;
	case PLAN_NO_RULE_NOW:
		snprintf(buf, n, "no running VM's rules give it to this VM now");
		break;
	case PLAN_OWNER:
		deliver_owner_passes(p, buf, n);
		break;
	case PLAN_DISK:
		snprintf(buf, n, "it carries a disk that %s takes as a disk", p->vm->t.label);
		break;
	case PLAN_MOVES:
		snprintf(buf, n, "it goes to %s now", p->vm->t.label);
		break;
	case PLAN_STAYS:
		snprintf(buf, n, "%s has it as well and keeps it", p->vm->t.label);
		break;
	}
}

/* Reads the device at port now: true with *ret, false when none is there. */
static bool read_port(const struct usb_port *port, struct usb_device_info *ret)
{
	return usbtree_peek(port, ret) == 0;
}

bool deliver_still_there(const struct usb_device_info *dev)
{
	struct usb_device_info now;
	bool there = read_port(&dev->port, &now);
	char desc[256];

	if (plan_same_device(dev, there ? &now : NULL))
		return true;
	guest_describe(dev, desc, sizeof(desc));
	if (!there)
		log_info("%s is gone again before it could be attached; nothing to do", desc);
	else
		log_info("%s was unplugged before it could be attached (device %u on bus %u is there now); not attached: its own event places it",
			 desc, now.devnum, now.port.bus);
	return false;
}

bool deliver_port_unchanged(const struct usb_port *port, const struct usb_device_info *seen,
			    const char *label)
{
	struct usb_device_info now;
	bool there = read_port(port, &now);
	char name[PORT_STRLEN];

	if (plan_port_unchanged(seen, there ? &now : NULL))
		return true;
	port_format(port, name, sizeof(name));
	log_info("%s: a device was plugged %s at %s since it was planned for; left as it is: its own event sees to it",
		 label, there ? "in" : "out", name);
	return false;
}

void deliver_explain_denial(const struct vm *vm, const struct usb_rule *deny, const char *desc)
{
	char rule[USB_STRING_MAX * 4 + 32];

	usbconf_format_rule(deny, rule, sizeof(rule));
	log_info("%s is kept out of %s by '%s' (%s:%u)", desc, vm->t.label, rule, vm->rules->path,
		 deny->line);
}

int deliver_open_placed(const struct settings *s, const struct placement *p, const char *desc,
			struct report *rep, struct guest **ret)
{
	int r = guest_open(s, &p->vm->t, rep, ret);

	report_say(rep);
	if (r == -ENOENT || r == -ECONNREFUSED) {
		/* it counted as running, but does not answer */
		p->vm->running = 0;
		log_info("%s: placing it again without %s", desc, p->vm->t.label);
		return -EAGAIN;
	}
	return r;
}

int deliver_load(const struct settings *s, struct vms *v)
{
	/* every VM's file on every plug: their bad lines are for 'check' */
	int r = vms_load(s, LOG_LVL_DEBUG, 0, v);

	if (r == -ENOENT) {
		/* at boot udev replays every device before /etc/pve is there */
		log_debug("%s does not exist (yet): no rules, nothing to do", s->vm_config_dir);
		return 1;
	}
	return r;
}

int deliver_attach_all(struct guest *g, const struct target *t,
		       const struct usb_device_info *devs, const bool *take, size_t n)
{
	int r, ret = 0;

	for (size_t i = 0; i < n; i++) {
		if (!take[i])
			continue;
		if (!guest_usable(g)) {
			size_t left = 0;

			for (size_t k = i; k < n; k++)
				left += take[k];
			return log_err(ret, "%s: %zu more device(s) not attached: the QMP connection failed (see above); 'pve-usb-hotplug sync %s' tries again",
				       t->label, left, t->name);
		}
		if (!deliver_still_there(&devs[i]))
			continue;
		r = guest_attach(g, &devs[i]);
		report_say(guest_report(g));
		if (r < 0)
			ret = r;
	}
	return ret;
}
