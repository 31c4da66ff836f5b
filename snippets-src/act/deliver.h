/* Delivering a device to the guest a placement chose (policy/vms.h): the
 * shared steps of an event, post-start and sync. Opening the placed guest,
 * attaching a list of devices, and the one line that says why a device
 * goes where it goes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "base/settings.h"
#include "guests/guest.h"
#include "policy/plan.h"
#include "policy/vms.h"

/* The guests as a udev event sees them (bad lines at debug level): 0, 1
 * when there is no rules directory (yet; nothing to load, nothing to
 * free), or the error. */
int deliver_load(const struct settings *s, struct vms *v);

/* The look again under the guest's lock, right before an attach: whether
 * the device at dev's port is still the one the plan was made for
 * (plan_same_device(), read from sysfs now). When not, one line says so
 * and the caller attaches nothing: its own event places what is there. */
bool deliver_still_there(const struct usb_device_info *dev);

/* The same before a detach: whether dev's port still has the device seen
 * when the plan was made (seen; NULL: the port was empty then). When not,
 * one line (naming the guest by label) says so and the caller leaves the
 * port alone: the event of what changed there sees to it. */
bool deliver_port_unchanged(const struct usb_port *port, const struct usb_device_info *seen,
			    const char *label);

/* Attaches devs[i] for each take[i] that is still there
 * (deliver_still_there()), saying what each attach noted, stopping (with
 * one line) once the QMP connection has failed: every further command
 * would fail at once. */
int deliver_attach_all(struct guest *g, const struct target *t,
		       const struct usb_device_info *devs, const bool *take, size_t n);

/* Opens the guest p places a device (desc) in, noting in rep (guest.h)
 * and saying what its opening noted. -EAGAIN when that guest counted as
 * running but does not answer: it is marked as not running (logged), and
 * the caller places the device again. */
int deliver_open_placed(const struct settings *s, const struct placement *p, const char *desc,
			struct report *rep, struct guest **ret);

/* Why a PLACE_PROXMOX device is its owner's: "Proxmox passes it itself
 * (usb0 of VM 101)", or a libvirt domain's own XML. */
void deliver_owner_passes(const struct placement *p, char *buf, size_t n);

/* Why a guest gives up a port, as the plan says (why != PLAN_KEEP); p: the
 * placement the plan was made from (PLAN_OWNER, PLAN_DISK, PLAN_MOVES,
 * PLAN_STAYS name its guest). */
void deliver_why(enum plan_why why, const struct placement *p, char *buf, size_t n);

/* "DESC is kept out of VM 100 by 'deny 3-4.4' (FILE:LINE)" */
void deliver_explain_denial(const struct vm *vm, const struct usb_rule *deny, const char *desc);

/* Logs why a device is not attached to for_vm (NULL: to any guest), as p
 * says. */
void deliver_explain(const struct placement *p, const struct vm *for_vm, const char *desc);
