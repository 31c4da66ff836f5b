#include "guests/qemu.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "base/log.h"
#include "base/report.h"
#include "guests/qmp.h"
#include "host/vmproc.h"

/* A connection to one guest's QMP socket. */
struct qg {
	const struct settings *s;
	struct target *t;
	struct report *rep; /* what happened, for the caller to say */
	struct qmp *qmp;
};

/* The connection, the guest running, and what it is. */

static int qemu_running(struct target *t, const struct settings *s, struct report *rep)
{
	(void)s; /* the table's signature: libvirt needs them */
	(void)rep;
	if (t->pidfile[0])
		return vmproc_pid(t->pidfile) != 0;
	return target_socket_live(t);
}

static void qemu_stamp(struct target *t, const struct settings *s, char *buf, size_t n)
{
	struct stat st;

	(void)s;
	buf[0] = '\0';
	if (t->pidfile[0]) {
		vmproc_stamp(t->pidfile, buf, n);
		return;
	}
	/* each QEMU makes its socket anew: a new inode, a new change time */
	if (target_socket(t) == 0 && stat(t->sock, &st) == 0 && S_ISSOCK(st.st_mode))
		snprintf(buf, n, "sock:%lx:%lx:%lld.%09ld", (unsigned long)st.st_dev,
			 (unsigned long)st.st_ino, (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
}

static void explain_connect(const struct settings *s, const struct target *t, const char *path,
			    int r, struct report *rep)
{
	const char *vm = t->label;

	switch (r) {
	case -ETIMEDOUT:
		if (backend_run_is_over(s))
			report_add(rep, LOG_LVL_ERROR, "%s: no answer on %s before this run's time limit of %d ms ([run] timeout_ms); giving up",
				   vm, path, s->run_timeout_ms);
		else
			report_add(rep, LOG_LVL_ERROR, "%s: no answer on %s within %d ms: another client (qm, pvestatd, a backup) holds the QMP socket, or QEMU hangs; try again, or raise [qmp] timeout_ms",
				   vm, path, s->qmp_timeout_ms);
		break;
	case -ECONNRESET:
		report_add(rep, LOG_LVL_ERROR,
			   "%s: QEMU closed the QMP connection on %s (is the VM stopping?)", vm,
			   path);
		break;
	case -EPROTO:
	case -EMSGSIZE:
		report_add(rep, LOG_LVL_ERROR, "%s: %s does not speak QMP as expected (%s)", vm,
			   path, strerror(-r));
		break;
	default:
		report_add(rep, LOG_LVL_ERROR, "%s: QMP on %s failed: %s", vm, path, strerror(-r));
	}
}

static int qemu_open(const struct settings *s, struct target *t, struct report *rep, void **ret)
{
	struct qg *q;
	int r;

	r = target_socket(t);
	if (r == -ENOTUNIQ) {
		target_explain_ambiguous(t, LOG_LVL_ERROR, rep);
		return r;
	}
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->s = s;
	q->t = t;
	q->rep = rep;
	r = r < 0 ? r : qmp_open(t->sock, s->qmp_timeout_ms, s->run_deadline_ms, &q->qmp);
	if (r < 0) {
		if (r == -ENOENT || r == -ECONNREFUSED)
			report_add(rep, LOG_LVL_WARNING,
				   "%s is not running (%s at %s); nothing to do", t->label,
				   r == -ENOENT ? "no QMP socket" : "nobody listening", t->qmp);
		else
			explain_connect(s, t, t->sock, r, rep);
		free(q);
		return r;
	}
	*ret = q;
	return 0;
}

/* A new connection (a guest of a PCI unplug is waited for without one). */
static int reconnect(struct qg *q)
{
	int r = qmp_open(q->t->sock, q->s->qmp_timeout_ms, q->s->run_deadline_ms, &q->qmp);

	if (r < 0)
		explain_connect(q->s, q->t, q->t->sock, r, q->rep);
	return r;
}

static bool qemu_usable(const void *c)
{
	const struct qg *q = c;

	return q->qmp && qmp_broken(q->qmp) == 0;
}

static int qemu_explain(void *c, int r, const char *what, const char *desc)
{
	struct qg *q = c;
	const char *vm = q->t->label;
	char said[512];

	switch (r) {
	case -EREMOTEIO:
		return report_err(q->rep, r, "%s: %s %s: QEMU says: %s", vm, what, desc,
				  log_escape(qmp_error_desc(q->qmp), said, sizeof(said)));
	case -ECONNRESET:
	case -EPIPE:
		return report_err(q->rep, r,
				  "%s: %s %s: QEMU closed the QMP connection (is the VM stopping?)",
				  vm, what, desc);
	case -ETIMEDOUT:
		if (backend_run_is_over(q->s))
			return report_err(q->rep, r, "%s: %s %s: this run's time limit of %d ms ([run] timeout_ms) is up",
					  vm, what, desc, q->s->run_timeout_ms);
		return report_err(q->rep, r,
				  "%s: %s %s: QEMU did not answer within %d ms ([qmp] timeout_ms)",
				  vm, what, desc, q->s->qmp_timeout_ms);
	case -EPROTO:
	case -EMSGSIZE:
		return report_err(q->rep, r, "%s: %s %s: QEMU does not speak QMP as expected (%s)",
				  vm, what, desc, strerror(-r));
	default:
		return report_err(q->rep, r, "%s: %s %s: %s", vm, what, desc, strerror(-r));
	}
}

static void *qemu_close(void *c)
{
	struct qg *q = c;

	if (q) {
		qmp_close(q->qmp);
		free(q);
	}
	return NULL;
}

/* The guest's devices that have an id (QOM's /machine/peripheral): a new
 * reference in *ret. */
static int peripherals(struct qg *q, json_t **ret)
{
	return qmp_execute(q->qmp, "qom-list", json_pack("{s:s}", "path", "/machine/peripheral"), ret);
}

/* USB devices: usb-host usbhost<port> on an xHCI port. */

static int qemu_held(void *c, struct xhci_set *ret)
{
	struct qg *q = c;

	return xhci_load(q->qmp, target_any(q->t), ret);
}

/* device_del of id; 1 when there was no such device (the wanted state too). */
static int device_del(struct qg *q, const char *id)
{
	int r = qmp_execute(q->qmp, "device_del", json_pack("{s:s}", "id", id), NULL);

	if (r == -EREMOTEIO && strcmp(qmp_error_class(q->qmp), "DeviceNotFound") == 0)
		return 1;
	return r;
}

static int qemu_detach(void *c, const struct usb_port *port, const char *desc)
{
	char id[XHCI_DEV_ID_MAX];
	int r;

	xhci_dev_id(port, id, sizeof(id));
	r = device_del(c, id);
	return r < 0 ? qemu_explain(c, r, "detaching", desc) : r;
}

static int qemu_can_attach(void *c, const struct usb_device_info *dev, const char *desc)
{
	struct qg *q = c;
	char hostport[PORT_STRLEN];

	port_format_hostport(&dev->port, hostport, sizeof(hostport));
	/* QEMU compares hostport in a 16-byte buffer: a longer one is
	 * accepted and never attaches */
	if (strlen(hostport) > QEMU_HOSTPORT_MAX)
		return report_err(q->rep, -ENAMETOOLONG, "%s: cannot pass %s: its port path '%s' is longer than the %d characters QEMU compares, so QEMU would never open it; plug it in with fewer hubs between it and the computer",
				  q->t->label, desc, hostport, QEMU_HOSTPORT_MAX);
	return 0;
}

/* What the guest holds, asked of QEMU (the hint was a guess). */
static int ask_again(struct qg *q, struct guest_held *h, const char *desc)
{
	int r;

	h->from_hint = false;
	r = xhci_load(q->qmp, target_any(q->t), &h->set);
	if (r < 0)
		return qemu_explain(q, r, "listing USB controllers to attach", desc);
	h->dirty = true;
	return 0;
}

/* A free port for a device: 0 with *ci and *port; 1 when the set has
 * changed (QEMU was asked, or a controller added): pick again. */
static int find_port(struct qg *q, struct guest_held *h, bool ss, const char *desc, size_t *ci,
		     unsigned *port)
{
	char msg[160];
	int r;

	if (xhci_pick(&h->set, ss, ci, port) == 0)
		return 0;
	if (h->from_hint) {
		/* full by the hint: QEMU may know better (ports freed behind
		 * the tool's back) before a controller is added */
		r = ask_again(q, h, desc);
		return r < 0 ? r : 1;
	}
	r = xhci_add_own(q->qmp, &h->set, msg, sizeof(msg));
	if (r == -ENOSPC)
		return report_err(q->rep, r, "%s: no free %s port for %s, and no room for another USB controller (%s); detach something, or give the VM a PCI bridge",
				  q->t->label, ss ? "USB 3" : "USB 2", desc, msg);
	if (r < 0)
		return qemu_explain(q, r, "adding a USB controller for", desc);
	report_add(q->rep, LOG_LVL_INFO, "%s: added USB controller %s at %s for %s", q->t->label,
		   h->set.c[h->set.n - 1].id, msg, desc);
	h->dirty = true;
	return 1;
}

/* What the usb-host with id is pinned to, from QEMU (0:0 when not). */
static int pinned_to(struct qg *q, const char *id, unsigned *vid, unsigned *pid)
{
	char path[160];
	json_t *v = NULL;
	int r;

	snprintf(path, sizeof(path), "/machine/peripheral/%s", id);
	*vid = *pid = 0;
	r = qmp_execute(q->qmp, "qom-get",
			json_pack("{s:s, s:s}", "path", path, "property", "vendorid"), &v);
	if (r < 0)
		return r;
	*vid = json_is_integer(v) ? (unsigned)json_integer_value(v) : 0;
	json_decref(v);
	v = NULL;
	r = qmp_execute(q->qmp, "qom-get",
			json_pack("{s:s, s:s}", "path", path, "property", "productid"), &v);
	if (r < 0)
		return r;
	*pid = json_is_integer(v) ? (unsigned)json_integer_value(v) : 0;
	json_decref(v);
	return 0;
}

/* device_add said the id exists: 0 when it is this device already, 1 when
 * it was pinned to another and has been taken out, or an error. */
static int settle_duplicate(struct qg *q, struct guest_held *h, const struct usb_device_info *dev,
			    const char *id, const char *desc)
{
	const struct xhci_dev *known = xhci_find(&h->set, &dev->port);
	unsigned vid, pid;
	int r;

	/* the record says what the tool pinned it to; without one, ask */
	if (known) {
		vid = known->vid;
		pid = known->pid;
	} else if ((r = pinned_to(q, id, &vid, &pid)) < 0) {
		return qemu_explain(q, r, "reading what is attached as", id);
	}
	if (!dev->have_ids || (vid == dev->vid && pid == dev->pid)) {
		report_add(q->rep, LOG_LVL_INFO, "%s: %s already attached as %s", q->t->label, desc,
			   id);
		return 0;
	}
	r = device_del(q, id);
	if (r < 0)
		return qemu_explain(q, r, "detaching the old", id);
	xhci_note_detached(&h->set, &dev->port);
	h->dirty = true;
	report_add(q->rep, LOG_LVL_INFO, "%s: %s was left for %04x:%04x, and %s is plugged in there now: detached it first",
		   q->t->label, id, vid, pid, desc);
	return 1;
}

/* device_add of dev as id at port of controller c, pinned to its vendor
 * and product: should it ever be left behind, it can only take the same
 * model. */
static int device_add(struct qg *q, const struct xhci_ctrl *c, unsigned port,
		      const struct usb_device_info *dev, const char *id)
{
	char bus[sizeof(c->id) + 2], hostport[PORT_STRLEN], port_s[8];
	json_t *args;

	port_format_hostport(&dev->port, hostport, sizeof(hostport));
	snprintf(bus, sizeof(bus), "%s.0", c->id);
	snprintf(port_s, sizeof(port_s), "%u", port);
	args = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "driver", "usb-host", "id", id, "hostbus",
			 (json_int_t)dev->port.bus, "hostport", hostport, "bus", bus, "port", port_s);
	if (args && dev->have_ids &&
	    (json_object_set_new(args, "vendorid", json_integer(dev->vid)) < 0 ||
	     json_object_set_new(args, "productid", json_integer(dev->pid)) < 0)) {
		json_decref(args);
		args = NULL;
	}
	return qmp_execute(q->qmp, "device_add", args, NULL);
}

/* Each try takes a port or a controller: a bound on the attempts. */
#define ATTACH_TRIES (XHCI_MAX_CTRLS * (XHCI_MAX_PORTS + 1) + 2)

static int qemu_attach(void *c, struct guest_held *h, const struct usb_device_info *dev,
		       const char *desc)
{
	struct qg *q = c;
	char id[XHCI_DEV_ID_MAX];
	bool ss = xhci_is_superspeed(dev->speed), replaced = false;
	int r;

	xhci_dev_id(&dev->port, id, sizeof(id));
	for (int tries = 0; tries < ATTACH_TRIES; tries++) {
		size_t ci;
		unsigned port;

		r = find_port(q, h, ss, desc, &ci, &port);
		if (r < 0)
			return r;
		if (r > 0)
			continue;
		r = device_add(q, &h->set.c[ci], port, dev, id);
		if (r == -EREMOTEIO && !replaced &&
		    (strstr(qmp_error_desc(q->qmp), "Duplicate device ID") ||
		     strstr(qmp_error_desc(q->qmp), "Duplicate ID"))) {
			r = settle_duplicate(q, h, dev, id, desc);
			if (r <= 0)
				return r;
			replaced = true;
		} else if (r == -EREMOTEIO && h->from_hint) {
			/* the hint was wrong: ask QEMU, and try again */
			r = ask_again(q, h, desc);
			if (r < 0)
				return r;
		} else if (r == -EREMOTEIO && strstr(qmp_error_desc(q->qmp), "in use")) {
			/* a device added without a port sits there: the next */
			h->set.c[ci].taken |= 1u << port;
		} else if (r < 0) {
			return qemu_explain(q, r, "attaching", desc);
		} else {
			/* "added": QEMU took it; whether it has the host device
			 * open is QOM's "attached", which status shows (asking
			 * here would cost QEMU a command per device) */
			report_add(q->rep, LOG_LVL_INFO, "%s: added %s as %s on %s.0 port %u",
				   q->t->label, desc, id, h->set.c[ci].id, port);
			xhci_note_attached(&h->set, ci, port, &dev->port, dev->have_ids ? dev->vid : 0,
					   dev->have_ids ? dev->pid : 0);
			h->dirty = true;
			return 0;
		}
	}
	return report_err(q->rep, -ENOSPC, "%s: found no free %s port for %s", q->t->label,
			  ss ? "USB 3" : "USB 2", desc);
}

/* Release: the tool's controllers go too, and QEMU must have let go of
 * everything before a migration or snapshot can work. */

/* How long release waits for QEMU to finish unplugging: a PCI controller
 * behind a bridge goes only once the guest has acknowledged it (measured:
 * a guest without an OS never does, a system_reset completes it). */
#define RELEASE_WAIT_MS 10000
#define RELEASE_POLL_MS 200
#define RELEASE_IDS (XHCI_MAX_DEVS + XHCI_MAX_CTRLS)

/* Whether any of ids is still a device of the guest. */
static int any_left(struct qg *q, char (*ids)[64], size_t n, const char **ret_left)
{
	json_t *list = NULL, *item;
	size_t i;
	int r;

	r = peripherals(q, &list);
	if (r < 0)
		return r;
	*ret_left = NULL;
	json_array_foreach(list, i, item) {
		const char *name = json_string_value(json_object_get(item, "name"));

		for (size_t k = 0; name && k < n && !*ret_left; k++)
			if (strcmp(name, ids[k]) == 0)
				*ret_left = ids[k];
	}
	json_decref(list);
	return *ret_left ? 1 : 0;
}

/* Gone from QOM is gone, whichever QEMU. The socket is not held while
 * waiting (a guest acknowledging a PCI unplug may take a while, and
 * Proxmox's tools want the socket too): asked again every RELEASE_POLL_MS
 * on a new connection. Errors are noted. */
static int wait_gone(struct qg *q, char (*ids)[64], size_t n)
{
	int64_t deadline = backend_deadline_in(q->s, RELEASE_WAIT_MS);
	const char *left = NULL;
	int r = 0;

	while (qemu_usable(q) && (r = any_left(q, ids, n, &left)) > 0 &&
	       util_remaining_ms(deadline) > 0) {
		q->qmp = qmp_close(q->qmp);
		poll(NULL, 0, RELEASE_POLL_MS);
		r = reconnect(q);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return qemu_explain(q, r, "waiting for the unplug of", "its devices");
	if (left)
		return report_err(q->rep, -ETIMEDOUT, "%s: %s is still there after %d ms: QEMU has not finished unplugging it (a guest may have to acknowledge a PCI unplug); a migration or snapshot would fail now; run 'pve-usb-hotplug release %s' again later",
				  q->t->label, left, RELEASE_WAIT_MS, q->t->name);
	return 0;
}

static int qemu_release(void *c, struct guest_held *h, const struct xhci_set *before,
			const bool *detached)
{
	struct qg *q = c;
	char ids[RELEASE_IDS][64];
	struct xhci_set was = *before;
	size_t n = 0;
	int r, ret = 0;

	for (size_t i = 0; i < was.n_devs; i++)
		if (detached[i])
			xhci_dev_id(&was.devs[i].port, ids[n++], sizeof(ids[0]));
	for (size_t i = 0; i < was.n && qemu_usable(q); i++) {
		if (!was.c[i].ours)
			continue;
		r = device_del(q, was.c[i].id);
		if (r < 0) {
			ret = qemu_explain(q, r, "unplugging its USB controller", was.c[i].id);
			continue;
		}
		snprintf(ids[n++], sizeof(ids[0]), "%s", was.c[i].id);
	}
	r = wait_gone(q, ids, n);
	if (r < 0)
		return r;
	/* what is left: the controllers not the tool's, without its devices */
	memset(&h->set, 0, sizeof(h->set));
	h->set.any = was.any;
	for (size_t i = 0; i < was.n_devs; i++)
		if (was.devs[i].ctrl < was.n)
			was.c[was.devs[i].ctrl].taken &= ~(1u << was.devs[i].guest_port);
	for (size_t i = 0; i < was.n; i++)
		if (!was.c[i].ours)
			h->set.c[h->set.n++] = was.c[i];
	h->dirty = true;
	return ret;
}

/* Disks: a host_device node "<id>-file" on the by-id link, a raw node
 * "<id>" on top, and a scsi-hd or virtio-blk-pci "<id>" on that. */

#define DEL_POLL_MS 20
/* scsi-ids tried on a shared controller: Proxmox puts its own disks on
 * scsi-id 0 (lun = disk index) of scsihw0; the tool starts at 1. */
#define SCSI_ID_FIRST 1
#define SCSI_ID_TRIES 16

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

/* The tool's disk devices, and the SCSI controller a disk of it may go on:
 * Proxmox's shared scsihw0 when it is a virtio-scsi (with
 * virtio-scsi-single each Proxmox disk has a controller of its own, which
 * Proxmox unplugs with that disk), any virtio-scsi with an id in another
 * guest. */
static int list_devices(struct qg *q, struct vdisk_set *set, char *scsi, size_t scsi_size)
{
	json_t *items = NULL, *item;
	size_t i;
	int r;

	r = peripherals(q, &items);
	if (r < 0)
		return r;
	json_array_foreach(items, i, item) {
		const char *name = json_string_value(json_object_get(item, "name"));
		char type[64];
		struct vdisk *e;

		if (!name)
			continue;
		child_type(json_string_value(json_object_get(item, "type")), type, sizeof(type));
		if (util_startswith(name, DISK_ID_PREFIX) && (e = vdisk_add(set, name)))
			snprintf(e->driver, sizeof(e->driver), "%s", type);
		else if (scsi && !scsi[0] && util_startswith(type, "virtio-scsi") &&
			 (target_any(q->t) || strcmp(name, "scsihw0") == 0))
			snprintf(scsi, scsi_size, "%s", name);
	}
	json_decref(items);
	return 0;
}

/* The tool's block nodes, with the file each opened. */
static int list_nodes(struct qg *q, struct vdisk_set *set)
{
	json_t *items = NULL, *item;
	size_t i;
	int r;

	r = qmp_execute(q->qmp, "query-named-block-nodes", json_pack("{s:b}", "flat", 1), &items);
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
		e = vdisk_add(set, id);
		if (!e)
			continue;
		e->nodes = true;
		if (file && !e->file[0])
			snprintf(e->file, sizeof(e->file), "%s", file);
	}
	json_decref(items);
	return 0;
}

static int list(struct qg *q, struct vdisk_set *ret, char *scsi, size_t scsi_size)
{
	int r;

	memset(ret, 0, sizeof(*ret));
	if (scsi)
		scsi[0] = '\0';
	r = list_devices(q, ret, scsi, scsi_size);
	return r < 0 ? r : list_nodes(q, ret);
}

static int qemu_disks(void *c, struct vdisk_set *ret)
{
	return list(c, ret, NULL, 0);
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
static int del_nodes(struct qg *q, const char *id, bool *ret_any)
{
	int64_t deadline = backend_deadline_in(q->s, VDISK_DEL_WAIT_MS);
	char file[DISK_ID_MAX + 8];
	int r, r2;

	snprintf(file, sizeof(file), "%s-file", id);
	r = del_node(q->qmp, id, deadline);
	if (r < 0)
		return r;
	r2 = del_node(q->qmp, file, deadline);
	if (r2 < 0)
		return r2;
	if (ret_any)
		*ret_any = r == 0 || r2 == 0;
	return 0;
}

static json_t *device_props(const char *driver, const char *id, const struct usb_disk *d)
{
	json_t *o = json_pack("{s:s, s:s, s:s}", "driver", driver, "id", id, "drive", id);
	const char *serial = vdisk_serial(d);

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
 * that cannot be told (/proc unreadable). Its pid: the pid file's, or,
 * for a guest without one (QEMU started by hand, Xen's device model),
 * the process at the other end of the QMP socket. */
static int qemu_holds(const struct qg *q, const struct usb_disk *d)
{
	unsigned long pid = q->t->pidfile[0] ? vmproc_pid(q->t->pidfile) : qmp_peer_pid(q->qmp);

	return pid ? vmproc_has_open(pid, S_IFBLK, makedev(d->major, d->minor)) : -1;
}

/* What the guest has as id: 0 when nothing is in the way (nodes left by a
 * detach that could not finish are deleted), 1 when it is d already,
 * -EEXIST when another device holds id, errors noted. scsi gets the
 * controller a SCSI disk goes on ("" when none). */
static int make_room(struct qg *q, const struct usb_disk *d, const char *id, const char *desc,
		     char *scsi, size_t scsi_size)
{
	struct vdisk_set *set = malloc(sizeof(*set));
	const struct vdisk *e;
	int r = set ? list(q, set, scsi, scsi_size) : -ENOMEM;

	if (r < 0) {
		free(set);
		return qemu_explain(q, r, "listing the disks of", "the VM");
	}
	e = vdisk_find(set, id);
	if (e && e->driver[0] && qemu_holds(q, d) != 0)
		r = 1;
	else if (e && e->driver[0]) {
		/* its remove was missed (or another disk has the same serial:
		 * then they share one by-id link as well) */
		report_add(q->rep, LOG_LVL_WARNING, "%s: %s is attached as %s, but QEMU holds another device under that name (an earlier disk with this serial, whose removal was missed): replaced",
			   q->t->label, desc, id);
		r = -EEXIST;
	} else if (e && e->nodes && (r = del_nodes(q, id, NULL)) < 0)
		r = qemu_explain(q, r, "removing the old nodes of", desc);
	free(set);
	return r;
}

/* The host_device node on path and the raw node on top. Notes failures. */
static int add_nodes(struct qg *q, const char *id, const char *path, const char *desc)
{
	char file[DISK_ID_MAX + 8], qemu_said[512];
	int r;

	snprintf(file, sizeof(file), "%s-file", id);
	r = qmp_execute(q->qmp, "blockdev-add",
			json_pack("{s:s, s:s, s:s, s:{s:b}, s:s, s:s}", "driver", "host_device",
				  "node-name", file, "filename", path, "cache", "direct", 1, "aio",
				  "native", "discard", "unmap"),
			NULL);
	if (r == 0)
		r = qmp_execute(q->qmp, "blockdev-add",
				json_pack("{s:s, s:s, s:s, s:s}", "driver", "raw", "node-name", id,
					  "file", file, "discard", "unmap"),
				NULL);
	if (r < 0) {
		what_failed(q->qmp, r, qemu_said, sizeof(qemu_said));
		(void)del_nodes(q, id, NULL);
		return report_err(q->rep, r, "%s: QEMU cannot open %s (%s): %s", q->t->label, path,
				  desc, qemu_said);
	}
	return 0;
}

static int qemu_disk_attach(void *c, const struct usb_disk *d, const char *id, const char *path,
			    enum disk_as as, const char *desc, char *where, size_t n)
{
	struct qg *q = c;
	char scsi[64], msg[160] = "", qemu_said[512];
	int r;

	r = make_room(q, d, id, desc, scsi, sizeof(scsi));
	if (r != 0)
		return r;
	if (as == DISK_AS_SCSI && !scsi[0])
		return report_err(q->rep, -ENODEV, "%s: %s is to go in as SCSI, but the VM has no virtio-scsi controller to put it on%s; write 'as virtio', or leave 'as' out",
				  q->t->label, desc,
				  target_any(q->t)
					  ? ""
					  : " (scsihw0: a SCSI disk with SCSI Controller 'VirtIO SCSI'; with 'VirtIO SCSI single' each disk has its own, which is Proxmox's)");
	r = add_nodes(q, id, path, desc);
	if (r < 0)
		return r;
	if (as != DISK_AS_VIRTIO && scsi[0]) {
		r = add_scsi(q->qmp, scsi, id, d, where, n);
	} else {
		r = xhci_add_in_free_slot(q->qmp, target_any(q->t), device_props("virtio-blk-pci", id, d),
					  msg, sizeof(msg));
		if (r == 0)
			snprintf(where, n, "a virtio disk at %s", msg);
	}
	if (r == 0)
		return 0;
	if (r == -ENOSPC)
		snprintf(qemu_said, sizeof(qemu_said), "%s", msg);
	else
		what_failed(q->qmp, r, qemu_said, sizeof(qemu_said));
	(void)del_nodes(q, id, NULL);
	if (r == -EREMOTEIO && strstr(qemu_said, "lock"))
		return report_err(q->rep, r, "%s: %s is open for writing elsewhere (another VM, or a disk line of the VM's own config): not attached; QEMU says: %s",
				  q->t->label, desc, qemu_said);
	return report_err(q->rep, r, "%s: %s not attached: %s", q->t->label, desc, qemu_said);
}

static int qemu_disk_detach(void *c, const char *id, const char *desc)
{
	struct qg *q = c;
	bool had_nodes = false;
	int r, gone;

	gone = device_del(q, id);
	if (gone < 0)
		return qemu_explain(q, gone, "detaching", desc);
	r = del_nodes(q, id, &had_nodes);
	if (r == -EBUSY)
		return r;
	if (r < 0)
		return qemu_explain(q, r, "deleting the block nodes of", desc);
	return gone == 1 && !had_nodes ? 1 : 0;
}

const struct guest_ops qemu_guest_ops = {
	.keeps_hint = true,
	.running = qemu_running,
	.stamp = qemu_stamp,
	.open = qemu_open,
	.usable = qemu_usable,
	.explain = qemu_explain,
	.close = qemu_close,
	.held = qemu_held,
	.can_attach = qemu_can_attach,
	.attach = qemu_attach,
	.detach = qemu_detach,
	.release = qemu_release,
	.disks = qemu_disks,
	.disk_attach = qemu_disk_attach,
	.disk_detach = qemu_disk_detach,
};
