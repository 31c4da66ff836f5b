/* Which VM gets a device. Pure: the caller says which VMs are running. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "usbconf.h"

typedef bool (*policy_running_fn)(unsigned long vmid, void *userdata);

/* Among vms, the running one whose rules claim the device at dev most
 * specifically (deepest port prefix). Only VMs that claim the device are
 * asked whether they run. Returns 1 with *ret_winner; 0 when no running VM
 * claims it; -EBUSY when two running VMs claim it equally (*ret_winner and
 * *ret_rival name them, nothing is to be attached). */
int policy_pick(struct vm_rules *const *vms, size_t n, const struct usb_port *dev,
		policy_running_fn running, void *userdata,
		const struct vm_rules **ret_winner, const struct vm_rules **ret_rival);
