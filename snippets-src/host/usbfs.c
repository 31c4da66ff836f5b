/* The host side of held ports (usbfs.h): sysfs and usbfs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/usbdevice_fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "host/usbfs.h"
#include "host/vmproc.h"

#define SYS_USB "/sys/bus/usb/devices"
#define DRIVERS_PROBE "/sys/bus/usb/drivers_probe"
#define MAX_IFACES 32

/* A sysfs attribute of a USB device into buf (without its newline); its
 * length, or -1 when it cannot be read. */
static ssize_t attr_read(const char *dev, const char *attr, char *buf, size_t size)
{
	char path[128];
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), SYS_USB "/%s/%s", dev, attr);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	len = read(fd, buf, size - 1);
	close(fd);
	if (len <= 0)
		return -1;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		len--;
	buf[len] = '\0';
	return len;
}

long usbfs_attr_dec(const char *dev, const char *attr)
{
	char buf[32], *end;
	long v;

	if (attr_read(dev, attr, buf, sizeof(buf)) < 0)
		return -1;
	v = strtol(buf, &end, 10);
	return end == buf ? -1 : v;
}

bool usbfs_is_hub(const char *dev)
{
	char buf[32];
	unsigned long v;
	ssize_t len = attr_read(dev, "bDeviceClass", buf, sizeof(buf));

	return len > 0 && util_parse_hex_n(buf, (size_t)len, 2, &v) == 0 && v == 9;
}

long usbfs_node(const char *dev, char node[static 32])
{
	long bus = usbfs_attr_dec(dev, "busnum"), num = usbfs_attr_dec(dev, "devnum");

	if (bus <= 0 || num <= 0)
		return -1;
	snprintf(node, 32, "/dev/bus/usb/%03ld/%03ld", bus % 1000, num % 1000);
	return num;
}

int usbfs_open_hub(const char *node)
{
	int fd = open(node, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	/* An open usbfs file keeps its device resumed; the file is held only
	 * for its ports (a plug wakes the hub as ever): an idle hub may
	 * suspend. A kernel before 5.8 says ENOTTY, and the hub stays up. */
	(void)ioctl(fd, USBDEVFS_ALLOW_SUSPEND);
	return fd;
}

int usbfs_claim(int fd, unsigned p, bool on)
{
	unsigned int port = p;

	if (ioctl(fd, on ? USBDEVFS_CLAIM_PORT : USBDEVFS_RELEASE_PORT, &port) < 0)
		return -errno;
	return 0;
}

/* dev's interfaces that have no driver (at most max), and whether one of
 * them is usbfs's (a program, QEMU, has dev). Returns how many. */
static size_t driverless(const char *dev, char (*ifaces)[PORT_STRLEN + 16], size_t max,
			 bool *passed)
{
	size_t n = 0, dl = strlen(dev);
	struct dirent *e;
	DIR *d = opendir(SYS_USB);

	*passed = false;
	while (d && (e = readdir(d))) {
		char link[256], path[320];
		ssize_t len;

		if (strncmp(e->d_name, dev, dl) != 0 || e->d_name[dl] != ':')
			continue;
		snprintf(path, sizeof(path), SYS_USB "/%s/driver", e->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len >= 0) {
			link[len] = '\0';
			const char *drv = strrchr(link, '/');

			*passed |= strcmp(drv ? drv + 1 : link, "usbfs") == 0;
		} else if (n < max) {
			util_strlcpy(ifaces[n++], e->d_name, sizeof(ifaces[0]));
		}
	}
	if (d)
		closedir(d);
	return n;
}

static int write_attr(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), r = 0;

	if (fd < 0 || write(fd, value, strlen(value)) < 0)
		r = -errno;
	if (fd >= 0)
		close(fd);
	return r;
}

/* Has the host's drivers probe each of the interfaces. */
static void probe(char (*ifaces)[PORT_STRLEN + 16], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = write_attr(DRIVERS_PROBE, ifaces[i]);

		if (r < 0)
			log_debug("%s: the host's drivers were not probed: %s", ifaces[i], strerror(-r));
	}
}

bool usbfs_open_elsewhere(const char *dev)
{
	char node[32];
	bool found = false;
	struct dirent *p;
	struct stat st;
	DIR *proc;

	if (usbfs_node(dev, node) < 0 || stat(node, &st) < 0 || !(proc = opendir("/proc")))
		return false;
	while (!found && (p = readdir(proc))) {
		unsigned long pid;

		found = util_parse_uint(p->d_name, ULONG_MAX, &pid) == 0 && pid > 0 &&
			vmproc_has_open(pid, S_IFCHR, st.st_rdev) == 1;
	}
	closedir(proc);
	return found;
}

bool usbfs_settled(const char *dev)
{
	char ifaces[MAX_IFACES][PORT_STRLEN + 16];
	bool passed;
	size_t n = driverless(dev, ifaces, MAX_IFACES, &passed);

	return passed || (n == 0 && usbfs_attr_dec(dev, "bConfigurationValue") > 0);
}

int usbfs_to_host(const char *dev, bool unless_passed)
{
	char ifaces[MAX_IFACES][PORT_STRLEN + 16];
	bool passed;
	size_t n = driverless(dev, ifaces, MAX_IFACES, &passed);
	int r;

	if (unless_passed && (passed || usbfs_open_elsewhere(dev)))
		return 0;
	if (usbfs_attr_dec(dev, "bConfigurationValue") > 0) {
		probe(ifaces, n);
		return n > 0;
	}
	if (usbfs_attr_dec(dev, "devnum") <= 0)
		return 0; /* gone */
	r = write_attr("/sys/bus/usb/drivers/usb/unbind", dev);
	if (r == 0 || r == -ENODEV)
		r = write_attr("/sys/bus/usb/drivers/usb/bind", dev);
	return r < 0 ? r : 1;
}

void usbfs_wait_configured(const char *dev)
{
	char node[32];
	int fd;

	if (usbfs_node(dev, node) < 0)
		return;
	fd = open(node, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		close(fd);
}
