#include "hotplug.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest.h"
#include "log.h"
#include "usbconf.h"
#include "usbtree.h"
#include "util.h"
#include "vms.h"

void hotplug_explain(const struct placement *p, unsigned long for_vmid, const char *desc)
{
	char rule[USB_STRING_MAX * 4 + 32];

	switch (p->kind) {
	case PLACE_NOBODY:
		if (for_vmid)
			log_info("VM %lu: %s is not claimed by it now", for_vmid, desc);
		else
			log_info("%s: no running VM claims it; nothing to do", desc);
		break;
	case PLACE_PROXMOX:
		log_info("%s is passed by Proxmox itself (usb%u in VM %lu's config); left to Proxmox",
			 desc, p->pve->index, p->vm->vmid);
		break;
	case PLACE_CONFLICT:
		log_error("%s is claimed equally by VM %lu (%s) and VM %lu (%s), both running: attached to neither; make one rule more specific",
			  desc, p->vm->vmid, p->vm->rules->path, p->rival->vmid, p->rival->rules->path);
		break;
	case PLACE_VM:
		usbconf_format_rule(p->rule, rule, sizeof(rule));
		if (p->held && p->vm->vmid != for_vmid)
			log_info("%s stays with VM %lu, which has it now ('%s', %s:%u)", desc, p->vm->vmid,
				 rule, p->vm->rules->path, p->rule->line);
		else if (for_vmid && p->vm->vmid != for_vmid)
			log_info("VM %lu: %s is left to VM %lu, whose rule is more specific ('%s', %s:%u)",
				 for_vmid, desc, p->vm->vmid, rule, p->vm->rules->path, p->rule->line);
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

static bool any_may_claim(const struct vms *v, const struct usb_device_info *dev)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->list[i]->rules && usbconf_match(v->list[i]->rules, dev, NULL))
			return true;
	return false;
}

static int event_add(const struct settings *s, const struct uevent *ev, struct vms *v)
{
	struct usb_device_info dev;
	struct placement p;
	struct guest *g;
	char desc[256];
	int r;

	r = usbtree_get(ev->devpath, &dev);
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

	r = vms_place(v, &dev, &p);
	if (r < 0)
		return r;
	hotplug_explain(&p, 0, desc);
	if (p.kind == PLACE_CONFLICT)
		return -EBUSY;
	if (p.kind != PLACE_VM || p.held)
		return 0;
	r = guest_open(s, p.vm->vmid, &g);
	if (r == -ENOENT || r == -ECONNREFUSED)
		return 0; /* stopped meanwhile: logged */
	if (r < 0)
		return r;
	r = guest_attach(g, &dev, vms_pve(v, p.vm));
	guest_close(g);
	return r;
}

static int event_remove(const struct settings *s, struct vms *v,
			const struct usb_device_info *dev)
{
	int ret = 0;

	/* The device may sit in any running VM whose rules could claim it
	 * (they may have changed since it was attached): detach it from each.
	 * Not being there is fine. */
	for (size_t i = 0; i < v->n; i++) {
		struct vm *vm = v->list[i];
		struct guest *g;
		int r;

		if (!vm->rules || !usbconf_match(vm->rules, dev, NULL) || !vms_running(v, vm))
			continue;
		r = guest_open(s, vm->vmid, &g);
		if (r == -ENOENT || r == -ECONNREFUSED)
			continue;
		if (r == 0) {
			r = guest_detach(g, dev);
			guest_close(g);
		}
		if (r < 0)
			ret = r;
	}
	return ret;
}

int hotplug_event(const struct settings *s, const struct uevent *ev)
{
	struct usb_device_info dev;
	struct vms v;
	int r;

	/* every VM's file on every plug: their bad lines are for 'check' */
	r = vms_load(s, LOG_LVL_DEBUG, 0, &v);
	if (r < 0)
		return r;
	dev_from_event(ev, &dev);
	if (!any_may_claim(&v, &dev)) {
		char port[PORT_STRLEN];

		port_format(&ev->port, port, sizeof(port));
		log_debug("ignored: no VM claims %s", port);
		r = 0;
	} else if (ev->action == UEVENT_ADD)
		r = event_add(s, ev, &v);
	else
		r = event_remove(s, &v, &dev);
	vms_free(&v);
	return r;
}

static int hook_post_start(const struct settings *s, unsigned long vmid)
{
	struct usb_device_info *devs = NULL;
	bool *take = NULL;
	struct guest *g = NULL;
	size_t n_devs = 0, n_take = 0;
	struct vm *mine;
	struct vms v;
	int r, ret = 0;

	r = vms_load(s, LOG_LVL_WARNING, vmid, &v);
	if (r < 0)
		return r;
	mine = vms_find(&v, vmid);
	if (!mine || !mine->rules || mine->rules->n_rules == 0) {
		if (mine && mine->rules)
			log_info("VM %lu: %s has no valid rule; nothing to attach", vmid, mine->rules->path);
		goto out;
	}

	r = usbtree_scan(&devs, &n_devs);
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
		hotplug_explain(&p, vmid, desc);
		if (p.kind == PLACE_CONFLICT)
			ret = -EBUSY;
	}
	if (n_take == 0) {
		if (ret == 0)
			log_info("VM %lu: nothing plugged in under its rules now; devices will be attached when plugged in",
				 vmid);
		goto out;
	}

	r = guest_open(s, vmid, &g);
	if (r < 0) {
		ret = r;
		goto out;
	}
	for (size_t i = 0; i < n_devs; i++)
		if (take[i] && (r = guest_attach(g, &devs[i], vms_pve(&v, mine))) < 0)
			ret = r;
out:
	guest_close(g);
	free(take);
	free(devs);
	vms_free(&v);
	return ret;
}

static int hook_pre_start(const struct settings *s, unsigned long vmid)
{
	/* the same as 'check VMID', but a VM must never be kept from starting */
	if (hotplug_check(s, vmid, true) < 0)
		log_warning("VM %lu: USB hot-plug rules have problems (see above); the VM starts anyway",
			    vmid);
	return 0;
}

int hotplug_hook(const struct settings *s, unsigned long vmid, const char *phase)
{
	if (strcmp(phase, "post-start") == 0)
		return hook_post_start(s, vmid);
	if (strcmp(phase, "pre-start") == 0)
		return hook_pre_start(s, vmid);
	if (strcmp(phase, "pre-stop") == 0 || strcmp(phase, "post-stop") == 0)
		return 0;
	char shown[64];

	log_info("VM %lu: phase '%s' is not one this tool acts on; ignored", vmid,
		 log_escape(phase, shown, sizeof(shown)));
	return 0;
}
