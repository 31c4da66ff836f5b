#include "policy/vms.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "guests/guest.h"
#include "base/log.h"
#include "base/report.h"
#include "guests/vdisk.h"
#include "host/vmproc.h"

static struct vm *vm_new(const struct target *t, struct vm_rules *rules)
{
	struct vm *vm = calloc(1, sizeof(*vm));

	if (!vm)
		return NULL;
	vm->t = *t;
	vm->rules = rules;
	vm->running = -1;
	vm->pve_state = -1;
	vm->held_state = HELD_UNKNOWN;
	return vm;
}

static int add_declared(struct vms *v, enum log_level line_level);
static int add_containers(struct vms *v, enum log_level line_level);

int vms_load(const struct settings *s, enum log_level line_level, unsigned long starting_vmid,
	     struct vms *ret)
{
	struct vm_rules **rules = NULL;
	size_t n = 0;
	int r;

	memset(ret, 0, sizeof(*ret));
	ret->s = s;
	ret->starting_vmid = starting_vmid;
	ret->maps_state = 1;
	/* udev events (quiet about lines) are quiet about a missing directory */
	r = usbconf_load_all(s->vm_config_dir, line_level,
			     line_level == LOG_LVL_DEBUG || s->n_guests > 0, &rules, &n);
	if (r == -ENOENT && s->n_guests > 0)
		r = 0; /* a host without Proxmox, or /etc/pve not there yet */
	if (r < 0)
		return r;
	ret->list = calloc(n + 1, sizeof(*ret->list));
	if (!ret->list) {
		usbconf_free_all(rules, n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct report rep = { 0 };
		struct target t;

		r = target_pve(s, rules[i]->vmid, &t, &rep);
		report_say(&rep);
		ret->list[i] = r == 0 ? vm_new(&t, rules[i]) : NULL;
		if (!ret->list[i]) {
			/* the first i are the list's now; the rest are not */
			for (size_t k = i; k < n; k++)
				usbconf_free(rules[k]);
			free(rules);
			vms_free(ret);
			return -ENOMEM;
		}
		ret->n++;
	}
	free(rules); /* the rules themselves now belong to the list */
	r = add_containers(ret, line_level);
	return r < 0 ? r : add_declared(ret, line_level);
}

int vms_load_records(const struct settings *s, struct vms *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->s = s;
	ret->maps_state = 1;
	ret->list = calloc(1, sizeof(*ret->list));
	if (!ret->list)
		return -ENOMEM;
	/* the declared guests come from the settings, not /etc/pve */
	return add_declared(ret, LOG_LVL_DEBUG);
}

void vms_free(struct vms *v)
{
	for (size_t i = 0; i < v->n; i++) {
		usbconf_free(v->list[i]->rules);
		free(v->list[i]->held);
		free(v->list[i]);
	}
	free(v->list);
	v->list = NULL;
	v->n = 0;
	pveconf_mappings_free(&v->maps);
}

int vms_load_host(const struct settings *s, struct vms *v, struct usb_device_info **devs,
		  size_t *n_devs)
{
	int r;

	r = vms_load(s, LOG_LVL_WARNING, 0, v);
	if (r < 0)
		return r;
	r = vms_list_running(v);
	if (r < 0) {
		vms_free(v);
		return log_err(r, "%s: cannot list the running VMs: %s", s->qmp_socket_dir, strerror(-r));
	}
	r = usbtree_scan(vms_any_disk_rules(v), devs, n_devs);
	if (r < 0) {
		vms_free(v);
		return log_err(r, "cannot read the host's USB devices: %s", strerror(-r));
	}
	return 0;
}

struct vm *vms_find(struct vms *v, const char *name)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->list[i]->t.name, name) == 0)
			return v->list[i];
	return NULL;
}

bool vms_claims(const struct vm *vm, const struct usb_device_info *dev)
{
	return vm->rules && usbconf_match(vm->rules, dev, NULL);
}

/* Whether vm is the Proxmox VM whose post-start this run is. */
static bool starting(const struct vms *v, const struct vm *vm)
{
	return vm->t.vmid && vm->t.vmid == v->starting_vmid; /* a VM or a container */
}

bool vms_running(struct vms *v, struct vm *vm)
{
	if (vm->running < 0) {
		struct report rep = { 0 };

		vm->running = starting(v, vm) || guest_running(v->s, &vm->t, &rep);
		if (!vm->running && vm->t.sock_state == -ENOTUNIQ)
			target_explain_ambiguous(&vm->t, LOG_LVL_WARNING, &rep);
		report_say(&rep);
		vm->released = vm->running && !starting(v, vm) && guest_is_released(v->s, &vm->t);
	}
	return vm->running > 0 && !vm->released;
}

/* Appends a guest; the list is sorted again by the caller. */
static int add_vm(struct vms *v, const struct target *t, struct vm_rules *rules, int running)
{
	struct vm **nl = realloc(v->list, (v->n + 1) * sizeof(*nl));

	if (!nl)
		return -ENOMEM;
	v->list = nl;
	v->list[v->n] = vm_new(t, rules);
	if (!v->list[v->n])
		return -ENOMEM;
	v->list[v->n++]->running = running;
	return 0;
}

/* Proxmox VMs by VMID first, then the declared guests by name. */
static int cmp_vm(const void *a, const void *b)
{
	const struct vm *x = *(struct vm *const *)a, *y = *(struct vm *const *)b;

	if ((x->t.kind == TARGET_PVE) != (y->t.kind == TARGET_PVE))
		return x->t.kind == TARGET_PVE ? -1 : 1;
	if (x->t.kind == TARGET_PVE)
		return (x->t.vmid > y->t.vmid) - (x->t.vmid < y->t.vmid);
	return strcmp(x->t.name, y->t.name);
}

/* The guests declared in the settings, each with its rules (a missing or
 * unreadable rules file: no rules, which check reports). */
static int add_declared(struct vms *v, enum log_level line_level)
{
	for (size_t i = 0; i < v->s->n_guests; i++) {
		struct vm_rules *rules = NULL;
		struct target t;
		int r;

		target_from_conf(&v->s->guests[i], &t);
		r = usbconf_load_file(t.rules, 0, line_level, &rules);
		if (r == -ENOMEM)
			return r;
		if (add_vm(v, &t, rules, -1) < 0) {
			usbconf_free(rules);
			return -ENOMEM;
		}
	}
	return 0;
}

/* Proxmox's containers with rules (<lxc_config_dir>/<ctid>.usb.conf): a
 * missing directory means none (other problems are logged). */
static int add_containers(struct vms *v, enum log_level line_level)
{
	struct vm_rules **rules = NULL;
	size_t n = 0;
	int r = usbconf_load_all(v->s->lxc_config_dir, line_level, true, &rules, &n);

	for (size_t i = 0; r == 0 && i < n; i++) {
		struct report rep = { 0 };
		struct target t;
		int bad = target_lxc(v->s, rules[i]->vmid, &t, &rep) < 0;

		report_say(&rep);
		if (bad || vms_find(v, t.name)) {
			usbconf_free(rules[i]);
		} else if (add_vm(v, &t, rules[i], -1) < 0) {
			/* the first i are the list's now; the rest are not */
			for (size_t k = i; k < n; k++)
				usbconf_free(rules[k]);
			r = -ENOMEM;
		}
	}
	free(rules);
	return r == -ENOMEM ? r : 0;
}

/* Adds a VM for each "<vmid><suffix>" in dir not listed yet, running
 * (1) or not known to (-1); with running 1 only those whose QEMU runs. */
static int add_from_dir(struct vms *v, const char *dir, const char *suffix, int running)
{
	struct dirent *de;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno; /* nothing there yet */
	while ((de = readdir(d))) {
		struct report rep = { 0 };
		unsigned long vmid;
		struct target t;
		bool bad;

		bad = usbconf_vmid_of_file(de->d_name, suffix, &vmid) < 0 ||
		      target_pve(v->s, vmid, &t, &rep) < 0;
		report_say(&rep);
		if (bad || vms_find(v, t.name) || (running == 1 && !vmproc_pid(t.pidfile)))
			continue;
		if (add_vm(v, &t, NULL, running) < 0) {
			closedir(d);
			return -ENOMEM;
		}
		/* running is known: so is whether it is held back */
		if (running == 1)
			v->list[v->n - 1]->released = guest_is_released(v->s, &v->list[v->n - 1]->t);
	}
	closedir(d);
	if (v->n > 1)
		qsort(v->list, v->n, sizeof(*v->list), cmp_vm);
	return 0;
}

int vms_list_running(struct vms *v)
{
	if (v->all_listed)
		return 0;
	v->all_listed = true;
	return add_from_dir(v, v->s->qmp_socket_dir, ".pid", 1);
}

int vms_list_hinted(struct vms *v)
{
	int r;

	if (v->hinted_listed)
		return 0;
	v->hinted_listed = true;
	/* a listing only: the files themselves are opened checked */
	r = add_from_dir(v, v->s->state_dir, ".ports", -1);
	return r == -ENOMEM ? r : 0;
}

const struct pve_mappings *vms_mappings(struct vms *v)
{
	if (v->maps_state == 1) {
		char node[256];

		/* its problems are for 'check' */
		pveconf_node_name(node, sizeof(node));
		v->maps_state = pveconf_mappings_load(v->s->mapping_file, node, LOG_LVL_DEBUG, &v->maps);
	}
	return v->maps_state == 0 ? &v->maps : NULL;
}

const struct pve_vm *vms_pve(struct vms *v, struct vm *vm)
{
	if (vm->t.kind != TARGET_PVE)
		return NULL;
	if (vm->pve_state == -1) {
		vm->pve_state = pveconf_load(v->s->vm_config_dir, vm->t.vmid, &vm->pve);
		for (size_t i = 0; vm->pve_state == 0 && i < vm->pve.n; i++)
			if (vm->pve.usb[i].kind == PVE_USB_MAPPING) {
				pveconf_resolve(&vm->pve, vms_mappings(v));
				break;
			}
	}
	return vm->pve_state == 0 ? &vm->pve : NULL;
}

static int keep_held(struct vm *vm, const struct xhci_set *set, bool asked)
{
	free(vm->held);
	vm->n_held = 0;
	vm->held = calloc(set->n_devs + 1, sizeof(*vm->held));
	if (!vm->held)
		return -ENOMEM;
	memcpy(vm->held, set->devs, set->n_devs * sizeof(*vm->held));
	vm->n_held = set->n_devs;
	/* in port order (struct xhci_dev starts with its port) */
	qsort(vm->held, vm->n_held, sizeof(*vm->held), port_compare);
	vm->held_asked = asked;
	return 0;
}

static int ask_held(struct vms *v, struct vm *vm, bool ask_qemu)
{
	const struct xhci_set *set;
	struct report rep = { 0 };
	struct guest *g;
	int r;

	r = guest_open(v->s, &vm->t, &rep, &g);
	if (r == 0) {
		r = guest_held(g, ask_qemu, &set);
		if (r == 0)
			r = keep_held(vm, set, ask_qemu);
		guest_close(g);
	}
	report_say(&rep);
	vm->held_state = r;
	return r;
}

int vms_fetch_held(struct vms *v, struct vm *vm)
{
	if (vm->held_state == 0 && vm->held_asked)
		return 0;
	if (vm->held_state < 0) /* asked already, and it failed */
		return vm->held_state;
	return ask_held(v, vm, true);
}

const struct xhci_dev *vms_holds(struct vms *v, struct vm *vm, const struct usb_port *port)
{
	if (vm->held_state == HELD_UNKNOWN) {
		struct xhci_set *set = malloc(sizeof(*set));
		int r = set ? guest_peek_held(v->s, &vm->t, set) : -ENOMEM;

		if (r == 0)
			vm->held_state = keep_held(vm, set, false);
		else if (r == -ENOENT && !vm->rules)
			vm->held_state = 0; /* never had anything from the tool */
		else
			ask_held(v, vm, false);
		free(set);
	}
	if (vm->held_state < 0)
		return NULL;
	for (size_t i = 0; i < vm->n_held; i++)
		if (port_equal(&vm->held[i].port, port))
			return &vm->held[i];
	return NULL;
}

/* The placement the decision d makes of the views (rules: each guest's
 * best rule). */
static void fill(const struct vms *v, const struct place_decision *d, const struct place_view *views,
		 const struct usb_rule **rules, struct placement *ret)
{
	ret->kind = d->kind;
	if (d->kind != PLACE_NOBODY)
		ret->vm = v->list[d->who];
	if (d->kind == PLACE_VM || d->kind == PLACE_CONFLICT) {
		ret->rule = rules[d->who];
		ret->score = views[d->who].score;
		ret->held = d->held;
	}
	if (d->kind == PLACE_CONFLICT)
		ret->rival = v->list[d->rival];
}

void vms_snapshot_free(struct vms_snapshot *snap)
{
	free(snap->views);
	free(snap->rules);
	free(snap->pves);
	*snap = (struct vms_snapshot){ 0 };
}

/* One guest's row of the snapshot. */
static void gather_one(struct vms *v, struct vm *vm, const struct usb_device_info *dev,
		       struct vms_snapshot *snap, size_t i)
{
	struct place_view *view = &snap->views[i];
	const struct pve_vm *pve;

	view->score = vm->rules ? usbconf_match(vm->rules, dev, &snap->rules[i]) : 0;
	/* a guest that neither claims it nor is Proxmox's cannot change the
	 * decision: not asked (a libvirt domain would cost libvirt) */
	view->running = (view->score || vm->t.kind == TARGET_PVE) && vms_running(v, vm);
	view->starting = starting(v, vm);
	if (view->running && (pve = vms_pve(v, vm)))
		view->proxmox_passes = (snap->pves[i] = pveconf_passes(pve, dev)) != NULL;
	/* a libvirt domain's own XML is its owner's word, as Proxmox's config
	 * is (asked of the claiming domains only) */
	if (view->running && view->score && !view->proxmox_passes)
		view->proxmox_passes = guest_passes(&vm->t, dev) > 0;
}

int vms_gather(struct vms *v, const struct usb_device_info *dev, struct vms_snapshot *ret)
{
	struct vms_snapshot snap = { 0 };
	size_t claims = 0;
	int r;

	*ret = snap;
	if (dev->dev_class == USB_CLASS_HUB)
		return 0;
	/* the cheap part first: most devices nobody running claims */
	for (size_t i = 0; i < v->n; i++)
		claims += vms_claims(v->list[i], dev) && vms_running(v, v->list[i]);
	if (claims == 0)
		return 0;
	/* Proxmox may pass it to any running VM, rules or not */
	r = vms_list_running(v);
	if (r < 0)
		return r;
	snap.n = v->n;
	snap.views = calloc(v->n, sizeof(*snap.views));
	snap.rules = calloc(v->n, sizeof(*snap.rules));
	snap.pves = calloc(v->n, sizeof(*snap.pves));
	if (!snap.views || !snap.rules || !snap.pves) {
		vms_snapshot_free(&snap);
		return -ENOMEM;
	}
	for (size_t i = 0; i < v->n; i++)
		gather_one(v, v->list[i], dev, &snap, i);
	/* what each holds costs a file read or a question to QEMU: asked
	 * only when rivals make it matter */
	if (place_claims(snap.views, snap.n) > 1)
		for (size_t i = 0; i < v->n; i++)
			snap.views[i].holds = snap.views[i].running && snap.views[i].score &&
					      !snap.views[i].starting &&
					      vms_holds(v, v->list[i], &dev->port);
	*ret = snap;
	return 0;
}

void vms_decide(const struct vms *v, const struct vms_snapshot *snap, struct placement *ret)
{
	struct place_decision d = place_decide(snap->views, snap->n);

	*ret = (struct placement){ .kind = PLACE_NOBODY };
	fill(v, &d, snap->views, snap->rules, ret);
	if (d.kind == PLACE_PROXMOX)
		ret->pve = snap->pves[d.who];
	/* the USB device that carries a disk claimed as a disk is no guest's,
	 * whoever's claim wins: two equal disk claims are for the disk's own
	 * placement to settle (the guest that has the disk keeps it), not a
	 * conflict over the enclosure (rival then names the other claimant) */
	if ((d.kind == PLACE_VM || d.kind == PLACE_CONFLICT) && ret->rule->kind == RULE_DISK)
		ret->kind = PLACE_DISK;
}

int vms_place(struct vms *v, const struct usb_device_info *dev, struct placement *ret)
{
	struct vms_snapshot snap;
	int r;

	r = vms_gather(v, dev, &snap);
	if (r < 0)
		return r;
	vms_decide(v, &snap, ret);
	vms_snapshot_free(&snap);
	return 0;
}

bool vms_any_disk_rules(const struct vms *v)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->list[i]->rules && usbconf_has_disk_rules(v->list[i]->rules, true))
			return true;
	return false;
}

int vms_list_disk_holders(struct vms *v)
{
	int r;

	if (v->disk_holders_listed)
		return 0;
	v->disk_holders_listed = true;
	r = add_from_dir(v, v->s->state_dir, ".disks", -1);
	return r == -ENOMEM ? r : 0;
}

/* Whether vm has the disk id now, asked of QEMU (only when two running
 * guests claim one disk). */
static bool holds_disk(struct vms *v, struct vm *vm, const char *id)
{
	struct vdisk_set *set = malloc(sizeof(*set));
	const struct vdisk *e;
	struct report rep = { 0 };
	struct guest *g = NULL;
	bool held = false;

	/* the guest this run has open: asked on that connection (opening it
	 * again would wait out its own lock and count it as not holding) */
	if (set && vm == v->open_vm) {
		held = guest_disks(v->open_guest, set) == 0 && (e = vdisk_find(set, id)) &&
		       e->driver[0];
	} else if (set && guest_open(v->s, &vm->t, &rep, &g) == 0) {
		held = guest_disks(g, set) == 0 && (e = vdisk_find(set, id)) && e->driver[0];
		guest_close(g);
	}
	report_say(&rep);
	free(set);
	return held;
}

void vms_set_open(struct vms *v, struct vm *vm, struct guest *g)
{
	v->open_vm = vm;
	v->open_guest = g;
}

int vms_place_disk(struct vms *v, const struct usb_disk *disk, struct placement *ret)
{
	struct place_view *views;
	const struct usb_rule **rules;
	struct disk_serials ser;
	struct place_decision d;
	char id[DISK_ID_MAX];
	int r = 0;

	*ret = (struct placement){ .kind = PLACE_NOBODY };
	disk_serials(disk, &ser);
	views = calloc(v->n + 1, sizeof(*views));
	rules = calloc(v->n + 1, sizeof(*rules));
	if (!views || !rules) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < v->n; i++) {
		struct vm *vm = v->list[i];

		views[i].score = vm->rules ? usbconf_disk_match(vm->rules, &ser, &rules[i]) : 0;
		views[i].running = views[i].score && vms_running(v, vm);
		views[i].starting = starting(v, vm);
	}
	disk_qemu_id(disk_key(disk), id, sizeof(id));
	if (place_claims(views, v->n) > 1)
		for (size_t i = 0; i < v->n; i++)
			views[i].holds = views[i].running && !views[i].starting &&
					 holds_disk(v, v->list[i], id);
	d = place_decide(views, v->n);
	fill(v, &d, views, rules, ret);
out:
	free(views);
	free(rules);
	return r;
}
