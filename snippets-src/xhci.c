#include "xhci.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void note_port(struct qmp *q, const char *path, void *ud)
{
	struct xhci_ctrl *c = ud;
	json_t *v = NULL;
	unsigned long port;

	/* "" when the device was added without a port: then unknown */
	if (qom_get(q, path, "port", &v) == 0 && json_is_string(v) &&
	    util_parse_uint(json_string_value(v), XHCI_MAX_PORTS, &port) == 0 && port > 0)
		c->taken |= 1u << port;
	json_decref(v);
}

int xhci_load(struct qmp *q, struct xhci_set *ret)
{
	json_t *list = NULL, *item;
	size_t i;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = qmp_execute(q, "qom-list", json_pack("{s:s}", "path", "/machine/peripheral"), &list);
	if (r < 0)
		return r;
	json_array_foreach(list, i, item) {
		const char *name = json_string_value(json_object_get(item, "name"));
		struct xhci_ctrl *c;
		char path[128], bus[160];

		if (!name || !is_xhci_type(json_string_value(json_object_get(item, "type"))) ||
		    ret->n == XHCI_MAX_CTRLS || strlen(name) >= sizeof(c->id))
			continue;
		c = &ret->c[ret->n++];
		snprintf(c->id, sizeof(c->id), "%s", name);
		c->ours = util_startswith(name, XHCI_OWN_PREFIX);
		snprintf(path, sizeof(path), "/machine/peripheral/%s", name);
		/* QEMU's defaults are 4 and 4 */
		c->p2 = qom_get_uint(q, path, "p2", XHCI_MAX_PORTS, 4);
		c->p3 = qom_get_uint(q, path, "p3", XHCI_MAX_PORTS, 4);
		snprintf(bus, sizeof(bus), "%s/%s.0", path, name);
		r = for_each_child(q, bus, note_port, c);
		if (r < 0)
			break;
	}
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
