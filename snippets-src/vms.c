#include "vms.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "guest.h"
#include "log.h"
#include "vmproc.h"

static struct vm *vm_new(unsigned long vmid, struct vm_rules *rules)
{
	struct vm *vm = calloc(1, sizeof(*vm));

	if (!vm)
		return NULL;
	vm->vmid = vmid;
	vm->rules = rules;
	vm->running = -1;
	vm->pve_state = -1;
	vm->held_state = HELD_UNKNOWN;
	return vm;
}

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
	r = usbconf_load_all(s->vm_config_dir, line_level, line_level == LOG_LVL_DEBUG, &rules, &n);
	if (r < 0)
		return r;
	ret->list = calloc(n + 1, sizeof(*ret->list));
	if (!ret->list) {
		usbconf_free_all(rules, n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		ret->list[i] = vm_new(rules[i]->vmid, rules[i]);
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
	return 0;
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
	r = usbtree_scan(devs, n_devs);
	if (r < 0) {
		vms_free(v);
		return log_err(r, "cannot read the host's USB devices: %s", strerror(-r));
	}
	return 0;
}

struct vm *vms_find(struct vms *v, unsigned long vmid)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->list[i]->vmid == vmid)
			return v->list[i];
	return NULL;
}

bool vms_running(struct vms *v, struct vm *vm)
{
	if (vm->running < 0) {
		vm->running = vm->vmid == v->starting_vmid || vmproc_running(v->s->qmp_socket_dir, vm->vmid);
		vm->released = vm->running && vm->vmid != v->starting_vmid &&
			       guest_is_released(v->s, vm->vmid);
	}
	return vm->running > 0 && !vm->released;
}

/* Appends a VM without rules; the list is sorted again by the caller. */
static int add_vm(struct vms *v, unsigned long vmid, int running)
{
	struct vm **nl = realloc(v->list, (v->n + 1) * sizeof(*nl));

	if (!nl)
		return -ENOMEM;
	v->list = nl;
	v->list[v->n] = vm_new(vmid, NULL);
	if (!v->list[v->n])
		return -ENOMEM;
	v->list[v->n++]->running = running;
	return 0;
}

static int cmp_vm(const void *a, const void *b)
{
	const struct vm *x = *(struct vm *const *)a, *y = *(struct vm *const *)b;

	return (x->vmid > y->vmid) - (x->vmid < y->vmid);
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
		unsigned long vmid;

		if (usbconf_vmid_of_file(de->d_name, suffix, &vmid) < 0 || vms_find(v, vmid) ||
		    (running == 1 && !vmproc_running(v->s->qmp_socket_dir, vmid)))
			continue;
		if (add_vm(v, vmid, running) < 0) {
			closedir(d);
			return -ENOMEM;
		}
		/* running is known: so is whether it is held back */
		if (running == 1)
			v->list[v->n - 1]->released = guest_is_released(v->s, vmid);
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
	if (vm->pve_state == -1) {
		vm->pve_state = pveconf_load(v->s->vm_config_dir, vm->vmid, &vm->pve);
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
	struct guest *g;
	int r;

	r = guest_open(v->s, vm->vmid, &g);
	if (r == 0) {
		r = guest_held(g, ask_qemu, &set);
		if (r == 0)
			r = keep_held(vm, set, ask_qemu);
		guest_close(g);
	}
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
		int r = set ? guest_peek_held(v->s, vm->vmid, set) : -ENOMEM;

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

int vms_place(struct vms *v, const struct usb_device_info *dev, struct placement *ret)
{
	struct placement p = { .kind = PLACE_NOBODY };
	size_t n_claims = 0;
	int r;

	*ret = p;
	if (dev->dev_class == USB_CLASS_HUB)
		return 0;

	for (size_t i = 0; i < v->n; i++) {
		struct vm *vm = v->list[i];
		const struct usb_rule *rule;
		unsigned score;

		if (!vm->rules || !(score = usbconf_match(vm->rules, dev, &rule)) || !vms_running(v, vm))
			continue;
		n_claims++;
		if (score > p.score) {
			p.kind = PLACE_VM;
			p.vm = vm;
			p.rule = rule;
			p.score = score;
			p.rival = NULL;
		} else if (score == p.score && !p.rival) {
			p.rival = vm;
		}
	}
	if (n_claims == 0)
		return 0;

	/* Proxmox's own passthrough comes first, in any running VM */
	r = vms_list_running(v);
	if (r < 0)
		return r;
	for (size_t i = 0; i < v->n; i++) {
		struct vm *vm = v->list[i];
		const struct pve_vm *pve;
		const struct pve_usb *u;

		if (!vms_running(v, vm) || !(pve = vms_pve(v, vm)) || !(u = pveconf_passes(pve, dev)))
			continue;
		*ret = (struct placement){ .kind = PLACE_PROXMOX, .vm = vm, .pve = u };
		return 0;
	}

	/* with rivals, whoever holds it keeps it */
	if (n_claims > 1)
		for (size_t i = 0; i < v->n; i++) {
			struct vm *vm = v->list[i];
			const struct usb_rule *rule;
			unsigned score;

			if (!vm->rules || !(score = usbconf_match(vm->rules, dev, &rule)) ||
			    !vms_running(v, vm) || vm->vmid == v->starting_vmid ||
			    !vms_holds(v, vm, &dev->port))
				continue;
			*ret = (struct placement){
				.kind = PLACE_VM, .vm = vm, .rule = rule, .score = score, .held = true
			};
			return 0;
		}

	if (p.rival)
		p.kind = PLACE_CONFLICT;
	*ret = p;
	return 0;
}
