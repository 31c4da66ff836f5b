/* A USB disk's udev event: an add attaches it to the running guest whose
 * disk rule names it; a remove detaches it from every guest that may have
 * it. */
#pragma once

#include "base/settings.h"
#include "host/disk.h"
#include "host/uevent.h"

/* disk: from disk_from_event(). */
int diskevent_handle(const struct settings *s, enum uevent_action action,
		     const struct usb_disk *disk);
