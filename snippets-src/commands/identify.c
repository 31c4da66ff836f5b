/* identify: "plug the device in now". Waits for the next USB device udev
 * announces and prints what a .usb.conf line could select it by. */
#include <errno.h>
#include <libudev.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "commands/identify.h"
#include "base/log.h"
#include "policy/usbconf.h"
#include "host/usbtree.h"
#include "base/util.h"

static void print_lines(const struct usb_device_info *d)
{
	char port[PORT_STRLEN], path[PORT_CONTROLLER_MAX + PORT_STRLEN + 8];
	char serial[USB_STRING_MAX * 4 + 3], product[USB_STRING_MAX * 4 + 1];
	char maker[USB_STRING_MAX * 4 + 1], line[USB_STRING_MAX * 4 + 64];

	port_format(&d->port, port, sizeof(port));
	log_escape(d->product, product, sizeof(product));
	log_escape(d->manufacturer, maker, sizeof(maker));
	printf("Plugged in: %s\n", port);
	printf("  port:     %s\n", port);
	if (d->controller[0]) {
		port_format_path(d->controller, &d->port, path, sizeof(path));
		printf("  path:     %s\n", path);
	}
	printf("  id:       %04x:%04x\n", d->vid, d->pid);
	printf("  product:  \"%s\"%s%s%s\n", product, maker[0] ? " by \"" : "", maker,
	       maker[0] ? "\"" : "");
	if (d->serial[0]) {
		usbconf_quote(d->serial, serial, sizeof(serial));
		printf("  serial:   %s\n", serial);
	} else {
		printf("  serial:   (none)\n");
	}
	printf("  speed:    %s Mbit/s\n", d->speed[0] ? d->speed : "?");
	printf("\nA line for /etc/pve/qemu-server/<vmid>.usb.conf, one of:\n");
	snprintf(line, sizeof(line), "port %s", port);
	printf("  %-44s # this port, and anything plugged in behind it\n", line);
	if (d->controller[0]) {
		snprintf(line, sizeof(line), "path %s", path);
		printf("  %-44s # the same port, named so that it survives reboots\n", line);
	}
	snprintf(line, sizeof(line), "id %04x:%04x", d->vid, d->pid);
	printf("  %-44s # this kind of device, on any port\n", line);
	if (d->serial[0]) {
		snprintf(line, sizeof(line), "serial %s id %04x:%04x", serial, d->vid, d->pid);
		printf("  %-44s # this very device, on any port\n", line);
	}
	fflush(stdout);
}

int identify_run(int timeout_ms)
{
	int64_t deadline = util_now_ms() + timeout_ms;
	struct udev_monitor *mon = NULL;
	struct udev *udev;
	int r = -ETIMEDOUT;

	udev = udev_new();
	if (!udev)
		return -ENOMEM;
	mon = udev_monitor_new_from_netlink(udev, "udev");
	if (!mon || udev_monitor_filter_add_match_subsystem_devtype(mon, "usb", "usb_device") < 0 ||
	    udev_monitor_enable_receiving(mon) < 0) {
		r = log_err(-EIO, "cannot listen to udev events (run it as root on the host)");
		goto out;
	}
	log_info("Plug the USB device in now (waiting %d s)...", (timeout_ms + 999) / 1000);
	fflush(stdout);

	for (;;) {
		struct pollfd pfd = { .fd = udev_monitor_get_fd(mon), .events = POLLIN };
		struct udev_device *d;
		struct usb_device_info info;
		int left = util_remaining_ms(deadline), k;

		if (left == 0)
			break;
		k = poll(&pfd, 1, left);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		d = udev_monitor_receive_device(mon);
		if (!d)
			continue;
		const char *action = udev_device_get_action(d);
		const char *devpath = udev_device_get_devpath(d);
		bool add = action && strcmp(action, "add") == 0;

		k = add && devpath ? usbtree_get(devpath, false, &info) : -ENODEV;
		udev_device_unref(d);
		if (k < 0)
			continue;
		if (info.dev_class == USB_CLASS_HUB) {
			char port[PORT_STRLEN];

			port_format(&info.port, port, sizeof(port));
			log_info("%s is a hub (%04x:%04x); hubs are never passed. Plug the device in, into the hub if you like...",
				 port, info.vid, info.pid);
			fflush(stdout);
			continue;
		}
		print_lines(&info);
		r = 0;
		goto out;
	}
	log_error("no USB device was plugged in within %d s; run it again and plug the device in while it waits",
		  (timeout_ms + 999) / 1000);
out:
	udev_monitor_unref(mon);
	udev_unref(udev);
	return r;
}
