#include "guest.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "log.h"
#include "pveconf.h"
#include "qmp.h"
#include "util.h"
#include "xhci.h"

struct guest {
	const struct settings *s;
	unsigned long vmid;
	int lock_fd;
	struct qmp *qmp;
	bool xhci_loaded; /* on the first attach */
	struct xhci_set xhci;
	unsigned reserved; /* ports 1..reserved of "xhci" are Proxmox's usbN */
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

bool guest_is_running(const struct settings *s, unsigned long vmid)
{
	char path[SETTINGS_PATH_MAX + 32], buf[32];
	_cleanup_close_ int fd = -1;
	unsigned long pid;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%lu.pid", s->qmp_socket_dir, vmid);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (util_parse_uint(buf, INT32_MAX, &pid) < 0 || pid < 2)
		return false;
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
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
	if (r == -EREMOTEIO)
		return log_err(r, "VM %lu: %s %s: QEMU says: %s", g->vmid, what, desc,
			       qmp_error_desc(g->qmp));
	return log_err(r, "VM %lu: %s %s: %s", g->vmid, what, desc, strerror(-r));
}

/* The controllers and their ports, and the ports Proxmox keeps for the
 * VM's usbN (usbN sits at port N+1 of "xhci"). */
static int load_xhci(struct guest *g)
{
	struct pve_vm pve;
	int r;

	if (g->xhci_loaded)
		return 0;
	r = xhci_load(g->qmp, &g->xhci);
	if (r < 0)
		return r;
	g->reserved = 0;
	if (pveconf_load(g->s->vm_config_dir, g->vmid, &pve) == 0)
		for (size_t i = 0; i < pve.n; i++)
			if (pve.usb[i].index + 1 > g->reserved)
				g->reserved = pve.usb[i].index + 1;
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

int guest_attach(struct guest *g, const struct usb_device_info *dev)
{
	char id[GUEST_ID_MAX], hostport[PORT_STRLEN], desc[256], msg[160], port_s[8];
	bool ss = xhci_is_superspeed(dev->speed);
	const char *kind = ss ? "USB 3" : "USB 2";
	int r;

	guest_describe(dev, desc, sizeof(desc));
	guest_device_id(&dev->port, id, sizeof(id));
	port_format_hostport(&dev->port, hostport, sizeof(hostport));
	r = load_xhci(g);
	if (r < 0)
		return qmp_failed(g, r, "listing USB controllers to attach", desc);

	for (int tries = 0; tries < ATTACH_TRIES; tries++) {
		struct xhci_ctrl *c;
		size_t ci;
		unsigned port;
		char bus[sizeof(c->id) + 2];

		if (xhci_pick(&g->xhci, ss, g->reserved, &ci, &port) < 0) {
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
		c->taken |= 1u << port;
		/* a device added without a port sits there: try the next */
		if (r == -EREMOTEIO && strstr(qmp_error_desc(g->qmp), "in use"))
			continue;
		if (r < 0)
			return qmp_failed(g, r, "attaching", desc);
		log_info("VM %lu: attached %s as %s on %s port %u", g->vmid, desc, id, bus, port);
		return 0;
	}
	return log_err(-ENOSPC, "VM %lu: found no free %s port for %s", g->vmid, kind, desc);
}

int guest_detach(struct guest *g, const struct usb_device_info *dev)
{
	char id[GUEST_ID_MAX], desc[256];
	int r;

	guest_describe(dev, desc, sizeof(desc));
	guest_device_id(&dev->port, id, sizeof(id));
	r = qmp_execute(g->qmp, "device_del", json_pack("{s:s}", "id", id), NULL);
	if (r == -EREMOTEIO && strcmp(qmp_error_class(g->qmp), "DeviceNotFound") == 0) {
		log_info("VM %lu: %s was not attached; nothing to detach", g->vmid, desc);
		return 0;
	}
	if (r < 0)
		return qmp_failed(g, r, "detaching", desc);
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

	guest_device_id(port, id, sizeof(id));
	port_format(port, p, sizeof(p));
	r = qmp_execute(g->qmp, "device_del", json_pack("{s:s}", "id", id), NULL);
	if (r == -EREMOTEIO && strcmp(qmp_error_class(g->qmp), "DeviceNotFound") == 0)
		return 0;
	if (r < 0)
		return qmp_failed(g, r, "detaching", p);
	log_info("VM %lu: detached %s (%s): %s", g->vmid, p, id, why);
	return 0;
}

struct guest *guest_close(struct guest *g)
{
	if (!g)
		return NULL;
	qmp_close(g->qmp);
	if (g->lock_fd >= 0)
		close(g->lock_fd);
	free(g);
	return NULL;
}
