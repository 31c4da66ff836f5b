#include "guests/vdisk.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "guests/libvirt.h"
#include "base/log.h"
#include "guests/qmp.h"
#include "base/util.h"
#include "host/vmproc.h"
#include "guests/xhci.h"

#define DEL_POLL_MS 20
/* scsi-ids tried on a shared controller: Proxmox puts its own disks on
 * scsi-id 0 (lun = disk index) of scsihw0; the tool starts at 1. */
#define SCSI_ID_FIRST 1
#define SCSI_ID_TRIES 16

static struct vdisk *entry(struct vdisk_set *set, const char *id)
{
	struct vdisk *e = NULL;

	for (size_t i = 0; i < set->n && !e; i++)
		if (strcmp(set->d[i].id, id) == 0)
			e = &set->d[i];
	if (e || set->n == VDISK_MAX || strlen(id) >= sizeof(e->id))
		return e;
	e = &set->d[set->n++];
	memset(e, 0, sizeof(*e));
	memcpy(e->id, id, strlen(id) + 1);
	return e;
}

const struct vdisk *vdisk_find(const struct vdisk_set *set, const char *id)
{
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->d[i].id, id) == 0)
			return &set->d[i];
	return NULL;
}

void vdisk_describe(const struct vdisk *e, char *buf, size_t n)
{
	const char *slash = strrchr(e->file, '/');
	char name[DISK_LINK_MAX * 4];

	log_escape(slash ? slash + 1 : e->id, name, sizeof(name));
	snprintf(buf, n, "disk %s", name);
}

/* "child<scsi-hd>" -> "scsi-hd" */
static void child_type(const char *type, char *buf, size_t n)
{
	size_t len;

	buf[0] = '\0';
	if (!type || !util_startswith(type, "child<"))
		return;
	len = strlen(type + 6);
	if (len == 0 || type[6 + len - 1] != '>' || len > n)
		return;
	memcpy(buf, type + 6, len - 1);
	buf[len - 1] = '\0';
}

/* The tool's disks, and the SCSI controller a disk of it may go on:
 * Proxmox's shared scsihw0 when it is a virtio-scsi (with
 * virtio-scsi-single each Proxmox disk has a controller of its own, which
 * Proxmox unplugs with that disk), any virtio-scsi with an id in another
 * guest. */
static int list(struct guest *g, struct vdisk_set *ret, char *scsi, size_t scsi_size)
{
	bool pve = guest_target(g)->kind == TARGET_PVE;
	struct qmp *q = guest_qmp(g);
	json_t *items = NULL, *item;
	size_t i;
	int r;

	memset(ret, 0, sizeof(*ret));
	if (scsi)
		scsi[0] = '\0';
	r = qmp_execute(q, "qom-list", json_pack("{s:s}", "path", "/machine/peripheral"), &items);
	if (r < 0)
		return r;
	json_array_foreach(items, i, item) {
		const char *name = json_string_value(json_object_get(item, "name"));
		char type[64];
		struct vdisk *e;

		if (!name)
			continue;
		child_type(json_string_value(json_object_get(item, "type")), type, sizeof(type));
		if (util_startswith(name, DISK_ID_PREFIX) && (e = entry(ret, name)))
			snprintf(e->driver, sizeof(e->driver), "%s", type);
		else if (scsi && !scsi[0] && util_startswith(type, "virtio-scsi") &&
			 (!pve || strcmp(name, "scsihw0") == 0))
			snprintf(scsi, scsi_size, "%s", name);
	}
	json_decref(items);

	r = qmp_execute(q, "query-named-block-nodes", json_pack("{s:b}", "flat", 1), &items);
	if (r < 0)
		return r;
	json_array_foreach(items, i, item) {
		const char *node = json_string_value(json_object_get(item, "node-name"));
		const char *file = json_string_value(json_object_get(item, "file"));
		char id[DISK_ID_MAX];
		size_t len;
		struct vdisk *e;

		if (!node || !util_startswith(node, DISK_ID_PREFIX) || (len = strlen(node)) >= sizeof(id))
			continue;
		memcpy(id, node, len + 1);
		if (len > 5 && strcmp(id + len - 5, "-file") == 0)
			id[len - 5] = '\0';
		e = entry(ret, id);
		if (!e)
			continue;
		e->nodes = true;
		if (file && !e->file[0])
			snprintf(e->file, sizeof(e->file), "%s", file);
	}
	json_decref(items);
	return 0;
}

int vdisk_list(struct guest *g, struct vdisk_set *ret)
{
	if (guest_lv(g))
		return lv_disks(guest_lv(g), ret);
	return list(g, ret, NULL, 0);
}

static bool said(struct qmp *q, const char *what)
{
	const char *desc = qmp_error_desc(q);

	return desc && strstr(desc, what);
}

/* Deletes node, waiting for QEMU to let go of it: 1 when it was not there,
 * 0 when deleted, -EBUSY when still in use at deadline. */
static int del_node(struct qmp *q, const char *node, int64_t deadline)
{
	for (;;) {
		int r = qmp_execute(q, "blockdev-del", json_pack("{s:s}", "node-name", node), NULL);

		if (r != -EREMOTEIO)
			return r;
		if (said(q, "find node"))
			return 1;
		if (!said(q, "in use"))
			return r;
		if (util_remaining_ms(deadline) == 0)
			return -EBUSY;
		poll(NULL, 0, DEL_POLL_MS);
	}
}

/* Both nodes of id, the top one first (it holds the other). */
static int del_nodes(struct qmp *q, const char *id, int64_t deadline, bool *ret_any)
{
	char file[DISK_ID_MAX + 8];
	int r, r2;

	snprintf(file, sizeof(file), "%s-file", id);
	r = del_node(q, id, deadline);
	if (r < 0)
		return r;
	r2 = del_node(q, file, deadline);
	if (r2 < 0)
		return r2;
	if (ret_any)
		*ret_any = r == 0 || r2 == 0;
	return 0;
}

/* A serial the guest may see: short and plain (virtio-blk keeps 20 bytes). */
static const char *guest_serial(const struct usb_disk *d)
{
	const char *s = d->serial_short;
	size_t len = strlen(s);

	if (len == 0 || len > 20)
		return NULL;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
		      *c == '-' || *c == '_' || *c == '.'))
			return NULL;
	return s;
}

static json_t *device_props(const char *driver, const char *id, const struct usb_disk *d)
{
	json_t *o = json_pack("{s:s, s:s, s:s}", "driver", driver, "id", id, "drive", id);
	const char *serial = guest_serial(d);

	if (o && serial && json_object_set_new(o, "serial", json_string(serial)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int add_scsi(struct qmp *q, const char *ctrl, const char *id, const struct usb_disk *d,
		    char *where, size_t n)
{
	char bus[80];
	int r = -EREMOTEIO;

	snprintf(bus, sizeof(bus), "%s.0", ctrl);
	for (int sid = SCSI_ID_FIRST; sid < SCSI_ID_FIRST + SCSI_ID_TRIES; sid++) {
		json_t *o = device_props("scsi-hd", id, d);

		if (!o || json_object_set_new(o, "bus", json_string(bus)) < 0 ||
		    json_object_set_new(o, "scsi-id", json_integer(sid)) < 0 ||
		    json_object_set_new(o, "lun", json_integer(0)) < 0) {
			json_decref(o);
			return -ENOMEM;
		}
		r = qmp_execute(q, "device_add", o, NULL);
		if (r == -EREMOTEIO && said(q, "already used"))
			continue; /* that scsi-id is someone's: the next */
		if (r == 0)
			snprintf(where, n, "a SCSI disk on %s, scsi-id %d", ctrl, sid);
		return r;
	}
	return r;
}

/* Why the command failed: QEMU's words, or the error's. */
static void what_failed(struct qmp *q, int r, char *buf, size_t n)
{
	log_escape(r == -EREMOTEIO ? qmp_error_desc(q) : strerror(-r), buf, n);
}

/* Whether the guest's QEMU has d's block device open: 1, 0, or -1 when
 * that cannot be told (no pid file, /proc unreadable). */
static int qemu_holds(const struct target *t, const struct usb_disk *d)
{
	unsigned long pid = t->pidfile[0] ? vmproc_pid(t->pidfile) : 0;

	return pid ? vmproc_has_open(pid, S_IFBLK, makedev(d->major, d->minor)) : -1;
}

int vdisk_attach(struct guest *g, const struct usb_disk *d, const char *path, enum disk_as as)
{
	const struct target *t = guest_target(g);
	struct qmp *q = guest_qmp(g);
	char id[DISK_ID_MAX], file[DISK_ID_MAX + 8], desc[256], scsi[64], where[200], msg[160];
	char qemu_said[512];
	struct vdisk_set *set;
	const struct vdisk *e;
	int r;

	disk_describe(d, desc, sizeof(desc));
	disk_qemu_id(disk_key(d), id, sizeof(id));
	if (guest_lv(g)) {
		r = lv_disk_attach(guest_lv(g), id, path, as, guest_serial(d), desc, where, sizeof(where));
		if (r < 0)
			return r;
		guest_note_disks(g);
		log_info("%s: attached %s as %s (%s)", t->label, desc, where, id);
		return 0;
	}
	snprintf(file, sizeof(file), "%s-file", id);
	set = malloc(sizeof(*set));
	if (!set)
		return -ENOMEM;
	r = list(g, set, scsi, sizeof(scsi));
	if (r < 0) {
		free(set);
		return guest_failed(g, r, "listing the disks of", "the VM");
	}
	e = vdisk_find(set, id);
	if (e && e->driver[0] && qemu_holds(t, d) != 0) {
		free(set);
		log_info("%s: %s is attached already (%s)", t->label, desc, id);
		return 0;
	}
	if (e && e->driver[0]) {
		/* its remove was missed (or another disk has the same serial:
		 * then they share one by-id link as well) */
		free(set);
		log_warning("%s: %s is attached as %s, but QEMU holds another device under that name (an earlier disk with this serial, whose removal was missed): replaced",
			    t->label, desc, id);
		r = vdisk_detach(g, id, desc, "an earlier disk with its serial was still attached");
		if (r < 0)
			return r;
		return vdisk_attach(g, d, path, as);
	}
	if (e && e->nodes) {
		/* left by a detach that could not finish: the host's device is
		 * another one now */
		r = del_nodes(q, id, guest_deadline_in(g, VDISK_DEL_WAIT_MS), NULL);
		if (r < 0) {
			free(set);
			return guest_failed(g, r, "removing the old nodes of", desc);
		}
	}
	free(set);
	if (as == DISK_AS_SCSI && !scsi[0])
		return log_err(-ENODEV, "%s: %s is to go in as SCSI, but the VM has no virtio-scsi controller to put it on%s; write 'as virtio', or leave 'as' out",
			       t->label, desc,
			       t->kind == TARGET_PVE ? " (scsihw0: a SCSI disk with SCSI Controller 'VirtIO SCSI'; with 'VirtIO SCSI single' each disk has its own, which is Proxmox's)" : "");

	r = qmp_execute(q, "blockdev-add",
			json_pack("{s:s, s:s, s:s, s:{s:b}, s:s, s:s}", "driver", "host_device",
				  "node-name", file, "filename", path, "cache", "direct", 1, "aio",
				  "native", "discard", "unmap"),
			NULL);
	if (r == 0)
		r = qmp_execute(q, "blockdev-add",
				json_pack("{s:s, s:s, s:s, s:s}", "driver", "raw", "node-name", id,
					  "file", file, "discard", "unmap"),
				NULL);
	if (r < 0) {
		what_failed(q, r, qemu_said, sizeof(qemu_said));
		(void)del_nodes(q, id, guest_deadline_in(g, VDISK_DEL_WAIT_MS), NULL);
		return log_err(r, "%s: QEMU cannot open %s (%s): %s", t->label, path, desc, qemu_said);
	}

	if (as != DISK_AS_VIRTIO && scsi[0]) {
		r = add_scsi(q, scsi, id, d, where, sizeof(where));
	} else {
		r = xhci_add_in_free_slot(q, t->kind != TARGET_PVE, device_props("virtio-blk-pci", id, d),
					  msg, sizeof(msg));
		if (r == 0)
			snprintf(where, sizeof(where), "a virtio disk at %s", msg);
	}
	if (r < 0) {
		if (r == -ENOSPC)
			snprintf(qemu_said, sizeof(qemu_said), "%s", msg);
		else
			what_failed(q, r, qemu_said, sizeof(qemu_said));
		(void)del_nodes(q, id, guest_deadline_in(g, VDISK_DEL_WAIT_MS), NULL);
		if (r == -EREMOTEIO && strstr(qemu_said, "lock"))
			return log_err(r, "%s: %s is open for writing elsewhere (another VM, or a disk line of the VM's own config): not attached; QEMU says: %s",
				       t->label, desc, qemu_said);
		return log_err(r, "%s: %s not attached: %s", t->label, desc, qemu_said);
	}
	guest_note_disks(g);
	log_info("%s: attached %s as %s (%s)", t->label, desc, where, id);
	return 0;
}

int vdisk_detach(struct guest *g, const char *id, const char *desc, const char *why)
{
	const struct target *t = guest_target(g);
	struct qmp *q = guest_qmp(g);
	bool had_device = true, had_nodes = false;
	int r;

	if (guest_lv(g)) {
		r = lv_disk_detach(guest_lv(g), id, guest_deadline_in(g, VDISK_DEL_WAIT_MS));
		had_device = r == 0;
		if (r == -EIO)
			return log_err(r, "%s: libvirt did not detach %s: %s", t->label, desc, lv_error());
		if (r < 0 && r != -EBUSY)
			return log_err(r, "%s: detaching %s: %s", t->label, desc, strerror(-r));
		r = r == -EBUSY ? r : 0;
	} else {
		r = qmp_execute(q, "device_del", json_pack("{s:s}", "id", id), NULL);
		if (r == -EREMOTEIO && strcmp(qmp_error_class(q), "DeviceNotFound") == 0)
			had_device = false;
		else if (r < 0)
			return guest_failed(g, r, "detaching", desc);
		r = del_nodes(q, id, guest_deadline_in(g, VDISK_DEL_WAIT_MS), &had_nodes);
	}
	if (r == -EBUSY)
		return log_err(r, "%s: %s is still in use by QEMU %d ms after it was unplugged (a virtio disk leaves once the guest acknowledges the unplug): the host's device stays open until then; run 'pve-usb-hotplug sync %s' later",
			       t->label, desc, VDISK_DEL_WAIT_MS, t->name);
	if (r < 0)
		return guest_failed(g, r, "deleting the block nodes of", desc);
	if (!had_device && !had_nodes)
		log_info("%s: %s was not attached; nothing to detach", t->label, desc);
	else
		log_info("%s: detached %s (%s)%s%s", t->label, desc, id, why ? ": " : "", why ? why : "");
	return 0;
}
