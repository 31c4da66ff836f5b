#include "host/uevent.h"

#include <string.h>

#include "base/util.h"

static const char *get(uevent_lookup_fn lookup, void *ud, const char *key)
{
	const char *v = lookup(key, ud);

	return v && v[0] ? v : NULL;
}

/* "/devices/..." made of printable ASCII, no "." or ".." component, no
 * empty component. */
bool uevent_devpath_ok(const char *p)
{
	size_t len = strlen(p);

	if (len >= UEVENT_DEVPATH_MAX || !util_startswith(p, "/devices/"))
		return false;
	for (const char *c = p; *c; c++)
		if (*c <= 0x20 || *c >= 0x7f)
			return false;
	for (const char *c = p; *c;) {
		const char *next = strchr(c + 1, '/');
		size_t clen = next ? (size_t)(next - c - 1) : strlen(c + 1);

		if (clen == 0 || (clen == 1 && c[1] == '.') || (clen == 2 && c[1] == '.' && c[2] == '.'))
			return false;
		if (!next)
			break;
		c = next;
	}
	return true;
}

/* "46d/c52b/1201": hex vendor and product, no zero padding. */
static bool parse_product(const char *s, unsigned *vid, unsigned *pid)
{
	unsigned v[2] = { 0, 0 };

	for (int i = 0; i < 2; i++) {
		int digits = 0;

		for (; *s && *s != '/'; s++, digits++) {
			char c = *s;
			unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
				     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
				     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
							    : 16;
			if (d == 16 || digits == 4)
				return false;
			v[i] = v[i] * 16 + d;
		}
		if (digits == 0 || *s != '/')
			return false;
		s++;
	}
	*vid = v[0];
	*pid = v[1];
	return true;
}

int uevent_parse(uevent_lookup_fn lookup, void *ud, struct uevent *ret, const char **ret_reason)
{
	const char *action, *devpath, *subsystem, *devtype, *busnum, *type, *product, *name;
	struct uevent ev = { .dev_class = -1 };
	unsigned long v;

	action = get(lookup, ud, "ACTION");
	if (!action) {
		*ret_reason = "no ACTION";
		return 0;
	}
	if (strcmp(action, "add") == 0)
		ev.action = UEVENT_ADD;
	else if (strcmp(action, "remove") == 0)
		ev.action = UEVENT_REMOVE;
	else {
		*ret_reason = "action is neither add nor remove";
		return 0;
	}

	subsystem = get(lookup, ud, "SUBSYSTEM");
	if (subsystem && strcmp(subsystem, "usb") != 0) {
		*ret_reason = "not a USB event";
		return 0;
	}
	devtype = get(lookup, ud, "DEVTYPE");
	if (devtype && strcmp(devtype, "usb_device") != 0) {
		*ret_reason = "not a USB device (an interface?)";
		return 0;
	}

	devpath = get(lookup, ud, "DEVPATH");
	if (!devpath || !uevent_devpath_ok(devpath)) {
		*ret_reason = "DEVPATH missing or malformed";
		return 0;
	}
	name = strrchr(devpath, '/') + 1;
	if (strchr(name, ':')) {
		*ret_reason = "a USB interface, not a device";
		return 0;
	}
	if (util_startswith(name, "usb")) {
		*ret_reason = "a root hub";
		return 0;
	}
	if (port_parse(name, &ev.port) < 0) {
		*ret_reason = "DEVPATH does not end in a USB port";
		return 0;
	}
	busnum = get(lookup, ud, "BUSNUM");
	if (busnum) {
		/* udev pads it: "003" */
		while (busnum[0] == '0' && busnum[1])
			busnum++;
		if (util_parse_uint(busnum, PORT_MAX_BUS, &v) < 0 || v != ev.port.bus) {
			*ret_reason = "BUSNUM disagrees with DEVPATH";
			return 0;
		}
	}

	type = get(lookup, ud, "TYPE");
	if (type) {
		const char *slash = strchr(type, '/');

		if (!slash || util_parse_uint_n(type, (size_t)(slash - type), 255, &v) < 0) {
			*ret_reason = "TYPE malformed";
			return 0;
		}
		ev.dev_class = (int)v;
		if (ev.dev_class == 9) {
			*ret_reason = "a hub (hubs are never passed through)";
			return 0;
		}
	}

	product = get(lookup, ud, "PRODUCT");
	if (product)
		ev.have_ids = parse_product(product, &ev.vid, &ev.pid);

	memcpy(ev.devpath, devpath, strlen(devpath) + 1);
	*ret = ev;
	return 1;
}
