#include "commands/release.h"
#include "act/guestdisks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guests/guest.h"
#include "base/log.h"
#include "base/report.h"
#include "base/retry.h"
#include "policy/usbconf.h"
#include "host/usbtree.h"
#include "base/util.h"
#include "policy/vms.h"

int release_run(const struct settings *s, const char *name)
{
	struct report rep = { 0 };
	struct target t;
	struct guest *g;
	int r;

	r = target_by_name(s, name, &t, &rep);
	report_say(&rep);
	if (r < 0)
		return r;
	r = guest_open(s, &t, &rep, &g);
	report_say(&rep);
	if (r == -ENOENT || r == -ECONNREFUSED)
		return 0; /* not running: nothing to release (logged) */
	if (r < 0)
		return r;
	r = guestdisks_release(g);
	if (r >= 0 || guest_usable(g))
		r = guest_release(g) < 0 ? -EIO : r;
	report_say(&rep);
	guest_close(g);
	if (r < 0)
		return log_err(r, "%s: not fully released (see above); do not migrate or snapshot it yet",
			       t.label);
	if (t.kind == TARGET_PVE)
		log_info("VM %lu: released: it has only what its %lu.conf describes; migrate, snapshot or hibernate it now. USB events leave it alone until 'pve-usb-hotplug sync %lu' (or its next start)",
			 t.vmid, t.vmid, t.vmid);
	else
		log_info("%s: released: everything pve-usb-hotplug added is gone; migrate, snapshot or save it now. USB events leave it alone until 'pve-usb-hotplug sync %s' (or its next start)",
			 t.label, t.name);
	return 0;
}
