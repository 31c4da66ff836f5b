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
	unsigned long v[2];

	for (int i = 0; i < 2; i++) {
		const char *slash = strchr(s, '/');

		if (!slash || util_parse_hex_n(s, (size_t)(slash - s), 4, &v[i]) < 0)
			return false;
		s = slash + 1;
	}
	*vid = (unsigned)v[0];
	*pid = (unsigned)v[1];
	return true;
}

/* Each step below returns why the event is not one of ours, or NULL. */

static const char *parse_action(uevent_lookup_fn lookup, void *ud, struct uevent *ev)
{
	const char *action = get(lookup, ud, "ACTION");

	if (!action)
		return "no ACTION";
	if (strcmp(action, "add") == 0)
		ev->action = UEVENT_ADD;
	else if (strcmp(action, "remove") == 0)
		ev->action = UEVENT_REMOVE;
	else
		return "action is neither add nor remove";
	return NULL;
}

static const char *check_usb_device(uevent_lookup_fn lookup, void *ud)
{
	const char *subsystem = get(lookup, ud, "SUBSYSTEM");
	const char *devtype = get(lookup, ud, "DEVTYPE");

	if (subsystem && strcmp(subsystem, "usb") != 0)
		return "not a USB event";
	if (devtype && strcmp(devtype, "usb_device") != 0)
		return "not a USB device (an interface?)";
	return NULL;
}

/* DEVPATH names a device on a port, and BUSNUM (if given) agrees. */
static const char *parse_devpath(uevent_lookup_fn lookup, void *ud, struct uevent *ev)
{
	const char *devpath = get(lookup, ud, "DEVPATH");
	const char *busnum = get(lookup, ud, "BUSNUM");
	const char *name;
	unsigned long v;

	if (!devpath || !uevent_devpath_ok(devpath))
		return "DEVPATH missing or malformed";
	name = strrchr(devpath, '/') + 1;
	if (strchr(name, ':'))
		return "a USB interface, not a device";
	if (util_startswith(name, "usb"))
		return "a root hub";
	if (port_parse(name, &ev->port) < 0)
		return "DEVPATH does not end in a USB port";
	if (busnum) {
		/* udev pads it: "003" */
		while (busnum[0] == '0' && busnum[1])
			busnum++;
		if (util_parse_uint(busnum, PORT_MAX_BUS, &v) < 0 || v != ev->port.bus)
			return "BUSNUM disagrees with DEVPATH";
	}
	memcpy(ev->devpath, devpath, strlen(devpath) + 1);
	return NULL;
}

/* "9/0/1": the device class first; hubs are not ours. */
static const char *parse_type(uevent_lookup_fn lookup, void *ud, struct uevent *ev)
{
	const char *type = get(lookup, ud, "TYPE");
	const char *slash;
	unsigned long v;

	if (!type)
		return NULL;
	slash = strchr(type, '/');
	if (!slash || util_parse_uint_n(type, (size_t)(slash - type), 255, &v) < 0)
		return "TYPE malformed";
	ev->dev_class = (int)v;
	if (ev->dev_class == 9)
		return "a hub (hubs are never passed through)";
	return NULL;
}

int uevent_parse(uevent_lookup_fn lookup, void *ud, struct uevent *ret, const char **ret_reason)
{
	struct uevent ev = { .dev_class = -1 };
	const char *reason, *product;

	reason = parse_action(lookup, ud, &ev);
	if (!reason)
		reason = check_usb_device(lookup, ud);
	if (!reason)
		reason = parse_devpath(lookup, ud, &ev);
	if (!reason)
		reason = parse_type(lookup, ud, &ev);
	if (reason) {
		*ret_reason = reason;
		return 0;
	}

	product = get(lookup, ud, "PRODUCT");
	if (product)
		ev.have_ids = parse_product(product, &ev.vid, &ev.pid);
	*ret = ev;
	return 1;
}
