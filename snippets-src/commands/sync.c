/* sync [NAME]: make running guests hold what their rules give them now. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guests/guest.h"
#include "commands/sync.h"
#include "act/deliver.h"
#include "act/guestdisks.h"
#include "base/log.h"
#include "base/retry.h"
#include "host/usbtree.h"

struct plan {
	struct vm *vm;
	size_t n_detach, n_attach;
	struct usb_port *detach; /* with a reason each */
	char (*why)[128];
	size_t *attach; /* indexes into the device list */
};

static const struct usb_device_info *find_dev(const struct usb_device_info *devs, size_t n,
					      const struct usb_port *port)
{
	for (size_t i = 0; i < n; i++)
		if (port_equal(&devs[i].port, port))
			return &devs[i];
	return NULL;
}

/* 1 with the reason in why when vm should give up the host port it holds
 * (dev: what is plugged in there now, NULL if nothing); 0: it keeps it. */
static int why_detach(struct vms *v, struct vm *vm, const struct usb_device_info *dev,
		      char *why, size_t n)
{
	struct placement p;
	int r;

	if (!dev) {
		snprintf(why, n, "no device is plugged in there any more");
		return 1;
	}
	if (dev->dev_class == USB_CLASS_HUB) {
		snprintf(why, n, "a hub is there now, and hubs are never passed");
		return 1;
	}
	if (!vms_claims(vm, dev)) {
		snprintf(why, n, "no rule of this VM claims it any more");
		return 1;
	}
	r = vms_place(v, dev, &p);
	if (r < 0)
		return r;
	if (p.kind == PLACE_NOBODY) {
		snprintf(why, n, "no rule of a running VM gives it to this one");
		return 1;
	}
	if (p.kind == PLACE_PROXMOX) {
		deliver_owner_passes(&p, why, n);
		return 1;
	}
	if (p.kind == PLACE_DISK) {
		snprintf(why, n, "it carries a disk that %s takes as a disk", p.vm->t.label);
		return 1;
	}
	if (p.kind == PLACE_VM && p.vm != vm) {
		snprintf(why, n, "%s has it as well and keeps it", p.vm->t.label);
		return 1;
	}
	return 0;
}

static int plan_vm(struct vms *v, struct plan *pl, const struct usb_device_info *devs,
		   size_t n_devs)
{
	struct vm *vm = pl->vm;
	int r;

	pl->detach = calloc(vm->n_held + 1, sizeof(*pl->detach));
	pl->why = calloc(vm->n_held + 1, sizeof(*pl->why));
	pl->attach = calloc(n_devs + 1, sizeof(*pl->attach));
	if (!pl->detach || !pl->why || !pl->attach)
		return -ENOMEM;

	for (size_t i = 0; i < vm->n_held; i++) {
		r = why_detach(v, vm, find_dev(devs, n_devs, &vm->held[i].port), pl->why[pl->n_detach],
			       sizeof(pl->why[0]));
		if (r < 0)
			return r;
		if (r > 0)
			pl->detach[pl->n_detach++] = vm->held[i].port;
	}
	for (size_t i = 0; vm->rules && i < n_devs; i++) {
		struct placement p;
		char desc[256];

		if (devs[i].dev_class == USB_CLASS_HUB || !usbconf_match(vm->rules, &devs[i], NULL))
			continue;
		r = vms_place(v, &devs[i], &p);
		if (r < 0)
			return r;
		if (p.kind == PLACE_VM && p.vm == vm) {
			const struct xhci_dev *h = vms_holds(v, vm, &devs[i].port);

			/* missing, or left for another device: guest_attach
			 * replaces what is pinned to another */
			if (!h || (devs[i].have_ids && (h->vid != devs[i].vid || h->pid != devs[i].pid)))
				pl->attach[pl->n_attach++] = i;
		} else if (p.kind == PLACE_CONFLICT && p.vm == vm) {
			guest_describe(&devs[i], desc, sizeof(desc));
			deliver_explain(&p, NULL, desc);
		}
	}
	return 0;
}

static int carry_out(struct vms *v, const struct plan *pl, const struct usb_device_info *devs,
		     size_t n_devs)
{
	struct guest *g;
	bool *take = NULL;
	int r, ret = 0;

	if (pl->n_detach == 0 && pl->n_attach == 0 && !guestdisks_concern(v->s, pl->vm)) {
		log_info("%s: in sync; it holds %zu device(s) through pve-usb-hotplug",
			 pl->vm->t.label, pl->vm->n_held);
		return 0;
	}
	take = calloc(n_devs + 1, sizeof(*take));
	if (!take)
		return -ENOMEM;
	for (size_t i = 0; i < pl->n_attach; i++)
		take[pl->attach[i]] = true;
	r = guest_open(v->s, &pl->vm->t, &g);
	if (r < 0) {
		free(take);
		return r;
	}
	for (size_t i = 0; i < pl->n_detach && guest_usable(g); i++) {
		char port[PORT_STRLEN];

		port_format(&pl->detach[i], port, sizeof(port));
		if ((r = guest_detach(g, &pl->detach[i], port, pl->why[i])) < 0)
			ret = r;
	}
	r = deliver_attach_all(g, &pl->vm->t, devs, take, n_devs);
	if (r < 0)
		ret = r;
	if (guest_usable(g) && guestdisks_concern(v->s, pl->vm) &&
	    (r = guestdisks_sync(v, pl->vm, g)) < 0)
		ret = r;
	guest_close(g);
	free(take);
	return ret;
}

int sync_run(const struct settings *s, const char *name)
{
	struct usb_device_info *devs = NULL;
	struct plan *plans = NULL;
	size_t n_devs = 0, n_plans = 0;
	struct target t;
	struct vms v;
	int r, ret = 0;

	/* sync NAME ends a release's hold */
	if (name) {
		r = target_by_name(s, name, &t);
		if (r < 0)
			return r;
		(void)guest_unrelease(s, &t);
	}
	r = vms_load_host(s, &v, &devs, &n_devs);
	if (r < 0)
		return r;
	plans = calloc(v.n + 1, sizeof(*plans));
	if (!plans) {
		ret = -ENOMEM;
		goto out;
	}

	/* a guest without rules is synced only when named: then whatever it
	 * still holds through the tool goes */
	for (size_t i = 0; i < v.n; i++) {
		struct vm *vm = v.list[i];

		if (name ? strcmp(vm->t.name, name) != 0 : !vm->rules)
			continue;
		if (!vms_running(&v, vm))
			continue;
		plans[n_plans++].vm = vm;
	}
	if (name && n_plans == 0) {
		if (t.kind == TARGET_PVE)
			ret = log_err(-ESRCH, "VM %lu is not running; nothing to sync (post-start attaches everything when it starts)",
				      t.vmid);
		else
			ret = log_err(-ESRCH, "%s is not running (nothing listens on %s); nothing to sync: run 'pve-usb-hotplug sync %s' once it runs",
				      t.label, t.qmp, t.name);
		goto out;
	}
	if (n_plans == 0 && s->n_guests == 0)
		log_info("no running VM has a .usb.conf in %s; nothing to sync", s->vm_config_dir);
	else if (n_plans == 0)
		log_info("no running guest has rules (a .usb.conf in %s, or a declared guest's); nothing to sync",
			 s->vm_config_dir);

	/* First learn everything (asking each VM what it holds), then change
	 * one VM at a time: never two VMs' locks at once. */
	for (size_t i = 0; i < n_plans; i++) {
		if ((r = vms_fetch_held(&v, plans[i].vm)) < 0) {
			ret = r;
			if (s->retry_attempt && retry_worth(r))
				retry_schedule(s, &plans[i].vm->t);
			plans[i].vm = NULL;
			continue;
		}
		r = plan_vm(&v, &plans[i], devs, n_devs);
		if (r < 0) {
			ret = r;
			goto out;
		}
	}
	for (size_t i = 0; i < n_plans; i++) {
		if (!plans[i].vm || (r = carry_out(&v, &plans[i], devs, n_devs)) >= 0)
			continue;
		ret = r;
		/* a retry that failed again: the next try (retry.h) */
		if (s->retry_attempt && retry_worth(r))
			retry_schedule(s, &plans[i].vm->t);
	}
out:
	for (size_t i = 0; plans && i < n_plans; i++) {
		free(plans[i].detach);
		free(plans[i].why);
		free(plans[i].attach);
	}
	free(plans);
	free(devs);
	vms_free(&v);
	return ret;
}
