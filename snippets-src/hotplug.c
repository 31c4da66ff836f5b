#include "hotplug.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest.h"
#include "log.h"
#include "retry.h"
#include "usbconf.h"
#include "usbtree.h"
#include "util.h"
#include "vms.h"

void hotplug_explain(const struct placement *p, const struct vm *for_vm, const char *desc)
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

/* What a udev event tells about a device, before (or instead of) sysfs:
 * enough to tell whether any rule could claim it. */
static void dev_from_event(const struct uevent *ev, struct usb_device_info *dev)
{
	memset(dev, 0, sizeof(*dev));
	dev->port = ev->port;
	dev->dev_class = ev->dev_class;
	dev->have_ids = ev->have_ids;
	dev->vid = ev->vid;
	dev->pid = ev->pid;
	if (port_controller(ev->devpath, dev->controller, sizeof(dev->controller)) < 0)
		dev->controller[0] = '\0';
	dev->serial_known = false;
}

/* Whether anything about dev concerns any VM: a rule claims it, a deny
 * rule keeps it out (worth a line), or a running VM holds its port. */
static bool concerns_anyone(struct vms *v, const struct usb_device_info *dev)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->list[i]->rules && (usbconf_match(v->list[i]->rules, dev, NULL) ||
					  usbconf_kept_out(v->list[i]->rules, dev)))
			return true;
	if (vms_list_hinted(v) < 0)
		return true; /* cannot tell cheaply: take the long way */
	for (size_t i = 0; i < v->n; i++)
		if (target_cheap(&v->list[i]->t) && vms_running(v, v->list[i]) &&
		    vms_holds(v, v->list[i], &dev->port))
			return true;
	return false;
}

void owner_passes(const struct placement *p, char *buf, size_t n)
{
	if (p->pve)
		snprintf(buf, n, "Proxmox passes it itself (usb%u of VM %lu)", p->pve->index,
			 p->vm->t.vmid);
	else
		snprintf(buf, n, "%s's own XML passes it", p->vm->t.label);
}

/* Detaches port from vm; when QEMU could not be reached, tries again later
 * (retry.h): a usb-host left behind takes the next device plugged in
 * there. */
static int detach_from(const struct settings *s, struct vm *vm, const struct usb_port *port,
		       const char *desc, const char *why)
{
	struct guest *g;
	int r;

	r = guest_open(s, &vm->t, &g);
	if (r == -ENOENT || r == -ECONNREFUSED)
		return 0; /* stopped: it holds nothing any more */
	if (r == 0) {
		r = guest_detach(g, port, desc, why);
		guest_close(g);
	}
	if (retry_worth(r))
		retry_schedule(s, &vm->t);
	return r;
}

/* Every running VM but keep that holds dev's port loses it: a usb-host
 * left there would take the device (or the next one) by QEMU's rescan. */
static int clear_holders(const struct settings *s, struct vms *v,
			 const struct usb_device_info *dev, const struct placement *p,
			 const char *desc)
{
	struct vm *keep = p->kind == PLACE_VM ? p->vm : NULL;
	char why[160];
	int ret = 0;

	if (vms_list_hinted(v) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < v->n; i++) {
		struct vm *vm = v->list[i];
		int r;

		/* a libvirt domain that does not claim it is not asked (libvirt
		 * is loaded only for what concerns it): sync clears what such a
		 * domain still holds after its rules changed */
		if (vm == keep || (!target_cheap(&vm->t) && !vms_claims(vm, dev)) ||
		    !vms_running(v, vm) || !vms_holds(v, vm, &dev->port))
			continue;
		if (keep)
			snprintf(why, sizeof(why), "it goes to %s now", keep->t.label);
		else if (p->kind == PLACE_PROXMOX)
			owner_passes(p, why, sizeof(why));
		else if (p->kind == PLACE_DISK)
			snprintf(why, sizeof(why), "it carries a disk that %s takes as a disk",
				 p->vm->t.label);
		else
			snprintf(why, sizeof(why), "no running VM's rules give it to this VM now");
		r = detach_from(s, vm, &dev->port, desc, why);
		if (r < 0)
			ret = r;
	}
	return ret;
}

void hotplug_explain_denial(const struct vm *vm, const struct usb_rule *deny, const char *desc)
{
	char rule[USB_STRING_MAX * 4 + 32];

	usbconf_format_rule(deny, rule, sizeof(rule));
	log_info("%s is kept out of %s by '%s' (%s:%u)", desc, vm->t.label, rule, vm->rules->path,
		 deny->line);
}

/* A deny rule that keeps dev out of a VM whose other rules select it is
 * worth a line: the admin may wonder why it stays on the host. */
static void explain_denials(const struct vms *v, const struct usb_device_info *dev,
			    const char *desc)
{
	for (size_t i = 0; i < v->n; i++) {
		const struct usb_rule *deny;

		if (v->list[i]->rules && (deny = usbconf_kept_out(v->list[i]->rules, dev)))
			hotplug_explain_denial(v->list[i], deny, desc);
	}
}

int hotplug_open_placed(const struct settings *s, const struct placement *p, const char *desc,
			struct guest **ret)
{
	int r = guest_open(s, &p->vm->t, ret);

	if (r == -ENOENT || r == -ECONNREFUSED) {
		/* it counted as running, but does not answer */
		p->vm->running = 0;
		log_info("%s: placing it again without %s", desc, p->vm->t.label);
		return -EAGAIN;
	}
	return r;
}

static int event_add(const struct settings *s, const struct uevent *ev, struct vms *v,
		     bool *passed)
{
	struct usb_device_info dev;
	struct placement p;
	char desc[256];
	int r;

	r = usbtree_get(ev->devpath, vms_any_disk_rules(v), &dev);
	if (r < 0) {
		char port[PORT_STRLEN];

		port_format(&ev->port, port, sizeof(port));
		log_info("%s is gone again before it could be attached; nothing to do", port);
		return 0;
	}
	if (dev.dev_class == USB_CLASS_HUB) {
		log_debug("ignored: %s is a hub (hubs are never passed through)", ev->devpath);
		return 0;
	}
	guest_describe(&dev, desc, sizeof(desc));

	/* Each round either ends or finds one more VM not running: bounded. */
	for (;;) {
		struct guest *g;
		int cleared;

		r = vms_place(v, &dev, &p);
		if (r < 0)
			return r;
		hotplug_explain(&p, NULL, desc);
		if (p.kind == PLACE_NOBODY)
			explain_denials(v, &dev, desc);
		cleared = clear_holders(s, v, &dev, &p, desc);
		if (p.kind == PLACE_CONFLICT)
			return -EBUSY;
		*passed = p.kind == PLACE_PROXMOX;
		if (p.kind != PLACE_VM)
			return cleared;
		r = hotplug_open_placed(s, &p, desc, &g);
		if (r == -EAGAIN)
			continue;
		if (r < 0)
			return r;
		r = guest_attach(g, &dev);
		guest_close(g);
		*passed = r >= 0;
		return r < 0 ? r : cleared;
	}
}

static int event_remove(const struct settings *s, struct vms *v,
			const struct usb_device_info *dev)
{
	char desc[256];
	int ret = 0;

	guest_describe(dev, desc, sizeof(desc));
	if (vms_list_hinted(v) < 0)
		return -ENOMEM;
	/* Detached from every running VM that holds it, and from every one
	 * whose rules claim it (its record may be behind); rules may have
	 * changed since it was attached. Not being there is fine. */
	for (size_t i = 0; i < v->n; i++) {
		struct vm *vm = v->list[i];
		bool claims = vms_claims(vm, dev);
		int r;

		if ((!claims && !target_cheap(&vm->t)) || !vms_running(v, vm) ||
		    (!claims && !vms_holds(v, vm, &dev->port)))
			continue;
		r = detach_from(s, vm, &dev->port, desc, NULL);
		if (r < 0)
			ret = r;
	}
	return ret;
}

int hotplug_load_event(const struct settings *s, struct vms *v)
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

int hotplug_event(const struct settings *s, const struct uevent *ev, bool *passed)
{
	struct usb_device_info dev;
	bool dummy;
	struct vms v;
	int r;

	if (!passed)
		passed = &dummy;
	*passed = false;
	r = hotplug_load_event(s, &v);
	if (r != 0)
		return r > 0 ? 0 : r;
	dev_from_event(ev, &dev);
	if (!concerns_anyone(&v, &dev)) {
		char port[PORT_STRLEN];

		port_format(&ev->port, port, sizeof(port));
		log_debug("ignored: no VM claims or holds %s", port);
		r = 0;
	} else if (ev->action == UEVENT_ADD)
		r = event_add(s, ev, &v, passed);
	else
		r = event_remove(s, &v, &dev);
	vms_free(&v);
	return r;
}

int hotplug_attach_all(struct guest *g, const struct target *t,
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
		r = guest_attach(g, &devs[i]);
		if (r < 0)
			ret = r;
	}
	return ret;
}

int hotplug_plugged(const struct settings *s, const char *name, bool *passed)
{
	struct uevent ev = { .action = UEVENT_ADD, .dev_class = -1 };
	struct usb_device_info dev;
	char shown[64];
	int r;

	if (port_parse(name, &ev.port) < 0)
		return log_err(-EINVAL, "'%s' is not a USB device such as 3-4 or 3-4.1",
			       log_escape(name, shown, sizeof(shown)));
	r = usbtree_devpath(name, ev.devpath, sizeof(ev.devpath));
	if (r == 0)
		r = usbtree_get(ev.devpath, false, &dev);
	if (r < 0) {
		log_info("%s is gone again before it could be attached; nothing to do", name);
		return 0;
	}
	ev.dev_class = dev.dev_class;
	ev.have_ids = dev.have_ids;
	ev.vid = dev.vid;
	ev.pid = dev.pid;
	if (dev.dev_class == USB_CLASS_HUB) {
		log_debug("ignored: %s is a hub (hubs are never passed through)", name);
		return 0;
	}
	return hotplug_event(s, &ev, passed);
}

static int hook_post_start(const struct settings *s, unsigned long vmid, const char *migrated_from)
{
	struct usb_device_info *devs = NULL;
	bool *take = NULL;
	struct guest *g = NULL;
	size_t n_devs = 0, n_take = 0;
	struct target t;
	struct vm *mine;
	struct vms v;
	int r, ret = 0;

	r = target_pve(s, vmid, &t);
	if (r < 0)
		return r;
	if (migrated_from) {
		char node[128];

		/* QEMU is receiving the VM's state here; devices added now
		 * would break the migration */
		log_info("VM %lu: started as the target of a migration from node %s: nothing is attached now; run 'pve-usb-hotplug sync %lu' when the migration has finished",
			 vmid, log_escape(migrated_from, node, sizeof(node)), vmid);
		return 0;
	}
	/* a new QEMU: a hold from 'release' ends with the old one */
	(void)guest_unrelease(s, &t);
	r = vms_load(s, LOG_LVL_WARNING, vmid, &v);
	if (r < 0)
		return r;
	mine = vms_find(&v, t.name);
	if (!mine || !mine->rules || mine->rules->n_rules == 0) {
		if (mine && mine->rules)
			log_info("VM %lu: %s has no valid rule; nothing to attach", vmid, mine->rules->path);
		goto out;
	}

	r = usbtree_scan(vms_any_disk_rules(&v), &devs, &n_devs);
	if (r < 0) {
		ret = log_err(r, "VM %lu: cannot read the host's USB devices: %s", vmid, strerror(-r));
		goto out;
	}
	take = calloc(n_devs + 1, sizeof(*take));
	if (!take) {
		ret = -ENOMEM;
		goto out;
	}

	/* First decide everything (that may ask other VMs what they hold),
	 * then talk to this VM alone: never hold two VMs' locks at once. */
	for (size_t i = 0; i < n_devs; i++) {
		struct placement p;
		char desc[256];

		if (devs[i].dev_class == USB_CLASS_HUB || !usbconf_match(mine->rules, &devs[i], NULL))
			continue;
		r = vms_place(&v, &devs[i], &p);
		if (r < 0) {
			ret = r;
			goto out;
		}
		if (p.kind == PLACE_VM && p.vm == mine) {
			take[i] = true;
			n_take++;
			continue;
		}
		guest_describe(&devs[i], desc, sizeof(desc));
		hotplug_explain(&p, mine, desc);
		if (p.kind == PLACE_CONFLICT)
			ret = -EBUSY;
	}
	if (n_take == 0 && ret == 0 && !usbconf_has_disk_rules(mine->rules, false))
		log_info("VM %lu: nothing plugged in under its rules now; devices will be attached when plugged in",
			 vmid);
	else if (n_take == 0 && ret == 0)
		log_info("VM %lu: no USB device to pass under its rules now; looking for its disks",
			 vmid);

	r = guest_open(s, &mine->t, &g);
	if (r < 0) {
		ret = r;
		goto out;
	}
	if (n_take == 0) {
		/* nothing to attach, but the record of what it holds (nothing)
		 * saves later events a question to QEMU */
		const struct xhci_set *held;

		(void)guest_held(g, true, &held);
	} else {
		r = hotplug_attach_all(g, &mine->t, devs, take, n_devs);
		if (r < 0)
			ret = r;
	}
	if (guest_usable(g) && (r = hotplug_disks_attach(&v, mine, g)) < 0)
		ret = r;
out:
	guest_close(g);
	free(take);
	free(devs);
	vms_free(&v);
	return ret;
}

int hotplug_release(const struct settings *s, const char *name)
{
	struct target t;
	struct guest *g;
	int r;

	r = target_by_name(s, name, &t);
	if (r < 0)
		return r;
	r = guest_open(s, &t, &g);
	if (r == -ENOENT || r == -ECONNREFUSED)
		return 0; /* not running: nothing to release (logged) */
	if (r < 0)
		return r;
	r = hotplug_disks_release(g);
	if (r >= 0 || guest_usable(g))
		r = guest_release(g) < 0 ? -EIO : r;
	guest_close(g);
	if (r < 0)
		return log_err(r, "%s: not fully released (see above); do not migrate or snapshot it yet",
			       t.label);
	if (t.kind == TARGET_PVE)
		log_info("VM %lu: released: it has only what its %lu.conf describes; migrate, snapshot or hibernate it now. USB events leave it alone until 'pve-usb-hotplug sync %lu' (or its next start)",
			 t.vmid, t.vmid, t.vmid);
	else
		log_info("%s: released: everything pve-usb-hotplug added is gone; migrate, snapshot or save it now. USB events leave it alone until 'pve-usb-hotplug sync %s' (or its next start)",
			 t.label, t.name);
	return 0;
}

static int hook_pre_start(const struct settings *s, unsigned long vmid)
{
	/* the same as 'check VMID', but a VM must never be kept from starting */
	char name[24];

	snprintf(name, sizeof(name), "%lu", vmid);
	if (hotplug_check(s, name, true) < 0)
		log_warning("VM %lu: USB hot-plug rules have problems (see above); the VM starts anyway",
			    vmid);
	return 0;
}

int hotplug_hook(const struct settings *s, unsigned long vmid, const char *phase,
		 const char *migrated_from)
{
	if (strcmp(phase, "post-start") == 0) {
		int r = hook_post_start(s, vmid, migrated_from);

		hotplug_listen_poke(s);
		return r;
	}
	if (strcmp(phase, "pre-start") == 0)
		return hook_pre_start(s, vmid);
	if (strcmp(phase, "post-stop") == 0) {
		/* what the VM held goes back to the host's drivers */
		hotplug_listen_poke(s);
		return 0;
	}
	if (strcmp(phase, "pre-stop") == 0)
		return 0;
	char shown[64];

	log_info("VM %lu: phase '%s' is not one this tool acts on; ignored", vmid,
		 log_escape(phase, shown, sizeof(shown)));
	return 0;
}
