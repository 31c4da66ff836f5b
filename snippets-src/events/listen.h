/* The resident listener (pve-usb-hotplug.service): follows plugs from
 * udev's monitor, each handled as 'plugged PORT' in a child, and holds the
 * running guests' empty ports (host/hold.h). */
#pragma once

#include "base/settings.h"

/* listen [--events N]: until SIGTERM (or N adds were handled and their
 * children ended). config: the settings file each child reads. */
int listen_run(const struct settings *s, const char *config, unsigned max_events);
