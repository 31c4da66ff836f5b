#include "commands/hook.h"
#include "commands/check.h"
#include "act/deliver.h"
#include "act/guestdisks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guests/guest.h"
#include "base/log.h"
#include "base/report.h"
#include "base/state.h"
#include "base/retry.h"
#include "policy/plan.h"
#include "policy/usbconf.h"
#include "host/usbtree.h"
#include "base/util.h"
#include "policy/vms.h"

/* Post-start's plan: which of devs the starting VM mine takes (take[i];
 * *ret_n_take of them), each placed from what the others hold (that may
 * ask them: before this VM's lock is taken, never two VMs' locks at once).
 * What it does not take is explained. 0, -EBUSY when a device is claimed
 * equally by a rival, or the error. */
static int post_start_plan(struct vms *v, struct vm *mine, const struct usb_device_info *devs,
			   size_t n_devs, bool *take, size_t *ret_n_take)
{
	size_t n_take = 0;
	int ret = 0;

	for (size_t i = 0; i < n_devs; i++) {
		struct placement p;
		char desc[256];
		int r;

		if (devs[i].dev_class == USB_CLASS_HUB || !usbconf_match(mine->rules, &devs[i], NULL))
			continue;
		r = vms_place(v, &devs[i], &p);
		if (r < 0)
			return r;
		if (plan_takes(&p, mine)) {
			take[i] = true;
			n_take++;
			continue;
		}
		guest_describe(&devs[i], desc, sizeof(desc));
		deliver_explain(&p, mine, desc);
		if (p.kind == PLACE_CONFLICT)
			ret = -EBUSY;
	}
	*ret_n_take = n_take;
	return ret;
}

/* Post-start's act, under the VM's lock: attaches what the plan takes
 * (each looked at again first: deliver_attach_all()), then its disks. */
static int post_start_act(struct vms *v, struct vm *mine, const struct usb_device_info *devs,
			  size_t n_devs, const bool *take, size_t n_take)
{
	struct report rep = { 0 };
	struct guest *g;
	int r, ret = 0;

	r = guest_open(v->s, &mine->t, &rep, &g);
	report_say(&rep);
	if (r < 0)
		return r;
	if (n_take == 0) {
		/* nothing to attach, but the record of what it holds (nothing)
		 * saves later events a question to QEMU */
		const struct xhci_set *held;

		(void)guest_held(g, true, &held);
		report_say(&rep);
	} else {
		r = deliver_attach_all(g, &mine->t, devs, take, n_devs);
		if (r < 0)
			ret = r;
	}
	if (guest_usable(g) && (r = guestdisks_attach(v, mine, g)) < 0)
		ret = r;
	guest_close(g);
	return ret;
}

/* Plans from the host's devices now, then acts on mine. */
static int post_start_vm(struct vms *v, struct vm *mine)
{
	struct usb_device_info *devs = NULL;
	bool *take = NULL;
	size_t n_devs = 0, n_take = 0;
	int r, ret;

	r = usbtree_scan(vms_any_disk_rules(v), &devs, &n_devs);
	if (r < 0)
		return log_err(r, "%s: cannot read the host's USB devices: %s", mine->t.label,
			       strerror(-r));
	take = calloc(n_devs + 1, sizeof(*take));
	if (!take) {
		ret = -ENOMEM;
		goto out;
	}
	ret = post_start_plan(v, mine, devs, n_devs, take, &n_take);
	if (ret < 0 && ret != -EBUSY)
		goto out;
	if (n_take == 0 && ret == 0 && !usbconf_has_disk_rules(mine->rules, false))
		log_info("%s: nothing plugged in under its rules now; devices will be attached when plugged in",
			 mine->t.label);
	else if (n_take == 0 && ret == 0)
		log_info("%s: no USB device to pass under its rules now; looking for its disks",
			 mine->t.label);
	r = post_start_act(v, mine, devs, n_devs, take, n_take);
	if (r < 0)
		ret = r;
out:
	free(take);
	free(devs);
	return ret;
}

static int hook_post_start(const struct settings *s, unsigned long vmid, const char *migrated_from)
{
	struct report rep = { 0 };
	struct target t;
	struct vm *mine;
	struct vms v;
	int r, ret = 0;

	r = target_by_id(s, vmid, &t, &rep); /* a VM or a container */
	report_say(&rep);
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
	(void)guest_unrelease(s, &t, &rep);
	report_say(&rep);
	r = vms_load(s, LOG_LVL_WARNING, vmid, &v);
	if (r < 0)
		return r;
	mine = vms_find(&v, t.name);
	if (mine && mine->rules && mine->rules->n_rules > 0)
		ret = post_start_vm(&v, mine);
	else if (mine && mine->rules)
		log_info("%s: %s has no valid rule; nothing to attach", t.label, mine->rules->path);
	vms_free(&v);
	return ret;
}

static int hook_pre_start(const struct settings *s, unsigned long vmid)
{
	/* the same as 'check VMID', but a VM must never be kept from starting */
	char name[24];

	snprintf(name, sizeof(name), "%lu", vmid);
	if (check_run(s, name, true) < 0)
		log_warning("VM %lu: USB hot-plug rules have problems (see above); the VM starts anyway",
			    vmid);
	return 0;
}

int hook_run(const struct settings *s, unsigned long vmid, const char *phase,
		 const char *migrated_from)
{
	if (strcmp(phase, "post-start") == 0) {
		int r = hook_post_start(s, vmid, migrated_from);

		(void)state_poke_listener(s->state_dir);
		return r;
	}
	if (strcmp(phase, "pre-start") == 0)
		return hook_pre_start(s, vmid);
	if (strcmp(phase, "post-stop") == 0) {
		/* what the VM held goes back to the host's drivers */
		(void)state_poke_listener(s->state_dir);
		return 0;
	}
	if (strcmp(phase, "pre-stop") == 0)
		return 0;
	char shown[64];

	log_info("VM %lu: phase '%s' is not one this tool acts on; ignored", vmid,
		 log_escape(phase, shown, sizeof(shown)));
	return 0;
}
