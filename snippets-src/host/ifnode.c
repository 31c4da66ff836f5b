#include "host/ifnode.h"

#include <errno.h>
#include <libudev.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"
#include "host/disk.h"

bool ifnode_subsystem(const char *subsystem)
{
	static const char *const known[] = { "tty", "hidraw", "video4linux", "sound" };

	for (size_t i = 0; subsystem && i < ARRAY_SIZE(known); i++)
		if (strcmp(subsystem, known[i]) == 0)
			return true;
	return false;
}

bool ifnode_name_ok(const char *name)
{
	const char *c = name;

	if (!*name)
		return false;
	for (; *c; c++)
		if (*c <= 0x20 || *c >= 0x7f || *c == '\\')
			return false;
	for (c = name;;) {
		size_t len = strcspn(c, "/");

		if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		if (!c[len])
			return true;
		c += len + 1;
	}
}

/* The first of the space-separated links below /dev/serial, /dev/v4l or
 * /dev/snd, a by-id one if there is one, without "/dev/"; "" when none. */
static void pick_link(const char *devlinks, char *buf, size_t n)
{
	static const char *const under[] = { "/dev/serial/", "/dev/v4l/", "/dev/snd/" };

	buf[0] = '\0';
	for (int by_id = 1; by_id >= 0; by_id--)
		for (const char *p = devlinks; p && *p;) {
			size_t len = strcspn(p, " ");
			char one[IFNODE_LINK_MAX + 8];

			if (len > 5 && len < sizeof(one)) {
				memcpy(one, p, len);
				one[len] = '\0';
				for (size_t k = 0; k < ARRAY_SIZE(under); k++)
					if (util_startswith(one, under[k]) && (!by_id || strstr(one, "/by-id/")) &&
					    ifnode_name_ok(one + 5) && util_strlcpy(buf, one + 5, n) == 0)
						return;
			}
			p += len;
			p += strspn(p, " ");
		}
}

static int fill(uevent_lookup_fn get, void *ud, struct ifnode *ret, const char **reason)
{
	const char *devpath = get("DEVPATH", ud), *devname = get("DEVNAME", ud);
	const char *major = get("MAJOR", ud), *minor = get("MINOR", ud);
	unsigned long ma, mi;

	*reason = NULL;
	memset(ret, 0, sizeof(*ret));
	if (!ifnode_subsystem(get("SUBSYSTEM", ud)))
		*reason = "not a tty, hidraw, video4linux or sound node";
	else if (!devpath || !uevent_devpath_ok(devpath) || disk_port_of(devpath, &ret->port) < 0)
		*reason = "a node on no USB device";
	else if (!devname || !util_startswith(devname, "/dev/") || !ifnode_name_ok(devname + 5) ||
		 util_strlcpy(ret->name, devname + 5, sizeof(ret->name)) < 0)
		*reason = "DEVNAME missing or malformed";
	else if (!major || util_parse_uint(major, 4095, &ma) < 0 || !minor ||
		 util_parse_uint(minor, 1048575, &mi) < 0)
		*reason = "MAJOR or MINOR missing or malformed";
	if (*reason)
		return 0;
	ret->major = (unsigned)ma;
	ret->minor = (unsigned)mi;
	pick_link(get("DEVLINKS", ud), ret->link, sizeof(ret->link));
	return 1;
}

int ifnode_from_event(uevent_lookup_fn lookup, void *ud, enum uevent_action *ret_action,
		      struct ifnode *ret, const char **ret_reason)
{
	const char *action = lookup("ACTION", ud);
	struct ifnode n;

	if (!action || (strcmp(action, "add") != 0 && strcmp(action, "remove") != 0)) {
		*ret_reason = "neither add nor remove";
		return 0;
	}
	if (!fill(lookup, ud, &n, ret_reason))
		return 0;
	*ret_action = strcmp(action, "add") == 0 ? UEVENT_ADD : UEVENT_REMOVE;
	*ret = n;
	return 1;
}

/* A udev device's properties, as the environment of an event. */
static const char *dev_lookup(const char *key, void *ud)
{
	struct udev_device *d = ud;

	if (strcmp(key, "DEVPATH") == 0)
		return udev_device_get_devpath(d);
	if (strcmp(key, "SUBSYSTEM") == 0)
		return udev_device_get_subsystem(d);
	return udev_device_get_property_value(d, key);
}

int ifnode_list(const char *devpath, struct ifnode *ret, size_t max, size_t *ret_n)
{
	char syspath[UEVENT_DEVPATH_MAX + 8];
	struct udev *udev;
	struct udev_device *usb = NULL;
	struct udev_enumerate *e = NULL;
	struct udev_list_entry *it;
	struct usb_port port;
	size_t n = 0;
	int r = -ENOMEM;

	if (!uevent_devpath_ok(devpath) || disk_port_of(devpath, &port) < 0)
		return -ENODEV;
	snprintf(syspath, sizeof(syspath), "/sys%s", devpath);
	udev = udev_new();
	if (udev && !(usb = udev_device_new_from_syspath(udev, syspath)))
		r = -ENODEV;
	if (usb && (e = udev_enumerate_new(udev)) && udev_enumerate_add_match_parent(e, usb) >= 0 &&
	    udev_enumerate_add_match_property(e, "DEVNAME", "/dev/*") >= 0 &&
	    udev_enumerate_scan_devices(e) >= 0) {
		r = 0;
		udev_list_entry_foreach(it, udev_enumerate_get_list_entry(e)) {
			struct udev_device *d = udev_device_new_from_syspath(udev, udev_list_entry_get_name(it));
			const char *why;
			struct ifnode one;

			if (d && n < max && fill(dev_lookup, d, &one, &why) &&
			    port_equal(&one.port, &port))
				ret[n++] = one;
			if (d)
				udev_device_unref(d);
		}
	}
	if (e)
		udev_enumerate_unref(e);
	if (usb)
		udev_device_unref(usb);
	if (udev)
		udev_unref(udev);
	if (r == 0)
		*ret_n = n;
	return r;
}
