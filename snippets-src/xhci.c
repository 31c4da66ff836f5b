#include "xhci.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static bool is_xhci_type(const char *t)
{
	return t && (strcmp(t, "child<qemu-xhci>") == 0 || strcmp(t, "child<nec-usb-xhci>") == 0);
}

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

/* A USB device's parent_bus, "/machine/peripheral/xhci/xhci.0", names
 * its controller: the part before the bus. */
static struct xhci_ctrl *ctrl_of_bus(struct xhci_set *set, const char *bus)
{
	const char *end = bus ? strrchr(bus, '/') : NULL, *start;

	if (!end)
		return NULL;
	for (start = end; start > bus && start[-1] != '/'; start--)
		;
	for (size_t i = 0; i < set->n; i++)
		if (strlen(set->c[i].id) == (size_t)(end - start) &&
		    memcmp(set->c[i].id, start, (size_t)(end - start)) == 0)
			return &set->c[i];
	return NULL;
}

/* One question of the batch: what it asks about, and its id. */
struct ask {
	unsigned long id;
	size_t ctrl; /* p2/p3: which controller */
	char what;   /* '2', '3': p2, p3; 'b': parent_bus; 'p': port */
	char *bus;   /* 'p': the device's parent_bus, from the 'b' before */
	const char *name; /* 'p': the device's id (in the qom-list answer) */
};

static int send_get(struct qmp *q, const char *name, const char *prop, struct ask *a)
{
	char path[160];

	snprintf(path, sizeof(path), "/machine/peripheral/%s", name);
	return qmp_send(q, "qom-get", json_pack("{s:s, s:s}", "path", path, "property", prop), &a->id);
}

static void take_answer(struct xhci_set *set, struct ask *asks, size_t i, size_t n, json_t *v)
{
	unsigned long port;

	if ((asks[i].what == '2' || asks[i].what == '3') && json_is_integer(v) &&
	    json_integer_value(v) >= 0 && json_integer_value(v) <= XHCI_MAX_PORTS) {
		struct xhci_ctrl *c = &set->c[asks[i].ctrl];

		*(asks[i].what == '2' ? &c->p2 : &c->p3) = (unsigned)json_integer_value(v);
	} else if (asks[i].what == 'b' && json_is_string(v) && i + 1 < n) {
		asks[i + 1].bus = strdup(json_string_value(v));
	} else if (asks[i].what == 'p' && json_is_string(v) &&
		   util_parse_uint(json_string_value(v), XHCI_MAX_PORTS, &port) == 0 && port > 0) {
		struct xhci_ctrl *c = asks[i].bus ? ctrl_of_bus(set, asks[i].bus)
				      : set->n == 1 ? &set->c[0] : NULL;

		if (c) {
			c->taken |= 1u << port;
			if (asks[i].name && util_startswith(asks[i].name, "usbhost"))
				xhci_note_attached(set, (size_t)(c - set->c), (unsigned)port, asks[i].name);
		}
	}
}

int xhci_load(struct qmp *q, struct xhci_set *ret)
{
	json_t *list = NULL, *item;
	struct ask *asks = NULL;
	size_t i, n = 0;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = qmp_execute(q, "qom-list", json_pack("{s:s}", "path", "/machine/peripheral"), &list);
	if (r < 0)
		return r;
	asks = calloc(2 * json_array_size(list) + 1, sizeof(*asks));
	if (!asks) {
		json_decref(list);
		return -ENOMEM;
	}

	/* Every question at once, then every answer, in one round trip. Each
	 * costs QEMU about a millisecond, so only what is needed is asked:
	 * the port counts of a controller that is neither Proxmox's nor ours
	 * (both are p2=15,p3=15), and the port of each USB device with an id,
	 * with its bus unless there is one controller and it is a usb-host.
	 * (A device without an id holds a port we cannot see; device_add then
	 * says "in use", and the caller tries the next.) */
	json_array_foreach(list, i, item) {
		const char *name = json_string_value(json_object_get(item, "name"));
		const char *type = json_string_value(json_object_get(item, "type"));
		struct xhci_ctrl *c;

		if (!name || !is_xhci_type(type) || ret->n == XHCI_MAX_CTRLS ||
		    strlen(name) >= sizeof(ret->c[0].id))
			continue;
		c = &ret->c[ret->n];
		snprintf(c->id, sizeof(c->id), "%s", name);
		c->ours = util_startswith(name, XHCI_OWN_PREFIX);
		if (c->ours || strcmp(name, XHCI_PROXMOX_ID) == 0) {
			c->p2 = c->p3 = XHCI_MAX_PORTS;
		} else {
			c->p2 = c->p3 = 4; /* QEMU's defaults, should the answers not come */
			asks[n] = (struct ask){ .ctrl = ret->n, .what = '2' };
			asks[n + 1] = (struct ask){ .ctrl = ret->n, .what = '3' };
			r = send_get(q, name, "p2", &asks[n]);
			if (r == 0)
				r = send_get(q, name, "p3", &asks[n + 1]);
			if (r < 0)
				goto out;
			n += 2;
		}
		ret->n++;
	}
	json_array_foreach(list, i, item) {
		const char *name = json_string_value(json_object_get(item, "name"));
		const char *type = json_string_value(json_object_get(item, "type"));

		if (!name || !type || !util_startswith(type, "child<usb-"))
			continue;
		/* the bus, unless it is plain: one controller, and a passed
		 * host device (a tablet may well sit on the UHCI bus) */
		if (ret->n > 1 || strcmp(type, "child<usb-host>") != 0) {
			asks[n] = (struct ask){ .what = 'b' };
			r = send_get(q, name, "parent_bus", &asks[n++]);
			if (r < 0)
				goto out;
		}
		asks[n] = (struct ask){ .what = 'p', .name = name };
		r = send_get(q, name, "port", &asks[n++]);
		if (r < 0)
			goto out;
	}
	for (i = 0; i < n; i++) {
		json_t *v = NULL;

		r = qmp_receive(q, asks[i].id, &v);
		if (r == -EREMOTEIO)
			continue; /* no such property: keep the default */
		if (r < 0)
			goto out;
		take_answer(ret, asks, i, n, v);
		json_decref(v);
	}
	r = 0;
out:
	for (i = 0; i < n; i++)
		free(asks[i].bus);
	free(asks);
	json_decref(list);
	return r;
}

static bool pick_in(const struct xhci_ctrl *c, bool superspeed, unsigned reserved, unsigned *ret)
{
	unsigned top = superspeed ? c->p3 : c->p2;

	for (unsigned p = top; p > reserved && p >= 1; p--)
		if (!(c->taken & (1u << p))) {
			*ret = p;
			return true;
		}
	return false;
}

int xhci_pick(const struct xhci_set *set, bool superspeed, unsigned reserved, size_t *ret_ctrl,
	      unsigned *ret_port)
{
	/* ours, then Proxmox's, then whatever else the VM has */
	for (int pass = 0; pass < 3; pass++)
		for (size_t i = 0; i < set->n; i++) {
			const struct xhci_ctrl *c = &set->c[i];
			bool proxmox = strcmp(c->id, XHCI_PROXMOX_ID) == 0;

			if (pass == 0 ? !c->ours : pass == 1 ? !proxmox : c->ours || proxmox)
				continue;
			if (pick_in(c, superspeed, proxmox ? reserved : 0, ret_port)) {
				*ret_ctrl = i;
				return 0;
			}
		}
	return -ENOSPC;
}

void xhci_note_attached(struct xhci_set *set, size_t ctrl, unsigned port, const char *id)
{
	struct xhci_dev *d;

	xhci_note_detached(set, id);
	if (set->n_devs == ARRAY_SIZE(set->devs) || strlen(id) >= sizeof(d->id))
		return;
	d = &set->devs[set->n_devs++];
	snprintf(d->id, sizeof(d->id), "%s", id);
	d->ctrl = (unsigned char)ctrl;
	d->port = (unsigned char)port;
	set->c[ctrl].taken |= 1u << port;
}

void xhci_note_detached(struct xhci_set *set, const char *id)
{
	for (size_t i = 0; i < set->n_devs; i++)
		if (strcmp(set->devs[i].id, id) == 0) {
			if (set->devs[i].ctrl < set->n)
				set->c[set->devs[i].ctrl].taken &= ~(1u << set->devs[i].port);
			set->devs[i] = set->devs[--set->n_devs];
			return;
		}
}

#define HINT_MAX_SIZE 65536

int xhci_hint_read(const char *path, const char *stamp, struct xhci_set *ret)
{
	_cleanup_free_ char *text = NULL;
	struct xhci_set set = { 0 };
	char *line, *save = NULL;
	bool stamped = false;
	size_t len;
	int r;

	r = util_read_file(path, true, HINT_MAX_SIZE, &text, &len);
	if (r < 0)
		return r == -ENOENT ? r : -EINVAL;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char id[64];
		unsigned a, b, c;
		int end = 0;

		if (strncmp(line, "stamp ", 6) == 0) {
			stamped = strcmp(line + 6, stamp) == 0;
		} else if (sscanf(line, "ctrl %63s %u %u %x%n", id, &a, &b, &c, &end) == 4 &&
			   !line[end] && set.n < XHCI_MAX_CTRLS && a <= XHCI_MAX_PORTS &&
			   b <= XHCI_MAX_PORTS && strlen(id) < sizeof(set.c[0].id)) {
			struct xhci_ctrl *x = &set.c[set.n++];

			snprintf(x->id, sizeof(x->id), "%s", id);
			x->p2 = a;
			x->p3 = b;
			x->taken = c;
			x->ours = util_startswith(id, XHCI_OWN_PREFIX);
		} else if (sscanf(line, "dev %47s %u %u%n", id, &a, &b, &end) == 3 && !line[end] &&
			   a < set.n && b >= 1 && b <= XHCI_MAX_PORTS) {
			xhci_note_attached(&set, a, b, id);
		} else {
			return -EINVAL;
		}
	}
	if (!stamped)
		return -EINVAL;
	*ret = set;
	return 0;
}

int xhci_hint_write(const char *path, const char *stamp, const struct xhci_set *set)
{
	char tmp[4096];
	FILE *f;
	int fd, ok;

	if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	fprintf(f, "stamp %s\n", stamp);
	for (size_t i = 0; i < set->n; i++)
		fprintf(f, "ctrl %s %u %u %x\n", set->c[i].id, set->c[i].p2, set->c[i].p3,
			set->c[i].taken);
	for (size_t i = 0; i < set->n_devs; i++)
		fprintf(f, "dev %s %u %u\n", set->devs[i].id, set->devs[i].ctrl, set->devs[i].port);
	ok = !ferror(f);
	if (fclose(f) != 0 || !ok || rename(tmp, path) < 0) {
		int r = -errno;

		unlink(tmp);
		return r ? r : -EIO;
	}
	return 0;
}

bool xhci_is_superspeed(const char *speed)
{
	unsigned long v;

	return util_parse_uint(speed, 1000000, &v) == 0 && v >= 5000;
}

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

	/* addr is the devfn: slot << 3 | function */
	if (a < 256)
		*used |= 1u << (a >> 3);
}

static int slots_used(struct qmp *q, const char *bridge, uint32_t *ret)
{
	char bus[64];

	*ret = 0;
	snprintf(bus, sizeof(bus), "/machine/peripheral/%s/%s", bridge, bridge);
	return for_each_child(q, bus, note_slot, ret);
}

int xhci_add_own(struct qmp *q, struct xhci_set *set, char *msg, size_t msg_size)
{
	char id[sizeof(set->c[0].id)], addr[8];
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

	/* The bridges' slots are read through QOM: query-pci lists what is
	 * behind a bridge only once the guest firmware has numbered its bus
	 * (measured: a guest paused before booting shows none). */
	for (size_t b = 0; b < ARRAY_SIZE(free_slots); b++) {
		uint32_t used;

		r = slots_used(q, free_slots[b].bridge, &used);
		if (r == -EREMOTEIO)
			continue; /* no such bridge */
		if (r < 0)
			return r;
		for (unsigned slot = free_slots[b].last; slot >= free_slots[b].first; slot--) {
			if (used & (1u << slot))
				continue;
			snprintf(addr, sizeof(addr), "0x%x", slot);
			r = qmp_execute(q, "device_add",
					json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}", "driver", "qemu-xhci",
						  "id", id, "bus", free_slots[b].bridge, "addr", addr, "p2",
						  XHCI_MAX_PORTS, "p3", XHCI_MAX_PORTS),
					NULL);
			if (r == -EREMOTEIO)
				continue; /* taken after all, or refused: try the next */
			if (r < 0)
				return r;
			struct xhci_ctrl *c = &set->c[set->n++];

			memset(c, 0, sizeof(*c));
			snprintf(c->id, sizeof(c->id), "%s", id);
			c->p2 = c->p3 = XHCI_MAX_PORTS;
			c->ours = true;
			snprintf(msg, msg_size, "%s.%s", free_slots[b].bridge, addr);
			return 0;
		}
	}
	snprintf(msg, msg_size, "no free slot on its PCI bridges pci.1 (slot 31), pci.2 (25-31) or pci.4 (4-31)");
	return -ENOSPC;
}
