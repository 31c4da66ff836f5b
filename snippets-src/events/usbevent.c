#include "events/usbevent.h"
#include "act/deliver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guests/guest.h"
#include "base/log.h"
#include "base/report.h"
#include "base/retry.h"
#include "policy/plan.h"
#include "policy/usbconf.h"
#include "host/usbtree.h"
#include "base/util.h"
#include "policy/vms.h"

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

/* Detaches port from vm; when QEMU could not be reached, tries again later
 * (retry.h): a usb-host left behind takes the next device plugged in
 * there. */
static int detach_from(const struct settings *s, struct vm *vm, const struct usb_port *port,
		       const char *desc, const char *why)
{
	struct report rep = { 0 };
	struct guest *g;
	int r;

	r = guest_open(s, &vm->t, &rep, &g);
	if (r == 0) {
		r = guest_detach(g, port, desc, why);
		guest_close(g);
	}
	report_say(&rep);
	if (r == -ENOENT || r == -ECONNREFUSED)
		return 0; /* stopped: it holds nothing any more */
	if (retry_worth(r))
		retry_schedule(s, &vm->t);
	return r;
}

/* Which running VMs hold dev's port now: what an add's plan needs beyond
 * the placement p. The VM p gives it to is not asked (it keeps the port
 * either way), nor a libvirt domain that does not claim it (libvirt is
 * loaded only for what concerns it: sync clears what such a domain still
 * holds after its rules changed). holds[i] for v->list[i]. */
static int gather_holders(struct vms *v, const struct usb_device_info *dev,
			  const struct placement *p, bool *holds)
{
	if (vms_list_hinted(v) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < v->n; i++) {
		struct vm *vm = v->list[i];

		holds[i] = !plan_takes(p, vm) && (target_cheap(&vm->t) || vms_claims(vm, dev)) &&
			   vms_running(v, vm) && vms_holds(v, vm, &dev->port);
	}
	return 0;
}

/* Every running VM but the one p gives dev to that holds dev's port loses
 * it (plan_add_holder()). */
static int clear_holders(const struct settings *s, struct vms *v,
			 const struct usb_device_info *dev, const struct placement *p,
			 const char *desc)
{
	bool *holds;
	int r, k, ret = 0;

	holds = calloc(v->n + 1, sizeof(*holds));
	if (!holds)
		return -ENOMEM;
	r = gather_holders(v, dev, p, holds);
	for (size_t i = 0; r == 0 && i < v->n; i++) {
		enum plan_why why = holds[i] ? plan_add_holder(p, v->list[i]) : PLAN_KEEP;
		char text[160];

		if (why == PLAN_KEEP)
			continue;
		deliver_why(why, p, text, sizeof(text));
		if ((k = detach_from(s, v->list[i], &dev->port, desc, text)) < 0)
			ret = k;
	}
	free(holds);
	return r < 0 ? r : ret;
}

/* A deny rule that keeps dev out of a VM whose other rules select it is
 * worth a line: the admin may wonder why it stays on the host. */
static void explain_denials(const struct vms *v, const struct usb_device_info *dev,
			    const char *desc)
{
	for (size_t i = 0; i < v->n; i++) {
		const struct usb_rule *deny;

		if (v->list[i]->rules && (deny = usbconf_kept_out(v->list[i]->rules, dev)))
			deliver_explain_denial(v->list[i], deny, desc);
	}
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
		struct report rep = { 0 };
		struct guest *g;
		int cleared;

		r = vms_place(v, &dev, &p);
		if (r < 0)
			return r;
		deliver_explain(&p, NULL, desc);
		if (p.kind == PLACE_NOBODY)
			explain_denials(v, &dev, desc);
		cleared = clear_holders(s, v, &dev, &p, desc);
		if (p.kind == PLACE_CONFLICT)
			return -EBUSY;
		*passed = p.kind == PLACE_PROXMOX;
		if (p.kind != PLACE_VM)
			return cleared;
		r = deliver_open_placed(s, &p, desc, &rep, &g);
		if (r == -EAGAIN)
			continue;
		if (r < 0)
			return r;
		/* planned without the lock: is it still the device planned for? */
		if (!deliver_still_there(&dev)) {
			guest_close(g);
			*passed = false;
			return cleared;
		}
		r = guest_attach(g, &dev);
		guest_close(g);
		report_say(&rep);
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
		bool claims = vms_claims(vm, dev), running, holds;
		int r;

		/* a libvirt domain that does not claim it is not asked */
		if (!claims && !target_cheap(&vm->t))
			continue;
		running = vms_running(v, vm);
		holds = running && !claims && vms_holds(v, vm, &dev->port);
		if (!plan_remove_detaches(running, claims, holds))
			continue;
		r = detach_from(s, vm, &dev->port, desc, NULL);
		if (r < 0)
			ret = r;
	}
	return ret;
}

/* A remove while no rules can be read (load: why; 1: no rules directory):
 * what the tool added must still go, or the usb-host left behind takes
 * the next device plugged in there. Its own records (the port hints in the
 * state directory) say who holds the port. */
static int remove_by_records(const struct settings *s, const struct uevent *ev, int load)
{
	struct usb_device_info dev;
	struct vms v;
	int r;

	/* no directory at all is how boot looks (udev replays devices before
	 * /etc/pve is mounted): worth a note, not a warning */
	log_msg(load < 0 ? LOG_LVL_WARNING : LOG_LVL_INFO,
		"cannot read the rules in %s (%s); the device's removal is handled by the tool's own records",
		s->vm_config_dir, strerror(load < 0 ? -load : ENOENT));
	r = vms_load_records(s, &v);
	if (r == 0) {
		dev_from_event(ev, &dev);
		r = event_remove(s, &v, &dev);
	}
	vms_free(&v);
	return r;
}

int usbevent_handle(const struct settings *s, const struct uevent *ev, bool *passed)
{
	struct usb_device_info dev;
	bool dummy;
	struct vms v;
	int r;

	if (!passed)
		passed = &dummy;
	*passed = false;
	r = deliver_load(s, &v);
	if (r != 0 && ev->action == UEVENT_REMOVE)
		return remove_by_records(s, ev, r);
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

int usbevent_plugged(const struct settings *s, const char *name, bool *passed)
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
	return usbevent_handle(s, &ev, passed);
}

int usbevent_node(const struct settings *s, enum uevent_action action, const struct ifnode *n)
{
	char port[PORT_STRLEN], devpath[UEVENT_DEVPATH_MAX];

	port_format(&n->port, port, sizeof(port));
	if (!guest_follows_nodes_of(s, &n->port)) {
		log_debug("ignored: /dev/%s is of %s, which no guest that follows such nodes holds",
			  n->name, port);
		return 0;
	}
	/* pulled out: its own remove takes every node of it */
	if (action == UEVENT_REMOVE && usbtree_devpath(port, devpath, sizeof(devpath)) < 0) {
		log_debug("ignored: /dev/%s went with %s", n->name, port);
		return 0;
	}
	return usbevent_plugged(s, port, NULL);
}
