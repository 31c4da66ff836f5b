/* status [NAME] [--json]: the host's USB tree, and for each device which
 * guest claims it by which rule and whether that guest has it now. One model (JSON)
 * is built and then either printed as it is or drawn as a tree. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "host/disk.h"
#include "guests/guest.h"
#include "commands/status.h"
#include "act/guestdisks.h"
#include "host/hold.h"
#include "base/log.h"
#include "base/report.h"
#include "base/state.h"
#include "host/usbtree.h"
#include "guests/vdisk.h"
#include "base/util.h"

/* Device strings are any bytes; JSON wants UTF-8. Invalid UTF-8 is shown
 * escaped instead. */
static json_t *device_string(const char *v)
{
	char escaped[USB_STRING_MAX * 4 + 1];
	json_t *j = json_string(v);

	return j ? j : json_string(log_escape(v, escaped, sizeof(escaped)));
}

static const char *basename_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* Who a claim or an entry is about: "guest" (its name), "kind", "label"
 * for people, and a Proxmox VM's "vmid". NULL when out of memory. */
static json_t *who(const struct vm *vm)
{
	json_t *j = json_pack("{s:s, s:s, s:s}", "guest", vm->t.name, "kind",
			      target_kind_name(vm->t.kind), "label", vm->t.label);

	if (j && vm->t.kind == TARGET_PVE &&
	    json_object_set_new(j, "vmid", json_integer((json_int_t)vm->t.vmid)) < 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static json_t *rule_json(const struct vm *vm, const struct usb_rule *rule)
{
	char text[USB_STRING_MAX * 4 + 32];
	json_t *j = who(vm);

	usbconf_format_rule(rule, text, sizeof(text));
	if (j && json_object_update_new(j, json_pack("{s:s, s:s, s:i}", "rule", text, "file",
						     vm->rules->path, "line", (int)rule->line)) < 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* A claim two guests make equally: the first's rule, and its rival. */
static json_t *conflict_json(const struct placement *p)
{
	json_t *j = rule_json(p->vm, p->rule);

	json_object_set_new(j, "rival", json_string(p->rival->t.name));
	json_object_set_new(j, "rival_label", json_string(p->rival->t.label));
	return j;
}

/* Which guests hold port through the tool: their names. */
static json_t *held_by(const struct vms *v, const struct usb_port *port)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < v->n; i++)
		for (size_t k = 0; k < v->list[i]->n_held; k++)
			if (port_equal(&v->list[i]->held[k].port, port))
				json_array_append_new(a, json_string(v->list[i]->t.name));
	return a;
}

/* The best claim of a VM that is not running (for "would go to VM 102"). */
static struct vm *stopped_claimer(struct vms *v, const struct usb_device_info *dev,
				  const struct usb_rule **rule)
{
	struct vm *best = NULL;
	unsigned best_score = 0;

	for (size_t i = 0; i < v->n; i++) {
		const struct usb_rule *r;
		unsigned score;

		if (!v->list[i]->rules || vms_running(v, v->list[i]))
			continue;
		score = usbconf_match(v->list[i]->rules, dev, &r);
		if (score > best_score) {
			best = v->list[i];
			best_score = score;
			*rule = r;
		}
	}
	return best;
}

static json_t *device_json(struct vms *v, const struct usb_device_info *d)
{
	char port[PORT_STRLEN], hostport[PORT_STRLEN], path[PORT_CONTROLLER_MAX + PORT_STRLEN + 8];
	char vid[8], pid[8];
	const char *state;
	bool open_ = false;
	json_t *j, *claim = json_null();
	struct placement p;
	int r;

	port_format(&d->port, port, sizeof(port));
	port_format_hostport(&d->port, hostport, sizeof(hostport));
	if (d->controller[0])
		port_format_path(d->controller, &d->port, path, sizeof(path));
	else
		path[0] = '\0';
	snprintf(vid, sizeof(vid), "%04x", d->vid);
	snprintf(pid, sizeof(pid), "%04x", d->pid);

	r = vms_place(v, d, &p);
	if (r < 0)
		return NULL;
	if (d->dev_class == USB_CLASS_HUB) {
		state = "hub";
	} else if (p.kind == PLACE_VM) {
		claim = rule_json(p.vm, p.rule);
		const struct xhci_dev *h = p.vm->held_state == 0 ? vms_holds(v, p.vm, &d->port) : NULL;

		/* held is not yet open: QEMU's QOM "attached" tells, where
		 * QEMU is asked (target_held_is_open()) */
		state = p.vm->held_state != 0 ? "unknown"
			: !h		      ? "not-attached"
			: h->open == 1 || (h->open < 0 && target_held_is_open(&p.vm->t))
				? "attached"
				: "waiting";
		open_ = h && h->open == 1;
	} else if (p.kind == PLACE_PROXMOX && !p.pve) {
		claim = who(p.vm);
		state = "libvirt";
	} else if (p.kind == PLACE_PROXMOX) {
		claim = who(p.vm);
		if (claim && json_object_update_new(claim, json_pack("{s:i, s:s?}", "proxmox_usb",
								     (int)p.pve->index, "proxmox_mapping",
								     p.pve->kind == PVE_USB_MAPPING
									     ? p.pve->mapping
									     : NULL)) < 0)
			claim = NULL;
		state = "proxmox";
	} else if (p.kind == PLACE_DISK) {
		claim = rule_json(p.vm, p.rule);
		state = "disk";
	} else if (p.kind == PLACE_CONFLICT) {
		claim = conflict_json(&p);
		state = "conflict";
	} else {
		const struct usb_rule *rule = NULL;
		struct vm *vm = stopped_claimer(v, d, &rule);

		state = vm ? "not-running" : "unclaimed";
		for (size_t i = 0; !vm && i < v->n; i++)
			if (v->list[i]->rules && (rule = usbconf_kept_out(v->list[i]->rules, d))) {
				vm = v->list[i];
				state = "denied";
			}
		if (vm)
			claim = rule_json(vm, rule);
	}
	j = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:b, s:s, s:b, s:o, s:o}",
		      "port", port, "bus", (json_int_t)d->port.bus, "hostport", hostport, "path",
		      path, "vendor_id", vid, "product_id", pid, "product", device_string(d->product),
		      "manufacturer", device_string(d->manufacturer), "serial",
		      device_string(d->serial), "speed", d->speed, "hub",
		      d->dev_class == USB_CLASS_HUB, "state", state, "open", open_, "claim", claim, "held_by",
		      held_by(v, &d->port));
	return j;
}

/* The words for the states a USB device and a disk share; false for
 * another state. */
static bool describe_claim(const char *state, json_t *claim, const char *where, char *what,
			   size_t n)
{
	const char *vm = json_string_value(json_object_get(claim, "label"));

	if (!strcmp(state, "not-attached"))
		snprintf(what, n, "%s: NOT attached (%s); 'pve-usb-hotplug sync' attaches it", vm, where);
	else if (!strcmp(state, "conflict"))
		snprintf(what, n, "%s and %s claim it equally: attached to neither", vm,
			 json_string_value(json_object_get(claim, "rival_label")));
	else if (!strcmp(state, "not-running"))
		snprintf(what, n, "%s when it runs (%s)", vm, where);
	else if (!strcmp(state, "denied"))
		snprintf(what, n, "denied to %s (%s)", vm, where);
	else
		return false;
	return true;
}

/* The guests (names) in held but the one that should have it, each on a
 * line of its own. */
static void print_others(json_t *held, const char *rightful, int indent, const char *what)
{
	json_t *h;
	size_t i;

	json_array_foreach(held, i, h) {
		const char *name = json_string_value(h);

		if (rightful && !strcmp(name, rightful))
			continue;
		printf("%*s%s %s%s; 'pve-usb-hotplug sync' sorts it out\n", indent, "", what,
		       strspn(name, "0123456789") == strlen(name) ? "VM " : "", name);
	}
}

/* What each guest has of the tool's disks (NULL: not asked). */
struct disk_view {
	struct vdisk_set *sets; /* one a guest of the list, n_sets long */
	bool *asked;
	size_t n;
};

static json_t *disk_json(struct vms *v, const struct disk_view *dv, const struct usb_disk *d)
{
	char id[DISK_ID_MAX], port[PORT_STRLEN];
	const char *state = "unclaimed", *driver = NULL;
	json_t *claim = json_null(), *held = json_array();
	struct disk_serials ser;
	struct placement p;

	disk_qemu_id(disk_key(d), id, sizeof(id));
	port_format(&d->port, port, sizeof(port));
	disk_serials(d, &ser);
	if (vms_place_disk(v, d, &p) < 0 || !held) {
		json_decref(held);
		return NULL;
	}
	for (size_t i = 0; i < dv->n; i++) {
		const struct vdisk *e = dv->asked[i] ? vdisk_find(&dv->sets[i], id) : NULL;

		if (e && e->driver[0]) {
			json_array_append_new(held, json_string(v->list[i]->t.name));
			if (p.kind == PLACE_VM && p.vm == v->list[i])
				driver = e->driver;
		}
	}
	if (p.kind == PLACE_VM) {
		claim = rule_json(p.vm, p.rule);
		state = driver ? "attached" : "not-attached";
	} else if (p.kind == PLACE_CONFLICT) {
		claim = conflict_json(&p);
		state = "conflict";
	} else {
		for (size_t i = 0; i < v->n; i++) {
			const struct usb_rule *rule = NULL;
			struct vm *vm = v->list[i];

			if (!vm->rules)
				continue;
			if ((rule = usbconf_disk_denied(vm->rules, &ser)))
				state = "denied";
			else if (usbconf_disk_match(vm->rules, &ser, &rule))
				state = "not-running";
			if (rule) {
				claim = rule_json(vm, rule);
				break;
			}
		}
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:o, s:s, s:s?, s:o}", "name",
			 d->name, "serial", d->serial, "serial_short", d->serial_short, "model", d->model,
			 "link", d->link, "size", (json_int_t)d->size, "port", port, "state", state,
			 "claim", claim, "device", id, "driver", driver, "held_by", held);
}

static void print_disks(json_t *disks)
{
	json_t *d;
	size_t i;

	if (json_array_size(disks) == 0)
		return;
	printf("USB disks:\n");
	json_array_foreach(disks, i, d) {
		const char *state = json_string_value(json_object_get(d, "state"));
		json_t *claim = json_object_get(d, "claim");
		const char *vm = json_string_value(json_object_get(claim, "label"));
		const char *rule = json_string_value(json_object_get(claim, "rule"));
		const char *file = json_string_value(json_object_get(claim, "file"));
		char where[300] = "", what[500] = "", size[32], serial[200];

		if (rule)
			snprintf(where, sizeof(where), "'%s', %s:%lld", rule, basename_of(file),
				 json_integer_value(json_object_get(claim, "line")));
		if (!strcmp(state, "attached"))
			snprintf(what, sizeof(what), "%s: attached as %s %s (%s)", vm,
				 json_string_value(json_object_get(d, "driver")),
				 json_string_value(json_object_get(d, "device")), where);
		else if (!strcmp(state, "denied"))
			snprintf(what, sizeof(what), "denied to %s (%s); stays on the host", vm, where);
		else if (!describe_claim(state, claim, where, what, sizeof(what)))
			snprintf(what, sizeof(what), "on the host (no disk rule names it)");
		disk_format_size((uint64_t)json_integer_value(json_object_get(d, "size")), size,
				 sizeof(size));
		log_escape(json_string_value(json_object_get(d, "serial")), serial, sizeof(serial));
		printf("  %-6s %9s  %s at %s  %s\n", json_string_value(json_object_get(d, "name")), size,
		       serial, json_string_value(json_object_get(d, "port")), what);
		print_others(json_object_get(d, "held_by"),
			     !strcmp(state, "attached") ? json_string_value(json_object_get(claim, "guest")) : NULL,
			     9, "also in");
	}
}

/* Whether the disk's entry is about guest: its claim or a holder. */
static bool disk_concerns(json_t *d, const char *guest)
{
	const char *claimer = json_string_value(json_object_get(json_object_get(d, "claim"), "guest"));
	json_t *h;
	size_t i;

	if (claimer && strcmp(claimer, guest) == 0)
		return true;
	json_array_foreach(json_object_get(d, "held_by"), i, h)
		if (strcmp(json_string_value(h), guest) == 0)
			return true;
	return false;
}

/* A guest's "disks" (ids of the tool's disks it has) and "stale_disks"
 * (those whose host device is gone); not set when QEMU was not asked. */
static void add_vm_disks(json_t *j, const struct vdisk_set *set)
{
	json_t *have = json_array(), *stale = json_array();

	for (size_t i = 0; set && i < set->n; i++) {
		struct stat st;

		json_array_append_new(have, json_string(set->d[i].id));
		if (!set->d[i].driver[0] || (set->d[i].file[0] && stat(set->d[i].file, &st) < 0))
			json_array_append_new(stale, json_string(set->d[i].id));
	}
	json_object_set_new(j, "disks", have);
	json_object_set_new(j, "stale_disks", stale);
}

static bool vm_wants(const struct vm *vm, const struct usb_device_info *d)
{
	if (vms_claims(vm, d))
		return true;
	for (size_t k = 0; k < vm->n_held; k++)
		if (port_equal(&vm->held[k].port, &d->port))
			return true;
	return false;
}

static json_t *vm_json(struct vms *v, struct vm *vm, const struct usb_device_info *devs,
		       size_t n_devs)
{
	json_t *holds = json_array(), *stale = json_array();
	char port[PORT_STRLEN];
	bool running = vms_running(v, vm);

	for (size_t k = 0; k < vm->n_held; k++) {
		bool present = false;

		port_format(&vm->held[k].port, port, sizeof(port));
		json_array_append_new(holds, json_string(port));
		for (size_t i = 0; i < n_devs; i++)
			present |= port_equal(&devs[i].port, &vm->held[k].port);
		if (!present)
			json_array_append_new(stale, json_string(port));
	}
	json_t *j = who(vm);

	if (j && json_object_update_new(
			 j, json_pack("{s:b, s:b, s:s?, s:I, s:I, s:b, s:o, s:o}", "running",
				      running || vm->released, "released", vm->released, "rules_file",
				      vm->rules ? vm->rules->path : NULL, "rules",
				      (json_int_t)(vm->rules ? vm->rules->n_rules : 0), "bad_lines",
				      (json_int_t)(vm->rules ? vm->rules->n_errors : 0), "qemu_answered",
				      !running || vm->held_state == 0, "holds", holds, "stale", stale)) < 0) {
		json_decref(j);
		return NULL;
	}
	/* a Proxmox VM's own config beside its rules (else they are left over) */
	if (j && vm->t.kind == TARGET_PVE)
		json_object_set_new(j, "vm_config", json_boolean(vms_pve(v, vm) != NULL));
	if (j && vm->t.kind != TARGET_PVE)
		json_object_set_new(j, "qmp", json_string(vm->t.qmp));
	return j;
}

static void print_device(json_t *d, unsigned indent)
{
	const char *state = json_string_value(json_object_get(d, "state"));
	json_t *claim = json_object_get(d, "claim");
	char product[200], what[400] = "", text[800];
	const char *vm = json_string_value(json_object_get(claim, "label"));
	const char *guest = json_string_value(json_object_get(claim, "guest"));
	const char *rule = json_string_value(json_object_get(claim, "rule"));
	const char *file = json_string_value(json_object_get(claim, "file"));
	long long line = json_integer_value(json_object_get(claim, "line"));
	char where[300] = "";

	if (rule)
		snprintf(where, sizeof(where), "'%s', %s:%lld", rule, basename_of(file), line);
	if (!strcmp(state, "attached"))
		snprintf(what, sizeof(what), "%s: attached (%s)", vm, where);
	else if (!strcmp(state, "waiting"))
		snprintf(what, sizeof(what), "%s: added, not open yet (%s); QEMU opens it once it finds it, unless it is busy or its speed does not fit",
			 vm, where);
	else if (!strcmp(state, "unknown"))
		snprintf(what, sizeof(what), "%s: claimed (%s); QEMU did not answer", vm, where);
	else if (!strcmp(state, "proxmox") && json_is_string(json_object_get(claim, "proxmox_mapping")))
		snprintf(what, sizeof(what), "%s: passed by Proxmox itself (usb%lld, mapping '%s')",
			 vm, json_integer_value(json_object_get(claim, "proxmox_usb")),
			 json_string_value(json_object_get(claim, "proxmox_mapping")));
	else if (!strcmp(state, "proxmox"))
		snprintf(what, sizeof(what), "%s: passed by Proxmox itself (usb%lld)", vm,
			 json_integer_value(json_object_get(claim, "proxmox_usb")));
	else if (!strcmp(state, "libvirt"))
		snprintf(what, sizeof(what), "%s: passed by its own libvirt XML", vm);
	else if (!strcmp(state, "hub"))
		snprintf(what, sizeof(what), "hub");
	else if (!strcmp(state, "disk"))
		snprintf(what, sizeof(what), "carries a disk for %s (%s); see USB disks below", vm, where);
	else
		describe_claim(state, claim, where, what, sizeof(what));

	product[0] = '\0';
	if (json_string_length(json_object_get(d, "product"))) {
		log_escape(json_string_value(json_object_get(d, "product")), product + 1,
			   sizeof(product) - 2);
		product[0] = '"';
		strcat(product, "\"");
	}
	snprintf(text, sizeof(text), "%*s%-*s %s:%s %6sM  %-24s %s", (int)indent, "",
		 (int)(18 - indent), json_string_value(json_object_get(d, "port")),
		 json_string_value(json_object_get(d, "vendor_id")),
		 json_string_value(json_object_get(d, "product_id")),
		 json_string_value(json_object_get(d, "speed")), product, what);
	for (size_t n = strlen(text); n && text[n - 1] == ' ';)
		text[--n] = '\0';
	puts(text);

	print_others(json_object_get(d, "held_by"),
		     !strcmp(state, "attached") || !strcmp(state, "waiting") ? guest : NULL,
		     (int)indent + 20, "also held by");
}

static void print_text(json_t *model)
{
	json_t *devs = json_object_get(model, "devices"), *vms = json_object_get(model, "vms"), *d;
	long long bus = -1;
	size_t i;

	if (json_array_size(devs) == 0)
		printf("No USB devices%s.\n", json_is_true(json_object_get(model, "filtered")) ? " for this VM" : "");
	json_array_foreach(devs, i, d) {
		const char *hostport = json_string_value(json_object_get(d, "hostport"));
		unsigned depth = 1;

		if (json_integer_value(json_object_get(d, "bus")) != bus) {
			const char *path = json_string_value(json_object_get(d, "path"));
			const char *cut = strstr(path, "-usb-0:");

			bus = json_integer_value(json_object_get(d, "bus"));
			printf("Bus %lld%s%.*s\n", bus, cut ? "  " : "", cut ? (int)(cut - path) : 0, path);
		}
		for (const char *c = hostport; *c; c++)
			depth += *c == '.';
		print_device(d, 2 * depth);
	}
	print_disks(json_object_get(model, "disks"));
	json_array_foreach(vms, i, d) {
		json_t *stale = json_object_get(d, "stale"), *p;
		const char *vm = json_string_value(json_object_get(d, "label"));
		const char *guest = json_string_value(json_object_get(d, "guest"));
		const char *file = json_string_value(json_object_get(d, "rules_file"));
		size_t k;

		printf("%s: %s, %lld rule(s)%s%s, holds %zu device(s)%s\n", vm,
		       json_is_true(json_object_get(d, "released"))  ? "running, released"
		       : json_is_true(json_object_get(d, "running")) ? "running"
								     : "not running",
		       json_integer_value(json_object_get(d, "rules")), file ? " in " : "",
		       file ? file : "", json_array_size(json_object_get(d, "holds")),
		       json_is_true(json_object_get(d, "qemu_answered")) ? "" : " (QEMU did not answer)");
		if (json_array_size(json_object_get(d, "disks")))
			printf("  has %zu disk(s) of pve-usb-hotplug's\n", json_array_size(json_object_get(d, "disks")));
		if (json_is_true(json_object_get(d, "released")))
			printf("  released: USB events leave it alone until 'pve-usb-hotplug sync %s' or its next start\n",
			       guest);
		if (json_is_false(json_object_get(d, "vm_config")))
			printf("  no %s.conf on this node (destroyed or migrated away?): a new VM %s would inherit these rules\n",
			       guest, guest);
		if (json_integer_value(json_object_get(d, "bad_lines")))
			printf("  %lld bad line(s): run 'pve-usb-hotplug check %s'\n",
			       json_integer_value(json_object_get(d, "bad_lines")), guest);
		json_array_foreach(stale, k, p)
			printf("  holds usbhost%s, but nothing is plugged in at %s; 'pve-usb-hotplug sync' detaches it\n",
			       json_string_value(p), json_string_value(p));
		json_array_foreach(json_object_get(d, "stale_disks"), k, p)
			printf("  has disk %s, whose host device is gone; 'pve-usb-hotplug sync' detaches it\n",
			       json_string_value(p));
	}
	json_array_foreach(json_object_get(model, "held_ports"), i, d)
		printf("Port %s and below: held for %s by the listener; the host's drivers stay off what is plugged there\n",
		       json_string_value(json_object_get(d, "port")),
		       json_string_value(json_object_get(d, "guest")));
}

/* The ports the listener holds (hold.h), from its state file while it
 * runs: [{"port", "guest"}], of only when given. */
static json_t *held_ports(const struct settings *s, const struct vm *only)
{
	_cleanup_free_ char *text = NULL;
	json_t *list = json_array();
	char why[128];
	size_t len;
	int fd;

	if (!list || state_open(s->state_dir, &fd, why, sizeof(why)) < 0)
		return list;
	/* a file left by a listener that was killed says nothing */
	if (faccessat(fd, STATE_LISTEN_MARKER, F_OK, AT_SYMLINK_NOFOLLOW) == 0 &&
	    util_read_file_at(fd, HOLD_FILE, true, 64 * 1024, &text, &len) == 0) {
		for (char *line = text, *next; *line; line = next) {
			char *tab;

			next = line + strcspn(line, "\n");
			if (*next)
				*next++ = '\0';
			tab = strchr(line, '\t');
			if (!tab)
				continue;
			*tab = '\0';
			if (!only || strcmp(only->t.label, tab + 1) == 0)
				json_array_append_new(list, json_pack("{s:s, s:s}", "port", line, "guest", tab + 1));
		}
	}
	close(fd);
	return list;
}

/* What status reports on, gathered before anything is printed. */
struct snapshot {
	struct vms v;
	struct usb_device_info *devs;
	size_t n_devs;
	bool *show; /* n_devs long: which devices the report lists */
	struct usb_disk *disks;
	size_t n_disks;
	struct disk_view dv;
	struct vm *only; /* the VM asked about, or NULL for all */
	int error;	 /* -EIO once a guest could not be asked */
};

static bool reported(const struct snapshot *sn, const struct vm *vm)
{
	return sn->only ? vm == sn->only : vm->rules != NULL;
}

/* What QEMU says, not the record: of every VM with rules, and of the one
 * asked about even without (it may hold what sync would take). */
static void fetch_held(struct snapshot *sn)
{
	for (size_t i = 0; i < sn->v.n; i++)
		if (reported(sn, sn->v.list[i]) && vms_running(&sn->v, sn->v.list[i]) &&
		    vms_fetch_held(&sn->v, sn->v.list[i]) < 0)
			sn->error = -EIO;
}

/* With a VM: its devices, and the hubs above them. 0 or -ENOMEM. */
static int pick_devices(struct snapshot *sn)
{
	const struct usb_device_info *devs = sn->devs;

	sn->show = calloc(sn->n_devs + 1, sizeof(*sn->show));
	if (!sn->show)
		return -ENOMEM;
	for (size_t i = sn->n_devs; i-- > 0;) {
		sn->show[i] = !sn->only ||
			      (devs[i].dev_class != USB_CLASS_HUB && vm_wants(sn->only, &devs[i]));
		for (size_t k = i + 1; sn->only && !sn->show[i] && k < sn->n_devs; k++)
			sn->show[i] = sn->show[k] && port_is_under(&devs[k].port, &devs[i].port);
	}
	return 0;
}

/* The host's disks, and the tool's disks in each guest that may have any,
 * asked of QEMU. 0 or -ENOMEM. */
static int gather_disks(const struct settings *s, struct snapshot *sn)
{
	struct disk_view *dv = &sn->dv;
	int r;

	dv->n = sn->v.n;
	dv->sets = calloc(sn->v.n + 1, sizeof(*dv->sets));
	dv->asked = calloc(sn->v.n + 1, sizeof(*dv->asked));
	if (!dv->sets || !dv->asked)
		return -ENOMEM;
	for (size_t i = 0; i < sn->v.n; i++) {
		struct vm *vm = sn->v.list[i];
		struct report rep = { 0 };
		struct guest *g;

		if ((sn->only && vm != sn->only) || !guestdisks_concern(s, vm) || !vms_running(&sn->v, vm))
			continue;
		if (guest_open(s, &vm->t, &rep, &g) < 0) {
			report_say(&rep);
			sn->error = -EIO;
			continue;
		}
		dv->asked[i] = guest_disks(g, &dv->sets[i]) == 0;
		if (!dv->asked[i])
			sn->error = -EIO;
		guest_close(g);
		report_say(&rep);
	}
	r = disk_scan(&sn->disks, &sn->n_disks);
	if (r < 0)
		log_warning("cannot read the host's disks: %s", strerror(-r));
	return 0;
}

/* Fills the model's "devices", "disks" and "vms". 0 or -ENOMEM. */
static int fill_model(struct snapshot *sn, json_t *model)
{
	json_t *devices = json_object_get(model, "devices"), *vm_list = json_object_get(model, "vms");

	for (size_t i = 0; i < sn->n_devs; i++) {
		json_t *d;

		if (!sn->show[i])
			continue;
		d = device_json(&sn->v, &sn->devs[i]);
		if (!d)
			return -ENOMEM;
		json_array_append_new(devices, d);
	}
	for (size_t i = 0; i < sn->n_disks; i++) {
		json_t *d = disk_json(&sn->v, &sn->dv, &sn->disks[i]);

		if (!d)
			return -ENOMEM;
		if (!sn->only || disk_concerns(d, sn->only->t.name))
			json_array_append_new(json_object_get(model, "disks"), json_incref(d));
		json_decref(d);
	}
	for (size_t i = 0; i < sn->v.n; i++) {
		json_t *j;

		if (!reported(sn, sn->v.list[i]))
			continue;
		j = vm_json(&sn->v, sn->v.list[i], sn->devs, sn->n_devs);
		if (j)
			add_vm_disks(j, sn->dv.asked[i] ? &sn->dv.sets[i] : NULL);
		json_array_append_new(vm_list, j);
	}
	return 0;
}

static int print_model(json_t *model, bool as_json)
{
	if (as_json) {
		char *text = json_dumps(model, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

		if (!text)
			return -ENOMEM;
		puts(text);
		free(text);
	} else {
		print_text(model);
	}
	fflush(stdout);
	return 0;
}

static int not_running(const struct settings *s, const char *name)
{
	struct report rep = { 0 };
	struct target t;
	int r = target_by_name(s, name, &t, &rep);

	report_say(&rep);
	if (r == 0)
		return log_err(-ENOENT, "%s has no %s and does not run", t.label, t.rules);
	return -ENOENT;
}

int status_run(const struct settings *s, const char *name, bool as_json)
{
	struct snapshot sn = { .error = 0 };
	json_t *model = NULL;
	int r;

	r = vms_load_host(s, &sn.v, &sn.devs, &sn.n_devs);
	if (r < 0)
		return r;
	if (name && !(sn.only = vms_find(&sn.v, name))) {
		r = not_running(s, name);
		goto out;
	}
	fetch_held(&sn);
	r = pick_devices(&sn);
	if (r >= 0)
		r = gather_disks(s, &sn);
	if (r >= 0) {
		model = json_pack("{s:[], s:[], s:[], s:b}", "devices", "disks", "vms", "filtered",
				  sn.only != NULL);
		r = model ? fill_model(&sn, model) : -ENOMEM;
	}
	if (r >= 0) {
		json_object_set_new(model, "held_ports", held_ports(s, sn.only));
		r = print_model(model, as_json);
	}
	if (r >= 0)
		r = sn.error;
out:
	json_decref(model);
	free(sn.dv.sets);
	free(sn.dv.asked);
	free(sn.disks);
	free(sn.show);
	free(sn.devs);
	vms_free(&sn.v);
	return r;
}
