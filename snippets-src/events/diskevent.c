#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "host/disk.h"
#include "guests/guest.h"
#include "events/diskevent.h"
#include "act/deliver.h"
#include "act/guestdisks.h"
#include "base/log.h"
#include "base/report.h"
#include "base/retry.h"
#include "guests/vdisk.h"
#include "policy/vms.h"

/* Whether anything about the disk concerns the guests: a disk rule
 * claims it or a deny keeps it out. */
static bool claimed_by_anyone(const struct vms *v, const struct usb_disk *d)
{
	struct disk_serials ser;

	disk_serials(d, &ser);
	for (size_t i = 0; i < v->n; i++)
		if (v->list[i]->rules && (usbconf_disk_match(v->list[i]->rules, &ser, NULL) ||
					  usbconf_disk_denied(v->list[i]->rules, &ser)))
			return true;
	return false;
}

static void explain_denials(const struct vms *v, const struct usb_disk *d, const char *desc)
{
	struct disk_serials ser;

	disk_serials(d, &ser);
	for (size_t i = 0; i < v->n; i++) {
		const struct usb_rule *deny;

		if (v->list[i]->rules && (deny = usbconf_disk_denied(v->list[i]->rules, &ser)))
			deliver_explain_denial(v->list[i], deny, desc);
	}
}

static int disk_removed(const struct settings *s, struct vms *v, const struct usb_disk *d);

static int disk_added(const struct settings *s, struct vms *v, const struct usb_disk *ev)
{
	struct usb_disk d;
	struct placement p;
	char desc[256];
	int r;

	r = disk_get(ev->devpath, &d);
	if (r < 0) {
		log_info("%s is gone again before it could be attached; nothing to do", ev->name);
		return 0;
	}
	disk_describe(&d, desc, sizeof(desc));
	if (d.size == 0) {
		/* a card reader without a card (or one just taken out): whoever
		 * has the card's disk lets go of it */
		log_info("%s has no medium; it is attached when one is put in", desc);
		return disk_removed(s, v, &d);
	}
	for (;;) {
		struct report rep = { 0 };
		struct guest *g;

		r = vms_place_disk(v, &d, &p);
		if (r < 0)
			return r;
		deliver_explain(&p, NULL, desc);
		if (p.kind == PLACE_NOBODY)
			explain_denials(v, &d, desc);
		if (p.kind == PLACE_CONFLICT)
			return -EBUSY;
		if (p.kind != PLACE_VM)
			return 0;
		r = deliver_open_placed(s, &p, desc, &rep, &g);
		if (r == -EAGAIN)
			continue;
		if (r < 0)
			return r;
		r = guestdisks_attach_one(g, s, &p.vm->t, &d, p.rule);
		guest_close(g);
		return r;
	}
}

/* Detaches the pulled disk from guest vm: its id, and any disk of the
 * tool's there whose device is gone (a remove event without the disk's
 * serial, a remove that was missed). */
static int detach_pulled(const struct settings *s, struct vm *vm, const char *id, const char *desc)
{
	static const char why[] = "it was pulled out (data the guest had not written to it yet is lost, as with any disk pulled out while in use)";
	struct report rep = { 0 };
	struct vdisk_set *set;
	struct guest *g;
	int r, ret = 0;

	r = guest_open(s, &vm->t, &rep, &g);
	report_say(&rep);
	if (r == -ENOENT || r == -ECONNREFUSED)
		return 0;
	if (r < 0)
		return r;
	set = guestdisks_fetch(g, &ret);
	for (size_t i = 0; set && i < set->n && guest_usable(g); i++) {
		bool mine = strcmp(set->d[i].id, id) == 0;
		char other[DISK_LINK_MAX * 4 + 16];

		if (!mine && !guestdisks_file_gone(&set->d[i]))
			continue;
		vdisk_describe(&set->d[i], other, sizeof(other));
		r = guest_disk_detach(g, set->d[i].id, mine ? desc : other,
				      mine ? why : "its disk is gone from the host");
		report_say(&rep);
		if (r < 0)
			ret = -EIO;
	}
	free(set);
	guest_close(g);
	return ret;
}

static int disk_removed(const struct settings *s, struct vms *v, const struct usb_disk *d)
{
	struct disk_serials ser;
	char id[DISK_ID_MAX], desc[256];
	int ret = 0;

	disk_serials(d, &ser);
	disk_qemu_id(disk_key(d), id, sizeof(id));
	disk_describe(d, desc, sizeof(desc));
	if (vms_list_disk_holders(v) < 0)
		return -ENOMEM;
	/* every running guest whose rules claim it, and every one the tool
	 * has put a disk into (its rules may have changed since) */
	for (size_t i = 0; i < v->n; i++) {
		struct vm *vm = v->list[i];
		bool claims = vm->rules && usbconf_disk_match(vm->rules, &ser, NULL);
		int r;

		if ((!claims && !guestdisks_had_disks(s, vm)) || !vms_running(v, vm))
			continue;
		r = detach_pulled(s, vm, id, desc);
		if (r < 0) {
			ret = r;
			if (retry_worth(r))
				retry_schedule(s, &vm->t);
		}
	}
	return ret;
}

int diskevent_handle(const struct settings *s, enum uevent_action action,
		       const struct usb_disk *ev)
{
	struct vms v;
	int r;

	r = deliver_load(s, &v);
	if (r != 0)
		return r > 0 ? 0 : r;
	if (action == UEVENT_ADD && !claimed_by_anyone(&v, ev)) {
		log_debug("ignored: no disk rule names %s", ev->name);
		r = 0;
	} else if (action == UEVENT_ADD) {
		r = disk_added(s, &v, ev);
	} else {
		r = disk_removed(s, &v, ev);
	}
	vms_free(&v);
	return r;
}
