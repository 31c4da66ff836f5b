/* Which guest gets a device: the decision alone, a pure function of a
 * snapshot, shared by every kind of guest (target.h). vms_place() gathers
 * the snapshot, only as much of it as the decision can use.
 *
 * The order of precedence:
 *   1. only running guests (not held back by "release") compete;
 *   2. a device Proxmox passes to a running VM itself is left to Proxmox,
 *      when any running guest's rule claims it at all;
 *   3. with more than one claim, a guest that holds the device keeps it
 *      (a guest that is starting takes only what nobody holds);
 *   4. else the most specific rule wins; two equal best claims attach
 *      nowhere. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum place_kind {
	PLACE_NOBODY,	/* no running guest claims it */
	PLACE_VM,	/* attach to (or keep in) the guest */
	PLACE_PROXMOX,	/* Proxmox passes it to that VM itself */
	PLACE_CONFLICT, /* two guests claim it equally: attach to neither */
	/* (vms_place only) it carries a disk the guest takes as a disk (a
	 * disk rule): the USB device itself is passed to nobody */
	PLACE_DISK,
};

/* One guest as the decision sees it. */
struct place_view {
	unsigned score;	     /* its best rule's score for the device; 0: no claim */
	bool running;	     /* runs and takes part (not released) */
	bool starting;	     /* its post-start is this run: it takes, never keeps */
	bool holds;	     /* holds the device now (asked only with rivals) */
	bool proxmox_passes; /* Proxmox passes the device to it (asked only with a claim) */
};

struct place_decision {
	enum place_kind kind;
	size_t who;   /* PLACE_VM, PLACE_PROXMOX, PLACE_CONFLICT: the guest */
	size_t rival; /* PLACE_CONFLICT: the other */
	bool held;    /* PLACE_VM: who holds it already */
};

/* How many running guests claim the device: what the caller needs to know
 * to gather the rest (proxmox_passes with any, holds with more than one). */
size_t place_claims(const struct place_view *g, size_t n);

struct place_decision place_decide(const struct place_view *g, size_t n);
