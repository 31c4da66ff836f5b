/* pve-usb-hotplug: pass whatever is plugged into chosen host USB ports,
 * behind any hubs, into running Proxmox VE VMs.
 *
 * The only file that reads argv and the environment and picks exit codes:
 *   0  everything wanted is in place (or nothing was to be done)
 *   1  something could not be done (the message says what)
 *   2  bad usage or a bad settings file */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hotplug.h"
#include "log.h"
#include "settings.h"
#include "uevent.h"
#include "usbconf.h"

#ifndef VERSION
#define VERSION "0"
#endif

static void usage(FILE *out)
{
	fputs("Usage:\n"
	      "  pve-usb-hotplug VMID PHASE   as a Proxmox VE hookscript (PHASE: pre-start,\n"
	      "                               post-start, pre-stop, post-stop)\n"
	      "  pve-usb-hotplug              from a udev rule: the event is read from the\n"
	      "                               environment (ACTION, DEVPATH, ...)\n"
	      "  pve-usb-hotplug check [VMID]  check the settings and the .usb.conf files\n"
	      "  pve-usb-hotplug --help | --version\n"
	      "\n"
	      "At post-start, every USB device at or below the ports listed in\n"
	      "/etc/pve/qemu-server/VMID.usb.conf (one port such as 3-4 a line) is attached\n"
	      "to the VM, through any hubs; udev events then attach and detach devices as\n"
	      "they are plugged in and out.\n"
	      "\n"
	      "Settings: /etc/pve-usb-hotplug.conf, or the file named by\n"
	      "PVE_USB_HOTPLUG_CONFIG. See pve-usb-hotplug(8).\n",
	      out);
}

static const char *env_lookup(const char *key, void *userdata)
{
	(void)userdata;
	return getenv(key);
}

static int exit_code(int r)
{
	return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *config = getenv("PVE_USB_HOTPLUG_CONFIG");
	struct settings settings;
	int r;

	log_setup(LOG_LVL_INFO, stdout, 1);

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		puts("pve-usb-hotplug " VERSION);
		return 0;
	}
	bool check = argc >= 2 && !strcmp(argv[1], "check");

	if (check ? argc > 3 : argc != 1 && argc != 3) {
		usage(stderr);
		return 2;
	}

	if (!config || !config[0])
		config = SETTINGS_DEFAULT_PATH;
	r = settings_load(&settings, config);
	log_setup(settings.log_level, stdout, settings.log_syslog);

	if (check) {
		unsigned long vmid = 0;

		if (argc == 3 && usbconf_parse_vmid(argv[2], &vmid) < 0) {
			log_error("'%s' is not a VM id (100 to 999999999)", argv[2]);
			return 2;
		}
		if (r < 0)
			log_error("%s: has errors (see above)", config);
		else
			log_info("%s: valid", config);
		return hotplug_check(&settings, vmid) < 0 || r < 0 ? 1 : 0;
	}

	if (argc == 3) {
		unsigned long vmid;

		if (usbconf_parse_vmid(argv[1], &vmid) < 0) {
			log_error("'%s' is not a VM id (100 to 999999999)", argv[1]);
			usage(stderr);
			return 2;
		}
		if (r < 0) {
			/* pre-start must never keep a VM from starting */
			if (!strcmp(argv[2], "pre-start")) {
				log_warning("%s has errors (see above); fix them, USB hot-plug will not work until then", config);
				return 0;
			}
			log_error("%s has errors (see above); fix them and run again", config);
			return 2;
		}
		return exit_code(hotplug_hook(&settings, vmid, argv[2]));
	}

	/* udev: cheap checks first, so the many uninteresting events cost
	 * nothing but reading the environment */
	struct uevent ev;
	const char *reason;

	if (uevent_parse(env_lookup, NULL, &ev, &reason) == 0) {
		log_debug("ignored event: %s", reason);
		return 0;
	}
	if (r < 0) {
		log_error("%s has errors (see above); event for %s not handled", config, ev.devpath);
		return 2;
	}
	return exit_code(hotplug_event(&settings, &ev));
}
