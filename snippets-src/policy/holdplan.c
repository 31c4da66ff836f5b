/* Which ports to hold (holdplan.h): pure. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "policy/holdplan.h"

bool holdplan_ports_has(const struct holdplan_ports *set, unsigned p)
{
	return p <= HOLDPLAN_MAX_PORT && (set->bits[p / 8] & (1u << (p % 8)));
}

void holdplan_ports_set(struct holdplan_ports *set, unsigned p, bool on)
{
	if (p > HOLDPLAN_MAX_PORT)
		return;
	if (on)
		set->bits[p / 8] |= (uint8_t)(1u << (p % 8));
	else
		set->bits[p / 8] &= (uint8_t)~(1u << (p % 8));
}

bool holdplan_takes(const struct vm_rules *rules, bool cheap)
{
	bool any = false;

	for (size_t k = 0; rules && k < rules->n_rules; k++)
		any |= !rules->rules[k].deny && rules->rules[k].kind == RULE_PORT;
	return any && cheap;
}

int holdplan_add_rules(const struct vm_rules *vr, size_t guest, const char *label,
		       struct holdplan_rule **rules, size_t *n)
{
	for (size_t k = 0; vr && k < vr->n_rules; k++) {
		const struct usb_rule *rule = &vr->rules[k];
		struct holdplan_rule *more;

		if (rule->kind != RULE_PORT)
			continue;
		more = realloc(*rules, (*n + 1) * sizeof(**rules));
		if (!more)
			return -ENOMEM;
		*rules = more;
		more[*n] = (struct holdplan_rule){ .port = rule->port, .deny = rule->deny, .guest = guest };
		util_strlcpy(more[*n].label, label, sizeof(more[0].label));
		(*n)++;
	}
	return 0;
}

bool holdplan_wanted(const struct holdplan_rule *rules, size_t n, const struct usb_port *port)
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

bool holdplan_hub_matters(const struct holdplan_rule *rules, size_t n, const struct usb_port *hub)
{
	for (size_t i = 0; i < n; i++)
		if (!rules[i].deny && port_is_under(hub, &rules[i].port))
			return true;
	return false;
}

static size_t find(const struct holdplan_want *want, size_t n, const char *name)
{
	size_t i = 0;

	while (i < n && strcmp(want[i].name, name) != 0)
		i++;
	return i;
}

const struct holdplan_want *holdplan_find(const struct holdplan_want *want, size_t n,
					  const char *name)
{
	size_t i = find(want, n, name);

	return i < n ? &want[i] : NULL;
}

/* The wanted hub of that name, added (no port held) when new; NULL when
 * out of memory. */
static struct holdplan_want *want_hub(struct holdplan_want **hubs, size_t *n, const char *name)
{
	size_t i = find(*hubs, *n, name);
	struct holdplan_want *nh;

	if (i < *n)
		return &(*hubs)[i];
	nh = realloc(*hubs, (*n + 1) * sizeof(**hubs));
	if (!nh)
		return NULL;
	*hubs = nh;
	nh = &nh[(*n)++];
	memset(nh, 0, sizeof(*nh));
	util_strlcpy(nh->name, name, sizeof(nh->name));
	return nh;
}

/* Each rule's own port on its parent hub. */
static int rule_hubs(const struct holdplan_rule *rules, size_t n_rules,
		     struct holdplan_want **hubs, size_t *n)
{
	for (size_t i = 0; i < n_rules; i++) {
		const struct usb_port *port = &rules[i].port;
		char parent[PORT_STRLEN];
		struct holdplan_want *hub;

		if (rules[i].deny || !holdplan_wanted(rules, n_rules, port))
			continue;
		holdplan_parent_name(port, parent, sizeof(parent));
		hub = want_hub(hubs, n, parent);
		if (!hub)
			return -ENOMEM;
		holdplan_ports_set(&hub->held, port->num[port->depth - 1], true);
	}
	return 0;
}

int holdplan_hubs(const struct holdplan_rule *rules, size_t n_rules,
		  const struct holdplan_hub *present, size_t n_present,
		  struct holdplan_want **ret, size_t *ret_n)
{
	struct holdplan_want *hubs = NULL;
	size_t n = 0;

	if (rule_hubs(rules, n_rules, &hubs, &n) < 0)
		goto oom;
	for (size_t i = 0; i < n_present; i++) {
		const struct holdplan_hub *dev = &present[i];
		char name[PORT_STRLEN];
		struct holdplan_want *hub;

		if (!holdplan_hub_matters(rules, n_rules, &dev->port) ||
		    dev->port.depth >= PORT_MAX_DEPTH || dev->maxchild == 0)
			continue;
		port_format(&dev->port, name, sizeof(name));
		hub = want_hub(&hubs, &n, name);
		if (!hub)
			goto oom;
		for (unsigned p = 1; p <= dev->maxchild && p <= HOLDPLAN_MAX_PORT; p++) {
			struct usb_port child = dev->port;

			child.num[child.depth++] = (unsigned char)p;
			if (holdplan_wanted(rules, n_rules, &child))
				holdplan_ports_set(&hub->held, p, true);
		}
	}
	*ret = hubs;
	*ret_n = n;
	return 0;
oom:
	free(hubs);
	return -ENOMEM;
}

enum holdplan_step holdplan_step(bool want, bool held, bool occupied)
{
	if (want == held)
		return HOLDPLAN_KEEP;
	if (want)
		return occupied ? HOLDPLAN_KEEP : HOLDPLAN_CLAIM;
	return HOLDPLAN_RELEASE;
}

void holdplan_parent_name(const struct usb_port *dev, char *buf, size_t n)
{
	struct usb_port parent = *dev;

	if (dev->depth <= 1) {
		snprintf(buf, n, "usb%u", dev->bus);
		return;
	}
	parent.depth--;
	port_format(&parent, buf, n);
}

void holdplan_port_name(const char *hub, unsigned p, char *buf, size_t n)
{
	if (util_startswith(hub, "usb"))
		snprintf(buf, n, "%s-%u", hub + 3, p);
	else
		snprintf(buf, n, "%s.%u", hub, p);
}
