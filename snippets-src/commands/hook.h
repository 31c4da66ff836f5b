/* The Proxmox hookscript: pve-usb-hotplug VMID PHASE. */
#pragma once

#include "base/settings.h"

/* post-start attaches every device the VM's rules give it (nothing on the
 * target of a live migration: migrated_from, Proxmox's PVE_MIGRATED_FROM,
 * names the source node); pre-start runs the check and only warns;
 * post-start and post-stop tell the listener; the others do nothing.
 * Unknown phases are ignored with a note. */
int hook_run(const struct settings *s, unsigned long vmid, const char *phase,
	     const char *migrated_from);
