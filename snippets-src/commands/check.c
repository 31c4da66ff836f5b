/* check [NAME], also run at pre-start. */
#include <errno.h>
#include <string.h>

#include "commands/check.h"
#include "base/log.h"
#include "base/report.h"
#include "policy/pveconf.h"
#include "policy/usbconf.h"
#include "policy/vms.h"

/* Two allow rules that claim exactly the same devices equally. */
static bool same_claim(const struct usb_rule *a, const struct usb_rule *b)
{
	if (a->deny || b->deny || a->kind != b->kind || a->have_id != b->have_id ||
	    (a->have_id && (a->vid != b->vid || a->pid != b->pid)))
		return false;
	switch (a->kind) {
	case RULE_PORT:
		return port_equal(&a->port, &b->port);
	case RULE_PATH:
		return strcmp(a->controller, b->controller) == 0 && port_equal(&a->port, &b->port);
	case RULE_ID:
		return true;
	case RULE_SERIAL:
	case RULE_DISK:
		return strcmp(a->serial, b->serial) == 0;
	}
	return false;
}

/* Equal claims in two guests' files are fine while only one of them runs;
 * worth a warning all the same. */
static void warn_overlaps(const struct vm_rules *mine, const char *mine_label,
			  const struct vm *other)
{
	char text[USB_STRING_MAX * 4 + 32];

	for (size_t a = 0; a < mine->n_rules; a++)
		for (size_t b = 0; b < other->rules->n_rules; b++) {
			if (!same_claim(&mine->rules[a], &other->rules->rules[b]))
				continue;
			usbconf_format_rule(&mine->rules[a], text, sizeof(text));
			log_warning("%s:%u: '%s' is also in %s:%u; while %s and %s both run, what it matches goes to neither",
				    mine->path, mine->rules[a].line, text, other->rules->path,
				    other->rules->rules[b].line, mine_label, other->t.label);
		}
}

/* What Proxmox's side says about the VM: is there a <vmid>.conf beside the
 * rules (else they are left over and a new VM with that id inherits them),
 * and do its mapping=NAME lines resolve on this node. Warnings only. */
static void check_pve(const struct settings *s, const struct vm_rules *r, bool pre_start,
		      struct pve_mappings *maps, int *maps_state)
{
	struct pve_vm pve;
	char node[256];

	if (pveconf_load(s->vm_config_dir, r->vmid, &pve) == -ENOENT) {
		if (!pre_start)
			log_warning("%s: there is no %lu.conf on this node (the VM was destroyed or migrated away?): a new VM %lu would inherit these rules; remove the file, or move it with the VM",
				    r->path, r->vmid, r->vmid);
		return;
	}
	pveconf_node_name(node, sizeof(node));
	for (size_t i = 0; i < pve.n; i++) {
		const struct pve_usb *u = &pve.usb[i];

		if (u->kind != PVE_USB_MAPPING)
			continue;
		if (*maps_state == 1)
			*maps_state = pveconf_mappings_load(s->mapping_file, node, LOG_LVL_WARNING, maps);
		if (*maps_state < 0) {
			log_warning("VM %lu: usb%u uses mapping '%s', but %s cannot be read (%s): the tool cannot tell which device that is, and may take it",
				    r->vmid, u->index, u->mapping, s->mapping_file, strerror(-*maps_state));
			continue;
		}
		pveconf_resolve(&pve, maps);
		if (!u->resolved)
			log_warning("VM %lu: usb%u uses mapping '%s', which has no map line for node '%s' in %s",
				    r->vmid, u->index, u->mapping, node, s->mapping_file);
	}
}

static int check_one(const struct vm_rules *r, bool pre_start)
{
	if (r->n_errors) {
		/* at pre-start the VM starts anyway: a warning in its task log */
		log_msg(pre_start ? LOG_LVL_WARNING : LOG_LVL_ERROR, "%s: %u bad line(s), %zu good rule(s); fix the lines named above", r->path,
			  r->n_errors, r->n_rules);
		return -EINVAL;
	}
	log_info("%s: %zu rule(s), all valid", r->path, r->n_rules);
	return 0;
}

/* One guest's rules (read again, so that its bad lines are told), and how
 * they meet everyone else's. */
static int check_named(const struct settings *s, const char *name, bool pre_start,
		       struct pve_mappings *maps, int *maps_state)
{
	struct vm_rules *one = NULL;
	struct report rep = { 0 };
	struct target t;
	struct vms v;
	int r, ret;

	r = target_by_name(s, name, &t, &rep);
	report_say(&rep);
	if (r < 0)
		return r;
	r = usbconf_load_file(t.rules, t.vmid, LOG_LVL_WARNING, &one);
	if (r == -ENOENT && pre_start)
		return 0;
	if (r == -ENOENT)
		return log_err(r, "%s has no %s; write one rule a line into it (see pve-usb-hotplug(8))",
			       t.label, t.rules);
	if (r < 0)
		return r;
	ret = check_one(one, pre_start);
	if (t.kind == TARGET_PVE)
		check_pve(s, one, pre_start, maps, maps_state);
	if (vms_load(s, LOG_LVL_DEBUG, 0, &v) == 0) {
		for (size_t i = 0; i < v.n; i++)
			if (v.list[i]->rules && strcmp(v.list[i]->t.name, t.name) != 0)
				warn_overlaps(one, t.label, v.list[i]);
		vms_free(&v);
	}
	usbconf_free(one);
	return ret;
}

int check_run(const struct settings *s, const char *name, bool pre_start)
{
	struct pve_mappings maps = { 0 };
	int maps_state = 1;
	struct vms v;
	int r, ret = 0;

	if (name) {
		ret = check_named(s, name, pre_start, &maps, &maps_state);
		pveconf_mappings_free(&maps);
		return ret;
	}
	r = vms_load(s, LOG_LVL_WARNING, 0, &v);
	if (r < 0)
		return r;
	if (v.n == 0)
		log_info("%s has no <vmid>.usb.conf; no VM gets USB devices from pve-usb-hotplug",
			 s->vm_config_dir);
	for (size_t i = 0; i < v.n; i++) {
		const struct vm *vm = v.list[i];

		if (!vm->rules) {
			log_warning("%s (%s): there is no %s; it gets no devices until there is",
				    vm->t.label, vm->t.origin, vm->t.rules);
			continue;
		}
		if (check_one(vm->rules, false) < 0)
			ret = -EINVAL;
		if (vm->t.kind == TARGET_PVE)
			check_pve(s, vm->rules, false, &maps, &maps_state);
		/* each pair once */
		for (size_t k = i + 1; k < v.n; k++)
			if (v.list[k]->rules)
				warn_overlaps(vm->rules, vm->t.label, v.list[k]);
	}
	vms_free(&v);
	pveconf_mappings_free(&maps);
	return ret;
}

int check_command(const struct settings *s, int settings_r, const char *name)
{
	if (settings_r < 0)
		log_error("%s: has errors (see above)", s->path);
	else
		log_info("%s: valid", s->path);
	return check_run(s, name, false) < 0 || settings_r < 0 ? -EINVAL : 0;
}
