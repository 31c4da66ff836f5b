#include "guests/libvirt.h"

#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/report.h"
#include "base/util.h"
#include "guests/domxml.h"

/* The few calls used, as libvirt's public API declares them
 * (libvirt-host.h, libvirt-domain.h, virterror.h). */
typedef struct virConnect *virConnectPtr;
typedef struct virDomain *virDomainPtr;
typedef void (*virErrorFunc)(void *user, void *error);

#define VIR_DOMAIN_AFFECT_LIVE 1u
#define VIR_UUID_STRING_BUFLEN 37
static struct {
	int state; /* 0: not loaded yet; 1: loaded; <0: cannot be */
	void *so;
	virConnectPtr (*connect_open)(const char *uri);
	int (*connect_close)(virConnectPtr c);
	virDomainPtr (*lookup)(virConnectPtr c, const char *name);
	int (*domain_free)(virDomainPtr d);
	int (*is_active)(virDomainPtr d);
	unsigned int (*get_id)(virDomainPtr d);
	int (*get_uuid)(virDomainPtr d, char *buf);
	char *(*get_xml)(virDomainPtr d, unsigned int flags);
	int (*attach)(virDomainPtr d, const char *xml, unsigned int flags);
	int (*detach_alias)(virDomainPtr d, const char *alias, unsigned int flags);
	const char *(*last_error)(void);
	void (*set_error_func)(void *user, virErrorFunc fn);
} L;

struct lv {
	const struct settings *s;
	const struct target *t;
	struct report *rep; /* what happened, for the caller to say */
	virConnectPtr conn;
	virDomainPtr dom;
};

/* libvirt prints every error to stderr unless told otherwise: each is told
 * once, by the caller, with the guest's name. */
static void quiet(void *user, void *error)
{
	(void)user;
	(void)error;
}

/* Opens libvirt's library: 1, or -errno with why. */
static int open_library(char *why, size_t n)
{
	static const struct {
		const char *name;
		size_t offset;
	} syms[] = {
#define SYM(field, name) { name, offsetof(__typeof__(L), field) }
		SYM(connect_open, "virConnectOpen"),
		SYM(connect_close, "virConnectClose"),
		SYM(lookup, "virDomainLookupByName"),
		SYM(domain_free, "virDomainFree"),
		SYM(is_active, "virDomainIsActive"),
		SYM(get_id, "virDomainGetID"),
		SYM(get_uuid, "virDomainGetUUIDString"),
		SYM(get_xml, "virDomainGetXMLDesc"),
		SYM(attach, "virDomainAttachDeviceFlags"),
		SYM(detach_alias, "virDomainDetachDeviceAlias"),
		SYM(last_error, "virGetLastErrorMessage"),
		SYM(set_error_func, "virSetErrorFunc"),
#undef SYM
	};

	L.so = dlopen("libvirt.so.0", RTLD_NOW | RTLD_LOCAL);
	if (!L.so) {
		snprintf(why, n,
			 "libvirt domains are declared, but libvirt's library cannot be loaded (%s); install libvirt0",
			 dlerror());
		return -ENOPKG;
	}
	for (size_t i = 0; i < ARRAY_SIZE(syms); i++) {
		void *fn = dlsym(L.so, syms[i].name);

		if (!fn) {
			snprintf(why, n,
				 "libvirt's library has no %s (too old?); libvirt domains are left alone",
				 syms[i].name);
			return -ENOSYS;
		}
		memcpy((char *)&L + syms[i].offset, &fn, sizeof(fn));
	}
	L.set_error_func(NULL, quiet);
	return 1;
}

/* Loads libvirt's library once; why it cannot be is noted once, in the
 * first report given (rep NULL: not yet). */
static int load(struct report *rep)
{
	static char why[300];
	static bool told;

	if (!L.state)
		L.state = open_library(why, sizeof(why));
	if (L.state < 0 && !told && rep) {
		told = true;
		report_add(rep, LOG_LVL_ERROR, "%s", why);
	}
	return L.state;
}

/* libvirt's last message, for a line of a report. */
static const char *lv_error(void)
{
	const char *m = L.state > 0 ? L.last_error() : NULL;

	return m ? m : "unknown error";
}

static char cached_uri[SETTINGS_PATH_MAX];
static virConnectPtr cached;

static void close_cached(void)
{
	if (cached)
		L.connect_close(cached);
	cached = NULL;
}

/* One connection per URI and run, kept until the program ends. */
static virConnectPtr connection(const char *uri)
{
	static bool registered;

	if (cached && strcmp(cached_uri, uri) == 0)
		return cached;
	close_cached();
	if (!registered)
		registered = atexit(close_cached) == 0;
	snprintf(cached_uri, sizeof(cached_uri), "%s", uri);
	cached = L.connect_open(uri);
	return cached;
}

/* The domain, running; NULL with why (-ENOENT: not running or unknown).
 * rep: where a library that cannot be loaded is noted (may be NULL). */
static virDomainPtr running_domain(const struct target *t, virConnectPtr *conn, int *why,
				   struct report *rep)
{
	virDomainPtr d;
	int r = load(rep);

	*why = r < 0 ? r : 0;
	if (r < 0)
		return NULL;
	*conn = connection(t->uri);
	if (!*conn) {
		*why = -ECONNREFUSED;
		return NULL;
	}
	d = L.lookup(*conn, t->domain);
	if (!d || L.is_active(d) != 1) {
		if (d)
			L.domain_free(d);
		*why = -ENOENT;
		return NULL;
	}
	return d;
}

/* Whether the domain runs: 1, 0 (not running, or no such domain), or
 * -errno when libvirt cannot be asked (noted in rep, may be NULL). With
 * buf, an identity of this run of the domain ("" when it does not run). */
static int probe(const struct target *t, char *buf, size_t n, struct report *rep)
{
	char uuid[VIR_UUID_STRING_BUFLEN] = "";
	virConnectPtr conn;
	virDomainPtr d;
	int why;

	if (buf && n)
		buf[0] = '\0';
	d = running_domain(t, &conn, &why, rep);
	if (!d) {
		if (why == -ECONNREFUSED)
			report_add(rep, LOG_LVL_ERROR, "%s: cannot connect to libvirt at %s: %s",
				   t->label, t->uri, lv_error());
		return why == -ENOENT ? 0 : why;
	}
	/* libvirt numbers each start of a domain anew */
	if (buf && L.get_uuid(d, uuid) == 0)
		snprintf(buf, n, "lv:%u:%s", L.get_id(d), uuid);
	L.domain_free(d);
	return 1;
}

static int lv_running(struct target *t, const struct settings *s, struct report *rep)
{
	(void)s;
	return probe(t, NULL, 0, rep);
}

static void lv_stamp(struct target *t, const struct settings *s, char *buf, size_t n)
{
	(void)s;
	(void)probe(t, buf, n, NULL);
}

static int lv_open(const struct settings *s, struct target *t, struct report *rep, void **ret)
{
	struct lv *l;
	int why;

	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->s = s;
	l->t = t;
	l->rep = rep;
	l->dom = running_domain(t, &l->conn, &why, rep);
	if (!l->dom) {
		free(l);
		if (why == -ENOENT)
			report_add(rep, LOG_LVL_WARNING, "%s is not running (libvirt at %s has no running domain '%s'); nothing to do",
				   t->label, t->uri, t->domain);
		else if (why == -ECONNREFUSED)
			report_add(rep, LOG_LVL_ERROR, "%s: cannot connect to libvirt at %s: %s",
				   t->label, t->uri, lv_error());
		return why;
	}
	*ret = l;
	return 0;
}

/* libvirt unplugs a USB device at once and adds no controller: always
 * usable, nothing to release beyond detaching */
static bool lv_usable(const void *c)
{
	(void)c;
	return true;
}

static int lv_explain(void *c, int r, const char *what, const char *desc)
{
	const struct lv *l = c;

	return report_err(l->rep, r, "%s: %s %s: %s", l->t->label, what, desc, lv_error());
}

static void *lv_close(void *c)
{
	struct lv *l = c;

	if (l) {
		L.domain_free(l->dom);
		free(l);
	}
	return NULL;
}

static int lv_passes(const struct target *t, const struct usb_device_info *dev)
{
	virConnectPtr conn;
	virDomainPtr d = running_domain(t, &conn, &(int){ 0 }, NULL);
	char *xml;
	int r;

	if (!d)
		return 0;
	xml = L.get_xml(d, 0);
	r = xml && domxml_passes(xml, dev);
	free(xml);
	L.domain_free(d);
	return r;
}

/* The live domain's XML (malloc()ed), or NULL. */
static char *live_xml(struct lv *l)
{
	return L.get_xml(l->dom, 0);
}

static int lv_held(void *c, struct xhci_set *ret)
{
	struct lv *l = c;
	char *xml = live_xml(l);
	int r;

	if (!xml)
		return -EIO;
	r = domxml_held(xml, ret);
	free(xml);
	return r;
}

/* Detaches the hostdev of port: 0, 1 when there was none, or -EIO. */
static int detach_port(struct lv *l, const struct usb_port *port)
{
	char alias[DOMXML_ALIAS_MAX];
	struct xhci_set held;
	int r = lv_held(l, &held);

	if (r < 0)
		return r;
	if (!xhci_find(&held, port))
		return 1;
	domxml_alias(port, alias, sizeof(alias));
	return L.detach_alias(l->dom, alias, VIR_DOMAIN_AFFECT_LIVE) < 0 ? -EIO : 0;
}

static int lv_detach(void *c, const struct usb_port *port, const char *desc)
{
	struct lv *l = c;
	int r = detach_port(l, port);

	if (r < 0)
		return report_err(l->rep, r, "%s: libvirt did not detach %s: %s", l->t->label, desc,
				  lv_error());
	return r;
}

static int lv_attach(void *c, struct guest_held *h, const struct usb_device_info *dev,
		     const char *desc)
{
	struct lv *l = c;
	char id[DOMXML_ALIAS_MAX], source[96] = "", address[64] = "", *xml_text = NULL;
	const struct xhci_dev *have;
	struct xhci_set held;
	unsigned bus, port;
	char *xml = live_xml(l);
	int r;

	(void)h; /* libvirt's live XML is the record */
	if (!xml)
		return report_err(l->rep, -EIO, "%s: reading the domain's XML to attach %s: %s",
				  l->t->label, desc, lv_error());
	domxml_held(xml, &held);
	domxml_alias(&dev->port, id, sizeof(id));
	have = xhci_find(&held, &dev->port);
	if (have && (!dev->have_ids || (have->vid == dev->vid && have->pid == dev->pid))) {
		free(xml);
		report_add(l->rep, LOG_LVL_INFO, "%s: %s already attached as %s", l->t->label, desc,
			   id);
		return 0;
	}
	if (have) {
		/* left for another model: take it out first */
		r = detach_port(l, &dev->port);
		if (r < 0) {
			free(xml);
			return report_err(l->rep, -EIO, "%s: detaching the old %s: %s", l->t->label,
					  id, lv_error());
		}
	}
	r = domxml_pick_port(xml, xhci_is_superspeed(dev->speed), &bus, &port);
	free(xml);
	if (r == -ENOSPC)
		return report_err(l->rep, r, "%s: found no free port on its xHCI controllers for %s; give one more ports (<controller type='usb' model='qemu-xhci' ports='15'/>)",
				  l->t->label, desc);
	if (r == 0)
		snprintf(address, sizeof(address), "<address type='usb' bus='%u' port='%u'/>", bus, port);
	if (dev->devnum)
		snprintf(source, sizeof(source), "<address bus='%u' device='%u'/>", dev->port.bus,
			 dev->devnum);
	if (asprintf(&xml_text,
		     "<hostdev mode='subsystem' type='usb'><source>"
		     "<vendor id='0x%04x'/><product id='0x%04x'/>%s</source>"
		     "<alias name='%s'/>%s</hostdev>",
		     dev->vid, dev->pid, source, id, address) < 0)
		return -ENOMEM;
	r = L.attach(l->dom, xml_text, VIR_DOMAIN_AFFECT_LIVE);
	free(xml_text);
	if (r < 0)
		return report_err(l->rep, -EIO, "%s: libvirt did not attach %s: %s", l->t->label,
				  desc, lv_error());
	if (address[0])
		report_add(l->rep, LOG_LVL_INFO, "%s: added %s as %s on USB bus %u port %u",
			   l->t->label, desc, id, bus, port);
	else
		report_add(l->rep, LOG_LVL_INFO,
			   "%s: added %s as %s (it has no xHCI controller: libvirt chose the port)",
			   l->t->label, desc, id);
	return 0;
}

static int lv_disks(void *c, struct vdisk_set *ret)
{
	char *xml = live_xml(c);
	bool scsi;
	int r;

	if (!xml)
		return -EIO;
	r = domxml_disks(xml, ret, &scsi);
	free(xml);
	return r;
}

static int lv_disk_attach(void *c, const struct usb_disk *d, const char *id, const char *path,
			  enum disk_as as, const char *desc, char *where, size_t n)
{
	struct lv *l = c;
	char target[8], serial_xml[64] = "", *xml = live_xml(l), *text = NULL, *src;
	const char *serial = vdisk_serial(d);
	struct vdisk_set *set = malloc(sizeof(*set));
	bool scsi, have;
	int r;

	if (!xml || !set) {
		free(xml);
		free(set);
		return report_err(l->rep, -EIO, "%s: reading the domain's XML to attach %s: %s",
				  l->t->label, desc, lv_error());
	}
	domxml_disks(xml, set, &scsi);
	have = vdisk_find(set, id) != NULL;
	free(set);
	if (have || (as == DISK_AS_SCSI && !scsi)) {
		free(xml);
		return have ? 1
			    : report_err(l->rep, -ENODEV, "%s: %s is to go in as SCSI, but the domain has no virtio-scsi controller (<controller type='scsi' model='virtio-scsi'/>); write 'as virtio', or leave 'as' out",
					 l->t->label, desc);
	}
	scsi = scsi && as != DISK_AS_VIRTIO;
	r = domxml_pick_target(xml, scsi ? "sd" : "vd", target, sizeof(target));
	free(xml);
	if (r < 0)
		return report_err(l->rep, r, "%s: no free disk name for %s", l->t->label, desc);
	if (serial)
		snprintf(serial_xml, sizeof(serial_xml), "<serial>%s</serial>", serial);
	src = domxml_escape(path);
	if (!src || asprintf(&text,
			     "<disk type='block' device='disk'>"
			     "<driver name='qemu' type='raw' cache='none' io='native' discard='unmap'/>"
			     "<source dev='%s'/><target dev='%s' bus='%s'/>%s"
			     "<alias name='" DOMXML_ALIAS_PREFIX "%s'/></disk>",
			     src, target, scsi ? "scsi" : "virtio", serial_xml, id) < 0) {
		free(src);
		return -ENOMEM;
	}
	free(src);
	r = L.attach(l->dom, text, VIR_DOMAIN_AFFECT_LIVE);
	free(text);
	if (r < 0)
		return report_err(l->rep, -EIO, "%s: libvirt did not attach %s: %s", l->t->label,
				  desc, lv_error());
	snprintf(where, n, "%s disk %s", scsi ? "a SCSI" : "a virtio", target);
	return 0;
}

/* Whether the domain has the tool's disk id (set: room to read into): 1,
 * 0, or -EIO. */
static int has_disk(struct lv *l, struct vdisk_set *set, const char *id)
{
	int r = lv_disks(l, set);

	return r < 0 ? r : vdisk_find(set, id) != NULL;
}

/* Detaches the disk id and waits until libvirt has it gone: 0, 1 when it
 * was not there, -EBUSY when still there at deadline, -EIO (lv_error()
 * says why). */
static int detach_disk(struct lv *l, const char *id, int64_t deadline)
{
	char alias[DISK_ID_MAX + 4];
	struct vdisk_set *set = malloc(sizeof(*set));
	int r;

	if (!set)
		return -ENOMEM;
	snprintf(alias, sizeof(alias), DOMXML_ALIAS_PREFIX "%s", id);
	r = has_disk(l, set, id);
	if (r <= 0) {
		free(set);
		return r < 0 ? r : 1;
	}
	/* asynchronous: done once the alias is gone from the live XML (libvirt
	 * deletes the disk's nodes before it drops the disk from it) */
	if (L.detach_alias(l->dom, alias, VIR_DOMAIN_AFFECT_LIVE) < 0) {
		free(set);
		return -EIO;
	}
	while ((r = has_disk(l, set, id)) > 0 && util_remaining_ms(deadline) > 0)
		poll(NULL, 0, 50);
	free(set);
	return r < 0 ? r : r > 0 ? -EBUSY : 0;
}

static int lv_disk_detach(void *c, const char *id, const char *desc)
{
	struct lv *l = c;
	int r = detach_disk(l, id, backend_deadline_in(l->s, VDISK_DEL_WAIT_MS));

	if (r == -EIO)
		return report_err(l->rep, r, "%s: libvirt did not detach %s: %s", l->t->label, desc,
				  lv_error());
	if (r < 0 && r != -EBUSY)
		return report_err(l->rep, r, "%s: detaching %s: %s", l->t->label, desc, strerror(-r));
	return r;
}

const struct guest_ops lv_guest_ops = {
	.keeps_hint = false,
	.running = lv_running,
	.stamp = lv_stamp,
	.passes = lv_passes,
	.open = lv_open,
	.usable = lv_usable,
	.explain = lv_explain,
	.close = lv_close,
	.held = lv_held,
	.attach = lv_attach,
	.detach = lv_detach,
	.disks = lv_disks,
	.disk_attach = lv_disk_attach,
	.disk_detach = lv_disk_detach,
};
