/* Holding ports: keeping the host's drivers off what is plugged into the
 * ports running guests claim, so that a device reaches the guest without
 * a host driver's probe first (and its release after).
 *
 * The kernel lets a usbfs user own hub ports (USBDEVFS_CLAIM_PORT): no
 * interface driver binds to a device plugged into an owned port; the
 * device is enumerated but left unconfigured, and QEMU's usb-host opens it
 * at once and configures it as the guest asks. Ownership lasts as long as the open hub
 * file, so only the resident listener holds ports.
 *
 * Held: each port rule of a running guest ('3-4'), and every port of each
 * hub below one, but those a more specific 'deny' port rule of that guest
 * keeps out ('deny 3-4.2'), while the port is empty: a device
 * there already has its drivers, or a guest. A hub plugged into a held
 * port is handed to the host (the port let go, the hub configured, its
 * driver bound), and its own ports are held then. A device the program
 * did not pass to a guest is handed to the host's drivers the same way;
 * its port is held again once it is empty. Ports that are no longer held,
 * and every held port when the listener ends, hand their device to the
 * host's drivers unless a program (QEMU) has it open. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/settings.h"
#include "host/port.h"
#include "policy/holdplan.h"

/* A hub whose ports are held: its open usbfs file, which ports. */
struct hold_hub {
	char name[PORT_STRLEN]; /* sysfs name: "usb3" for a root hub, "3-4" */
	unsigned devnum;	/* the hub device this file is for */
	int fd;			/* -1: could not be opened (said once) */
	bool warned;		/* the file could not be opened (said once) */
	struct holdplan_ports held;
	struct holdplan_ports warned_ports; /* claiming failed (said once) */
	uint16_t passed[256]; /* port p: devnum of the device passed to a guest there */
};

struct hold {
	struct hold_hub *hubs;
	size_t n;
	/* the rules' ports held now, "PORT\tLABEL", for the log and the
	 * state file HOLD_FILE that 'status' reads */
	char **held_text;
	size_t n_text;
	char state_dir[SETTINGS_PATH_MAX]; /* where HOLD_FILE was written */
};

/* In the state directory while the listener holds ports: a line
 * "PORT\tLABEL" for each port rule held ("1-1\tVM 100"). */
#define HOLD_FILE "held"

/* What happened, for the caller to say: hold does not log. */
enum hold_change_kind {
	HOLD_HOLDING,	 /* a rule's port is held now: port, what (the label) */
	HOLD_LET_GO,	 /* a rule's port is held no more: port, what (the label) */
	HOLD_HANDED,	 /* port's device went to the host's drivers: what (why) */
	HOLD_NOT_BOUND,	 /* port's device: its drivers could not be bound: err */
	HOLD_NO_HUB,	 /* hub port: its file (what) could not be opened: err */
	HOLD_NO_CLAIM,	 /* port could not be held: err */
	HOLD_NO_RELEASE, /* port's device: its port could not be let go: err */
	HOLD_NO_NOTE,	 /* the state file (what) could not be written: err */
	HOLD_NO_PLAN,	 /* which ports to hold could not be worked out */
	HOLD_NO_MEMORY,	 /* which ports are held could not be noted */
};

struct hold_change {
	enum hold_change_kind kind;
	char port[PORT_STRLEN + 8];
	char what[SETTINGS_PATH_MAX + 16];
	int err; /* negative errno */
};

/* Changes in the order they happened; one that finds no memory to be
 * noted in is lost (the change itself is made). */
struct hold_changes {
	struct hold_change *list;
	size_t n;
};

void hold_changes_free(struct hold_changes *c);

/* Makes what is held match the running guests' port rules (s read anew
 * by the caller) and the hubs present now, and hands a device on a held
 * port that a guest had (hold_passed) and has no more to the host's
 * drivers, unless its port is one of busy (its plug is being handled).
 * Notes in out what starts and stops being held, and failures (once). */
void hold_sync(struct hold *h, const struct settings *s, const struct usb_port *busy,
	       size_t n_busy, struct hold_changes *out);

/* The held ports with a device that nobody has handled: there, not
 * configured (the kernel leaves a device on an owned port so until
 * someone takes it), not passed to a guest, not open in any process, and
 * not one of busy (its plug is being handled). For after lost
 * announcements. Up to max into ret; how many. */
size_t hold_unhandled(const struct hold *h, const struct usb_port *busy, size_t n_busy,
		      struct usb_port *ret, size_t max);

/* Whether the port dev is plugged into is held. */
bool hold_is_held(const struct hold *h, const struct usb_port *dev);

/* The device at port (held) goes to the host's drivers: its port is let
 * go (until it is empty again), the kernel configures it as at a plug (it
 * leaves a device on an owned port unconfigured) and its drivers bind. */
void hold_give_to_host(struct hold *h, const struct usb_port *port, struct hold_changes *out);

/* The device at port (held) has gone to a guest: when the guest lets it
 * go, it gets the host's drivers (hold_sync). */
void hold_passed(struct hold *h, const struct usb_port *port);

/* Lets every port go and probes what had no driver: the listener ends. */
void hold_release_all(struct hold *h, struct hold_changes *out);

/* A forked child lets go of its copies of the hub files. */
void hold_forget(struct hold *h);
