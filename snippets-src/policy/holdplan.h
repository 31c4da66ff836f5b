/* Which ports to hold (host/hold.h): pure decisions from a snapshot of the
 * running guests' port rules and the hubs present, no sysfs, no usbfs.
 *
 * Held: each port rule of a running guest ('3-4'), and every port of each
 * hub below one, but those a more specific 'deny' port rule of that guest
 * keeps out ('deny 3-4.2'), while the port is empty. Not held: the ports
 * of libvirt domains (asking libvirtd every few seconds is not cheap), and
 * nothing for guests that only id and serial rules name. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/settings.h"
#include "host/port.h"
#include "policy/usbconf.h"

/* The highest port number a hub file can claim. */
#define HOLDPLAN_MAX_PORT 255

/* A set of a hub's ports, 1..HOLDPLAN_MAX_PORT. */
struct holdplan_ports {
	uint8_t bits[32];
};

bool holdplan_ports_has(const struct holdplan_ports *set, unsigned p);
void holdplan_ports_set(struct holdplan_ports *set, unsigned p, bool on);

/* A port rule of a running guest: a port and what is below it, or a
 * deny. A guest's rules are next to each other. */
struct holdplan_rule {
	struct usb_port port;
	bool deny;
	size_t guest;
	char label[SETTINGS_NAME_MAX + 24]; /* the guest's: "VM 100" */
};

/* Whether a guest with these rules gets its ports held: it has a port
 * rule that is no deny, and asking whether it runs is cheap (no libvirt
 * domain). Whether it runs the caller asks after this said yes. */
bool holdplan_takes(const struct vm_rules *rules, bool cheap);

/* Appends the port rules (deny ones too) of guest number guest to
 * *rules (*n of them). 0, or -ENOMEM with *rules left as it was. */
int holdplan_add_rules(const struct vm_rules *vr, size_t guest, const char *label,
		       struct holdplan_rule **rules, size_t *n);

/* Whether port is held: for some guest, the most specific of its port
 * rules that covers port is no deny (a deny as specific as a port rule
 * wins, as in placing). */
bool holdplan_wanted(const struct holdplan_rule *rules, size_t n, const struct usb_port *port);

/* Whether the hub at port matters to the rules: it is at or below a port
 * rule that is no deny (its ports may be held). */
bool holdplan_hub_matters(const struct holdplan_rule *rules, size_t n, const struct usb_port *hub);

/* A hub present now (sysfs), at or below a rule's port, with its ports. */
struct holdplan_hub {
	struct usb_port port;
	unsigned maxchild;
};

/* A hub file wanted: its sysfs name and the ports to hold on it. */
struct holdplan_want {
	char name[PORT_STRLEN];
	struct holdplan_ports held;
};

/* The hub files the rules' ports need: each rule's own port on its parent
 * hub, and every port of each present hub at or below one, but what a
 * deny keeps out. *ret malloc()ed (NULL when none). 0 or -ENOMEM. */
int holdplan_hubs(const struct holdplan_rule *rules, size_t n_rules,
		  const struct holdplan_hub *present, size_t n_present,
		  struct holdplan_want **ret, size_t *ret_n);

/* The wanted hub of that name, or NULL. */
const struct holdplan_want *holdplan_find(const struct holdplan_want *want, size_t n,
					  const char *name);

/* What to do with one port of a hub file that is open. */
enum holdplan_step {
	HOLDPLAN_KEEP,	  /* as it is */
	HOLDPLAN_CLAIM,	  /* hold it */
	HOLDPLAN_RELEASE, /* let it go: its device gets the host's drivers */
};

/* A port is held while it is empty: what is there now has its drivers (or
 * a guest) already, and a driver loaded later must still reach it. So a
 * wanted port with a device is held only once it is empty. */
enum holdplan_step holdplan_step(bool want, bool held, bool occupied);

/* The name of the hub that port dev is plugged into ("usb3" for 3-4,
 * "3-4" for 3-4.1) into buf. */
void holdplan_parent_name(const struct usb_port *dev, char *buf, size_t n);

/* The device name of port p of hub ("usb3", 4 -> "3-4"; "3-4", 1 ->
 * "3-4.1") into buf. */
void holdplan_port_name(const char *hub, unsigned p, char *buf, size_t n);
