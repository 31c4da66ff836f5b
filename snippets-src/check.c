/* check [VMID], also run at pre-start. */
#include <errno.h>
#include <string.h>

#include "hotplug.h"
#include "log.h"
#include "usbconf.h"

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
		return strcmp(a->serial, b->serial) == 0;
	}
	return false;
}

/* Equal claims in two VMs' files are fine while only one of them runs;
 * worth a warning all the same. */
static void warn_overlaps(const struct vm_rules *mine, struct vm_rules *const *all, size_t n)
{
	char text[USB_STRING_MAX * 4 + 32];

	for (size_t i = 0; i < n; i++) {
		if (all[i]->vmid == mine->vmid)
			continue;
		for (size_t a = 0; a < mine->n_rules; a++)
			for (size_t b = 0; b < all[i]->n_rules; b++) {
				if (!same_claim(&mine->rules[a], &all[i]->rules[b]))
					continue;
				usbconf_format_rule(&mine->rules[a], text, sizeof(text));
				log_warning("%s:%u: '%s' is also in %s:%u; while VM %lu and VM %lu both run, what it matches goes to neither",
					    mine->path, mine->rules[a].line, text, all[i]->path,
					    all[i]->rules[b].line, mine->vmid, all[i]->vmid);
			}
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

int hotplug_check(const struct settings *s, unsigned long vmid, bool pre_start)
{
	struct vm_rules **all = NULL, *one = NULL;
	size_t n = 0;
	int r, ret = 0;

	if (vmid) {
		r = usbconf_load(s->vm_config_dir, vmid, LOG_LVL_WARNING, &one);
		if (r == -ENOENT && pre_start)
			return 0;
		if (r == -ENOENT)
			return log_err(r, "VM %lu has no %s/%lu.usb.conf; write one rule a line into it (see pve-usb-hotplug(8))",
				       vmid, s->vm_config_dir, vmid);
		if (r < 0)
			return r;
		ret = check_one(one, pre_start);
		if (usbconf_load_all(s->vm_config_dir, LOG_LVL_DEBUG, false, &all, &n) == 0)
			warn_overlaps(one, all, n);
		usbconf_free(one);
		usbconf_free_all(all, n);
		return ret;
	}
	r = usbconf_load_all(s->vm_config_dir, LOG_LVL_WARNING, false, &all, &n);
	if (r < 0)
		return r;
	if (n == 0)
		log_info("%s has no <vmid>.usb.conf; no VM gets USB devices from pve-usb-hotplug",
			 s->vm_config_dir);
	for (size_t i = 0; i < n; i++) {
		if (check_one(all[i], false) < 0)
			ret = -EINVAL;
		/* each pair once */
		warn_overlaps(all[i], all + i + 1, n - i - 1);
	}
	usbconf_free_all(all, n);
	return ret;
}
