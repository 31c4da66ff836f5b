/* Holding ports (hold.h): owned hub ports keep the host's drivers away. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/usbdevice_fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/hold.h"
#include "base/log.h"
#include "base/state.h"
#include "policy/usbconf.h"
#include "base/util.h"
#include "host/vmproc.h"
#include "policy/vms.h"

#define SYS_USB "/sys/bus/usb/devices"
#define DRIVERS_PROBE "/sys/bus/usb/drivers_probe"
#define MAX_PORT 255

static bool bit(const uint8_t *set, unsigned p)
{
	return set[p / 8] & (1u << (p % 8));
}

static void set_bit(uint8_t *set, unsigned p, bool on)
{
	if (on)
		set[p / 8] |= (uint8_t)(1u << (p % 8));
	else
		set[p / 8] &= (uint8_t)~(1u << (p % 8));
}

/* A sysfs attribute of a USB device as a number (base 10 or 16); -1 when
 * it cannot be read. */
static long attr_num(const char *dev, const char *attr, int base)
{
	char path[128], buf[32];
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), SYS_USB "/%s/%s", dev, attr);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return -1;
	buf[len] = '\0';
	char *end;
	long v = strtol(buf, &end, base);

	return end == buf ? -1 : v;
}

/* dev's usbfs file, /dev/bus/usb/BBB/DDD, into node; the device's
 * number, or -1 when it is gone. */
static long usbfs_node(const char *dev, char node[static 32])
{
	long bus = attr_num(dev, "busnum", 10), num = attr_num(dev, "devnum", 10);

	if (bus <= 0 || num <= 0)
		return -1;
	snprintf(node, 32, "/dev/bus/usb/%03ld/%03ld", bus % 1000, num % 1000);
	return num;
}

bool hold_is_hub(const char *name)
{
	return attr_num(name, "bDeviceClass", 16) == 9;
}

void hold_parent_name(const struct usb_port *dev, char *buf, size_t n)
{
	struct usb_port parent = *dev;

	if (dev->depth <= 1) {
		snprintf(buf, n, "usb%u", dev->bus);
		return;
	}
	parent.depth--;
	port_format(&parent, buf, n);
}

static struct hold_hub *by_name(struct hold_hub *hubs, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(hubs[i].name, name) == 0)
			return &hubs[i];
	return NULL;
}

static struct hold_hub *want_hub(struct hold_hub **hubs, size_t *n, const char *name)
{
	struct hold_hub *nh = by_name(*hubs, *n, name);

	if (nh)
		return nh;
	nh = realloc(*hubs, (*n + 1) * sizeof(**hubs));
	if (!nh)
		return NULL;
	*hubs = nh;
	nh = &nh[(*n)++];
	memset(nh, 0, sizeof(*nh));
	nh->fd = -1;
	util_strlcpy(nh->name, name, sizeof(nh->name));
	return nh;
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

#define MAX_IFACES 32

/* Whether a process has dev's usbfs file open (QEMU has passed it, and
 * its guest may not have configured it yet). Read from /proc: only when a
 * port is let go, or a device a guest had may have been let go. */
static bool open_elsewhere(const char *dev)
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

/* dev (on a port not held now) gets the host's drivers. Unless passed, a
 * device a program has claimed interfaces of (QEMU) is left alone. A device
 * plugged into a held port was left unconfigured by the kernel: the generic
 * driver is bound to it again, which chooses and sets its configuration as
 * at a plug, and the interface drivers follow. Returns whether it did. */
static bool to_host(const char *dev, bool unless_passed)
{
	char ifaces[MAX_IFACES][PORT_STRLEN + 16];
	bool passed;
	size_t n = driverless(dev, ifaces, MAX_IFACES, &passed);
	int r;

	if (unless_passed && (passed || open_elsewhere(dev)))
		return false;
	if (attr_num(dev, "bConfigurationValue", 10) > 0) {
		probe(ifaces, n);
		return n > 0;
	}
	if (attr_num(dev, "devnum", 10) <= 0)
		return false; /* gone */
	r = write_attr("/sys/bus/usb/drivers/usb/unbind", dev);
	if (r == 0 || r == -ENODEV)
		r = write_attr("/sys/bus/usb/drivers/usb/bind", dev);
	if (r < 0)
		log_warning("%s: the host's drivers could not be bound to it (%s); plug it in again",
			    dev, strerror(-r));
	return r == 0;
}

static void port_name(const struct hold_hub *hub, unsigned p, char *buf, size_t n)
{
	if (util_startswith(hub->name, "usb"))
		snprintf(buf, n, "%s-%u", hub->name + 3, p);
	else
		snprintf(buf, n, "%s.%u", hub->name, p);
}

static int claim(struct hold_hub *hub, unsigned p, bool on)
{
	unsigned int port = p;

	if (ioctl(hub->fd, on ? USBDEVFS_CLAIM_PORT : USBDEVFS_RELEASE_PORT, &port) < 0)
		return -errno;
	set_bit(hub->held, p, on);
	return 0;
}

/* After a port is let go: its device gets the host's drivers. */
static void released(const struct hold_hub *hub, unsigned p)
{
	char dev[PORT_STRLEN + 8];

	port_name(hub, p, dev, sizeof(dev));
	if (to_host(dev, true))
		log_info("%s: its port is held no more: handed to the host's drivers", dev);
}

/* Closes hub's file: its ports are let go. With hand_over, and the hub
 * still the one the file was for, their devices get the host's drivers. */
static void close_hub(struct hold_hub *hub, bool hand_over)
{
	if (hub->fd >= 0)
		close(hub->fd);
	hub->fd = -1;
	if (hand_over && attr_num(hub->name, "devnum", 10) != hub->devnum)
		hand_over = false;
	for (unsigned p = 1; hand_over && p <= MAX_PORT; p++)
		if (bit(hub->held, p))
			released(hub, p);
	memset(hub->held, 0, sizeof(hub->held));
}

bool hold_wanted(const struct hold_rule *rules, size_t n, const struct usb_port *port)
{
	for (size_t i = 0; i < n; i++) {
		int pos = -1, deny = -1;

		if (i > 0 && rules[i].guest == rules[i - 1].guest)
			continue; /* each guest once: its rules are together */
		for (size_t k = i; k < n && rules[k].guest == rules[i].guest; k++) {
			int *depth = rules[k].deny ? &deny : &pos;

			if (port_is_under(port, &rules[k].port) && (int)rules[k].port.depth > *depth)
				*depth = (int)rules[k].port.depth;
		}
		if (pos > deny)
			return true;
	}
	return false;
}

/* The hub files the rules' ports need now: each rule's own port on its
 * parent, every port of each hub at or below it, but what a deny keeps
 * out (hold.h). */
static int wanted(const struct hold_rule *rules, size_t n_rules, struct hold_hub **ret, size_t *ret_n)
{
	struct hold_hub *hubs = NULL;
	size_t n = 0;
	struct dirent *e;
	DIR *d;

	for (size_t i = 0; i < n_rules; i++) {
		const struct usb_port *port = &rules[i].port;
		char parent[PORT_STRLEN];
		struct hold_hub *hub;

		if (rules[i].deny || !hold_wanted(rules, n_rules, port))
			continue;
		hold_parent_name(port, parent, sizeof(parent));
		hub = want_hub(&hubs, &n, parent);
		if (!hub)
			goto oom;
		set_bit(hub->held, port->num[port->depth - 1], true);
	}
	d = opendir(SYS_USB);
	while (d && (e = readdir(d))) {
		struct usb_port dev;
		long maxchild;
		bool under = false;

		if (port_parse(e->d_name, &dev) < 0)
			continue;
		for (size_t i = 0; i < n_rules && !under; i++)
			under = !rules[i].deny && port_is_under(&dev, &rules[i].port);
		if (!under || dev.depth >= PORT_MAX_DEPTH ||
		    (maxchild = attr_num(e->d_name, "maxchild", 10)) <= 0 || !hold_is_hub(e->d_name))
			continue;
		struct hold_hub *hub = want_hub(&hubs, &n, e->d_name);

		if (!hub) {
			closedir(d);
			goto oom;
		}
		for (long p = 1; p <= maxchild && p <= MAX_PORT; p++) {
			struct usb_port child = dev;

			child.num[child.depth++] = (unsigned char)p;
			if (hold_wanted(rules, n_rules, &child))
				set_bit(hub->held, (unsigned)p, true);
		}
	}
	if (d)
		closedir(d);
	*ret = hubs;
	*ret_n = n;
	return 0;
oom:
	free(hubs);
	return -ENOMEM;
}

/* The running guests' port rules (deny ones too). */
static int rule_ports(const struct settings *s, struct hold_rule **ret, size_t *ret_n)
{
	struct hold_rule *rules = NULL;
	size_t n = 0;
	struct vms v;
	int r = vms_load(s, LOG_LVL_DEBUG, 0, &v);

	*ret = NULL, *ret_n = 0;
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	for (size_t i = 0; i < v.n; i++) {
		struct vm *vm = v.list[i];
		bool any = false;

		/* asking libvirtd every few seconds is not cheap: its
		 * domains' ports are not held */
		for (size_t k = 0; vm->rules && k < vm->rules->n_rules; k++)
			any |= !vm->rules->rules[k].deny && vm->rules->rules[k].kind == RULE_PORT;
		if (!any || !target_cheap(&vm->t) || !vms_running(&v, vm))
			continue;
		for (size_t k = 0; k < vm->rules->n_rules; k++) {
			const struct usb_rule *rule = &vm->rules->rules[k];
			struct hold_rule *more;

			if (rule->kind != RULE_PORT)
				continue;
			more = realloc(rules, (n + 1) * sizeof(*rules));
			if (!more) {
				vms_free(&v);
				free(rules);
				return -ENOMEM;
			}
			rules = more;
			rules[n] = (struct hold_rule){ .port = rule->port, .deny = rule->deny, .guest = i };
			util_strlcpy(rules[n++].label, vm->t.label, sizeof(rules[0].label));
		}
	}
	vms_free(&v);
	*ret = rules, *ret_n = n;
	return 0;
}

static bool text_has(char **t, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i], s) == 0)
			return true;
	return false;
}

static void free_text(char **t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(t[i]);
	free(t);
}

/* A rule's port ("PORT\tLABEL") is held no more. */
static void log_let_go(const char *text)
{
	log_info("port %.*s (%s) is held no more", (int)strcspn(text, "\t"), text,
		 strchr(text, '\t') + 1);
}

/* HOLD_FILE: what is held now, for 'status'; none when nothing is. */
static void write_held(const struct hold *h)
{
	char why[128], *text = NULL;
	size_t len = 0;
	FILE *f;
	int fd, r;

	if (state_open(h->state_dir, &fd, why, sizeof(why)) < 0)
		return;
	if (h->n_text == 0) {
		unlinkat(fd, HOLD_FILE, 0);
		close(fd);
		return;
	}
	f = open_memstream(&text, &len);
	for (size_t i = 0; f && i < h->n_text; i++)
		fprintf(f, "%s\n", h->held_text[i]);
	if (f && fclose(f) == 0) {
		r = util_write_file_at(fd, HOLD_FILE, text, len);
		if (r < 0)
			log_warning("cannot write %s/%s: %s", h->state_dir, HOLD_FILE, strerror(-r));
	}
	free(text);
	close(fd);
}

/* Opens hub's usbfs file when it has none, or its device has changed. */
static void open_hub(struct hold_hub *hub)
{
	char node[32];
	long dev = usbfs_node(hub->name, node);

	if (dev < 0) {
		close_hub(hub, false); /* gone: its file is of no use */
		return;
	}
	if (hub->fd >= 0 && hub->devnum == (unsigned)dev)
		return;
	close_hub(hub, false);
	hub->devnum = (unsigned)dev;
	hub->fd = open(node, O_RDWR | O_CLOEXEC);
	if (hub->fd < 0 && !bit(hub->warned, 0)) {
		set_bit(hub->warned, 0, true);
		log_warning("cannot hold the ports of hub %s (%s: %s): the host's drivers take what is plugged there first, and QEMU takes it from them",
			    hub->name, node, strerror(errno));
	}
}

/* The hub file port hangs on, and its number there in *p; NULL when it
 * has none. */
static struct hold_hub *hub_of(const struct hold *h, const struct usb_port *port, unsigned *p)
{
	char parent[PORT_STRLEN];
	struct hold_hub *hub;

	*p = port->num[port->depth - 1];
	hold_parent_name(port, parent, sizeof(parent));
	hub = by_name(h->hubs, h->n, parent);
	return hub && hub->fd >= 0 ? hub : NULL;
}

static void give(struct hold_hub *hub, unsigned p, const char *name, const char *why);

/* A device on a held port that a guest had (hold_passed) and has no more
 * (detached by 'sync') and nobody is deciding about gets the host's
 * drivers. A device QEMU has keeps its file open, and usbfs on its
 * interfaces once its guest has configured it. */
static void orphans(struct hold *h, const struct usb_port *busy, size_t n_busy)
{
	for (size_t i = 0; i < h->n; i++) {
		struct hold_hub *hub = &h->hubs[i];

		for (unsigned p = 1; hub->fd >= 0 && p <= MAX_PORT; p++) {
			char name[PORT_STRLEN + 8], ifaces[MAX_IFACES][PORT_STRLEN + 16];
			struct usb_port port;
			bool passed, skip = false;
			long devnum;
			size_t n;

			if (!bit(hub->held, p))
				continue;
			port_name(hub, p, name, sizeof(name));
			devnum = attr_num(name, "devnum", 10);
			if (devnum <= 0 || hub->passed[p] != devnum || port_parse(name, &port) < 0)
				continue;
			for (size_t k = 0; k < n_busy && !skip; k++)
				skip = port_equal(&busy[k], &port);
			if (skip)
				continue;
			n = driverless(name, ifaces, MAX_IFACES, &passed);
			if (passed || (n == 0 && attr_num(name, "bConfigurationValue", 10) > 0) ||
			    open_elsewhere(name))
				continue;
			hub->passed[p] = 0;
			give(hub, p, name, "no guest has it");
		}
	}
}

void hold_sync(struct hold *h, const struct settings *s, const struct usb_port *busy, size_t n_busy)
{
	struct hold_rule *rules;
	struct hold_hub *want;
	size_t n_rules, n_want, n_text = 0;
	char **text;

	if (rule_ports(s, &rules, &n_rules) < 0 || wanted(rules, n_rules, &want, &n_want) < 0) {
		log_warning("cannot work out which ports to hold now; left as they are");
		free(rules);
		return;
	}
	/* hubs no longer wanted: let go, what had no driver gets one */
	for (size_t i = 0; i < h->n;) {
		if (by_name(want, n_want, h->hubs[i].name)) {
			i++;
			continue;
		}
		close_hub(&h->hubs[i], true);
		h->hubs[i] = h->hubs[--h->n];
	}
	for (size_t k = 0; k < n_want; k++) {
		struct hold_hub *hub = by_name(h->hubs, h->n, want[k].name);

		if (!hub) {
			struct hold_hub *nh = realloc(h->hubs, (h->n + 1) * sizeof(*nh));

			if (!nh)
				break;
			h->hubs = nh;
			hub = &nh[h->n++];
			*hub = want[k];
			memset(hub->held, 0, sizeof(hub->held));
		}
		open_hub(hub);
		if (hub->fd < 0)
			continue;
		for (unsigned p = 1; p <= MAX_PORT; p++) {
			bool on = bit(want[k].held, p);
			char pn[PORT_STRLEN + 8];
			int r;

			if (on == bit(hub->held, p))
				continue;
			port_name(hub, p, pn, sizeof(pn));
			/* a port is held while it is empty: what is there
			 * now has its drivers (or a guest) already, and a
			 * driver loaded later must still reach it */
			if (on && attr_num(pn, "devnum", 10) > 0)
				continue;
			r = claim(hub, p, on);
			if (r == 0 && !on)
				released(hub, p);
			else if (r < 0 && r != -EINVAL && !bit(hub->warned, p)) {
				/* -EINVAL: no such port on this hub (a rule
				 * for a port the hub does not have) */
				set_bit(hub->warned, p, true);
				log_warning("cannot hold port %s: %s%s", pn, strerror(-r),
					    r == -EBUSY ? " (another program holds it)" : "");
			}
		}
	}
	free(want);
	/* a rule counts as held when the hub it hangs on could be opened */
	text = calloc(n_rules + 1, sizeof(*text));
	for (size_t i = 0; text && i < n_rules; i++) {
		char pname[PORT_STRLEN];
		unsigned p;

		if (rules[i].deny || !hub_of(h, &rules[i].port, &p))
			continue;
		port_format(&rules[i].port, pname, sizeof(pname));
		if (asprintf(&text[n_text], "%s\t%s", pname, rules[i].label) >= 0)
			n_text++;
	}
	free(rules);
	if (!text) {
		log_warning("cannot note which ports are held: out of memory");
		return;
	}
	bool changed = n_text != h->n_text;

	for (size_t i = 0; i < n_text; i++)
		if (!text_has(h->held_text, h->n_text, text[i])) {
			log_info("holding port %.*s (%s): the host's drivers stay off what is plugged there",
				 (int)strcspn(text[i], "\t"), text[i], strchr(text[i], '\t') + 1);
			changed = true;
		}
	for (size_t i = 0; i < h->n_text; i++)
		if (!text_has(text, n_text, h->held_text[i]))
			log_let_go(h->held_text[i]);
	free_text(h->held_text, h->n_text);
	h->held_text = text, h->n_text = n_text;
	if (changed || !h->state_dir[0]) {
		util_strlcpy(h->state_dir, s->state_dir, sizeof(h->state_dir));
		write_held(h);
	}

	orphans(h, busy, n_busy);
}

bool hold_is_held(const struct hold *h, const struct usb_port *dev)
{
	unsigned p;
	const struct hold_hub *hub = hub_of(h, dev, &p);

	return hub && bit(hub->held, p);
}

/* Waits until the kernel has configured dev (its interfaces exist): an
 * open of its usbfs file waits for the device's lock, which the kernel
 * holds while it sets the configuration. */
static void wait_configured(const char *dev)
{
	char node[32];
	int fd;

	if (usbfs_node(dev, node) < 0)
		return;
	fd = open(node, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		close(fd);
}

static void give(struct hold_hub *hub, unsigned p, const char *name, const char *why)
{
	int r;

	wait_configured(name);
	r = claim(hub, p, false);
	if (r < 0) {
		log_warning("%s: cannot let its port go for the host's drivers: %s", name, strerror(-r));
		return;
	}
	/* held again once it is empty (hold_sync): until then the drivers
	 * udev loads for it must be able to bind */
	if (to_host(name, false))
		log_info("%s: %s: handed to the host's drivers", name, why);
}

void hold_give_to_host(struct hold *h, const struct usb_port *port)
{
	char name[PORT_STRLEN];
	unsigned p;
	struct hold_hub *hub = hub_of(h, port, &p);

	if (!hub || !bit(hub->held, p))
		return;
	port_format(port, name, sizeof(name));
	give(hub, p, name, "not passed to a guest");
}

void hold_passed(struct hold *h, const struct usb_port *port)
{
	char name[PORT_STRLEN];
	unsigned p;
	struct hold_hub *hub = hub_of(h, port, &p);
	long devnum;

	port_format(port, name, sizeof(name));
	devnum = attr_num(name, "devnum", 10);
	if (hub && devnum > 0)
		hub->passed[p] = (uint16_t)devnum;
}

void hold_release_all(struct hold *h)
{
	for (size_t i = 0; i < h->n; i++)
		close_hub(&h->hubs[i], true);
	for (size_t i = 0; i < h->n_text; i++)
		log_let_go(h->held_text[i]);
	free_text(h->held_text, h->n_text);
	h->held_text = NULL, h->n_text = 0;
	if (h->state_dir[0])
		write_held(h);
	hold_forget(h);
}

void hold_forget(struct hold *h)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->hubs[i].fd >= 0)
			close(h->hubs[i].fd);
	free(h->hubs);
	free_text(h->held_text, h->n_text);
	*h = (struct hold){ 0 };
}
