/* The host side of held ports (host/hold.h): a USB device's sysfs
 * attributes, its usbfs file, claiming a hub's ports through usbfs
 * (USBDEVFS_CLAIM_PORT) and handing a device to the host's drivers. Does
 * not log above debug: callers say what failed. Device names are sysfs
 * names ("3-4", "usb3"). */
#pragma once

#include <stdbool.h>

#include "host/port.h"

/* A decimal sysfs attribute of dev ("devnum", "maxchild"); -1 when it
 * cannot be read. */
long usbfs_attr_dec(const char *dev, const char *attr);

/* Whether dev is a hub (bDeviceClass 09). */
bool usbfs_is_hub(const char *dev);

/* dev's usbfs file, /dev/bus/usb/BBB/DDD, into node; the device's
 * number, or -1 when it is gone. */
long usbfs_node(const char *dev, char node[static 32]);

/* Opens a hub's usbfs file (usbfs_node) for claiming its ports: the fd
 * (O_CLOEXEC), or -errno. The open file lets the hub runtime-suspend when
 * idle (USBDEVFS_ALLOW_SUSPEND), as it would without it. */
int usbfs_open_hub(const char *node);

/* Claims (on) or lets go (!on) port p of the hub whose file is fd. 0 or
 * -errno (-EINVAL: the hub has no such port; -EBUSY: another program
 * holds it). */
int usbfs_claim(int fd, unsigned p, bool on);

/* Whether a process has dev's usbfs file open (QEMU has passed it, and
 * its guest may not have configured it yet). Reads /proc: not cheap. */
bool usbfs_open_elsewhere(const char *dev);

/* Whether dev has no need of the host's drivers: usbfs has one of its
 * interfaces, or it is configured and every interface has a driver. */
bool usbfs_settled(const char *dev);

/* dev gets the host's drivers. With unless_passed, a device a program
 * has (usbfs bound to an interface, or usbfs_open_elsewhere) is left
 * alone. A device plugged into a held port was
 * left unconfigured by the kernel: the generic driver is bound to it
 * again, which chooses and sets its configuration as at a plug, and the
 * interface drivers follow. Returns 1 when it did, 0 when there was
 * nothing to do (gone, passed, every interface with a driver), or the
 * -errno of the bind. */
int usbfs_to_host(const char *dev, bool unless_passed);

/* Waits until the kernel has configured dev (its interfaces exist): an
 * open of its usbfs file waits for the device's lock, which the kernel
 * holds while it sets the configuration. */
void usbfs_wait_configured(const char *dev);
