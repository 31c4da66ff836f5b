#include "guests/guest.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guests/libvirt.h"
#include "base/lock.h"
#include "base/log.h"
#include "guests/qmp.h"
#include "base/state.h"
#include "base/util.h"
#include "guests/target.h"

struct guest {
	const struct settings *s;
	struct target *t;
	int state_fd;
	int lock_fd;
	struct qmp *qmp;
	struct lv *lv; /* a libvirt domain: everything through libvirt */
	bool xhci_loaded;    /* on the first attach (or detach, from the hint) */
	bool xhci_from_hint; /* a guess: a refusal means asking QEMU */
	bool hint_dirty;     /* written once, when the guest is closed */
	char stamp[96];	     /* target_stamp(), read once ("" if not yet or unknown) */
	struct xhci_set xhci;
};

void guest_describe(const struct usb_device_info *dev, char *buf, size_t n)
{
	char port[PORT_STRLEN], product[128];

	port_format(&dev->port, port, sizeof(port));
	if (dev->vid == 0 && dev->pid == 0)
		snprintf(buf, n, "%s", port);
	else if (dev->product[0])
		snprintf(buf, n, "%s (%04x:%04x \"%s\")", port, dev->vid, dev->pid,
			 log_escape(dev->product, product, sizeof(product)));
	else
		snprintf(buf, n, "%s (%04x:%04x)", port, dev->vid, dev->pid);
}

static bool run_is_over(const struct settings *s)
{
	return s->run_deadline_ms && util_remaining_ms(s->run_deadline_ms) == 0;
}

/* ms from now, or the end of the run if that comes first */
static int64_t deadline_in(const struct settings *s, int ms)
{
	int64_t d = util_now_ms() + ms;

	return s->run_deadline_ms && s->run_deadline_ms < d ? s->run_deadline_ms : d;
}

static void explain_qmp_failure(const struct settings *s, const struct target *t,
				const char *path, int r)
{
	const char *vm = t->label;

	switch (r) {
	case -ETIMEDOUT:
		if (run_is_over(s))
			log_error("%s: no answer on %s before this run's time limit of %d ms ([run] timeout_ms); giving up",
				  vm, path, s->run_timeout_ms);
		else
			log_error("%s: no answer on %s within %d ms: another client (qm, pvestatd, a backup) holds the QMP socket, or QEMU hangs; try again, or raise [qmp] timeout_ms",
				  vm, path, s->qmp_timeout_ms);
		break;
	case -ECONNRESET:
		log_error("%s: QEMU closed the QMP connection on %s (is the VM stopping?)", vm, path);
		break;
	case -EPROTO:
	case -EMSGSIZE:
		log_error("%s: %s does not speak QMP as expected (%s)", vm, path, strerror(-r));
		break;
	default:
		log_error("%s: QMP on %s failed: %s", vm, path, strerror(-r));
	}
}

/* The state directory, checked; logs why it cannot be used. */
static int open_state(const struct settings *s, const char *vm, int *ret_fd)
{
	char why[128];
	int r = state_open(s->state_dir, ret_fd, why, sizeof(why));

	if (r == -EPERM)
		log_error("%s: %s is refused as the state directory: %s; remove it (it is made again, mode 0700) or set [paths] state_dir",
			  vm, s->state_dir, why);
	else if (r == -ELOOP)
		log_error("%s: %s is a symbolic link and is refused as the state directory; remove it (it is made again, mode 0700) or set [paths] state_dir",
			  vm, s->state_dir);
	else if (r < 0)
		log_error("%s: cannot use the state directory %s: %s (check [paths] state_dir)", vm,
			  s->state_dir, strerror(-r));
	return r;
}

static int take_lock(struct guest *g)
{
	const struct settings *s = g->s;
	int r;

	r = lock_vm(g->state_fd, g->t->key, deadline_in(s, s->lock_timeout_ms), &g->lock_fd);
	if (r == -ETIMEDOUT && run_is_over(s))
		log_error("%s: another pve-usb-hotplug still works on this VM, and this run's time limit of %d ms ([run] timeout_ms) is up; giving up",
			  g->t->label, s->run_timeout_ms);
	else if (r == -ETIMEDOUT)
		log_error("%s: another pve-usb-hotplug still works on this VM after %d ms ([lock] timeout_ms); giving up",
			  g->t->label, s->lock_timeout_ms);
	else if (r == -EINVAL)
		log_error("%s: %s/%s.lock is not a regular file; remove it", g->t->label, s->state_dir,
			  g->t->key);
	else if (r < 0)
		log_error("%s: cannot take the lock in %s: %s (check [paths] state_dir)", g->t->label,
			  s->state_dir, strerror(-r));
	return r;
}

/* A new QMP connection for g (the lock stays held). Logs failures. */
static int reconnect(struct guest *g)
{
	int r = qmp_open(g->t->sock, g->s->qmp_timeout_ms, g->s->run_deadline_ms, &g->qmp);

	if (r < 0)
		explain_qmp_failure(g->s, g->t, g->t->sock, r);
	return r;
}

int guest_open(const struct settings *s, struct target *t, struct guest **ret)
{
	struct guest *g;
	int r;

	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->s = s;
	g->t = t;
	g->state_fd = -1;
	g->lock_fd = -1;

	r = open_state(s, t->label, &g->state_fd);
	if (r == 0)
		r = take_lock(g);
	if (r < 0) {
		guest_close(g);
		return r;
	}

	if (t->kind == TARGET_LIBVIRT) {
		r = lv_open(t, &g->lv);
		if (r < 0) {
			guest_close(g);
			return r;
		}
		*ret = g;
		return 0;
	}
	r = target_socket(t, s);
	if (r == -ENOTUNIQ) {
		target_explain_ambiguous(t, LOG_LVL_ERROR);
		guest_close(g);
		return r;
	}
	r = r < 0 ? r : qmp_open(t->sock, s->qmp_timeout_ms, s->run_deadline_ms, &g->qmp);
	if (r < 0) {
		if (r == -ENOENT || r == -ECONNREFUSED)
			log_warning("%s is not running (%s at %s); nothing to do", t->label,
				    r == -ENOENT ? "no QMP socket" : "nobody listening", t->qmp);
		else
			explain_qmp_failure(s, t, t->sock, r);
		guest_close(g);
		return r;
	}
	*ret = g;
	return 0;
}

bool guest_usable(const struct guest *g)
{
	return g->lv || (g->qmp && qmp_broken(g->qmp) == 0);
}

struct qmp *guest_qmp(struct guest *g)
{
	return g->qmp;
}

struct lv *guest_lv(struct guest *g)
{
	return g->lv;
}

const struct target *guest_target(const struct guest *g)
{
	return g->t;
}

const struct settings *guest_settings(const struct guest *g)
{
	return g->s;
}

static int qmp_failed(struct guest *g, int r, const char *what, const char *desc)
{
	char said[512];

	if (g->lv)
		return log_err(r, "%s: %s %s: %s", g->t->label, what, desc, lv_error());
	switch (r) {
	case -EREMOTEIO:
		return log_err(r, "%s: %s %s: QEMU says: %s", g->t->label, what, desc,
			       log_escape(qmp_error_desc(g->qmp), said, sizeof(said)));
	case -ECONNRESET:
	case -EPIPE:
		return log_err(r, "%s: %s %s: QEMU closed the QMP connection (is the VM stopping?)",
			       g->t->label, what, desc);
	case -ETIMEDOUT:
		if (run_is_over(g->s))
			return log_err(r, "%s: %s %s: this run's time limit of %d ms ([run] timeout_ms) is up",
				       g->t->label, what, desc, g->s->run_timeout_ms);
		return log_err(r, "%s: %s %s: QEMU did not answer within %d ms ([qmp] timeout_ms)",
			       g->t->label, what, desc, g->s->qmp_timeout_ms);
	case -EPROTO:
	case -EMSGSIZE:
		return log_err(r, "%s: %s %s: QEMU does not speak QMP as expected (%s)", g->t->label,
			       what, desc, strerror(-r));
	default:
		return log_err(r, "%s: %s %s: %s", g->t->label, what, desc, strerror(-r));
	}
}

int guest_failed(struct guest *g, int r, const char *what, const char *desc)
{
	return qmp_failed(g, r, what, desc);
}

int64_t guest_deadline_in(const struct guest *g, int ms)
{
	return deadline_in(g->s, ms);
}


/* Not a Proxmox VM: the guest's own xHCI controllers are the tool's to use
 * (xhci.h). */
static bool any_guest(const struct target *t)
{
	return t->kind != TARGET_PVE;
}

static const char *stamp(struct guest *g)
{
	/* the QEMU process does not change while we hold its connection */
	if (!g->stamp[0])
		target_stamp(g->t, g->s, g->stamp, sizeof(g->stamp));
	return g->stamp;
}

void guest_note_disks(struct guest *g)
{
	char name[sizeof(g->t->key) + 8];
	const char *st = stamp(g);

	/* a record for later runs; failing to write it is logged, not fatal */
	snprintf(name, sizeof(name), "%s.disks", g->t->key);
	if (util_write_file_at(g->state_fd, name, st, strlen(st)) < 0)
		log_warning("%s: cannot note in %s that it has disks of pve-usb-hotplug's; a disk pulled out after its rules changed may stay open until 'pve-usb-hotplug sync %s'",
			    g->t->label, g->s->state_dir, g->t->name);
}

/* Keeps the hint in step (we hold the VM's lock, QMP is closed). It is a
 * cache and a record: failing to write it costs later runs a question to
 * QEMU, nothing more. */
static void save_hint(struct guest *g)
{
	const char *st = stamp(g);

	if (!st[0] || xhci_hint_write(g->state_fd, g->t->key, st, &g->xhci) < 0) {
		xhci_hint_remove(g->state_fd, g->t->key);
		log_debug("%s: no port hint kept in %s", g->t->label, g->s->state_dir);
	}
}

enum load_mode {
	LOAD_ANY,	/* the hint if there is one for this QEMU, else ask QEMU */
	LOAD_ASK,	/* ask QEMU (the hint was wrong, or the truth is wanted) */
	LOAD_HINT_ONLY, /* the hint or nothing (-ENOENT): a detach asks QEMU nothing */
};

/* The controllers, their ports, and what the tool holds. */
static int load_xhci(struct guest *g, enum load_mode mode)
{
	int r;

	if (g->xhci_loaded && !(mode == LOAD_ASK && g->xhci_from_hint))
		return 0;
	if (g->lv) {
		/* libvirt's live XML is the record; it keeps no hint */
		r = lv_held(g->lv, &g->xhci);
		g->xhci_loaded = r == 0;
		return r;
	}
	g->xhci_from_hint = mode != LOAD_ASK && stamp(g)[0] &&
			    xhci_hint_read(g->state_fd, g->t->key, stamp(g), any_guest(g->t), &g->xhci) == 0;
	if (!g->xhci_from_hint) {
		if (mode == LOAD_HINT_ONLY)
			return -ENOENT;
		r = xhci_load(g->qmp, any_guest(g->t), &g->xhci);
		if (r < 0)
			return r;
		g->hint_dirty = true; /* what QEMU said is worth keeping */
	}
	g->xhci_loaded = true;
	return 0;
}

int guest_held(struct guest *g, bool ask_qemu, const struct xhci_set **ret)
{
	int r = load_xhci(g, ask_qemu ? LOAD_ASK : LOAD_ANY);

	if (r < 0)
		return qmp_failed(g, r, "listing the devices of", "the VM");
	*ret = &g->xhci;
	return 0;
}

/* The checked state directory's fd, and the VM's QEMU stamp in st. */
static int state_of(const struct settings *s, struct target *t, char *st, size_t n)
{
	char why[128];
	int fd, r;

	r = state_open(s->state_dir, &fd, why, sizeof(why));
	if (r < 0)
		return r;
	target_stamp(t, s, st, n);
	return fd;
}

int guest_peek_held(const struct settings *s, struct target *t, struct xhci_set *ret)
{
	_cleanup_close_ int fd = -1;
	char st[96];
	int r;

	if (t->kind == TARGET_LIBVIRT)
		return -ESTALE; /* no hint: libvirt's live XML is the record */
	fd = state_of(s, t, st, sizeof(st));
	if (fd < 0)
		return -ESTALE; /* told when a guest is opened */
	r = xhci_hint_read(fd, t->key, st, any_guest(t), ret);
	return r == -ENOENT ? r : r < 0 ? -ESTALE : 0;
}

static bool is_duplicate(struct guest *g)
{
	const char *desc = qmp_error_desc(g->qmp);

	return strstr(desc, "Duplicate device ID") || strstr(desc, "Duplicate ID");
}

/* device_del of id; 1 when there was no such device (the wanted state too). */
static int device_del(struct guest *g, const char *id)
{
	int r = qmp_execute(g->qmp, "device_del", json_pack("{s:s}", "id", id), NULL);

	if (r == -EREMOTEIO && strcmp(qmp_error_class(g->qmp), "DeviceNotFound") == 0)
		return 1;
	return r;
}

/* device_del; 1 when the device was not there. Keeps the hint in step. */
static int del_device(struct guest *g, const struct usb_port *port)
{
	char id[XHCI_DEV_ID_MAX];
	int r;

	if (g->lv)
		return lv_detach(g->lv, port);
	xhci_dev_id(port, id, sizeof(id));
	r = device_del(g, id);
	if (r < 0)
		return r;
	if (load_xhci(g, LOAD_HINT_ONLY) == 0) {
		xhci_note_detached(&g->xhci, port);
		g->hint_dirty = true;
	}
	return r;
}

/* What the usb-host with id is pinned to, from QEMU (0:0 when not). */
static int pinned_to(struct guest *g, const char *id, unsigned *vid, unsigned *pid)
{
	char path[160];
	json_t *v = NULL;
	int r;

	snprintf(path, sizeof(path), "/machine/peripheral/%s", id);
	*vid = *pid = 0;
	r = qmp_execute(g->qmp, "qom-get",
			json_pack("{s:s, s:s}", "path", path, "property", "vendorid"), &v);
	if (r < 0)
		return r;
	*vid = json_is_integer(v) ? (unsigned)json_integer_value(v) : 0;
	json_decref(v);
	v = NULL;
	r = qmp_execute(g->qmp, "qom-get",
			json_pack("{s:s, s:s}", "path", path, "property", "productid"), &v);
	if (r < 0)
		return r;
	*pid = json_is_integer(v) ? (unsigned)json_integer_value(v) : 0;
	json_decref(v);
	return 0;
}

/* device_add said the id exists: 0 when it is this device already, 1 when
 * it was pinned to another and has been taken out, or an error. */
static int settle_duplicate(struct guest *g, const struct usb_device_info *dev, const char *id,
			    const char *desc)
{
	const struct xhci_dev *known = xhci_find(&g->xhci, &dev->port);
	unsigned vid, pid;
	int r;

	/* the record says what the tool pinned it to; without one, ask */
	if (known) {
		vid = known->vid;
		pid = known->pid;
	} else if ((r = pinned_to(g, id, &vid, &pid)) < 0) {
		return qmp_failed(g, r, "reading what is attached as", id);
	}
	if (!dev->have_ids || (vid == dev->vid && pid == dev->pid)) {
		log_info("%s: %s already attached as %s", g->t->label, desc, id);
		return 0;
	}
	r = del_device(g, &dev->port);
	if (r < 0)
		return qmp_failed(g, r, "detaching the old", id);
	log_info("%s: %s was left for %04x:%04x, and %s is plugged in there now: detached it first",
		 g->t->label, id, vid, pid, desc);
	return 1;
}

/* Each try takes a port or a controller: a bound on the attempts. */
#define ATTACH_TRIES (XHCI_MAX_CTRLS * (XHCI_MAX_PORTS + 1) + 2)

int guest_attach(struct guest *g, const struct usb_device_info *dev)
{
	char id[XHCI_DEV_ID_MAX], hostport[PORT_STRLEN], desc[256], msg[160], port_s[8];
	bool ss = xhci_is_superspeed(dev->speed), replaced = false;
	const char *kind = ss ? "USB 3" : "USB 2";
	int r;

	guest_describe(dev, desc, sizeof(desc));
	if (g->lv)
		return lv_attach(g->lv, dev, desc);
	xhci_dev_id(&dev->port, id, sizeof(id));
	port_format_hostport(&dev->port, hostport, sizeof(hostport));
	/* QEMU compares hostport in a 16-byte buffer: a longer one is
	 * accepted and never attaches */
	if (strlen(hostport) > QEMU_HOSTPORT_MAX)
		return log_err(-ENAMETOOLONG, "%s: cannot pass %s: its port path '%s' is longer than the %d characters QEMU compares, so QEMU would never open it; plug it in with fewer hubs between it and the computer",
			       g->t->label, desc, hostport, QEMU_HOSTPORT_MAX);
	r = load_xhci(g, LOAD_ANY);
	if (r < 0)
		return qmp_failed(g, r, "listing USB controllers to attach", desc);

	for (int tries = 0; tries < ATTACH_TRIES; tries++) {
		struct xhci_ctrl *c;
		size_t ci;
		unsigned port;
		char bus[sizeof(c->id) + 2];
		json_t *args;

		if (xhci_pick(&g->xhci, ss, &ci, &port) < 0 && g->xhci_from_hint) {
			/* full by the hint: QEMU may know better (ports freed
			 * behind the tool's back) before a controller is added */
			r = load_xhci(g, LOAD_ASK);
			if (r < 0)
				return qmp_failed(g, r, "listing USB controllers to attach", desc);
			continue;
		}
		if (xhci_pick(&g->xhci, ss, &ci, &port) < 0) {
			r = xhci_add_own(g->qmp, &g->xhci, msg, sizeof(msg));
			if (r == -ENOSPC)
				return log_err(r, "%s: no free %s port for %s, and no room for another USB controller (%s); detach something, or give the VM a PCI bridge",
					       g->t->label, kind, desc, msg);
			if (r < 0)
				return qmp_failed(g, r, "adding a USB controller for", desc);
			log_info("%s: added USB controller %s at %s for %s", g->t->label,
				 g->xhci.c[g->xhci.n - 1].id, msg, desc);
			g->hint_dirty = true;
			continue;
		}
		c = &g->xhci.c[ci];
		snprintf(bus, sizeof(bus), "%s.0", c->id);
		snprintf(port_s, sizeof(port_s), "%u", port);
		args = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "driver", "usb-host", "id", id,
				 "hostbus", (json_int_t)dev->port.bus, "hostport", hostport, "bus", bus,
				 "port", port_s);
		/* pinned: should it ever be left behind, it can only take
		 * this same model */
		if (args && dev->have_ids &&
		    (json_object_set_new(args, "vendorid", json_integer(dev->vid)) < 0 ||
		     json_object_set_new(args, "productid", json_integer(dev->pid)) < 0)) {
			json_decref(args);
			args = NULL;
		}
		r = qmp_execute(g->qmp, "device_add", args, NULL);
		if (r == -EREMOTEIO && is_duplicate(g) && !replaced) {
			r = settle_duplicate(g, dev, id, desc);
			if (r <= 0)
				return r;
			replaced = true;
			continue;
		}
		if (r == -EREMOTEIO && g->xhci_from_hint) {
			/* the hint was wrong: ask QEMU, and try again */
			r = load_xhci(g, LOAD_ASK);
			if (r < 0)
				return qmp_failed(g, r, "listing USB controllers to attach", desc);
			continue;
		}
		/* a device added without a port sits there: try the next */
		if (r == -EREMOTEIO && strstr(qmp_error_desc(g->qmp), "in use")) {
			c->taken |= 1u << port;
			continue;
		}
		if (r < 0)
			return qmp_failed(g, r, "attaching", desc);
		/* "added": QEMU took it; whether it has the host device open
		 * is QOM's "attached", which status shows (asking here would
		 * cost QEMU a command per device) */
		log_info("%s: added %s as %s on %s port %u", g->t->label, desc, id, bus, port);
		xhci_note_attached(&g->xhci, ci, port, &dev->port, dev->have_ids ? dev->vid : 0,
				   dev->have_ids ? dev->pid : 0);
		g->hint_dirty = true;
		return 0;
	}
	return log_err(-ENOSPC, "%s: found no free %s port for %s", g->t->label, kind, desc);
}

int guest_detach(struct guest *g, const struct usb_port *port, const char *desc, const char *why)
{
	char id[XHCI_DEV_ID_MAX];
	int r;

	xhci_dev_id(port, id, sizeof(id));
	r = del_device(g, port);
	if (r < 0 && g->lv)
		return log_err(r, "%s: libvirt did not detach %s: %s", g->t->label, desc, lv_error());
	if (r < 0)
		return qmp_failed(g, r, "detaching", desc);
	if (r > 0)
		log_info("%s: %s was not attached; nothing to detach", g->t->label, desc);
	else
		log_info("%s: detached %s (%s)%s%s", g->t->label, desc, id, why ? ": " : "",
			 why ? why : "");
	return 0;
}

/* Whether any of ids is still a device of the guest. */
static int any_left(struct guest *g, char (*ids)[64], size_t n, const char **ret_left)
{
	json_t *list = NULL, *item;
	size_t i;
	int r;

	r = qmp_execute(g->qmp, "qom-list", json_pack("{s:s}", "path", "/machine/peripheral"), &list);
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

/* How long release waits for QEMU to finish unplugging: a PCI controller
 * behind a bridge goes only once the guest has acknowledged it (measured:
 * a guest without an OS never does, a system_reset completes it). */
#define RELEASE_WAIT_MS 10000
#define RELEASE_POLL_MS 200

int guest_release(struct guest *g)
{
	char ids[XHCI_MAX_DEVS + XHCI_MAX_CTRLS][64], desc[PORT_STRLEN];
	struct xhci_set before;
	const char *left = NULL;
	int64_t deadline = deadline_in(g->s, RELEASE_WAIT_MS);
	size_t n = 0;
	int r, ret = 0;

	/* held back first: an event queued behind this lock must not bring
	 * anything back */
	r = stamp(g)[0] ? state_mark_released(g->state_fd, g->t->key, stamp(g)) : -ESRCH;
	if (r < 0)
		return log_err(r, "%s: cannot note it as released in %s: %s", g->t->label,
			       g->s->state_dir, strerror(-r));
	r = load_xhci(g, LOAD_ASK);
	if (r < 0)
		return qmp_failed(g, r, "listing the devices of", "the VM");
	before = g->xhci;
	if (g->lv) {
		/* libvirt unplugs a USB device at once, and adds no controller */
		for (size_t i = 0; i < before.n_devs; i++) {
			port_format(&before.devs[i].port, desc, sizeof(desc));
			if (guest_detach(g, &before.devs[i].port, desc, "released") < 0)
				ret = -EIO;
		}
		return ret;
	}
	for (size_t i = 0; i < before.n_devs && guest_usable(g); i++) {
		port_format(&before.devs[i].port, desc, sizeof(desc));
		xhci_dev_id(&before.devs[i].port, ids[n], sizeof(ids[0]));
		if (guest_detach(g, &before.devs[i].port, desc, "released") < 0)
			ret = -EIO;
		else
			n++;
	}
	for (size_t i = 0; i < before.n && guest_usable(g); i++) {
		if (!before.c[i].ours)
			continue;
		r = device_del(g, before.c[i].id);
		if (r < 0) {
			ret = qmp_failed(g, r, "unplugging its USB controller", before.c[i].id);
			continue;
		}
		snprintf(ids[n++], sizeof(ids[0]), "%s", before.c[i].id);
	}
	/* Gone from QOM is gone, whichever QEMU. The socket is not held
	 * while waiting (a guest acknowledging a PCI unplug may take a
	 * while, and Proxmox's tools want the socket too): asked again every
	 * RELEASE_POLL_MS on a new connection. */
	while (guest_usable(g) && (r = any_left(g, ids, n, &left)) > 0 &&
	       util_remaining_ms(deadline) > 0) {
		g->qmp = qmp_close(g->qmp);
		poll(NULL, 0, RELEASE_POLL_MS);
		r = reconnect(g);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return qmp_failed(g, r, "waiting for the unplug of", "its devices");
	if (left)
		return log_err(-ETIMEDOUT, "%s: %s is still there after %d ms: QEMU has not finished unplugging it (a guest may have to acknowledge a PCI unplug); a migration or snapshot would fail now; run 'pve-usb-hotplug release %s' again later",
			       g->t->label, left, RELEASE_WAIT_MS, g->t->name);
	/* what is left: the controllers not the tool's, without its devices */
	memset(&g->xhci, 0, sizeof(g->xhci));
	g->xhci.any = before.any;
	for (size_t i = 0; i < before.n_devs; i++)
		if (before.devs[i].ctrl < before.n)
			before.c[before.devs[i].ctrl].taken &= ~(1u << before.devs[i].guest_port);
	for (size_t i = 0; i < before.n; i++)
		if (!before.c[i].ours)
			g->xhci.c[g->xhci.n++] = before.c[i];
	g->hint_dirty = true;
	return ret;
}

bool guest_is_released(const struct settings *s, struct target *t)
{
	char st[96], path[SETTINGS_PATH_MAX + 96];
	bool released;
	int fd;

	/* the common case, cheaply: no marker at all (every event asks this
	 * of every VM it considers) */
	snprintf(path, sizeof(path), "%s/%s.released", s->state_dir, t->key);
	if (faccessat(AT_FDCWD, path, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		return false;
	fd = state_of(s, t, st, sizeof(st));
	if (fd < 0)
		return false;
	released = state_is_released(fd, t->key, st);
	close(fd);
	return released;
}

int guest_unrelease(const struct settings *s, struct target *t)
{
	char st[96];
	int fd = state_of(s, t, st, sizeof(st)), r;

	if (fd < 0)
		return fd;
	if (state_is_released(fd, t->key, st))
		log_info("%s: no longer released; its devices come back", t->label);
	r = state_clear_released(fd, t->key);
	close(fd);
	return r;
}

struct guest *guest_close(struct guest *g)
{
	if (!g)
		return NULL;
	g->qmp = qmp_close(g->qmp);
	g->lv = lv_close(g->lv);
	/* the hint after QMP is closed (never keep QEMU's one client slot
	 * for a file write), still under the lock */
	if (g->hint_dirty && g->lock_fd >= 0 && g->t->kind != TARGET_LIBVIRT)
		save_hint(g);
	if (g->lock_fd >= 0)
		close(g->lock_fd);
	if (g->state_fd >= 0)
		close(g->state_fd);
	free(g);
	return NULL;
}
