#include "guests/guest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/lock.h"
#include "base/log.h"
#include "base/report.h"
#include "base/state.h"
#include "base/util.h"
#include "guests/backend.h"
#include "guests/libvirt.h"
#include "guests/lxc.h"
#include "guests/qemu.h"
#include "guests/target.h"

/* Every kind of guest and its table. */
static const struct guest_ops *const kinds[] = {
	[TARGET_PVE] = &qemu_guest_ops,
	[TARGET_QEMU] = &qemu_guest_ops,
	[TARGET_XEN] = &qemu_guest_ops,
	[TARGET_LIBVIRT] = &lv_guest_ops,
	[TARGET_LXC] = &lxc_guest_ops,
};

static const struct guest_ops *ops_of(const struct target *t)
{
	return kinds[t->kind];
}

struct guest {
	const struct settings *s;
	struct target *t;
	struct report *rep; /* the caller's: what happened, for it to say */
	const struct guest_ops *ops;
	void *conn; /* the kind's */
	int state_fd;
	int lock_fd;
	char stamp[96];	 /* the kind's stamp, read once ("" if not yet or unknown) */
	struct guest_held held;
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

/* The state directory, checked; notes why it cannot be used. */
static int open_state(const struct settings *s, const char *vm, int *ret_fd, struct report *rep)
{
	char why[128];
	int r = state_open(s->state_dir, ret_fd, why, sizeof(why));

	if (r == -EPERM)
		report_add(rep, LOG_LVL_ERROR, "%s: %s is refused as the state directory: %s; remove it (it is made again, mode 0700) or set [paths] state_dir",
			   vm, s->state_dir, why);
	else if (r == -ELOOP)
		report_add(rep, LOG_LVL_ERROR, "%s: %s is a symbolic link and is refused as the state directory; remove it (it is made again, mode 0700) or set [paths] state_dir",
			   vm, s->state_dir);
	else if (r < 0)
		report_add(rep, LOG_LVL_ERROR,
			   "%s: cannot use the state directory %s: %s (check [paths] state_dir)",
			   vm, s->state_dir, strerror(-r));
	return r;
}

static int take_lock(struct guest *g)
{
	const struct settings *s = g->s;
	int r;

	r = lock_vm(g->state_fd, g->t->key, backend_deadline_in(s, s->lock_timeout_ms), &g->lock_fd);
	if (r == -ETIMEDOUT && backend_run_is_over(s))
		report_add(g->rep, LOG_LVL_ERROR, "%s: another pve-usb-hotplug still works on this VM, and this run's time limit of %d ms ([run] timeout_ms) is up; giving up",
			   g->t->label, s->run_timeout_ms);
	else if (r == -ETIMEDOUT)
		report_add(g->rep, LOG_LVL_ERROR, "%s: another pve-usb-hotplug still works on this VM after %d ms ([lock] timeout_ms); giving up",
			   g->t->label, s->lock_timeout_ms);
	else if (r == -EINVAL)
		report_add(g->rep, LOG_LVL_ERROR, "%s: %s/%s.lock is not a regular file; remove it",
			   g->t->label, s->state_dir, g->t->key);
	else if (r < 0)
		report_add(g->rep, LOG_LVL_ERROR,
			   "%s: cannot take the lock in %s: %s (check [paths] state_dir)",
			   g->t->label, s->state_dir, strerror(-r));
	return r;
}

bool guest_follows_nodes_of(const struct settings *s, const struct usb_port *port)
{
	/* each kind once (several kinds share one table) */
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		bool seen = false;

		for (size_t k = 0; k < i; k++)
			seen = seen || kinds[k] == kinds[i];
		if (!seen && kinds[i]->follows_nodes_of && kinds[i]->follows_nodes_of(s, port))
			return true;
	}
	return false;
}

bool guest_running(const struct settings *s, struct target *t, struct report *rep)
{
	return ops_of(t)->running(t, s, rep) > 0;
}

int guest_passes(const struct target *t, const struct usb_device_info *dev)
{
	return ops_of(t)->passes ? ops_of(t)->passes(t, dev) : 0;
}

int guest_open(const struct settings *s, struct target *t, struct report *rep, struct guest **ret)
{
	struct guest *g;
	int r;

	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->s = s;
	g->t = t;
	g->rep = rep;
	g->ops = ops_of(t);
	g->state_fd = -1;
	g->lock_fd = -1;

	r = open_state(s, t->label, &g->state_fd, rep);
	if (r == 0)
		r = take_lock(g);
	if (r == 0)
		r = g->ops->open(s, t, rep, &g->conn);
	if (r < 0) {
		guest_close(g);
		return r;
	}
	*ret = g;
	return 0;
}

struct report *guest_report(struct guest *g)
{
	return g->rep;
}

bool guest_usable(const struct guest *g)
{
	return g->ops->usable(g->conn);
}

int guest_failed(struct guest *g, int r, const char *what, const char *desc)
{
	return g->ops->explain(g->conn, r, what, desc);
}

static const char *stamp(struct guest *g)
{
	/* the guest's run does not change while we hold its connection */
	if (!g->stamp[0])
		g->ops->stamp(g->t, g->s, g->stamp, sizeof(g->stamp));
	return g->stamp;
}

/* Notes in the state directory that the guest may hold disks of the
 * tool's (<key>.disks), so that a disk's remove finds it even when its
 * rules change. */
static void note_disks(struct guest *g)
{
	char name[sizeof(g->t->key) + 8];
	const char *st = stamp(g);

	/* a record for later runs; failing to write it is said, not fatal */
	snprintf(name, sizeof(name), "%s.disks", g->t->key);
	if (util_write_file_at(g->state_fd, name, st, strlen(st)) < 0)
		report_add(g->rep, LOG_LVL_WARNING, "%s: cannot note in %s that it has disks of pve-usb-hotplug's; a disk pulled out after its rules changed may stay open until 'pve-usb-hotplug sync %s'",
			   g->t->label, g->s->state_dir, g->t->name);
}

/* Keeps the hint in step (we hold the guest's lock, the connection is
 * closed). It is a cache and a record: failing to write it costs later
 * runs a question to the guest, nothing more. */
static void save_hint(struct guest *g)
{
	const char *st = stamp(g);

	if (!st[0] || xhci_hint_write(g->state_fd, g->t->key, st, &g->held.set) < 0) {
		xhci_hint_remove(g->state_fd, g->t->key);
		log_debug("%s: no port hint kept in %s", g->t->label, g->s->state_dir);
	}
}

enum load_mode {
	LOAD_ANY,	/* the hint if there is one for this run, else ask the guest */
	LOAD_ASK,	/* ask the guest (the hint was wrong, or the truth is wanted) */
	LOAD_HINT_ONLY, /* the hint or nothing (-ENOENT): a detach asks nothing */
};

/* The controllers, their ports, and what the tool holds. */
static int load_held(struct guest *g, enum load_mode mode)
{
	struct guest_held *h = &g->held;
	int r;

	if (h->loaded && !(mode == LOAD_ASK && h->from_hint))
		return 0;
	h->from_hint = g->ops->keeps_hint && mode != LOAD_ASK && stamp(g)[0] &&
		       xhci_hint_read(g->state_fd, g->t->key, stamp(g), target_any(g->t), &h->set) == 0;
	if (!h->from_hint) {
		if (mode == LOAD_HINT_ONLY)
			return -ENOENT;
		r = g->ops->held(g->conn, &h->set);
		if (r < 0)
			return r;
		h->dirty = true; /* what the guest said is worth keeping */
	}
	h->loaded = true;
	return 0;
}

int guest_held(struct guest *g, bool ask_qemu, const struct xhci_set **ret)
{
	int r = load_held(g, ask_qemu ? LOAD_ASK : LOAD_ANY);

	if (r < 0)
		return guest_failed(g, r, "listing the devices of", "the VM");
	*ret = &g->held.set;
	return 0;
}

/* The checked state directory's fd, and the guest's stamp in st. */
static int state_of(const struct settings *s, struct target *t, char *st, size_t n)
{
	char why[128];
	int fd, r;

	r = state_open(s->state_dir, &fd, why, sizeof(why));
	if (r < 0)
		return r;
	ops_of(t)->stamp(t, s, st, n);
	return fd;
}

int guest_peek_held(const struct settings *s, struct target *t, struct xhci_set *ret)
{
	_cleanup_close_ int fd = -1;
	char st[96];
	int r;

	if (!ops_of(t)->keeps_hint)
		return -ESTALE; /* no hint: the guest itself is the record */
	fd = state_of(s, t, st, sizeof(st));
	if (fd < 0)
		return -ESTALE; /* told when a guest is opened */
	r = xhci_hint_read(fd, t->key, st, target_any(t), ret);
	return r == -ENOENT ? r : r < 0 ? -ESTALE : 0;
}

int guest_attach(struct guest *g, const struct usb_device_info *dev)
{
	char desc[256];
	int r;

	guest_describe(dev, desc, sizeof(desc));
	if (g->ops->can_attach && (r = g->ops->can_attach(g->conn, dev, desc)) < 0)
		return r;
	if (g->ops->keeps_hint && (r = load_held(g, LOAD_ANY)) < 0)
		return guest_failed(g, r, "listing USB controllers to attach", desc);
	return g->ops->attach(g->conn, &g->held, dev, desc);
}

/* A detach's outcome: r 1 when there was nothing to detach. */
static void note_detached(struct guest *g, int r, const char *desc, const char *id, const char *why)
{
	if (r > 0)
		report_add(g->rep, LOG_LVL_INFO, "%s: %s was not attached; nothing to detach",
			   g->t->label, desc);
	else
		report_add(g->rep, LOG_LVL_INFO, "%s: detached %s (%s)%s%s", g->t->label, desc, id,
			   why ? ": " : "", why ? why : "");
}

int guest_detach(struct guest *g, const struct usb_port *port, const char *desc, const char *why)
{
	char id[XHCI_DEV_ID_MAX];
	int r;

	xhci_dev_id(port, id, sizeof(id));
	r = g->ops->detach(g->conn, port, desc);
	if (r < 0)
		return r;
	/* the hint in step, when there is one */
	if (load_held(g, LOAD_HINT_ONLY) == 0) {
		xhci_note_detached(&g->held.set, port);
		g->held.dirty = true;
	}
	note_detached(g, r, desc, id, why);
	return 0;
}

int guest_release(struct guest *g)
{
	bool detached[XHCI_MAX_DEVS] = { false };
	char desc[PORT_STRLEN];
	struct xhci_set before;
	int r, ret = 0;

	/* held back first: an event queued behind this lock must not bring
	 * anything back */
	r = stamp(g)[0] ? state_mark_released(g->state_fd, g->t->key, stamp(g)) : -ESRCH;
	if (r < 0)
		return report_err(g->rep, r, "%s: cannot note it as released in %s: %s",
				  g->t->label, g->s->state_dir, strerror(-r));
	r = load_held(g, LOAD_ASK);
	if (r < 0)
		return guest_failed(g, r, "listing the devices of", "the VM");
	before = g->held.set;
	for (size_t i = 0; i < before.n_devs && guest_usable(g); i++) {
		port_format(&before.devs[i].port, desc, sizeof(desc));
		detached[i] = guest_detach(g, &before.devs[i].port, desc, "released") == 0;
		if (!detached[i])
			ret = -EIO;
	}
	if (g->ops->release && (r = g->ops->release(g->conn, &g->held, &before, detached)) < 0)
		return r;
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

int guest_unrelease(const struct settings *s, struct target *t, struct report *rep)
{
	char st[96];
	int fd = state_of(s, t, st, sizeof(st)), r;

	if (fd < 0)
		return fd;
	if (state_is_released(fd, t->key, st))
		report_add(rep, LOG_LVL_INFO, "%s: no longer released; its devices come back",
			   t->label);
	r = state_clear_released(fd, t->key);
	close(fd);
	return r;
}

int guest_disks(struct guest *g, struct vdisk_set *ret)
{
	return g->ops->disks(g->conn, ret);
}

int guest_disk_attach(struct guest *g, const struct usb_disk *d, const char *path, enum disk_as as)
{
	char id[DISK_ID_MAX], desc[256], where[200];
	int r;

	disk_describe(d, desc, sizeof(desc));
	disk_qemu_id(disk_key(d), id, sizeof(id));
	r = g->ops->disk_attach(g->conn, d, id, path, as, desc, where, sizeof(where));
	if (r == -EEXIST) {
		/* another device under its id (noted): out with it, once */
		r = guest_disk_detach(g, id, desc, "an earlier disk with its serial was still attached");
		if (r == 0)
			r = g->ops->disk_attach(g->conn, d, id, path, as, desc, where, sizeof(where));
		if (r == -EEXIST)
			return report_err(g->rep, r, "%s: %s is still attached as %s after it was detached; not attached",
					  g->t->label, desc, id);
	}
	if (r < 0)
		return r;
	if (r > 0) {
		report_add(g->rep, LOG_LVL_INFO, "%s: %s is attached already (%s)", g->t->label,
			   desc, id);
		return 0;
	}
	note_disks(g);
	report_add(g->rep, LOG_LVL_INFO, "%s: attached %s as %s (%s)", g->t->label, desc, where, id);
	return 0;
}

int guest_disk_detach(struct guest *g, const char *id, const char *desc, const char *why)
{
	int r = g->ops->disk_detach(g->conn, id, desc);

	if (r == -EBUSY)
		return report_err(g->rep, r, "%s: %s is still in use by QEMU %d ms after it was unplugged (a virtio disk leaves once the guest acknowledges the unplug): the host's device stays open until then; run 'pve-usb-hotplug sync %s' later",
				  g->t->label, desc, VDISK_DEL_WAIT_MS, g->t->name);
	if (r < 0)
		return r;
	note_detached(g, r, desc, id, why);
	return 0;
}

struct guest *guest_close(struct guest *g)
{
	if (!g)
		return NULL;
	g->conn = g->conn ? g->ops->close(g->conn) : NULL;
	/* the hint after the connection is closed (never keep QEMU's one
	 * client slot for a file write), still under the lock */
	if (g->held.dirty && g->ops->keeps_hint && g->lock_fd >= 0)
		save_hint(g);
	if (g->lock_fd >= 0)
		close(g->lock_fd);
	if (g->state_fd >= 0)
		close(g->state_fd);
	free(g);
	return NULL;
}
