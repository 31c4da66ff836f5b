#include "guests/domxml.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void domxml_alias(const struct usb_port *port, char *buf, size_t n)
{
	char id[XHCI_DEV_ID_MAX];

	xhci_dev_id(port, id, sizeof(id));
	for (char *c = id; *c; c++)
		if (*c == '.')
			*c = '_';
	snprintf(buf, n, DOMXML_ALIAS_PREFIX "%s", id);
}

/* The port of such an alias; 0 or -EINVAL. */
static int port_of_alias(const char *alias, struct usb_port *ret)
{
	size_t len = strlen(alias);
	char id[DOMXML_ALIAS_MAX];

	if (!util_startswith(alias, DOMXML_ALIAS_PREFIX) || len >= sizeof(id) || strchr(alias, '.'))
		return -EINVAL;
	memcpy(id, alias + strlen(DOMXML_ALIAS_PREFIX), len - strlen(DOMXML_ALIAS_PREFIX) + 1);
	for (char *c = id; *c; c++)
		if (*c == '_')
			*c = '.';
	return xhci_parse_dev_id(id, ret);
}

/* The next element <name ...> at or after p (not a longer name), or NULL. */
static const char *next_tag(const char *p, const char *name)
{
	size_t len = strlen(name);

	while ((p = strchr(p, '<'))) {
		p++;
		if (strncmp(p, name, len) == 0 && strchr(" />", p[len]))
			return p - 1;
	}
	return NULL;
}

/* An attribute of the tag at tag (up to its '>'): 0, or -ENOENT. */
static int attr(const char *tag, const char *name, char *buf, size_t n)
{
	const char *end = strchr(tag, '>'), *p = tag;
	size_t len = strlen(name);

	while (end && (p = strstr(p, name)) && p < end) {
		if (p[-1] == ' ' && p[len] == '=' && (p[len + 1] == '\'' || p[len + 1] == '"')) {
			const char *v = p + len + 2, *close = strchr(v, p[len + 1]);

			if (!close || close > end || (size_t)(close - v) >= n)
				return -ENOENT;
			memcpy(buf, v, (size_t)(close - v));
			buf[close - v] = '\0';
			return 0;
		}
		p += len;
	}
	return -ENOENT;
}

static int attr_uint(const char *tag, const char *name, unsigned long max, unsigned long *ret)
{
	unsigned long x;
	char v[32];

	if (attr(tag, name, v, sizeof(v)) < 0)
		return -ENOENT;
	if (!util_startswith(v, "0x"))
		return util_parse_uint(v, max, ret);
	/* ids are written 0x046d; *ret is left alone unless it is one */
	if (util_parse_hex_n(v + 2, strlen(v + 2), 2 * sizeof(x), &x) < 0 || x > max)
		return -EINVAL;
	*ret = x;
	return 0;
}

/* The span of the element starting at tag, up to its closing tag. */
static const char *element_end(const char *tag, const char *name)
{
	char close[32];

	snprintf(close, sizeof(close), "</%s>", name);
	return strstr(tag, close);
}

/* Within [from, to): the first <name ...> tag, or NULL. */
static const char *tag_within(const char *from, const char *to, const char *name)
{
	const char *p = next_tag(from, name);

	return p && p < to ? p : NULL;
}

int domxml_held(const char *xml, struct xhci_set *ret)
{
	struct xhci_set set = { .any = true };

	for (const char *h = xml; (h = next_tag(h, "hostdev"));) {
		const char *end = element_end(h, "hostdev"), *a, *src, *tag;
		unsigned long vid = 0, pid = 0;
		char alias[64], type[16];
		struct usb_port port;

		if (!end)
			break;
		if (attr(h, "type", type, sizeof(type)) == 0 && strcmp(type, "usb") == 0 &&
		    (a = tag_within(h, end, "alias")) && attr(a, "name", alias, sizeof(alias)) == 0 &&
		    port_of_alias(alias, &port) == 0) {
			if ((src = tag_within(h, end, "source"))) {
				if ((tag = tag_within(src, end, "vendor")))
					(void)attr_uint(tag, "id", 0xffff, &vid);
				if ((tag = tag_within(src, end, "product")))
					(void)attr_uint(tag, "id", 0xffff, &pid);
			}
			xhci_note_attached(&set, XHCI_NO_CTRL, 0, &port, (unsigned)vid, (unsigned)pid);
		}
		h = end;
	}
	*ret = set;
	return 0;
}

bool domxml_passes(const char *xml, const struct usb_device_info *dev)
{
	for (const char *h = xml; (h = next_tag(h, "hostdev"));) {
		const char *end = element_end(h, "hostdev"), *a, *src, *tag;
		unsigned long vid = 0, pid = 0, bus = 0, devnum = 0;
		bool by_ids = false, by_address = false;
		char alias[64], type[16];

		if (!end)
			break;
		if (attr(h, "type", type, sizeof(type)) < 0 || strcmp(type, "usb") != 0 ||
		    ((a = tag_within(h, end, "alias")) && attr(a, "name", alias, sizeof(alias)) == 0 &&
		     util_startswith(alias, DOMXML_ALIAS_PREFIX "usbhost")) ||
		    !(src = tag_within(h, end, "source"))) {
			h = end;
			continue;
		}
		if ((tag = tag_within(src, end, "vendor")) && attr_uint(tag, "id", 0xffff, &vid) == 0 &&
		    (tag = tag_within(src, end, "product")) && attr_uint(tag, "id", 0xffff, &pid) == 0)
			by_ids = true;
		if ((tag = tag_within(src, end, "address")) && attr_uint(tag, "bus", 999, &bus) == 0 &&
		    attr_uint(tag, "device", 127, &devnum) == 0)
			by_address = true;
		/* what libvirt would match: the ids, the address, or both */
		if ((by_ids || by_address) &&
		    (!by_ids || (dev->have_ids && vid == dev->vid && pid == dev->pid)) &&
		    (!by_address || (bus == dev->port.bus && devnum == dev->devnum)))
			return true;
		h = end;
	}
	return false;
}

int domxml_pick_port(const char *xml, bool superspeed, unsigned *ret_bus, unsigned *ret_port)
{
	bool any = false;

	(void)superspeed; /* libvirt gives an xHCI's USB 2 and 3 halves the same count */
	for (const char *c = xml; (c = next_tag(c, "controller")); c++) {
		char type[16], model[32];
		unsigned long index, ports = 4; /* QEMU's default for both models */
		uint32_t taken = 0;

		if (attr(c, "type", type, sizeof(type)) < 0 || strcmp(type, "usb") != 0 ||
		    attr(c, "model", model, sizeof(model)) < 0 ||
		    (strcmp(model, "qemu-xhci") != 0 && strcmp(model, "nec-xhci") != 0) ||
		    attr_uint(c, "index", 255, &index) < 0)
			continue;
		any = true;
		(void)attr_uint(c, "ports", XHCI_MAX_PORTS, &ports);
		/* every device on that bus, hubs' ports ("1.2") by their root port */
		for (const char *a = xml; (a = next_tag(a, "address")); a++) {
			char atype[16], port[16];
			unsigned long bus, root;

			if (attr(a, "type", atype, sizeof(atype)) == 0 && strcmp(atype, "usb") == 0 &&
			    attr_uint(a, "bus", 255, &bus) == 0 && bus == index &&
			    attr(a, "port", port, sizeof(port)) == 0) {
				port[strcspn(port, ".")] = '\0';
				if (util_parse_uint(port, 31, &root) == 0)
					taken |= 1u << root;
			}
		}
		for (unsigned p = (unsigned)ports; p >= 1; p--)
			if (!(taken & (1u << p))) {
				*ret_bus = (unsigned)index;
				*ret_port = p;
				return 0;
			}
	}
	return any ? -ENOSPC : -ENOENT;
}

int domxml_disks(const char *xml, struct vdisk_set *ret, bool *ret_scsi)
{
	memset(ret, 0, sizeof(*ret));
	*ret_scsi = false;
	for (const char *c = xml; (c = next_tag(c, "controller"));) {
		char type[16], model[32];

		if (attr(c, "type", type, sizeof(type)) == 0 && strcmp(type, "scsi") == 0 &&
		    attr(c, "model", model, sizeof(model)) == 0 && util_startswith(model, "virtio-scsi"))
			*ret_scsi = true;
		c++;
	}
	for (const char *h = xml; (h = next_tag(h, "disk"));) {
		const char *end = element_end(h, "disk"), *a, *tag;
		char alias[64], bus[16] = "";
		struct vdisk *e;

		if (!end)
			break;
		if ((a = tag_within(h, end, "alias")) && attr(a, "name", alias, sizeof(alias)) == 0 &&
		    util_startswith(alias, DOMXML_ALIAS_PREFIX DISK_ID_PREFIX) &&
		    strlen(alias) - strlen(DOMXML_ALIAS_PREFIX) < sizeof(e->id) && ret->n < VDISK_MAX) {
			e = &ret->d[ret->n++];
			memset(e, 0, sizeof(*e));
			memcpy(e->id, alias + strlen(DOMXML_ALIAS_PREFIX), strlen(alias) - strlen(DOMXML_ALIAS_PREFIX) + 1);
			if ((tag = tag_within(h, end, "target")))
				(void)attr(tag, "bus", bus, sizeof(bus));
			snprintf(e->driver, sizeof(e->driver), "%s",
				 strcmp(bus, "scsi") == 0 ? "scsi-hd" : strcmp(bus, "virtio") == 0 ? "virtio-blk-pci" : bus);
			if ((tag = tag_within(h, end, "source")))
				(void)attr(tag, "dev", e->file, sizeof(e->file));
		}
		h = end;
	}
	return 0;
}

int domxml_pick_target(const char *xml, const char *prefix, char *buf, size_t n)
{
	/* sda..sdz, then sdaa..sdzz: the first no disk of the domain has */
	for (unsigned i = 0; i < 26 + 26 * 26; i++) {
		char name[8], tag[32];
		bool used = false;

		if (i < 26)
			snprintf(name, sizeof(name), "%s%c", prefix, 'a' + i);
		else
			snprintf(name, sizeof(name), "%s%c%c", prefix, 'a' + (i - 26) / 26, 'a' + (i - 26) % 26);
		for (const char *c = xml; !used && (c = next_tag(c, "target")); c++)
			used = attr(c, "dev", tag, sizeof(tag)) == 0 && strcmp(tag, name) == 0;
		if (!used)
			return snprintf(buf, n, "%s", name) < (int)n ? 0 : -ENAMETOOLONG;
	}
	return -ENOSPC;
}

char *domxml_escape(const char *s)
{
	char *out = malloc(strlen(s) * 6 + 1), *o = out;

	for (; out && *s; s++) {
		const char *ent = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;"
				: *s == '\'' ? "&apos;" : *s == '"' ? "&quot;" : NULL;

		if (ent)
			o = stpcpy(o, ent);
		else
			*o++ = *s;
	}
	if (out)
		*o = '\0';
	return out;
}
