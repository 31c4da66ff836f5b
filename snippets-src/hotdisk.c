/* USB disks as virtual disks: a disk's udev events, and the disks part of
 * post-start, sync and release (hotplug.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "disk.h"
#include "guest.h"
#include "hotplug.h"
#include "log.h"
#include "retry.h"
#include "vdisk.h"
#include "vms.h"

/* The checks before QEMU sees the disk: its by-id node is the disk, it has
 * a medium, the host does not use it. 0 with the node's path; 1 when there
 * is nothing to attach (no medium; logged). */
static int ready(const struct settings *s, const struct target *t, const struct usb_disk *d,
		 const char *desc, char *path, size_t n)
{
	char why[600];
	int r;

	if (d->size == 0) {
		log_info("%s: %s has no medium (a card reader without a card?); it is attached when one is put in",
			 t->label, desc);
		return 1;
	}
	r = disk_node_path(s->disk_dir, d, path, n);
	if (r == -ENOENT)
		return log_err(r, "%s: %s has no link in /dev/disk/by-id (udev gave it no serial); not attached",
			       t->label, desc);
	if (r == -ESTALE)
		return log_err(r, "%s: %s is not the block device %u:%u of %s (it changed while being looked at?); not attached",
			       t->label, path, d->major, d->minor, desc);
	if (r < 0)
		return log_err(r, "%s: cannot check %s/%s for %s: %s", t->label, s->disk_dir, d->link, desc,
			       strerror(-r));
	r = disk_host_busy(d, why, sizeof(why));
	if (r == -EBUSY)
		return log_err(r, "%s: %s is not attached: %s; a disk must be in one place at a time (unmount it, or stop what holds it, and run 'pve-usb-hotplug sync %s')",
			       t->label, desc, why, t->name);
	return r;
}

static int attach_one(struct guest *g, const struct settings *s, const struct target *t,
		      const struct usb_disk *d, const struct usb_rule *rule)
{
	char desc[256], path[SETTINGS_PATH_MAX + DISK_LINK_MAX + 2];
	int r;

	disk_describe(d, desc, sizeof(desc));
	r = ready(s, t, d, desc, path, sizeof(path));
	if (r != 0)
		return r > 0 ? 0 : r;
	return vdisk_attach(g, d, path, rule->disk_as);
}

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
			hotplug_explain_denial(v->list[i], deny, desc);
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
		struct guest *g;

		r = vms_place_disk(v, &d, &p);
		if (r < 0)
			return r;
		hotplug_explain(&p, NULL, desc);
		if (p.kind == PLACE_NOBODY)
			explain_denials(v, &d, desc);
		if (p.kind == PLACE_CONFLICT)
			return -EBUSY;
		if (p.kind != PLACE_VM)
			return 0;
		r = hotplug_open_placed(s, &p, desc, &g);
		if (r == -EAGAIN)
			continue;
		if (r < 0)
			return r;
		r = attach_one(g, s, &p.vm->t, &d, p.rule);
		guest_close(g);
		return r;
	}
}

/* The tool's disks in g (malloc()ed), or NULL with the error (logged) in
 * *ret. */
static struct vdisk_set *fetch(struct guest *g, int *ret)
{
	struct vdisk_set *set = malloc(sizeof(*set));
	int r = set ? vdisk_list(g, set) : -ENOMEM;

	if (r < 0) {
		free(set);
		*ret = r == -ENOMEM ? r : guest_failed(g, r, "listing the disks of", "the VM");
		return NULL;
	}
	return set;
}

/* Whether QEMU's node still opens the block device it was made for: the
 * by-id link goes with the disk. */
static bool file_gone(const struct vdisk *e)
{
	struct stat st;

	return e->file[0] && (stat(e->file, &st) < 0 || !S_ISBLK(st.st_mode));
}

/* Detaches the pulled disk from guest vm: its id, and any disk of the
 * tool's there whose device is gone (a remove event without the disk's
 * serial, a remove that was missed). */
static int detach_pulled(const struct settings *s, struct vm *vm, const char *id, const char *desc)
{
	static const char why[] = "it was pulled out (data the guest had not written to it yet is lost, as with any disk pulled out while in use)";
	struct vdisk_set *set;
	struct guest *g;
	int r, ret = 0;

	r = guest_open(s, &vm->t, &g);
	if (r == -ENOENT || r == -ECONNREFUSED)
		return 0;
	if (r < 0)
		return r;
	set = fetch(g, &ret);
	for (size_t i = 0; set && i < set->n && guest_usable(g); i++) {
		bool mine = strcmp(set->d[i].id, id) == 0;
		char other[DISK_LINK_MAX * 4 + 16];

		if (!mine && !file_gone(&set->d[i]))
			continue;
		vdisk_describe(&set->d[i], other, sizeof(other));
		if (vdisk_detach(g, set->d[i].id, mine ? desc : other,
				 mine ? why : "its disk is gone from the host") < 0)
			ret = -EIO;
	}
	free(set);
	guest_close(g);
	return ret;
}

/* Whether the tool has put a disk into vm (<key>.disks). */
static bool had_disks(const struct settings *s, const struct vm *vm)
{
	char marker[SETTINGS_PATH_MAX + 64];
	struct stat st;

	snprintf(marker, sizeof(marker), "%s/%s.disks", s->state_dir, vm->t.key);
	return lstat(marker, &st) == 0;
}

bool hotplug_disks_concern(const struct settings *s, const struct vm *vm)
{
	return (vm->rules && usbconf_has_disk_rules(vm->rules, false)) || had_disks(s, vm);
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

		if ((!claims && !had_disks(s, vm)) || !vms_running(v, vm))
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

int hotplug_disk_event(const struct settings *s, enum uevent_action action,
		       const struct usb_disk *ev)
{
	struct vms v;
	int r;

	r = hotplug_load_event(s, &v);
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

/* Attaches what of the host's disks mine's disk rules give it. */
static int attach_from(struct vms *v, struct vm *mine, struct guest *g, const struct usb_disk *disks,
		       size_t n)
{
	int r, ret = 0;

	for (size_t i = 0; mine->rules && i < n && guest_usable(g); i++) {
		struct disk_serials ser;
		struct placement p;
		char desc[256];

		disk_serials(&disks[i], &ser);
		if (!usbconf_disk_match(mine->rules, &ser, NULL))
			continue;
		r = vms_place_disk(v, &disks[i], &p);
		if (r < 0) {
			ret = r;
			break;
		}
		if (p.kind == PLACE_VM && p.vm == mine) {
			if (attach_one(g, v->s, &mine->t, &disks[i], p.rule) < 0)
				ret = -EIO;
			continue;
		}
		disk_describe(&disks[i], desc, sizeof(desc));
		hotplug_explain(&p, mine, desc);
		if (p.kind == PLACE_CONFLICT)
			ret = -EBUSY;
	}
	return ret;
}

int hotplug_disks_attach(struct vms *v, struct vm *mine, struct guest *g)
{
	struct usb_disk *disks = NULL;
	size_t n = 0;
	int r;

	if (!mine->rules || !usbconf_has_disk_rules(mine->rules, false))
		return 0;
	r = disk_scan(&disks, &n);
	if (r < 0)
		return log_err(r, "%s: cannot read the host's disks: %s", mine->t.label, strerror(-r));
	r = attach_from(v, mine, g, disks, n);
	free(disks);
	return r;
}

int hotplug_disks_sync(struct vms *v, struct vm *vm, struct guest *g)
{
	struct usb_disk *disks = NULL;
	struct vdisk_set *set = NULL;
	size_t n = 0;
	int r, ret = 0;

	set = fetch(g, &ret);
	if (!set)
		return ret;
	if (set->n == 0 && (!vm->rules || !usbconf_has_disk_rules(vm->rules, false))) {
		free(set);
		return 0;
	}
	r = disk_scan(&disks, &n);
	if (r < 0) {
		free(set);
		return log_err(r, "%s: cannot read the host's disks: %s", vm->t.label, strerror(-r));
	}
	/* what it has and should not: a disk gone, or no longer its */
	for (size_t k = 0; k < set->n && guest_usable(g); k++) {
		const struct usb_disk *d = NULL;
		struct placement p = { .kind = PLACE_NOBODY };
		char id[DISK_ID_MAX], desc[DISK_LINK_MAX * 4 + 16], why[200];

		for (size_t i = 0; i < n && !d; i++) {
			disk_qemu_id(disk_key(&disks[i]), id, sizeof(id));
			if (strcmp(id, set->d[k].id) == 0)
				d = &disks[i];
		}
		if (d) {
			r = vms_place_disk(v, d, &p);
			if (r < 0) {
				ret = r;
				break;
			}
			if (p.kind == PLACE_VM && p.vm == vm && set->d[k].driver[0])
				continue;
			disk_describe(d, desc, sizeof(desc));
		} else {
			vdisk_describe(&set->d[k], desc, sizeof(desc));
		}
		if (!d)
			snprintf(why, sizeof(why), "its disk is not plugged in any more");
		else if (!set->d[k].driver[0])
			snprintf(why, sizeof(why), "only its block nodes were left");
		else if (p.kind == PLACE_VM)
			snprintf(why, sizeof(why), "%s has it as well and keeps it", p.vm->t.label);
		else
			snprintf(why, sizeof(why), "no rule of this VM gives it the disk any more");
		/* nodes alone of a disk that is its are attached again below */
		if (vdisk_detach(g, set->d[k].id, desc, why) < 0)
			ret = -EIO;
	}
	free(set);
	if (guest_usable(g) && (r = attach_from(v, vm, g, disks, n)) < 0)
		ret = r;
	free(disks);
	return ret;
}

int hotplug_disks_release(struct guest *g)
{
	struct vdisk_set *set;
	int ret = 0;

	set = fetch(g, &ret);
	for (size_t i = 0; set && i < set->n && guest_usable(g); i++) {
		char desc[DISK_LINK_MAX * 4 + 16];

		vdisk_describe(&set->d[i], desc, sizeof(desc));
		if (vdisk_detach(g, set->d[i].id, desc, "released") < 0)
			ret = -EIO;
	}
	free(set);
	return ret;
}
