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

struct guest {
	unsigned long vmid;
	int lock_fd;
	struct qmp *qmp;
	char bus[128]; /* the xHCI bus, "xhci.0"; found on first attach */
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

/* qom type names of the xHCI controllers QEMU has */
static bool is_xhci_type(const char *t)
{
	return t && (strcmp(t, "child<qemu-xhci>") == 0 || strcmp(t, "child<nec-usb-xhci>") == 0);
}

/* Picks the VM's xHCI controller: Proxmox's "xhci" if it is there, else
 * the first one found. */
static int find_xhci_bus(struct guest *g)
{
	json_t *list = NULL, *item;
	const char *found = NULL;
	size_t i;
	int r;

	if (g->bus[0])
		return 0;
	r = qmp_execute(g->qmp, "qom-list", json_pack("{s:s}", "path", "/machine/peripheral"), &list);
	if (r < 0)
		return r;
	json_array_foreach(list, i, item) {
		const char *name = json_string_value(json_object_get(item, "name"));

		if (!name || !is_xhci_type(json_string_value(json_object_get(item, "type"))))
			continue;
		if (!found || strcmp(name, "xhci") == 0)
			found = name;
	}
	if (found)
		snprintf(g->bus, sizeof(g->bus), "%s.0", found);
	json_decref(list);
	return found ? 0 : -ENODEV;
}

static int qmp_failed(struct guest *g, int r, const char *what, const char *desc)
{
	if (r == -EREMOTEIO)
		return log_err(r, "VM %lu: %s %s: QEMU says: %s", g->vmid, what, desc,
			       qmp_error_desc(g->qmp));
	return log_err(r, "VM %lu: %s %s: %s", g->vmid, what, desc, strerror(-r));
}

int guest_attach(struct guest *g, const struct usb_device_info *dev)
{
	char id[GUEST_ID_MAX], hostport[PORT_STRLEN], desc[256];
	json_t *args;
	int r;

	guest_describe(dev, desc, sizeof(desc));
	r = find_xhci_bus(g);
	if (r == -ENODEV)
		return log_err(r, "VM %lu: no xHCI (USB 3) controller to attach %s to; give the VM one (e.g. a usbN device with usb3=1, or qemu-xhci in args)",
			       g->vmid, desc);
	if (r < 0)
		return qmp_failed(g, r, "listing devices to attach", desc);

	guest_device_id(&dev->port, id, sizeof(id));
	port_format_hostport(&dev->port, hostport, sizeof(hostport));
	args = json_pack("{s:s, s:s, s:I, s:s, s:s}", "driver", "usb-host", "id", id,
			 "hostbus", (json_int_t)dev->port.bus, "hostport", hostport, "bus", g->bus);
	if (!args)
		return -ENOMEM;
	r = qmp_execute(g->qmp, "device_add", args, NULL);
	if (r == -EREMOTEIO && (strstr(qmp_error_desc(g->qmp), "Duplicate device ID") ||
				strstr(qmp_error_desc(g->qmp), "Duplicate ID"))) {
		log_info("VM %lu: %s already attached as %s", g->vmid, desc, id);
		return 0;
	}
	if (r < 0)
		return qmp_failed(g, r, "attaching", desc);
	log_info("VM %lu: attached %s as %s on %s", g->vmid, desc, id, g->bus);
	return 0;
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
