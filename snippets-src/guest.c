#include "guest.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "log.h"
#include "qmp.h"
#include "util.h"
#include "xhci.h"

struct guest {
	const struct settings *s;
	unsigned long vmid;
	int lock_fd;
	struct qmp *qmp;
	bool xhci_loaded;    /* on the first attach (or detach, from the hint) */
	bool xhci_from_hint; /* a guess: a refusal means asking QEMU */
	bool hint_dirty;     /* written once, when the guest is closed */
	char stamp[64];	     /* qemu_stamp(), read once ("" if not yet or unknown) */
	struct xhci_set xhci;
};

void guest_device_id(const struct usb_port *p, char *buf, size_t n)
{
	char port[PORT_STRLEN];

	port_format(p, port, sizeof(port));
	snprintf(buf, n, "usbhost%s", port);
}

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

/* Up to n-1 bytes of a small file, terminated. Length, or -1. */
static ssize_t read_small(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	ssize_t len;

	if (fd < 0)
		return -1;
	len = read(fd, buf, n - 1);
	close(fd);
	if (len <= 0)
		return -1;
	buf[len] = '\0';
	return len;
}

/* The VM's QEMU as Proxmox records it in <qmp_socket_dir>/<vmid>.pid; 0
 * if there is none. */
static unsigned long qemu_pid(const struct settings *s, unsigned long vmid)
{
	char path[SETTINGS_PATH_MAX + 32], buf[32];
	unsigned long pid;

	snprintf(path, sizeof(path), "%s/%lu.pid", s->qmp_socket_dir, vmid);
	if (read_small(path, buf, sizeof(buf)) < 0)
		return 0;
	buf[strcspn(buf, "\n")] = '\0';
	if (util_parse_uint(buf, INT32_MAX, &pid) < 0 || pid < 2)
		return 0;
	return pid;
}

bool guest_is_running(const struct settings *s, unsigned long vmid)
{
	unsigned long pid = qemu_pid(s, vmid);

	return pid && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

static void explain_qmp_failure(unsigned long vmid, const char *path, int r, int timeout_ms)
{
	switch (r) {
	case -ETIMEDOUT:
		log_error("VM %lu: no answer on %s within %d ms: another client (qm, pvestatd, a backup) holds the QMP socket, or QEMU hangs; try again, or raise [qmp] timeout_ms",
			  vmid, path, timeout_ms);
		break;
	case -ECONNRESET:
		log_error("VM %lu: QEMU closed the QMP connection on %s (is the VM stopping?)", vmid, path);
		break;
	case -EPROTO:
	case -EMSGSIZE:
		log_error("VM %lu: %s does not speak QMP as expected (%s)", vmid, path, strerror(-r));
		break;
	default:
		log_error("VM %lu: QMP on %s failed: %s", vmid, path, strerror(-r));
	}
}

int guest_open(const struct settings *s, unsigned long vmid, struct guest **ret)
{
	char path[SETTINGS_PATH_MAX + 32];
	struct guest *g;
	int r;

	snprintf(path, sizeof(path), "%s/%lu.qmp", s->qmp_socket_dir, vmid);

	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->s = s;
	g->vmid = vmid;
	g->lock_fd = -1;

	r = lock_vm(s->lock_dir, vmid, s->lock_timeout_ms, &g->lock_fd);
	if (r < 0) {
		if (r == -ETIMEDOUT)
			log_error("VM %lu: another pve-usb-hotplug still works on this VM after %d ms ([lock] timeout_ms); giving up",
				  vmid, s->lock_timeout_ms);
		else
			log_error("VM %lu: cannot take the lock in %s: %s (check [paths] lock_dir)",
				  vmid, s->lock_dir, strerror(-r));
		guest_close(g);
		return r;
	}

	r = qmp_open(path, s->qmp_timeout_ms, &g->qmp);
	if (r < 0) {
		if (r == -ENOENT || r == -ECONNREFUSED)
			log_warning("VM %lu is not running (%s at %s); nothing to do", vmid,
				    r == -ENOENT ? "no QMP socket" : "nobody listening", path);
		else
			explain_qmp_failure(vmid, path, r, s->qmp_timeout_ms);
		guest_close(g);
		return r;
	}
	*ret = g;
	return 0;
}

static int qmp_failed(struct guest *g, int r, const char *what, const char *desc)
{
	switch (r) {
	case -EREMOTEIO:
		return log_err(r, "VM %lu: %s %s: QEMU says: %s", g->vmid, what, desc,
			       qmp_error_desc(g->qmp));
	case -ECONNRESET:
	case -EPIPE:
		return log_err(r, "VM %lu: %s %s: QEMU closed the QMP connection (is the VM stopping?)",
			       g->vmid, what, desc);
	case -ETIMEDOUT:
		return log_err(r, "VM %lu: %s %s: QEMU did not answer within %d ms ([qmp] timeout_ms)",
			       g->vmid, what, desc, g->s->qmp_timeout_ms);
	case -EPROTO:
	case -EMSGSIZE:
		return log_err(r, "VM %lu: %s %s: QEMU does not speak QMP as expected (%s)", g->vmid,
			       what, desc, strerror(-r));
	default:
		return log_err(r, "VM %lu: %s %s: %s", g->vmid, what, desc, strerror(-r));
	}
}

/* "PID:STARTTIME" of the VM's QEMU: what a hint must have been written
 * for. "" if it cannot be told. */
static const char *qemu_stamp(struct guest *g)
{
	unsigned long pid, start;
	char path[64], stat[1024], *p;

	/* the QEMU process does not change while we hold its connection */
	if (g->stamp[0])
		return g->stamp;
	pid = qemu_pid(g->s, g->vmid);
	snprintf(path, sizeof(path), "/proc/%lu/stat", pid);
	if (!pid || read_small(path, stat, sizeof(stat)) < 0)
		return g->stamp;
	/* field 22, starttime, counting from the one after the command name */
	p = strrchr(stat, ')');
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (p && sscanf(p, " %lu", &start) == 1)
		snprintf(g->stamp, sizeof(g->stamp), "%lu:%lu", pid, start);
	return g->stamp;
}

static void hint_path(struct guest *g, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%lu.ports", g->s->lock_dir, g->vmid);
}

/* Keeps the hint in step (we hold the VM's lock). It is a cache: failing
 * to write it costs the next run a question to QEMU, nothing more. */
static void save_hint(struct guest *g)
{
	const char *stamp = qemu_stamp(g);
	char path[SETTINGS_PATH_MAX + 32];

	hint_path(g, path, sizeof(path));
	if (!stamp[0] || xhci_hint_write(path, stamp, &g->xhci) < 0) {
		unlink(path);
		log_debug("VM %lu: no port hint kept in %s", g->vmid, path);
	}
}

static bool read_hint(struct guest *g)
{
	const char *stamp = qemu_stamp(g);
	char path[SETTINGS_PATH_MAX + 32];

	hint_path(g, path, sizeof(path));
	return stamp[0] && xhci_hint_read(path, stamp, &g->xhci) == 0;
}

enum load_mode {
	LOAD_ANY,	/* the hint if there is one for this QEMU, else ask QEMU */
	LOAD_ASK,	/* ask QEMU (the hint was wrong) */
	LOAD_HINT_ONLY, /* the hint or nothing (-ENOENT): a detach asks QEMU nothing */
};

/* The controllers and their ports. */
static int load_xhci(struct guest *g, enum load_mode mode)
{
	int r;

	if (g->xhci_loaded && !(mode == LOAD_ASK && g->xhci_from_hint))
		return 0;
	g->xhci_from_hint = mode != LOAD_ASK && read_hint(g);
	if (!g->xhci_from_hint) {
		if (mode == LOAD_HINT_ONLY)
			return -ENOENT;
		r = xhci_load(g->qmp, &g->xhci);
		if (r < 0)
			return r;
	}
	g->xhci_loaded = true;
	return 0;
}

static bool is_duplicate(struct guest *g)
{
	const char *desc = qmp_error_desc(g->qmp);

	return strstr(desc, "Duplicate device ID") || strstr(desc, "Duplicate ID");
}

/* Each try takes a port or a controller: a bound on the attempts. */
#define ATTACH_TRIES (XHCI_MAX_CTRLS * (XHCI_MAX_PORTS + 1))

int guest_attach(struct guest *g, const struct usb_device_info *dev, const struct pve_vm *pve)
{
	unsigned reserved = pveconf_reserved_ports(pve);
	char id[GUEST_ID_MAX], hostport[PORT_STRLEN], desc[256], msg[160], port_s[8];
	bool ss = xhci_is_superspeed(dev->speed);
	const char *kind = ss ? "USB 3" : "USB 2";
	int r;

	guest_describe(dev, desc, sizeof(desc));
	guest_device_id(&dev->port, id, sizeof(id));
	port_format_hostport(&dev->port, hostport, sizeof(hostport));
	r = load_xhci(g, LOAD_ANY);
	if (r < 0)
		return qmp_failed(g, r, "listing USB controllers to attach", desc);

	for (int tries = 0; tries < ATTACH_TRIES; tries++) {
		struct xhci_ctrl *c;
		size_t ci;
		unsigned port;
		char bus[sizeof(c->id) + 2];

		if (xhci_pick(&g->xhci, ss, reserved, &ci, &port) < 0 && g->xhci_from_hint) {
			/* full by the hint: QEMU may know better (ports freed
			 * behind the tool's back) before a controller is added */
			r = load_xhci(g, LOAD_ASK);
			if (r < 0)
				return qmp_failed(g, r, "listing USB controllers to attach", desc);
			continue;
		}
		if (xhci_pick(&g->xhci, ss, reserved, &ci, &port) < 0) {
			r = xhci_add_own(g->qmp, &g->xhci, msg, sizeof(msg));
			if (r == -ENOSPC)
				return log_err(r, "VM %lu: no free %s port for %s, and no room for another USB controller (%s); detach something, or give the VM a PCI bridge",
					       g->vmid, kind, desc, msg);
			if (r < 0)
				return qmp_failed(g, r, "adding a USB controller for", desc);
			log_info("VM %lu: added USB controller %s at %s: no free %s port for %s elsewhere",
				 g->vmid, g->xhci.c[g->xhci.n - 1].id, msg, kind, desc);
			continue;
		}
		c = &g->xhci.c[ci];
		snprintf(bus, sizeof(bus), "%s.0", c->id);
		snprintf(port_s, sizeof(port_s), "%u", port);
		r = qmp_execute(g->qmp, "device_add",
				json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "driver", "usb-host", "id", id,
					  "hostbus", (json_int_t)dev->port.bus, "hostport", hostport,
					  "bus", bus, "port", port_s),
				NULL);
		if (r == -EREMOTEIO && is_duplicate(g)) {
			log_info("VM %lu: %s already attached as %s", g->vmid, desc, id);
			return 0;
		}
		if (r == -EREMOTEIO && g->xhci_from_hint) {
			/* the hint was wrong: ask QEMU, and try again */
			r = load_xhci(g, LOAD_ASK);
			if (r < 0)
				return qmp_failed(g, r, "listing USB controllers to attach", desc);
			continue;
		}
		c->taken |= 1u << port;
		/* a device added without a port sits there: try the next */
		if (r == -EREMOTEIO && strstr(qmp_error_desc(g->qmp), "in use"))
			continue;
		if (r < 0)
			return qmp_failed(g, r, "attaching", desc);
		log_info("VM %lu: attached %s as %s on %s port %u", g->vmid, desc, id, bus, port);
		xhci_note_attached(&g->xhci, ci, port, id);
		g->hint_dirty = true;
		return 0;
	}
	return log_err(-ENOSPC, "VM %lu: found no free %s port for %s", g->vmid, kind, desc);
}

/* device_del; 1 when the device was not there. Keeps the hint in step. */
static int del_device(struct guest *g, const struct usb_port *port, char *id, size_t id_size)
{
	int r;

	guest_device_id(port, id, id_size);
	r = qmp_execute(g->qmp, "device_del", json_pack("{s:s}", "id", id), NULL);
	if (r == -EREMOTEIO && strcmp(qmp_error_class(g->qmp), "DeviceNotFound") == 0)
		r = 1;
	else if (r < 0)
		return r;
	if (load_xhci(g, LOAD_HINT_ONLY) == 0) {
		xhci_note_detached(&g->xhci, id);
		g->hint_dirty = true;
	}
	return r;
}

int guest_detach(struct guest *g, const struct usb_device_info *dev)
{
	char id[GUEST_ID_MAX], desc[256];
	int r;

	guest_describe(dev, desc, sizeof(desc));
	r = del_device(g, &dev->port, id, sizeof(id));
	if (r < 0)
		return qmp_failed(g, r, "detaching", desc);
	if (r > 0)
		log_info("VM %lu: %s was not attached; nothing to detach", g->vmid, desc);
	else
		log_info("VM %lu: detached %s (%s)", g->vmid, desc, id);
	return 0;
}

static int cmp_port(const void *a, const void *b)
{
	char x[PORT_STRLEN], y[PORT_STRLEN];

	port_format(a, x, sizeof(x));
	port_format(b, y, sizeof(y));
	return strcmp(x, y);
}

int guest_held(struct guest *g, struct usb_port **ret, size_t *ret_n)
{
	json_t *list = NULL, *item;
	struct usb_port *held = NULL;
	size_t i, n = 0;
	int r;

	r = qmp_execute(g->qmp, "qom-list", json_pack("{s:s}", "path", "/machine/peripheral"), &list);
	if (r < 0)
		return qmp_failed(g, r, "listing the devices of", "the VM");
	held = calloc(json_array_size(list) + 1, sizeof(*held));
	if (!held) {
		json_decref(list);
		return -ENOMEM;
	}
	json_array_foreach(list, i, item) {
		const char *name = json_string_value(json_object_get(item, "name"));
		const char *type = json_string_value(json_object_get(item, "type"));

		if (name && type && strcmp(type, "child<usb-host>") == 0 &&
		    util_startswith(name, "usbhost") && port_parse(name + 7, &held[n]) == 0)
			n++;
	}
	json_decref(list);
	if (n > 1)
		qsort(held, n, sizeof(*held), cmp_port);
	*ret = held;
	*ret_n = n;
	return 0;
}

int guest_detach_port(struct guest *g, const struct usb_port *port, const char *why)
{
	char id[GUEST_ID_MAX], p[PORT_STRLEN];
	int r;

	port_format(port, p, sizeof(p));
	r = del_device(g, port, id, sizeof(id));
	if (r < 0)
		return qmp_failed(g, r, "detaching", p);
	if (r == 0)
		log_info("VM %lu: detached %s (%s): %s", g->vmid, p, id, why);
	return 0;
}

struct guest *guest_close(struct guest *g)
{
	if (!g)
		return NULL;
	if (g->hint_dirty)
		save_hint(g); /* still under the lock */
	qmp_close(g->qmp);
	if (g->lock_fd >= 0)
		close(g->lock_fd);
	free(g);
	return NULL;
}
