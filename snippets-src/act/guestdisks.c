#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "host/disk.h"
#include "guests/guest.h"
#include "act/guestdisks.h"
#include "act/deliver.h"
#include "base/log.h"
#include "host/vmproc.h"
#include "base/report.h"
#include "base/retry.h"
#include "guests/vdisk.h"
#include "policy/vms.h"

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
	if (r == 0)
		r = disk_claim_check(path, d, why, sizeof(why));
	if (r == -EBUSY)
		return log_err(r, "%s: %s is not attached: %s; a disk must be in one place at a time (unmount it, or stop what holds it, and run 'pve-usb-hotplug sync %s')",
			       t->label, desc, why, t->name);
	if (r < 0)
		return log_err(r, "%s: %s is not attached: %s", t->label, desc, why);
	return 0;
}

/* Another USB disk of the host that reports d's serial (cheap enclosures
 * do): 1 with its kernel name in twin, 0 when there is none. */
static int find_twin(const struct usb_disk *d, char *twin, size_t n)
{
	struct usb_disk *all = NULL;
	size_t n_all = 0;
	int found = 0;

	if (disk_scan(&all, &n_all) < 0)
		return 0; /* cannot tell: as before */
	for (size_t i = 0; i < n_all && !found; i++)
		if ((all[i].major != d->major || all[i].minor != d->minor) &&
		    strcmp(disk_key(&all[i]), disk_key(d)) == 0) {
			snprintf(twin, n, "%s", all[i].name);
			found = 1;
		}
	free(all);
	return found;
}

/* Whether g has a disk of d's serial attached that is not d while d's
 * twin (another enclosure with the same serial) is still plugged in: then
 * that one is in the guest, and d stays out. An attached disk is replaced
 * only when its old block device is really gone (a missed remove). */
static bool twin_attached(struct guest *g, const struct target *t, const struct usb_disk *d,
			  const char *desc)
{
	char twin[DISK_NAME_MAX], id[DISK_ID_MAX];
	struct vdisk_set *set;
	const struct vdisk *e;
	unsigned long pid;
	bool in = false;

	if (!find_twin(d, twin, sizeof(twin)))
		return false;
	pid = t->pidfile[0] ? vmproc_pid(t->pidfile) : 0;
	if (pid && vmproc_has_open(pid, S_IFBLK, makedev(d->major, d->minor)) == 1)
		return false; /* d itself is the one it has */
	disk_qemu_id(disk_key(d), id, sizeof(id));
	set = malloc(sizeof(*set));
	if (set && guest_disks(g, set) == 0 && (e = vdisk_find(set, id)) && e->driver[0])
		in = true;
	free(set);
	if (in)
		log_error("%s: %s is not attached: /dev/%s reports the same serial and is attached as %s; both enclosures stay where they are (a disk rule names one serial: two disks that report one serial cannot both be passed)",
			  t->label, desc, twin, id);
	return in;
}

int guestdisks_attach_one(struct guest *g, const struct settings *s, const struct target *t,
		      const struct usb_disk *d, const struct usb_rule *rule)
{
	char desc[256], path[SETTINGS_PATH_MAX + DISK_LINK_MAX + 2];
	int r;

	disk_describe(d, desc, sizeof(desc));
	r = ready(s, t, d, desc, path, sizeof(path));
	if (r != 0)
		return r > 0 ? 0 : r;
	if (twin_attached(g, t, d, desc))
		return -EBUSY;
	r = guest_disk_attach(g, d, path, rule->disk_as);
	report_say(guest_report(g));
	return r;
}

/* The tool's disks in g (malloc()ed), or NULL with the error (logged) in
 * *ret. */
struct vdisk_set *guestdisks_fetch(struct guest *g, int *ret)
{
	struct vdisk_set *set = malloc(sizeof(*set));
	int r = set ? guest_disks(g, set) : -ENOMEM;

	if (r < 0) {
		free(set);
		*ret = r == -ENOMEM ? r : guest_failed(g, r, "listing the disks of", "the VM");
		report_say(guest_report(g));
		return NULL;
	}
	return set;
}

/* Whether QEMU's node still opens the block device it was made for: the
 * by-id link goes with the disk. */
bool guestdisks_file_gone(const struct vdisk *e)
{
	struct stat st;

	return e->file[0] && (stat(e->file, &st) < 0 || !S_ISBLK(st.st_mode));
}

/* Whether the tool has put a disk into vm (<key>.disks). */
bool guestdisks_had_disks(const struct settings *s, const struct vm *vm)
{
	char marker[SETTINGS_PATH_MAX + 64];
	struct stat st;

	snprintf(marker, sizeof(marker), "%s/%s.disks", s->state_dir, vm->t.key);
	return lstat(marker, &st) == 0;
}

bool guestdisks_concern(const struct settings *s, const struct vm *vm)
{
	return (vm->rules && usbconf_has_disk_rules(vm->rules, false)) || guestdisks_had_disks(s, vm);
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
			if (guestdisks_attach_one(g, v->s, &mine->t, &disks[i], p.rule) < 0)
				ret = -EIO;
			continue;
		}
		disk_describe(&disks[i], desc, sizeof(desc));
		deliver_explain(&p, mine, desc);
		if (p.kind == PLACE_CONFLICT)
			ret = -EBUSY;
	}
	return ret;
}

static int attach_disks(struct vms *v, struct vm *mine, struct guest *g)
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

static int sync_disks(struct vms *v, struct vm *vm, struct guest *g)
{
	struct usb_disk *disks = NULL;
	struct vdisk_set *set = NULL;
	size_t n = 0;
	int r, ret = 0;

	set = guestdisks_fetch(g, &ret);
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
		r = guest_disk_detach(g, set->d[k].id, desc, why);
		report_say(guest_report(g));
		if (r < 0)
			ret = -EIO;
	}
	free(set);
	if (guest_usable(g) && (r = attach_from(v, vm, g, disks, n)) < 0)
		ret = r;
	free(disks);
	return ret;
}

int guestdisks_release(struct guest *g)
{
	struct vdisk_set *set;
	int ret = 0;

	set = guestdisks_fetch(g, &ret);
	for (size_t i = 0; set && i < set->n && guest_usable(g); i++) {
		char desc[DISK_LINK_MAX * 4 + 16];
		int r;

		vdisk_describe(&set->d[i], desc, sizeof(desc));
		r = guest_disk_detach(g, set->d[i].id, desc, "released");
		report_say(guest_report(g));
		if (r < 0)
			ret = -EIO;
	}
	free(set);
	return ret;
}

/* While a guest's disks are placed, that guest is open here (its lock
 * held): the placement asks it through this connection. */
int guestdisks_attach(struct vms *v, struct vm *mine, struct guest *g)
{
	int r;

	vms_set_open(v, mine, g);
	r = attach_disks(v, mine, g);
	vms_set_open(v, NULL, NULL);
	return r;
}

int guestdisks_sync(struct vms *v, struct vm *vm, struct guest *g)
{
	int r;

	vms_set_open(v, vm, g);
	r = sync_disks(v, vm, g);
	vms_set_open(v, NULL, NULL);
	return r;
}
