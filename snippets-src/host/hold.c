/* Holding ports (hold.h): a snapshot of the rules and hubs, the plan
 * (policy/holdplan.h), then the usbfs files and drivers (host/usbfs.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/state.h"
#include "base/util.h"
#include "host/hold.h"
#include "host/usbfs.h"
#include "policy/vms.h"

#define SYS_USB "/sys/bus/usb/devices"

void hold_changes_free(struct hold_changes *c)
{
	free(c->list);
	*c = (struct hold_changes){ 0 };
}

/* Notes a change in out (lost when there is no memory for it). */
static void note(struct hold_changes *out, enum hold_change_kind kind, const char *port,
		 const char *what, int err)
{
	struct hold_change *more = realloc(out->list, (out->n + 1) * sizeof(*more));

	if (!more)
		return;
	out->list = more;
	more = &more[out->n++];
	*more = (struct hold_change){ .kind = kind, .err = err };
	util_strlcpy(more->port, port ? port : "", sizeof(more->port));
	util_strlcpy(more->what, what ? what : "", sizeof(more->what));
}

/* A rule's text "PORT\tLABEL" as a change of that kind. */
static void note_text(struct hold_changes *out, enum hold_change_kind kind, const char *text)
{
	char port[PORT_STRLEN + 8];
	size_t len = strcspn(text, "\t");

	snprintf(port, sizeof(port), "%.*s", (int)len, text);
	note(out, kind, port, text[len] ? text + len + 1 : "", 0);
}

static struct hold_hub *by_name(struct hold_hub *hubs, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(hubs[i].name, name) == 0)
			return &hubs[i];
	return NULL;
}

/* After a port is let go: its device gets the host's drivers. */
static void released(const struct hold_hub *hub, unsigned p, struct hold_changes *out)
{
	char dev[PORT_STRLEN + 8];
	int r;

	holdplan_port_name(hub->name, p, dev, sizeof(dev));
	r = usbfs_to_host(dev, true);
	if (r > 0)
		note(out, HOLD_HANDED, dev, "its port is held no more", 0);
	else if (r < 0)
		note(out, HOLD_NOT_BOUND, dev, NULL, r);
}

/* Closes hub's file: its ports are let go. With hand_over, and the hub
 * still the one the file was for, their devices get the host's drivers. */
static void close_hub(struct hold_hub *hub, bool hand_over, struct hold_changes *out)
{
	if (hub->fd >= 0)
		close(hub->fd);
	hub->fd = -1;
	if (hand_over && usbfs_attr_dec(hub->name, "devnum") != hub->devnum)
		hand_over = false;
	for (unsigned p = 1; hand_over && p <= HOLDPLAN_MAX_PORT; p++)
		if (holdplan_ports_has(&hub->held, p))
			released(hub, p, out);
	hub->held = (struct holdplan_ports){ 0 };
}

/* Snapshot: the running guests' port rules (deny ones too). */
static int rule_ports(const struct settings *s, struct holdplan_rule **ret, size_t *ret_n)
{
	struct holdplan_rule *rules = NULL;
	size_t n = 0;
	struct vms v;
	int r = vms_load(s, LOG_LVL_DEBUG, 0, &v);

	if (r == -ENOENT) {
		*ret = NULL, *ret_n = 0;
		return 0;
	}
	if (r < 0)
		return r;
	for (size_t i = 0; i < v.n && r == 0; i++) {
		struct vm *vm = v.list[i];

		/* asking libvirtd every few seconds is not cheap: asked
		 * whether it runs only when it counts */
		if (holdplan_takes(vm->rules, target_cheap(&vm->t)) && vms_running(&v, vm))
			r = holdplan_add_rules(vm->rules, i, vm->t.label, &rules, &n);
	}
	vms_free(&v);
	if (r < 0) {
		free(rules);
		return r;
	}
	*ret = rules, *ret_n = n;
	return 0;
}

/* Snapshot: the hubs present at or below a rule's port. */
static int present_hubs(const struct holdplan_rule *rules, size_t n_rules,
			struct holdplan_hub **ret, size_t *ret_n)
{
	struct holdplan_hub *hubs = NULL, *more;
	size_t n = 0;
	struct dirent *e;
	DIR *d = opendir(SYS_USB);

	while (d && (e = readdir(d))) {
		struct usb_port dev;
		long maxchild;

		if (port_parse(e->d_name, &dev) < 0 || !holdplan_hub_matters(rules, n_rules, &dev) ||
		    dev.depth >= PORT_MAX_DEPTH ||
		    (maxchild = usbfs_attr_dec(e->d_name, "maxchild")) <= 0 || !usbfs_is_hub(e->d_name))
			continue;
		more = realloc(hubs, (n + 1) * sizeof(*hubs));
		if (!more) {
			closedir(d);
			free(hubs);
			return -ENOMEM;
		}
		hubs = more;
		hubs[n++] = (struct holdplan_hub){ .port = dev, .maxchild = (unsigned)maxchild };
	}
	if (d)
		closedir(d);
	*ret = hubs, *ret_n = n;
	return 0;
}

/* Opens hub's usbfs file when it has none, or its device has changed. */
static void open_hub(struct hold_hub *hub, struct hold_changes *out)
{
	char node[32];
	long dev = usbfs_node(hub->name, node);

	if (dev < 0) {
		close_hub(hub, false, out); /* gone: its file is of no use */
		return;
	}
	if (hub->fd >= 0 && hub->devnum == (unsigned)dev)
		return;
	close_hub(hub, false, out);
	hub->devnum = (unsigned)dev;
	hub->fd = usbfs_open_hub(node);
	if (hub->fd < 0 && !hub->warned) {
		hub->warned = true;
		note(out, HOLD_NO_HUB, hub->name, node, hub->fd);
	}
	if (hub->fd < 0)
		hub->fd = -1;
}

/* Holds or lets go one port of an open hub file as the plan says. */
static void apply_port(struct hold_hub *hub, unsigned p, bool want, struct hold_changes *out)
{
	char pn[PORT_STRLEN + 8];
	bool on, occupied;
	int r;

	if (want == holdplan_ports_has(&hub->held, p))
		return;
	holdplan_port_name(hub->name, p, pn, sizeof(pn));
	occupied = want && usbfs_attr_dec(pn, "devnum") > 0;
	switch (holdplan_step(want, holdplan_ports_has(&hub->held, p), occupied)) {
	case HOLDPLAN_CLAIM:
		on = true;
		break;
	case HOLDPLAN_RELEASE:
		on = false;
		break;
	default:
		return;
	}
	r = usbfs_claim(hub->fd, p, on);
	if (r == 0)
		holdplan_ports_set(&hub->held, p, on);
	if (r == 0 && !on)
		released(hub, p, out);
	else if (r < 0 && r != -EINVAL && !holdplan_ports_has(&hub->warned_ports, p)) {
		/* -EINVAL: no such port on this hub (a rule for a port the
		 * hub does not have) */
		holdplan_ports_set(&hub->warned_ports, p, true);
		note(out, HOLD_NO_CLAIM, pn, NULL, r);
	}
}

/* Apply: hubs no longer wanted are let go (what had no driver gets one),
 * the wanted ones opened and their ports held as planned. */
static void apply(struct hold *h, const struct holdplan_want *want, size_t n_want,
		  struct hold_changes *out)
{
	for (size_t i = 0; i < h->n;) {
		if (holdplan_find(want, n_want, h->hubs[i].name)) {
			i++;
			continue;
		}
		close_hub(&h->hubs[i], true, out);
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
			*hub = (struct hold_hub){ .fd = -1 };
			util_strlcpy(hub->name, want[k].name, sizeof(hub->name));
		}
		open_hub(hub, out);
		for (unsigned p = 1; hub->fd >= 0 && p <= HOLDPLAN_MAX_PORT; p++)
			apply_port(hub, p, holdplan_ports_has(&want[k].held, p), out);
	}
}

/* The hub file port hangs on, and its number there in *p; NULL when it
 * has none. */
static struct hold_hub *hub_of(const struct hold *h, const struct usb_port *port, unsigned *p)
{
	char parent[PORT_STRLEN];
	struct hold_hub *hub;

	*p = port->num[port->depth - 1];
	holdplan_parent_name(port, parent, sizeof(parent));
	hub = by_name(h->hubs, h->n, parent);
	return hub && hub->fd >= 0 ? hub : NULL;
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

/* HOLD_FILE: what is held now, for 'status'; none when nothing is. */
static void write_held(const struct hold *h, struct hold_changes *out)
{
	char why[128], *text = NULL, path[SETTINGS_PATH_MAX + 16];
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
		snprintf(path, sizeof(path), "%s/%s", h->state_dir, HOLD_FILE);
		if (r < 0)
			note(out, HOLD_NO_NOTE, NULL, path, r);
	}
	free(text);
	close(fd);
}

/* The rules' ports held now, "PORT\tLABEL": a rule counts as held when
 * the hub it hangs on could be opened. NULL when out of memory. */
static char **held_texts(const struct hold *h, const struct holdplan_rule *rules, size_t n_rules,
			 size_t *ret_n)
{
	char **text = calloc(n_rules + 1, sizeof(*text));
	size_t n = 0;

	for (size_t i = 0; text && i < n_rules; i++) {
		char pname[PORT_STRLEN];
		unsigned p;

		if (rules[i].deny || !hub_of(h, &rules[i].port, &p))
			continue;
		port_format(&rules[i].port, pname, sizeof(pname));
		if (asprintf(&text[n], "%s\t%s", pname, rules[i].label) >= 0)
			n++;
	}
	*ret_n = n;
	return text;
}

/* The held rules' ports are now text: what starts and stops being held
 * is noted, and HOLD_FILE written when it changed. */
static void note_held(struct hold *h, char **text, size_t n_text, const struct settings *s,
		      struct hold_changes *out)
{
	bool changed = n_text != h->n_text;

	for (size_t i = 0; i < n_text; i++)
		if (!text_has(h->held_text, h->n_text, text[i])) {
			note_text(out, HOLD_HOLDING, text[i]);
			changed = true;
		}
	for (size_t i = 0; i < h->n_text; i++)
		if (!text_has(text, n_text, h->held_text[i]))
			note_text(out, HOLD_LET_GO, h->held_text[i]);
	free_text(h->held_text, h->n_text);
	h->held_text = text, h->n_text = n_text;
	if (changed || !h->state_dir[0]) {
		util_strlcpy(h->state_dir, s->state_dir, sizeof(h->state_dir));
		write_held(h, out);
	}
}

static void give(struct hold_hub *hub, unsigned p, const char *name, const char *why,
		 struct hold_changes *out);

/* Whether a device on a held port that a guest had (hold_passed) has
 * gone from it: QEMU keeps its file open, and usbfs on its interfaces
 * once its guest has configured it. */
static bool orphaned(const struct hold_hub *hub, unsigned p, const char *name,
		     const struct usb_port *busy, size_t n_busy)
{
	struct usb_port port;
	long devnum = usbfs_attr_dec(name, "devnum");

	if (devnum <= 0 || hub->passed[p] != devnum || port_parse(name, &port) < 0)
		return false;
	for (size_t k = 0; k < n_busy; k++)
		if (port_equal(&busy[k], &port))
			return false; /* its plug is being handled */
	return !usbfs_settled(name) && !usbfs_open_elsewhere(name);
}

/* A device a guest had and has no more (detached by 'sync') and nobody
 * is deciding about gets the host's drivers. */
static void orphans(struct hold *h, const struct usb_port *busy, size_t n_busy,
		    struct hold_changes *out)
{
	for (size_t i = 0; i < h->n; i++) {
		struct hold_hub *hub = &h->hubs[i];

		for (unsigned p = 1; hub->fd >= 0 && p <= HOLDPLAN_MAX_PORT; p++) {
			char name[PORT_STRLEN + 8];

			if (!holdplan_ports_has(&hub->held, p))
				continue;
			holdplan_port_name(hub->name, p, name, sizeof(name));
			if (!orphaned(hub, p, name, busy, n_busy))
				continue;
			hub->passed[p] = 0;
			give(hub, p, name, "no guest has it", out);
		}
	}
}

void hold_sync(struct hold *h, const struct settings *s, const struct usb_port *busy,
	       size_t n_busy, struct hold_changes *out)
{
	struct holdplan_rule *rules = NULL;
	struct holdplan_hub *present = NULL;
	struct holdplan_want *want = NULL;
	size_t n_rules, n_present, n_want, n_text;
	char **text;

	if (rule_ports(s, &rules, &n_rules) < 0 ||
	    present_hubs(rules, n_rules, &present, &n_present) < 0 ||
	    holdplan_hubs(rules, n_rules, present, n_present, &want, &n_want) < 0) {
		note(out, HOLD_NO_PLAN, NULL, NULL, -ENOMEM);
		free(rules);
		free(present);
		return;
	}
	free(present);
	apply(h, want, n_want, out);
	free(want);
	text = held_texts(h, rules, n_rules, &n_text);
	free(rules);
	if (!text) {
		note(out, HOLD_NO_MEMORY, NULL, NULL, -ENOMEM);
		return;
	}
	note_held(h, text, n_text, s, out);
	orphans(h, busy, n_busy, out);
}

size_t hold_unhandled(const struct hold *h, const struct usb_port *busy, size_t n_busy,
		      struct usb_port *ret, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < h->n; i++) {
		const struct hold_hub *hub = &h->hubs[i];

		for (unsigned p = 1; hub->fd >= 0 && p <= HOLDPLAN_MAX_PORT && n < max; p++) {
			char name[PORT_STRLEN + 8];
			struct usb_port port;
			bool in_flight = false;
			long devnum;

			if (!holdplan_ports_has(&hub->held, p))
				continue;
			holdplan_port_name(hub->name, p, name, sizeof(name));
			devnum = usbfs_attr_dec(name, "devnum");
			if (devnum <= 0 || hub->passed[p] == devnum || port_parse(name, &port) < 0)
				continue; /* empty, or a guest has it */
			for (size_t k = 0; k < n_busy; k++)
				in_flight = in_flight || port_equal(&busy[k], &port);
			if (in_flight || usbfs_attr_dec(name, "bConfigurationValue") > 0 ||
			    usbfs_open_elsewhere(name))
				continue;
			ret[n++] = port;
		}
	}
	return n;
}

bool hold_is_held(const struct hold *h, const struct usb_port *dev)
{
	unsigned p;
	const struct hold_hub *hub = hub_of(h, dev, &p);

	return hub && holdplan_ports_has(&hub->held, p);
}

static void give(struct hold_hub *hub, unsigned p, const char *name, const char *why,
		 struct hold_changes *out)
{
	int r;

	usbfs_wait_configured(name);
	r = usbfs_claim(hub->fd, p, false);
	if (r < 0) {
		note(out, HOLD_NO_RELEASE, name, NULL, r);
		return;
	}
	holdplan_ports_set(&hub->held, p, false);
	/* held again once it is empty (hold_sync): until then the drivers
	 * udev loads for it must be able to bind */
	r = usbfs_to_host(name, false);
	if (r > 0)
		note(out, HOLD_HANDED, name, why, 0);
	else if (r < 0)
		note(out, HOLD_NOT_BOUND, name, NULL, r);
}

void hold_give_to_host(struct hold *h, const struct usb_port *port, struct hold_changes *out)
{
	char name[PORT_STRLEN];
	unsigned p;
	struct hold_hub *hub = hub_of(h, port, &p);

	if (!hub || !holdplan_ports_has(&hub->held, p))
		return;
	port_format(port, name, sizeof(name));
	give(hub, p, name, "not passed to a guest", out);
}

void hold_passed(struct hold *h, const struct usb_port *port)
{
	char name[PORT_STRLEN];
	unsigned p;
	struct hold_hub *hub = hub_of(h, port, &p);
	long devnum;

	port_format(port, name, sizeof(name));
	devnum = usbfs_attr_dec(name, "devnum");
	if (hub && devnum > 0)
		hub->passed[p] = (uint16_t)devnum;
}

void hold_release_all(struct hold *h, struct hold_changes *out)
{
	for (size_t i = 0; i < h->n; i++)
		close_hub(&h->hubs[i], true, out);
	for (size_t i = 0; i < h->n_text; i++)
		note_text(out, HOLD_LET_GO, h->held_text[i]);
	free_text(h->held_text, h->n_text);
	h->held_text = NULL, h->n_text = 0;
	if (h->state_dir[0])
		write_held(h, out);
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
