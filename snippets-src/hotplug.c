#include "hotplug.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest.h"
#include "log.h"
#include "policy.h"
#include "usbconf.h"
#include "usbtree.h"
#include "util.h"

struct running_ctx {
	const struct settings *s;
	unsigned long starting_vmid; /* counts as running (post-start) */
};

static bool vm_running(unsigned long vmid, void *userdata)
{
	const struct running_ctx *ctx = userdata;

	return vmid == ctx->starting_vmid || guest_is_running(ctx->s, vmid);
}

static void log_conflict(const struct vm_rules *a, const struct vm_rules *b, const char *desc)
{
	log_error("%s is claimed equally by VM %lu (%s) and VM %lu (%s), both running: attached to neither; make one rule more specific",
		  desc, a->vmid, a->path, b->vmid, b->path);
}

static bool any_claims(struct vm_rules *const *vms, size_t n, const struct usb_port *port)
{
	for (size_t i = 0; i < n; i++)
		if (usbconf_match(vms[i], port))
			return true;
	return false;
}

static int event_add(const struct settings *s, const struct uevent *ev,
		     struct vm_rules *const *vms, size_t n)
{
	struct running_ctx ctx = { .s = s };
	const struct vm_rules *winner = NULL, *rival = NULL;
	struct usb_device_info dev;
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

	r = policy_pick(vms, n, &dev.port, vm_running, &ctx, &winner, &rival);
	if (r == -EBUSY) {
		log_conflict(winner, rival, desc);
		return r;
	}
	if (r == 0) {
		log_info("%s: no running VM claims it; nothing to do", desc);
		return 0;
	}
	r = guest_open(s, winner->vmid, &g);
	if (r == -ENOENT || r == -ECONNREFUSED)
		return 0; /* stopped meanwhile: logged */
	if (r < 0)
		return r;
	r = guest_attach(g, &dev);
	guest_close(g);
	return r;
}

static int event_remove(const struct settings *s, const struct uevent *ev,
			struct vm_rules *const *vms, size_t n)
{
	struct running_ctx ctx = { .s = s };
	struct usb_device_info dev = { .port = ev->port, .dev_class = -1 };
	int ret = 0;

	/* sysfs has nothing left: the environment tells the ids */
	if (ev->have_ids) {
		dev.vid = ev->vid;
		dev.pid = ev->pid;
	}
	/* The device may sit in any claiming VM (rules may have changed since
	 * it was attached): detach it from each one that runs. */
	for (size_t i = 0; i < n; i++) {
		struct guest *g;
		int r;

		if (!usbconf_match(vms[i], &dev.port) || !vm_running(vms[i]->vmid, &ctx))
			continue;
		r = guest_open(s, vms[i]->vmid, &g);
		if (r == -ENOENT || r == -ECONNREFUSED)
			continue;
		if (r == 0) {
			r = guest_detach(g, &dev);
			guest_close(g);
		}
		if (r < 0)
			ret = r;
	}
	return ret;
}

int hotplug_event(const struct settings *s, const struct uevent *ev)
{
	struct vm_rules **vms = NULL;
	size_t n = 0;
	int r;

	r = usbconf_load_all(s->vm_config_dir, &vms, &n);
	if (r < 0)
		return r;
	if (!any_claims(vms, n, &ev->port)) {
		char port[PORT_STRLEN];

		port_format(&ev->port, port, sizeof(port));
		log_debug("ignored: no VM claims %s", port);
		r = 0;
	} else if (ev->action == UEVENT_ADD)
		r = event_add(s, ev, vms, n);
	else
		r = event_remove(s, ev, vms, n);
	usbconf_free_all(vms, n);
	return r;
}

static int hook_post_start(const struct settings *s, unsigned long vmid)
{
	struct running_ctx ctx = { .s = s, .starting_vmid = vmid };
	struct vm_rules **vms = NULL, *mine = NULL;
	struct usb_device_info *devs = NULL;
	struct guest *g = NULL;
	size_t n = 0, n_devs = 0, attached = 0;
	int r, ret = 0;

	r = usbconf_load_all(s->vm_config_dir, &vms, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (vms[i]->vmid == vmid)
			mine = vms[i];
	if (!mine || mine->n_rules == 0) {
		if (mine)
			log_info("VM %lu: %s has no valid rule; nothing to attach", vmid, mine->path);
		goto out;
	}

	r = usbtree_scan(&devs, &n_devs);
	if (r < 0) {
		ret = log_err(r, "VM %lu: cannot read the host's USB devices: %s", vmid, strerror(-r));
		goto out;
	}

	for (size_t i = 0; i < n_devs; i++) {
		const struct vm_rules *winner = NULL, *rival = NULL;
		char desc[256];

		if (devs[i].dev_class == USB_CLASS_HUB || !usbconf_match(mine, &devs[i].port))
			continue;
		guest_describe(&devs[i], desc, sizeof(desc));
		r = policy_pick(vms, n, &devs[i].port, vm_running, &ctx, &winner, &rival);
		if (r == -EBUSY) {
			log_conflict(winner, rival, desc);
			ret = r;
			continue;
		}
		if (r <= 0 || winner != mine) {
			log_info("VM %lu: %s is left to VM %lu, whose rule is more specific", vmid,
				 desc, winner ? winner->vmid : 0);
			continue;
		}
		if (!g) {
			r = guest_open(s, vmid, &g);
			if (r < 0) {
				ret = r;
				goto out;
			}
		}
		r = guest_attach(g, &devs[i]);
		if (r < 0)
			ret = r;
		else
			attached++;
	}
	if (attached == 0 && ret == 0)
		log_info("VM %lu: nothing plugged in under its ports now; devices will be attached when plugged in", vmid);
out:
	guest_close(g);
	free(devs);
	usbconf_free_all(vms, n);
	return ret;
}

static int hook_pre_start(const struct settings *s, unsigned long vmid)
{
	struct vm_rules *mine = NULL;

	/* the problems themselves are reported while parsing */
	if (usbconf_load(s->vm_config_dir, vmid, &mine) == 0) {
		if (mine->n_errors)
			log_warning("VM %lu: %u line(s) of %s ignored; the VM starts anyway", vmid,
				    mine->n_errors, mine->path);
		usbconf_free(mine);
	}
	return 0; /* never keep a VM from starting */
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

static int check_one(const struct vm_rules *r)
{
	if (r->n_errors) {
		log_error("%s: %u bad line(s), %zu good rule(s)", r->path, r->n_errors, r->n_rules);
		return -EINVAL;
	}
	log_info("%s: %zu rule(s), all valid", r->path, r->n_rules);
	return 0;
}

int hotplug_check(const struct settings *s, unsigned long vmid)
{
	struct vm_rules **vms = NULL, *one = NULL;
	size_t n = 0;
	int r, ret = 0;

	if (vmid) {
		r = usbconf_load(s->vm_config_dir, vmid, &one);
		if (r == -ENOENT)
			return log_err(r, "VM %lu has no %s/%lu.usb.conf", vmid, s->vm_config_dir, vmid);
		if (r < 0)
			return r;
		ret = check_one(one);
		usbconf_free(one);
		return ret;
	}
	r = usbconf_load_all(s->vm_config_dir, &vms, &n);
	if (r < 0)
		return r;
	if (n == 0)
		log_info("%s has no <vmid>.usb.conf; no VM gets USB devices from pve-usb-hotplug", s->vm_config_dir);
	for (size_t i = 0; i < n; i++)
		if (check_one(vms[i]) < 0)
			ret = -EINVAL;
	usbconf_free_all(vms, n);
	return ret;
}
