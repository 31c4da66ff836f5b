#include "host/usbtree.h"

#include <errno.h>
#include <fcntl.h>
#include <libudev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"

/* sysfs prints "%04x" for an id, "%02x" for a class: 1 to max_digits hex
 * digits. Clears *ok when the attribute is missing or malformed. */
static unsigned hex_attr(struct udev_device *d, const char *name, size_t max_digits, int *ok)
{
	const char *v = udev_device_get_sysattr_value(d, name);
	unsigned long x;

	if (!v || util_parse_hex_n(v, strlen(v), max_digits, &x) < 0) {
		*ok = 0;
		return 0;
	}
	return (unsigned)x;
}

/* The device's address on its bus (1 to 127), or 0. */
static unsigned devnum_attr(struct udev_device *d)
{
	const char *v = udev_device_get_sysattr_value(d, "devnum");
	unsigned long n;

	return v && util_parse_uint(v, 127, &n) == 0 ? (unsigned)n : 0;
}

/* Copies a string attribute; one that does not fit is dropped whole. */
static void copy_attr(struct udev_device *d, const char *name, char *dst, size_t n)
{
	const char *v = udev_device_get_sysattr_value(d, name);

	if (!v || util_strlcpy(dst, v, n) < 0)
		dst[0] = '\0';
}

/* Whether the device offers a mass storage interface: udev's
 * ID_USB_INTERFACES (":080650:030101:", read from its descriptors when it
 * was added; always there once udev has seen the device), else, for a
 * device udev has not seen, the class of its first interface. Only a
 * device with a serial is asked: a disk rule never takes one without. */
static bool has_mass_storage(struct udev_device *d, const char *name, bool has_serial)
{
	const char *ifs = udev_device_get_property_value(d, "ID_USB_INTERFACES"), *v;
	char attr[PORT_STRLEN + 32];

	if (ifs && ifs[0]) {
		for (const char *p = ifs; (p = strchr(p, ':')) && p[1]; p++)
			if (p[1] == '0' && p[2] == '8')
				return true;
		return false;
	}
	if (!has_serial)
		return false;
	snprintf(attr, sizeof(attr), "%s:1.0/bInterfaceClass", name);
	v = udev_device_get_sysattr_value(d, attr);
	return v && strcmp(v, "08") == 0;
}

/* 0, or -ENODEV when d is no USB device (interface, root hub, odd name).
 * storage: tell mass_storage (it costs reading udev's record). */
static int read_device(struct udev_device *d, bool storage, struct usb_device_info *ret)
{
	struct usb_device_info info = { 0 };
	const char *name = udev_device_get_sysname(d);
	const char *devpath = udev_device_get_devpath(d);
	int ok = 1;
	unsigned cls;

	if (!name || port_parse(name, &info.port) < 0)
		return -ENODEV;
	cls = hex_attr(d, "bDeviceClass", 2, &ok);
	info.dev_class = ok ? (int)cls : -1;
	ok = 1;
	info.vid = hex_attr(d, "idVendor", 4, &ok);
	info.pid = hex_attr(d, "idProduct", 4, &ok);
	info.have_ids = ok;
	info.devnum = devnum_attr(d);
	if (!devpath || port_controller(devpath, info.controller, sizeof(info.controller)) < 0)
		info.controller[0] = '\0';
	info.serial_known = true;
	copy_attr(d, "serial", info.serial, sizeof(info.serial));
	info.mass_storage = storage && has_mass_storage(d, name, info.serial[0] != '\0');
	copy_attr(d, "speed", info.speed, sizeof(info.speed));
	copy_attr(d, "product", info.product, sizeof(info.product));
	copy_attr(d, "manufacturer", info.manufacturer, sizeof(info.manufacturer));
	*ret = info;
	return 0;
}

/* struct usb_device_info starts with its port */
static int cmp_port(const void *a, const void *b)
{
	return port_compare(&((const struct usb_device_info *)a)->port,
			    &((const struct usb_device_info *)b)->port);
}

int usbtree_collect(const char *subsystem, size_t size,
		    int (*read)(struct udev_device *d, void *out, const void *ctx), const void *ctx,
		    int (*cmp)(const void *a, const void *b), void **ret, size_t *ret_n)
{
	struct udev *udev = udev_new();
	struct udev_enumerate *e = udev ? udev_enumerate_new(udev) : NULL;
	struct udev_list_entry *it;
	char *list = NULL;
	size_t n = 0, cap = 0;
	int r = -ENOMEM;

	if (!e)
		goto out;
	udev_enumerate_add_match_subsystem(e, subsystem);
	r = udev_enumerate_scan_devices(e);
	if (r < 0)
		goto out;
	udev_list_entry_foreach(it, udev_enumerate_get_list_entry(e)) {
		struct udev_device *d = udev_device_new_from_syspath(udev, udev_list_entry_get_name(it));

		if (!d)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char *nl = realloc(list, ncap * size);

			if (!nl) {
				udev_device_unref(d);
				r = -ENOMEM;
				goto out;
			}
			list = nl;
			cap = ncap;
		}
		if (read(d, list + n * size, ctx) == 0)
			n++;
		udev_device_unref(d);
	}
	if (n > 1)
		qsort(list, n, size, cmp);
	*ret = list;
	*ret_n = n;
	list = NULL;
	r = 0;
out:
	free(list);
	if (e)
		udev_enumerate_unref(e);
	if (udev)
		udev_unref(udev);
	return r;
}

static int read_any(struct udev_device *d, void *out, const void *ctx)
{
	return read_device(d, *(const bool *)ctx, out);
}

int usbtree_scan(bool storage, struct usb_device_info **ret, size_t *ret_n)
{
	void *list;
	int r = usbtree_collect("usb", sizeof(**ret), read_any, &storage, cmp_port, &list, ret_n);

	if (r == 0)
		*ret = list;
	return r;
}

int usbtree_get(const char *devpath, bool storage, struct usb_device_info *ret)
{
	struct udev *udev;
	struct udev_device *d;
	char syspath[4096];
	int r;

	if (snprintf(syspath, sizeof(syspath), "/sys%s", devpath) >= (int)sizeof(syspath))
		return -ENAMETOOLONG;
	udev = udev_new();
	if (!udev)
		return -ENOMEM;
	d = udev_device_new_from_syspath(udev, syspath);
	if (!d) {
		udev_unref(udev);
		return -ENODEV;
	}
	r = read_device(d, storage, ret);
	udev_device_unref(d);
	udev_unref(udev);
	return r;
}

int usbtree_devpath(const char *name, char *buf, size_t n)
{
	struct udev *udev = udev_new();
	struct udev_device *d;
	const char *p;
	int r = -ENODEV;

	if (!udev)
		return -ENOMEM;
	d = udev_device_new_from_subsystem_sysname(udev, "usb", name);
	if (d && (p = udev_device_get_devpath(d)))
		r = util_strlcpy(buf, p, n) < 0 ? -ENAMETOOLONG : 0;
	udev_device_unref(d);
	udev_unref(udev);
	return r;
}

/* A small decimal sysfs attribute of the device whose directory is dirfd:
 * -1 when it cannot be read. */
static long peek_attr(int dirfd, const char *attr)
{
	unsigned long v;
	char buf[16];
	ssize_t len;
	int fd = openat(dirfd, attr, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return -1;
	buf[len] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return util_parse_uint(buf, 65535, &v) == 0 ? (long)v : -1;
}

int usbtree_peek(const struct usb_port *port, struct usb_device_info *ret)
{
	char path[PORT_STRLEN + 32] = "/sys/bus/usb/devices/";
	long busnum, devnum;
	int dirfd;

	port_format(port, path + strlen(path), sizeof(path) - strlen(path));
	dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return -ENODEV;
	busnum = peek_attr(dirfd, "busnum");
	devnum = peek_attr(dirfd, "devnum");
	close(dirfd);
	if (busnum != (long)port->bus || devnum < 0)
		return -ENODEV;
	memset(ret, 0, sizeof(*ret));
	ret->port = *port;
	ret->devnum = (unsigned)devnum;
	return 0;
}
