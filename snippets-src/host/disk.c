#include "host/disk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libudev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#define BY_ID "/dev/disk/by-id/"

int disk_port_of(const char *devpath, struct usb_port *ret)
{
	const char *c = devpath;
	bool found = false;

	/* the last component that is a USB port: the device, not one of its
	 * interfaces ("3-4.1:1.0") or what the SCSI layer puts below */
	while ((c = strchr(c, '/'))) {
		const char *next = strchr(++c, '/');
		size_t len = next ? (size_t)(next - c) : strlen(c);
		struct usb_port p;

		if (port_parse_n(c, len, &p) == 0) {
			*ret = p;
			found = true;
		}
	}
	return found ? 0 : -EINVAL;
}

/* A by-id link's name fit to put after a directory. */
static bool link_ok(const char *s, size_t len)
{
	if (len == 0 || len >= DISK_LINK_MAX || (s[0] == '.' && (len == 1 || (len == 2 && s[1] == '.'))))
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] <= ' ' || s[i] >= 0x7f || s[i] == '/')
			return false;
	return true;
}

/* The disk's /dev/disk/by-id link out of DEVLINKS: a usb- one, else an
 * ata- one (a bridge that passes ATA through), else any. */
static void pick_link(const char *devlinks, char *buf, size_t n)
{
	static const char *const prefer[] = { "usb-", "ata-", "" };

	buf[0] = '\0';
	for (size_t k = 0; k < ARRAY_SIZE(prefer) && devlinks; k++) {
		for (const char *p = devlinks; *p;) {
			size_t len = strcspn(p, " ");

			if (len > strlen(BY_ID) && strncmp(p, BY_ID, strlen(BY_ID)) == 0) {
				const char *name = p + strlen(BY_ID);
				size_t nlen = len - strlen(BY_ID);

				if (util_startswith(name, prefer[k]) && link_ok(name, nlen) && nlen < n) {
					memcpy(buf, name, nlen);
					buf[nlen] = '\0';
					return;
				}
			}
			p += len;
			p += strspn(p, " ");
		}
	}
}

static void copy_value(uevent_lookup_fn get, void *ud, const char *key, char *dst, size_t n)
{
	const char *v = get(key, ud);

	if (!v || util_strlcpy(dst, v, n) < 0)
		dst[0] = '\0';
}

static int fill(uevent_lookup_fn get, void *ud, struct usb_disk *d, const char **reason)
{
	const char *subsystem = get("SUBSYSTEM", ud), *devtype = get("DEVTYPE", ud);
	const char *devpath = get("DEVPATH", ud), *major = get("MAJOR", ud), *minor = get("MINOR", ud);
	const char *name;
	unsigned long v;

	memset(d, 0, sizeof(*d));
	if (!subsystem || strcmp(subsystem, "block") != 0) {
		*reason = "not a block device";
		return 0;
	}
	if (!devtype || strcmp(devtype, "disk") != 0) {
		*reason = "not a whole disk (a partition?)";
		return 0;
	}
	if (!devpath || !uevent_devpath_ok(devpath)) {
		*reason = "DEVPATH missing or malformed";
		return 0;
	}
	if (disk_port_of(devpath, &d->port) < 0) {
		*reason = "a disk on no USB device";
		return 0;
	}
	name = strrchr(devpath, '/') + 1;
	if (util_strlcpy(d->name, name, sizeof(d->name)) < 0) {
		*reason = "a disk name too long to be real";
		return 0;
	}
	if (!major || util_parse_uint(major, 4095, &v) < 0) {
		*reason = "MAJOR missing or malformed";
		return 0;
	}
	d->major = (unsigned)v;
	if (!minor || util_parse_uint(minor, 1048575, &v) < 0) {
		*reason = "MINOR missing or malformed";
		return 0;
	}
	d->minor = (unsigned)v;
	memcpy(d->devpath, devpath, strlen(devpath) + 1);
	copy_value(get, ud, "ID_SERIAL", d->serial, sizeof(d->serial));
	memcpy(d->serial_bare, d->serial, sizeof(d->serial));
	usbconf_strip_lun(d->serial_bare);
	copy_value(get, ud, "ID_SERIAL_SHORT", d->serial_short, sizeof(d->serial_short));
	copy_value(get, ud, "ID_USB_SERIAL", d->usb_serial, sizeof(d->usb_serial));
	copy_value(get, ud, "ID_USB_SERIAL_SHORT", d->usb_serial_short, sizeof(d->usb_serial_short));
	copy_value(get, ud, "ID_MODEL", d->model, sizeof(d->model));
	pick_link(get("DEVLINKS", ud), d->link, sizeof(d->link));
	return 1;
}

int disk_from_event(uevent_lookup_fn lookup, void *ud, enum uevent_action *ret_action,
		    struct usb_disk *ret, const char **ret_reason)
{
	const char *action = lookup("ACTION", ud), *media = lookup("DISK_MEDIA_CHANGE", ud);

	/* a card reader's medium in or out: the disk is looked at again, as
	 * at its add (one without a medium is let go of) */
	if (action && strcmp(action, "change") == 0 && media && strcmp(media, "1") == 0)
		action = "add";
	if (!action || (strcmp(action, "add") != 0 && strcmp(action, "remove") != 0)) {
		*ret_reason = "action is neither add nor remove (nor a change of medium)";
		return 0;
	}
	*ret_action = strcmp(action, "add") == 0 ? UEVENT_ADD : UEVENT_REMOVE;
	return fill(lookup, ud, ret, ret_reason);
}

static const char *udev_get(const char *key, void *ud)
{
	struct udev_device *d = ud;

	if (strcmp(key, "DEVPATH") == 0)
		return udev_device_get_devpath(d);
	if (strcmp(key, "SUBSYSTEM") == 0)
		return udev_device_get_subsystem(d);
	if (strcmp(key, "DEVTYPE") == 0)
		return udev_device_get_devtype(d);
	return udev_device_get_property_value(d, key);
}

static int read_disk(struct udev_device *dev, struct usb_disk *ret)
{
	const char *reason, *size;
	unsigned long long sectors;
	char *end;

	if (fill(udev_get, dev, ret, &reason) <= 0)
		return -ENODEV;
	size = udev_device_get_sysattr_value(dev, "size");
	if (size && size[0]) {
		errno = 0;
		sectors = strtoull(size, &end, 10);
		if (!errno && *end == '\0' && sectors < UINT64_MAX / 512)
			ret->size = (uint64_t)sectors * 512;
	}
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	const struct usb_disk *x = a, *y = b;
	size_t lx = strlen(x->name), ly = strlen(y->name);

	/* sdb before sdaa */
	return lx != ly ? (lx > ly) - (lx < ly) : strcmp(x->name, y->name);
}

static int read_any(struct udev_device *d, void *out, const void *ctx)
{
	(void)ctx;
	return read_disk(d, out);
}

int disk_scan(struct usb_disk **ret, size_t *ret_n)
{
	void *list;
	int r = usbtree_collect("block", sizeof(**ret), read_any, NULL, cmp_name, &list, ret_n);

	if (r == 0)
		*ret = list;
	return r;
}

static struct udev_device *open_dev(struct udev *udev, const char *devpath)
{
	char syspath[UEVENT_DEVPATH_MAX + 8];

	snprintf(syspath, sizeof(syspath), "/sys%s", devpath);
	return udev_device_new_from_syspath(udev, syspath);
}

int disk_get(const char *devpath, struct usb_disk *ret)
{
	struct udev *udev;
	struct udev_device *d;
	int r;

	if (!uevent_devpath_ok(devpath))
		return -ENODEV;
	udev = udev_new();
	if (!udev)
		return -ENOMEM;
	d = open_dev(udev, devpath);
	r = d ? read_disk(d, ret) : -ENODEV;
	if (d)
		udev_device_unref(d);
	udev_unref(udev);
	return r;
}

void disk_serials(const struct usb_disk *d, struct disk_serials *ret)
{
	ret->s[0] = d->serial;
	ret->s[1] = d->serial_short;
	ret->s[2] = d->usb_serial;
	ret->s[3] = d->usb_serial_short;
	ret->s[4] = d->serial_bare;
}

const char *disk_key(const struct usb_disk *d)
{
	return d->serial[0]	    ? d->serial
	       : d->serial_short[0] ? d->serial_short
	       : d->link[0]	    ? d->link
				    : d->name;
}

void disk_qemu_id(const char *key, char *buf, size_t n)
{
	/* FNV-1a, 64 bits: stable across runs and hosts */
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const unsigned char *c = (const unsigned char *)key; *c; c++) {
		h ^= *c;
		h *= 0x100000001b3ULL;
	}
	snprintf(buf, n, DISK_ID_PREFIX "%016" PRIx64, h);
}

int disk_node_path(const char *dir, const struct usb_disk *d, char *buf, size_t n)
{
	struct stat st;

	if (!d->link[0])
		return -ENOENT;
	if (snprintf(buf, n, "%s/%s", dir, d->link) >= (int)n)
		return -ENAMETOOLONG;
	if (stat(buf, &st) < 0)
		return -errno == -ENOENT ? -ESTALE : -errno;
	if (!S_ISBLK(st.st_mode) || major(st.st_rdev) != d->major || minor(st.st_rdev) != d->minor)
		return -ESTALE;
	return 0;
}

struct devnums {
	size_t n;
	dev_t dev[64];
	char name[64][DISK_NAME_MAX];
	char syspath[64][UEVENT_DEVPATH_MAX + 8];
};

/* The disk and its partitions. */
static void gather(const struct usb_disk *d, struct devnums *ret)
{
	struct udev *udev = udev_new();
	struct udev_device *disk = udev ? open_dev(udev, d->devpath) : NULL;
	struct udev_enumerate *e = NULL;
	struct udev_list_entry *it;

	ret->n = 1;
	ret->dev[0] = makedev(d->major, d->minor);
	snprintf(ret->name[0], sizeof(ret->name[0]), "%s", d->name);
	snprintf(ret->syspath[0], sizeof(ret->syspath[0]), "/sys%s", d->devpath);
	if (disk && (e = udev_enumerate_new(udev))) {
		udev_enumerate_add_match_parent(e, disk);
		udev_enumerate_add_match_subsystem(e, "block");
		udev_enumerate_scan_devices(e);
		udev_list_entry_foreach(it, udev_enumerate_get_list_entry(e)) {
			struct udev_device *p = udev_device_new_from_syspath(udev, udev_list_entry_get_name(it));
			const char *type = p ? udev_device_get_devtype(p) : NULL;

			if (type && strcmp(type, "partition") == 0 && ret->n < ARRAY_SIZE(ret->dev)) {
				ret->dev[ret->n] = udev_device_get_devnum(p);
				snprintf(ret->name[ret->n], sizeof(ret->name[0]), "%s",
					 udev_device_get_sysname(p));
				snprintf(ret->syspath[ret->n], sizeof(ret->syspath[0]), "%s",
					 udev_device_get_syspath(p));
				ret->n++;
			}
			if (p)
				udev_device_unref(p);
		}
		udev_enumerate_unref(e);
	}
	if (disk)
		udev_device_unref(disk);
	if (udev)
		udev_unref(udev);
}

static int find_dev(const struct devnums *s, dev_t dev)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->dev[i] == dev)
			return (int)i;
	return -1;
}

/* Each line of a /proc file (they have no size to read up to). */
static int each_line(const char *path, int (*fn)(const char *line, void *ud), void *ud)
{
	char *line = NULL;
	size_t cap = 0;
	FILE *f = fopen(path, "re");
	int r = 0;

	if (!f)
		return 0; /* nothing to tell from */
	while (r == 0 && getline(&line, &cap, f) > 0)
		r = fn(line, ud);
	free(line);
	fclose(f);
	return r;
}

struct busy_ctx {
	const struct devnums *s;
	char *why;
	size_t n;
	const char *where; /* "on the host", or "in the mount namespace of process 42" */
};

/* The device a mountinfo line mounts: its MAJ:MIN, or, where that is an
 * anonymous 0:N (btrfs, ZFS, bcachefs), its source when that is a /dev
 * node. -1 when neither is one of s's. */
static int mounted_dev(const struct devnums *s, const char *line)
{
	const char *sep = strstr(line, " - ");
	unsigned maj, min;
	char src[256];
	struct stat st;
	int k;

	/* ID PARENT MAJ:MIN ROOT MOUNTPOINT ... - FSTYPE SOURCE OPTIONS */
	if (sscanf(line, "%*u %*u %u:%u", &maj, &min) != 2)
		return -1;
	k = find_dev(s, makedev(maj, min));
	if (k >= 0 || !sep || sscanf(sep, " - %*s %255s", src) != 1 ||
	    strncmp(src, "/dev/", 5) != 0 || stat(src, &st) < 0 || !S_ISBLK(st.st_mode))
		return k;
	return find_dev(s, st.st_rdev);
}

static int mount_line(const char *line, void *ud)
{
	struct busy_ctx *c = ud;
	char mnt[512];
	int k = mounted_dev(c->s, line);

	if (k < 0 || sscanf(line, "%*u %*u %*s %*s %511s", mnt) != 1)
		return 0;
	snprintf(c->why, c->n, "/dev/%s is mounted %s at %s", c->s->name[k], c->where, mnt);
	return -EBUSY;
}

static int swap_line(const char *line, void *ud)
{
	struct busy_ctx *c = ud;
	char path[512];
	struct stat st;
	int k;

	if (sscanf(line, "%511s", path) != 1 || path[0] != '/' || stat(path, &st) < 0 ||
	    !S_ISBLK(st.st_mode))
		return 0;
	k = find_dev(c->s, st.st_rdev);
	if (k < 0)
		return 0;
	snprintf(c->why, c->n, "/dev/%s is swap space of the host", c->s->name[k]);
	return -EBUSY;
}

static int check_holders(const struct devnums *s, char *why, size_t n)
{
	for (size_t i = 0; i < s->n; i++) {
		char path[UEVENT_DEVPATH_MAX + 32];
		struct dirent *de;
		DIR *dir;

		snprintf(path, sizeof(path), "%s/holders", s->syspath[i]);
		dir = opendir(path);
		if (!dir)
			continue;
		while ((de = readdir(dir)))
			if (de->d_name[0] != '.')
				break;
		if (de) {
			snprintf(why, n, "/dev/%s is in use by %s on the host (LVM, dm-crypt or RAID)",
				 s->name[i], de->d_name);
			closedir(dir);
			return -EBUSY;
		}
		closedir(dir);
	}
	return 0;
}

int disk_host_busy(const struct usb_disk *d, char *why, size_t n)
{
	struct devnums *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	struct busy_ctx c = { .s = s, .why = why, .n = n, .where = "on the host" };

	gather(d, s);
	r = each_line("/proc/self/mountinfo", mount_line, &c);
	if (r == 0)
		r = each_line("/proc/swaps", swap_line, &c);
	if (r == 0)
		r = check_holders(s, why, n);
	free(s);
	return r;
}

/* Why a disk that cannot be opened exclusively is busy, where another
 * mount namespace than ours mounts it (a container's): each namespace's
 * mountinfo is read once. 0 when none does. */
static int mounted_elsewhere(struct devnums *s, char *why, size_t n)
{
	char self[64] = "", ns[64], path[64], where[96];
	unsigned long seen[256];
	size_t n_seen = 0;
	struct dirent *de;
	DIR *proc;
	ssize_t len;
	int r = 0;

	len = readlink("/proc/self/ns/mnt", self, sizeof(self) - 1);
	self[len > 0 ? len : 0] = '\0';
	proc = opendir("/proc");
	if (!proc)
		return 0;
	while (r == 0 && (de = readdir(proc))) {
		unsigned long pid, ino;
		bool known = false;

		if (util_parse_uint(de->d_name, 1UL << 22, &pid) < 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%lu/ns/mnt", pid);
		len = readlink(path, ns, sizeof(ns) - 1);
		if (len <= 0)
			continue;
		ns[len] = '\0';
		if (strcmp(ns, self) == 0 || sscanf(ns, "mnt:[%lu]", &ino) != 1)
			continue;
		for (size_t i = 0; i < n_seen && !known; i++)
			known = seen[i] == ino;
		if (known || n_seen == ARRAY_SIZE(seen))
			continue;
		seen[n_seen++] = ino;
		snprintf(where, sizeof(where), "in the mount namespace of process %lu", pid);
		struct busy_ctx c = { .s = s, .why = why, .n = n, .where = where };

		snprintf(path, sizeof(path), "/proc/%lu/mountinfo", pid);
		r = each_line(path, mount_line, &c);
	}
	closedir(proc);
	return r;
}

int disk_claim_check(const char *path, const struct usb_disk *d, char *why, size_t n)
{
	struct devnums *s;
	int fd, r;

	/* The kernel's own answer: an exclusive open of a block device fails
	 * while anything claims it or one of its partitions: a mount in any
	 * namespace, swap, a dm/md/LVM holder, a process's O_EXCL. */
	fd = open(path, O_RDONLY | O_EXCL | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	r = -errno;
	if (r != -EBUSY) {
		snprintf(why, n, "%s cannot be opened to check that the host does not use it: %s",
			 path, strerror(-r));
		return r;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	gather(d, s);
	if (mounted_elsewhere(s, why, n) == 0)
		snprintf(why, n, "/dev/%s is in use on the host (something holds it exclusively: a mount, possibly in another mount namespace, a device-mapper, md or LVM holder, or a program)",
			 d->name);
	free(s);
	return -EBUSY;
}

void disk_format_size(uint64_t bytes, char *buf, size_t n)
{
	static const char *const units[] = { "B", "kB", "MB", "GB", "TB", "PB", "EB" };
	double v = (double)bytes;
	size_t u = 0;

	while (v >= 1000 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(buf, n, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, n, "%.1f %s", v, units[u]);
}

void disk_describe(const struct usb_disk *d, char *buf, size_t n)
{
	char serial[128], size[32];

	log_escape(disk_key(d), serial, sizeof(serial));
	if (d->size) {
		disk_format_size(d->size, size, sizeof(size));
		snprintf(buf, n, "disk %s (%s, %s)", serial, d->name, size);
	} else {
		snprintf(buf, n, "disk %s (%s)", serial, d->name);
	}
}
