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
#include "base/report.h"
#include "base/retry.h"
#include "host/usbtree.h"
#include "policy/plan.h"

/* A port the guest is to give up, and what was there when planned. */
struct detach_step {
	struct usb_port port;
	const struct usb_device_info *seen; /* in the device list; NULL: nothing */
	char why[128];
};

struct vm_plan {
	struct vm *vm;
	size_t n_detach, n_attach;
	struct detach_step *detach;
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
 * (dev: what is plugged in there now, NULL if nothing); 0: it keeps it.
 * Placed only when the plan needs it (plan_sync_holder()). */
static int why_detach(struct vms *v, struct vm *vm, const struct usb_device_info *dev,
		      char *why, size_t n)
{
	bool claims = dev && dev->dev_class != USB_CLASS_HUB && vms_claims(vm, dev);
	struct placement p;
	enum plan_why w;
	int r;

	if (claims && (r = vms_place(v, dev, &p)) < 0)
		return r;
	w = plan_sync_holder(vm, dev, claims, claims ? &p : NULL);
	if (w == PLAN_KEEP)
		return 0;
	deliver_why(w, claims ? &p : NULL, why, n);
	return 1;
}

static int plan_vm(struct vms *v, struct vm_plan *pl, const struct usb_device_info *devs,
		   size_t n_devs)
{
	struct vm *vm = pl->vm;
	int r;

	pl->detach = calloc(vm->n_held + 1, sizeof(*pl->detach));
	pl->attach = calloc(n_devs + 1, sizeof(*pl->attach));
	if (!pl->detach || !pl->attach)
		return -ENOMEM;

	for (size_t i = 0; i < vm->n_held; i++) {
		struct detach_step *step = &pl->detach[pl->n_detach];

		step->port = vm->held[i].port;
		step->seen = find_dev(devs, n_devs, &step->port);
		r = why_detach(v, vm, step->seen, step->why, sizeof(step->why));
		if (r < 0)
			return r;
		if (r > 0)
			pl->n_detach++;
	}
	for (size_t i = 0; vm->rules && i < n_devs; i++) {
		struct placement p;
		char desc[256];

		if (devs[i].dev_class == USB_CLASS_HUB || !usbconf_match(vm->rules, &devs[i], NULL))
			continue;
		r = vms_place(v, &devs[i], &p);
		if (r < 0)
			return r;
		if (plan_takes(&p, vm)) {
			if (plan_sync_attaches(&devs[i], vms_holds(v, vm, &devs[i].port)))
				pl->attach[pl->n_attach++] = i;
		} else if (p.kind == PLACE_CONFLICT && p.vm == vm) {
			guest_describe(&devs[i], desc, sizeof(desc));
			deliver_explain(&p, NULL, desc);
		}
	}
	return 0;
}

static int carry_out(struct vms *v, const struct vm_plan *pl, const struct usb_device_info *devs,
		     size_t n_devs)
{
	struct report rep = { 0 };
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
	r = guest_open(v->s, &pl->vm->t, &rep, &g);
	report_say(&rep);
	if (r < 0) {
		free(take);
		return r;
	}
	for (size_t i = 0; i < pl->n_detach && guest_usable(g); i++) {
		const struct detach_step *step = &pl->detach[i];
		char port[PORT_STRLEN];

		/* planned without the lock: the port may have changed since */
		if (!deliver_port_unchanged(&step->port, step->seen, pl->vm->t.label))
			continue;
		port_format(&step->port, port, sizeof(port));
		r = guest_detach(g, &step->port, port, step->why);
		report_say(&rep);
		if (r < 0)
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

/* Which guests sync looks at (plans[i].vm, *n_plans of them): the running
 * guests that have rules, or the one named (t). A guest without rules is
 * synced only when named: then whatever it still holds through the tool
 * goes. -ESRCH (logged) when the named one does not run. */
static int choose(const struct settings *s, struct vms *v, const char *name,
		  const struct target *t, struct vm_plan *plans, size_t *n_plans)
{
	size_t n = 0;

	for (size_t i = 0; i < v->n; i++) {
		struct vm *vm = v->list[i];

		if (name ? strcmp(vm->t.name, name) != 0 : !vm->rules)
			continue;
		if (!vms_running(v, vm))
			continue;
		plans[n++].vm = vm;
	}
	*n_plans = n;
	if (name && n == 0) {
		if (t->kind == TARGET_PVE)
			return log_err(-ESRCH, "VM %lu is not running; nothing to sync (post-start attaches everything when it starts)",
				       t->vmid);
		return log_err(-ESRCH, "%s is not running (nothing listens on %s); nothing to sync: run 'pve-usb-hotplug sync %s' once it runs",
			       t->label, t->qmp, t->name);
	}
	if (n == 0 && s->n_guests == 0)
		log_info("no running VM has a .usb.conf in %s; nothing to sync", s->vm_config_dir);
	else if (n == 0)
		log_info("no running guest has rules (a .usb.conf in %s, or a declared guest's); nothing to sync",
			 s->vm_config_dir);
	return 0;
}

int sync_run(const struct settings *s, const char *name)
{
	struct usb_device_info *devs = NULL;
	struct vm_plan *plans = NULL;
	size_t n_devs = 0, n_plans = 0;
	struct target t;
	struct vms v;
	int r, ret = 0;

	/* an operator's sync NAME ends a release's hold; a scheduled retry
	 * (of a detach that failed before the release) must not undo it */
	if (name) {
		struct report rep = { 0 };

		r = target_by_name(s, name, &t, &rep);
		report_say(&rep);
		if (r < 0)
			return r;
		if (s->retry_attempt && guest_is_released(s, &t)) {
			log_info("%s is released (for a migration, a snapshot or hibernation): the scheduled retry leaves it alone; 'pve-usb-hotplug sync %s' ends the release",
				 t.label, t.name);
			return 0;
		}
		(void)guest_unrelease(s, &t, &rep);
		report_say(&rep);
	}
	r = vms_load_host(s, &v, &devs, &n_devs);
	if (r < 0)
		return r;
	plans = calloc(v.n + 1, sizeof(*plans));
	if (!plans) {
		ret = -ENOMEM;
		goto out;
	}

	ret = choose(s, &v, name, name ? &t : NULL, plans, &n_plans);
	if (ret < 0)
		goto out;

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
		free(plans[i].attach);
	}
	free(plans);
	free(devs);
	vms_free(&v);
	return ret;
}
