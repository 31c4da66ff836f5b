#include "guests/xhci.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"

static int qom_get(struct qmp *q, const char *path, const char *prop, json_t **ret)
{
	return qmp_execute(q, "qom-get", json_pack("{s:s, s:s}", "path", path, "property", prop), ret);
}

/* An integer property from 0 to max; dflt if unreadable or out of range. */
static unsigned qom_get_uint(struct qmp *q, const char *path, const char *prop, unsigned max,
			     unsigned dflt)
{
	json_t *v = NULL;
	unsigned r = dflt;

	if (qom_get(q, path, prop, &v) == 0 && json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) <= max)
		r = (unsigned)json_integer_value(v);
	json_decref(v);
	return r;
}

/* The "child[N]" links of a bus: the devices on it. Calls fn for each. */
static int for_each_child(struct qmp *q, const char *bus_path,
			  void (*fn)(struct qmp *q, const char *path, void *ud), void *ud)
{
	json_t *list = NULL, *item;
	size_t i;
	int r;

	r = qmp_execute(q, "qom-list", json_pack("{s:s}", "path", bus_path), &list);
	if (r < 0)
		return r;
	json_array_foreach(list, i, item) {
		const char *name = json_string_value(json_object_get(item, "name"));
		char path[256];

		if (!name || !util_startswith(name, "child["))
			continue;
		snprintf(path, sizeof(path), "%s/%s", bus_path, name);
		fn(q, path, ud);
	}
	json_decref(list);
	return 0;
}

void xhci_dev_id(const struct usb_port *p, char *buf, size_t n)
{
	char port[PORT_STRLEN];

	port_format(p, port, sizeof(port));
	snprintf(buf, n, "usbhost%s", port);
}

int xhci_parse_dev_id(const char *id, struct usb_port *ret)
{
	if (!id || !util_startswith(id, "usbhost"))
		return -EINVAL;
	return port_parse(id + 7, ret);
}

/* A USB device's parent_bus, "/machine/peripheral/xhci/xhci.0", names
 * its controller: the part before the bus. */
static int ctrl_of_bus(const struct xhci_set *set, const char *bus)
{
	const char *end = bus ? strrchr(bus, '/') : NULL, *start;

	if (!end)
		return -1;
	for (start = end; start > bus && start[-1] != '/'; start--)
		;
	for (size_t i = 0; i < set->n; i++)
		if (strlen(set->c[i].id) == (size_t)(end - start) &&
		    memcmp(set->c[i].id, start, (size_t)(end - start)) == 0)
			return (int)i;
	return -1;
}

/* A USB device of the guest, as the answers describe it. */
struct seen {
	bool host;	     /* one of the tool's usbhost<port> */
	struct usb_port port; /* host: the host port its id names */
	char bus[128];
	unsigned guest_port, vid, pid;
	signed char open;
};

enum what { ASK_P2, ASK_P3, ASK_BUS, ASK_PORT, ASK_VID, ASK_PID, ASK_OPEN };

/* One question of the batch: what it asks, about which controller or
 * device, and its id. */
struct ask {
	unsigned long id;
	enum what what;
	size_t index;
};

static int ask(struct qmp *q, const char *name, const char *prop, enum what what, size_t index,
	       struct ask *asks, size_t *n)
{
	char path[160];

	snprintf(path, sizeof(path), "/machine/peripheral/%s", name);
	asks[*n] = (struct ask){ .what = what, .index = index };
	return qmp_send(q, "qom-get", json_pack("{s:s, s:s}", "path", path, "property", prop),
			&asks[(*n)++].id);
}

/* An integer answer from 0 to max, else dflt. */
static unsigned uint_answer(json_t *v, json_int_t max, unsigned dflt)
{
	return json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= max
		       ? (unsigned)json_integer_value(v)
		       : dflt;
}

static void take_answer(struct xhci_set *set, struct seen *seen, const struct ask *a, json_t *v)
{
	unsigned long port;

	switch (a->what) {
	case ASK_P2:
		set->c[a->index].p2 = uint_answer(v, XHCI_MAX_PORTS, 0);
		break;
	case ASK_P3:
		set->c[a->index].p3 = uint_answer(v, XHCI_MAX_PORTS, 0);
		break;
	case ASK_BUS:
		if (json_is_string(v))
			snprintf(seen[a->index].bus, sizeof(seen[0].bus), "%s", json_string_value(v));
		break;
	case ASK_PORT:
		if (json_is_string(v) &&
		    util_parse_uint(json_string_value(v), XHCI_MAX_PORTS, &port) == 0)
			seen[a->index].guest_port = (unsigned)port;
		break;
	case ASK_VID:
		seen[a->index].vid = uint_answer(v, 0xffff, 0);
		break;
	case ASK_PID:
		seen[a->index].pid = uint_answer(v, 0xffff, 0);
		break;
	case ASK_OPEN:
		seen[a->index].open = json_is_boolean(v) ? json_is_true(v) : -1;
		break;
	}
}

static bool usable_ctrl(const char *name, const char *type, bool any)
{
	if (!name || !type)
		return false;
	/* an "any" guest's nec-usb-xhci too (what Xen's libxl adds for a
	 * usbctrl of version 3): the same ports, the same p2/p3 */
	if (any)
		return strcmp(type, "child<qemu-xhci>") == 0 || strcmp(type, "child<nec-usb-xhci>") == 0;
	return strcmp(type, "child<qemu-xhci>") == 0 &&
	       (strcmp(name, XHCI_PROXMOX_ID) == 0 || util_startswith(name, XHCI_OWN_PREFIX));
}

/* Questions about the controllers the tool may use: the port counts of
 * Proxmox's qemu-xhci and of an "any" guest's (the tool's own are 15/15). */
static int ask_ctrls(struct qmp *q, json_t *list, struct xhci_set *set, struct ask *asks,
		     size_t *n)
{
	json_t *item;
	size_t i;
	int r;

	json_array_foreach(list, i, item) {
		const char *name = json_string_value(json_object_get(item, "name"));
		const char *type = json_string_value(json_object_get(item, "type"));
		struct xhci_ctrl *c;

		if (!usable_ctrl(name, type, set->any) || set->n == XHCI_MAX_CTRLS ||
		    strlen(name) >= sizeof(set->c[0].id))
			continue;
		c = &set->c[set->n];
		snprintf(c->id, sizeof(c->id), "%s", name);
		c->ours = util_startswith(name, XHCI_OWN_PREFIX);
		c->whole = c->ours || set->any;
		if (c->ours) {
			c->p2 = c->p3 = XHCI_MAX_PORTS;
		} else if ((r = ask(q, name, "p2", ASK_P2, set->n, asks, n)) < 0 ||
			   (r = ask(q, name, "p3", ASK_P3, set->n, asks, n)) < 0) {
			return r;
		}
		set->n++;
	}
	return 0;
}

/* Questions about where each USB device sits; for the tool's usb-host
 * devices also what they are pinned to and whether they are open. */
static int ask_devs(struct qmp *q, json_t *list, struct seen *seen, size_t *n_seen,
		    struct ask *asks, size_t *n)
{
	json_t *item;
	size_t i;
	int r;

	json_array_foreach(list, i, item) {
		const char *name = json_string_value(json_object_get(item, "name"));
		const char *type = json_string_value(json_object_get(item, "type"));
		struct seen *d = &seen[*n_seen];

		if (!name || !type || !util_startswith(type, "child<usb-"))
			continue;
		d->host = strcmp(type, "child<usb-host>") == 0 && xhci_parse_dev_id(name, &d->port) == 0;
		d->open = -1;
		if ((r = ask(q, name, "parent_bus", ASK_BUS, *n_seen, asks, n)) < 0 ||
		    (r = ask(q, name, "port", ASK_PORT, *n_seen, asks, n)) < 0)
			return r;
		if (d->host && ((r = ask(q, name, "vendorid", ASK_VID, *n_seen, asks, n)) < 0 ||
				(r = ask(q, name, "productid", ASK_PID, *n_seen, asks, n)) < 0 ||
				(r = ask(q, name, "attached", ASK_OPEN, *n_seen, asks, n)) < 0))
			return r;
		(*n_seen)++;
	}
	return 0;
}

/* The devices seen, on their controllers' ports. */
static void place_seen(struct xhci_set *set, const struct seen *seen, size_t n_seen)
{
	for (size_t i = 0; i < n_seen; i++) {
		int c = ctrl_of_bus(set, seen[i].bus);

		if (c >= 0 && seen[i].guest_port >= 1)
			set->c[c].taken |= 1u << seen[i].guest_port;
		if (seen[i].host) {
			xhci_note_attached(set, c >= 0 ? (size_t)c : XHCI_NO_CTRL,
					   c >= 0 ? seen[i].guest_port : 0, &seen[i].port, seen[i].vid,
					   seen[i].pid);
			for (size_t k = 0; k < set->n_devs; k++)
				if (port_equal(&set->devs[k].port, &seen[i].port))
					set->devs[k].open = seen[i].open;
		}
	}
}

int xhci_load(struct qmp *q, bool any, struct xhci_set *ret)
{
	json_t *list = NULL;
	struct xhci_set set = { .any = any };
	struct seen *seen = NULL;
	struct ask *asks = NULL;
	size_t n = 0, n_seen = 0, total;
	int r;

	r = qmp_execute(q, "qom-list", json_pack("{s:s}", "path", "/machine/peripheral"), &list);
	if (r < 0)
		goto out;
	total = json_array_size(list);
	seen = calloc(total + 1, sizeof(*seen));
	asks = calloc(5 * total + 1, sizeof(*asks));
	if (!seen || !asks) {
		r = -ENOMEM;
		goto out;
	}
	/* Every question at once, then every answer, in one round trip (each
	 * costs QEMU about a millisecond). */
	r = ask_ctrls(q, list, &set, asks, &n);
	if (r == 0)
		r = ask_devs(q, list, seen, &n_seen, asks, &n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		json_t *v = NULL;

		r = qmp_receive(q, asks[i].id, &v);
		if (r == -EREMOTEIO) {
			r = 0; /* no such property: keep the default */
			continue;
		}
		if (r == 0)
			take_answer(&set, seen, &asks[i], v);
		json_decref(v);
	}
	if (r < 0)
		goto out;
	place_seen(&set, seen, n_seen);
	*ret = set;
out:
	free(asks);
	free(seen);
	json_decref(list);
	return r;
}

static bool pick_in(const struct xhci_ctrl *c, bool superspeed, unsigned *ret)
{
	unsigned top = superspeed ? c->p3 : c->p2;

	for (unsigned p = top; p >= 1; p--)
		if (!(c->taken & (1u << p))) {
			*ret = p;
			return true;
		}
	return false;
}

int xhci_pick(const struct xhci_set *set, bool superspeed, size_t *ret_ctrl, unsigned *ret_port)
{
	const unsigned free_port = XHCI_PROXMOX_FREE_PORT;

	/* the guest's own, then the tool's */
	for (int ours = 0; ours <= 1; ours++)
		for (size_t i = 0; i < set->n; i++)
			if (set->c[i].whole && set->c[i].ours == ours &&
			    pick_in(&set->c[i], superspeed, ret_port)) {
				*ret_ctrl = i;
				return 0;
			}
	for (size_t i = 0; i < set->n; i++) {
		const struct xhci_ctrl *c = &set->c[i];

		if (c->whole || (superspeed ? c->p3 : c->p2) < free_port || (c->taken & (1u << free_port)))
			continue;
		*ret_ctrl = i;
		*ret_port = free_port;
		return 0;
	}
	return -ENOSPC;
}

void xhci_note_attached(struct xhci_set *set, size_t ctrl, unsigned guest_port,
			const struct usb_port *port, unsigned vid, unsigned pid)
{
	struct xhci_dev *d;

	xhci_note_detached(set, port);
	if (set->n_devs == ARRAY_SIZE(set->devs))
		return;
	d = &set->devs[set->n_devs++];
	d->port = *port;
	d->ctrl = ctrl < set->n ? (unsigned char)ctrl : XHCI_NO_CTRL;
	d->guest_port = d->ctrl == XHCI_NO_CTRL ? 0 : (unsigned char)guest_port;
	d->vid = vid;
	d->pid = pid;
	d->open = -1;
	if (d->ctrl != XHCI_NO_CTRL && guest_port >= 1 && guest_port <= XHCI_MAX_PORTS)
		set->c[ctrl].taken |= 1u << guest_port;
}

void xhci_note_detached(struct xhci_set *set, const struct usb_port *port)
{
	for (size_t i = 0; i < set->n_devs; i++)
		if (port_equal(&set->devs[i].port, port)) {
			if (set->devs[i].ctrl < set->n)
				set->c[set->devs[i].ctrl].taken &= ~(1u << set->devs[i].guest_port);
			set->devs[i] = set->devs[--set->n_devs];
			return;
		}
}

const struct xhci_dev *xhci_find(const struct xhci_set *set, const struct usb_port *port)
{
	for (size_t i = 0; i < set->n_devs; i++)
		if (port_equal(&set->devs[i].port, port))
			return &set->devs[i];
	return NULL;
}

#define HINT_MAX_SIZE 65536
/* bits 1..15: the ports there are */
#define PORT_BITS 0xfffeu

/* "xhci" or "usbhotplug-xhciN": the only controllers a Proxmox VM's hint
 * may name; any guest's, any id QEMU would take */
static bool hint_ctrl_ok(const char *id, bool any)
{
	unsigned long n;

	if (any)
		return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
			       strlen(id) &&
		       id[0] && strchr("0123456789_.-", id[0]) == NULL;
	if (strcmp(id, XHCI_PROXMOX_ID) == 0)
		return true;
	return util_startswith(id, XHCI_OWN_PREFIX) &&
	       util_parse_uint(id + strlen(XHCI_OWN_PREFIX), 999, &n) == 0;
}

static int hint_line(struct xhci_set *set, const char *line, const char *stamp, bool *stamped)
{
	char id[64], port_s[PORT_STRLEN], ctrl_s[8];
	unsigned a, b, c, vid, pid;
	unsigned long ci;
	struct usb_port port;
	int end = 0;

	if (strncmp(line, "stamp ", 6) == 0) {
		*stamped = strcmp(line + 6, stamp) == 0;
		return 0;
	}
	if (sscanf(line, "ctrl %63s %u %u %x%n", id, &a, &b, &c, &end) == 4 && !line[end]) {
		struct xhci_ctrl *x;

		if (set->n == XHCI_MAX_CTRLS || !hint_ctrl_ok(id, set->any) || a > XHCI_MAX_PORTS ||
		    b > XHCI_MAX_PORTS || (c & ~PORT_BITS))
			return -EINVAL;
		x = &set->c[set->n++];
		snprintf(x->id, sizeof(x->id), "%s", id);
		x->p2 = a;
		x->p3 = b;
		x->taken = c;
		x->ours = util_startswith(id, XHCI_OWN_PREFIX);
		x->whole = x->ours || set->any;
		return 0;
	}
	if (sscanf(line, "dev %31s %7s %u %x %x%n", port_s, ctrl_s, &a, &vid, &pid, &end) == 5 &&
	    !line[end] && port_parse(port_s, &port) == 0 && vid <= 0xffff && pid <= 0xffff) {
		if (strcmp(ctrl_s, "-") == 0 && a == 0) {
			xhci_note_attached(set, XHCI_NO_CTRL, 0, &port, vid, pid);
			return 0;
		}
		if (util_parse_uint(ctrl_s, XHCI_MAX_CTRLS - 1, &ci) < 0 || ci >= set->n || a < 1 ||
		    a > XHCI_MAX_PORTS)
			return -EINVAL;
		xhci_note_attached(set, ci, a, &port, vid, pid);
		return 0;
	}
	return -EINVAL;
}

int xhci_hint_parse(const char *text, size_t len, const char *stamp, bool any,
		    struct xhci_set *ret)
{
	struct xhci_set set = { .any = any };
	bool stamped = false;

	if (!stamp[0])
		return -EINVAL;
	for (const char *p = text, *end = text + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char line[160];

		if (l >= sizeof(line) || memchr(p, '\0', l))
			return -EINVAL;
		memcpy(line, p, l);
		line[l] = '\0';
		if (l && hint_line(&set, line, stamp, &stamped) < 0)
			return -EINVAL;
		p += l + 1;
	}
	if (!stamped)
		return -EINVAL;
	*ret = set;
	return 0;
}

static void hint_name(const char *key, const char *suffix, char *buf, size_t n)
{
	snprintf(buf, n, "%s.ports%s", key, suffix);
}

int xhci_hint_read(int dirfd, const char *key, const char *stamp, bool any,
		   struct xhci_set *ret)
{
	_cleanup_free_ char *text = NULL;
	char name[96];
	size_t len;
	int r;

	hint_name(key, "", name, sizeof(name));
	r = util_read_file_at(dirfd, name, true, HINT_MAX_SIZE, &text, &len);
	if (r < 0)
		return r == -ENOENT ? r : -EINVAL;
	return xhci_hint_parse(text, len, stamp, any, ret);
}

int xhci_hint_write(int dirfd, const char *key, const char *stamp, const struct xhci_set *set)
{
	char name[96], port[PORT_STRLEN];
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	hint_name(key, "", name, sizeof(name));
	f = open_memstream(&text, &len);
	if (!f)
		return -ENOMEM;
	fprintf(f, "stamp %s\n", stamp);
	for (size_t i = 0; i < set->n; i++)
		fprintf(f, "ctrl %s %u %u %x\n", set->c[i].id, set->c[i].p2, set->c[i].p3,
			set->c[i].taken & PORT_BITS);
	for (size_t i = 0; i < set->n_devs; i++) {
		const struct xhci_dev *d = &set->devs[i];

		port_format(&d->port, port, sizeof(port));
		if (d->ctrl == XHCI_NO_CTRL)
			fprintf(f, "dev %s - 0 %04x %04x\n", port, d->vid, d->pid);
		else
			fprintf(f, "dev %s %u %u %04x %04x\n", port, d->ctrl, d->guest_port, d->vid,
				d->pid);
	}
	r = ferror(f) ? -ENOMEM : 0;
	if (fclose(f) != 0 || !text)
		r = -ENOMEM;
	if (r == 0)
		r = util_write_file_at(dirfd, name, text, len);
	free(text);
	return r;
}

int xhci_hint_remove(int dirfd, const char *key)
{
	char name[96];

	hint_name(key, "", name, sizeof(name));
	return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
}

bool xhci_is_superspeed(const char *speed)
{
	unsigned long v;

	return util_parse_uint(speed, 1000000, &v) == 0 && v >= 5000;
}

/* Where the tool's own controller may go: a bus (the device_add "bus"),
 * its QOM path (whose children tell the slots in use), and the slots. */
struct spot {
	char bus[64];
	char qom[160];
	unsigned first, last;
};

/* Slots of Proxmox's PCI bridges that its own address map leaves free
 * (qemu-server's PCI.pm: pci.1 uses 1-30, pci.2 1-24, pci.3 1-31, pci.4
 * 1-3), highest first: Proxmox never hot-plugs anything there. */
static const struct {
	const char *bridge;
	unsigned first, last;
} free_slots[] = {
	{ "pci.1", 31, 31 },
	{ "pci.2", 25, 31 },
	{ "pci.4", 4, 31 },
};

static void note_slot(struct qmp *q, const char *path, void *ud)
{
	uint32_t *used = ud;
	unsigned a = qom_get_uint(q, path, "addr", 255, 256);

	/* addr is the devfn: slot << 3 | function; a device without one
	 * (behind a PCIe port) fills its bus */
	*used |= a < 256 ? 1u << (a >> 3) : 0xffffffffu;
}

static void add_spot(struct spot *spots, size_t *n, size_t max, const char *bus, const char *qom,
		     unsigned first, unsigned last)
{
	if (*n == max || strlen(bus) >= sizeof(spots[0].bus))
		return;
	snprintf(spots[*n].bus, sizeof(spots[0].bus), "%s", bus);
	snprintf(spots[*n].qom, sizeof(spots[0].qom), "%s", qom);
	spots[*n].first = first;
	spots[*n].last = last;
	(*n)++;
}

#define MAX_SPOTS 16

/* An "any" guest's places: its PCI bridges (every slot), an i440fx root
 * bus (hot-plug capable; Xen's HVM machine is one too), its
 * pcie-root-ports (slot 0, when empty). */
static int any_spots(struct qmp *q, struct spot *spots, size_t *n)
{
	struct spot ports[MAX_SPOTS];
	json_t *list = NULL, *item, *root = NULL;
	size_t i, n_ports = 0;
	int r;

	r = qmp_execute(q, "qom-list", json_pack("{s:s}", "path", "/machine/peripheral"), &list);
	if (r < 0)
		return r;
	json_array_foreach(list, i, item) {
		const char *name = json_string_value(json_object_get(item, "name"));
		const char *type = json_string_value(json_object_get(item, "type"));
		char qom[160];

		if (!name || !type || strlen(name) > 60)
			continue;
		snprintf(qom, sizeof(qom), "/machine/peripheral/%s/%s", name, name);
		if (strcmp(type, "child<pci-bridge>") == 0)
			add_spot(spots, n, MAX_SPOTS, name, qom, 1, 31);
		else if (strcmp(type, "child<pcie-root-port>") == 0)
			add_spot(ports, &n_ports, MAX_SPOTS, name, qom, 0, 0);
	}
	json_decref(list);
	r = qmp_execute(q, "qom-list", json_pack("{s:s}", "path", "/machine/i440fx/pci.0"), &root);
	json_decref(root);
	if (r < 0 && r != -EREMOTEIO)
		return r;
	if (r == 0)
		add_spot(spots, n, MAX_SPOTS, "pci.0", "/machine/i440fx/pci.0", 1, 31);
	for (i = 0; i < n_ports; i++)
		add_spot(spots, n, MAX_SPOTS, ports[i].bus, ports[i].qom, 0, 0);
	return 0;
}

int xhci_add_in_free_slot(struct qmp *q, bool any, json_t *props, char *msg, size_t msg_size)
{
	struct spot spots[MAX_SPOTS];
	size_t n_spots = 0;
	char addr[12];
	int r;

	if (any) {
		r = any_spots(q, spots, &n_spots);
		if (r < 0)
			goto out;
	} else {
		for (size_t b = 0; b < ARRAY_SIZE(free_slots); b++) {
			char qom[160];

			snprintf(qom, sizeof(qom), "/machine/peripheral/%s/%s", free_slots[b].bridge,
				 free_slots[b].bridge);
			add_spot(spots, &n_spots, MAX_SPOTS, free_slots[b].bridge, qom,
				 free_slots[b].first, free_slots[b].last);
		}
	}

	/* The slots are read through QOM: query-pci lists what is behind a
	 * bridge only once the guest firmware has numbered its bus
	 * (measured: a guest paused before booting shows none). */
	for (size_t b = 0; b < n_spots; b++) {
		uint32_t used = 0;

		r = for_each_child(q, spots[b].qom, note_slot, &used);
		if (r == -EREMOTEIO)
			continue; /* no such bus */
		if (r < 0)
			goto out;
		for (unsigned slot = spots[b].last + 1; slot-- > spots[b].first;) {
			json_t *args;

			if (used & (1u << slot))
				continue;
			snprintf(addr, sizeof(addr), "0x%x", slot);
			args = json_deep_copy(props);
			if (!args || json_object_set_new(args, "bus", json_string(spots[b].bus)) < 0 ||
			    json_object_set_new(args, "addr", json_string(addr)) < 0) {
				json_decref(args);
				r = -ENOMEM;
				goto out;
			}
			r = qmp_execute(q, "device_add", args, NULL);
			if (r == -EREMOTEIO)
				continue; /* taken after all, or refused: try the next */
			if (r < 0)
				goto out;
			snprintf(msg, msg_size, "%s.%s", spots[b].bus, addr);
			goto out;
		}
	}
	if (any)
		snprintf(msg, msg_size, "no free slot on a PCI bridge, an i440fx root bus or an empty pcie-root-port");
	else
		snprintf(msg, msg_size, "no free slot on its PCI bridges pci.1 (slot 31), pci.2 (25-31) or pci.4 (4-31)");
	r = -ENOSPC;
out:
	json_decref(props);
	return r;
}

int xhci_add_own(struct qmp *q, struct xhci_set *set, char *msg, size_t msg_size)
{
	char id[sizeof(set->c[0].id)];
	unsigned n = 0;
	int r;

	if (set->n == XHCI_MAX_CTRLS) {
		snprintf(msg, msg_size, "it has %d USB controllers already", XHCI_MAX_CTRLS);
		return -ENOSPC;
	}
	for (bool taken = true; taken; n++) {
		snprintf(id, sizeof(id), XHCI_OWN_PREFIX "%u", n);
		taken = false;
		for (size_t i = 0; i < set->n; i++)
			taken |= strcmp(set->c[i].id, id) == 0;
	}
	r = xhci_add_in_free_slot(q, set->any,
				  json_pack("{s:s, s:s, s:i, s:i}", "driver", "qemu-xhci", "id", id,
					    "p2", XHCI_MAX_PORTS, "p3", XHCI_MAX_PORTS),
				  msg, msg_size);
	if (r < 0)
		return r;
	struct xhci_ctrl *c = &set->c[set->n++];

	memset(c, 0, sizeof(*c));
	snprintf(c->id, sizeof(c->id), "%s", id);
	c->p2 = c->p3 = XHCI_MAX_PORTS;
	c->ours = c->whole = true;
	return 0;
}
