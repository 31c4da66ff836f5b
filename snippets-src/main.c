/* pve-usb-hotplug: pass whatever is plugged into chosen host USB ports,
 * behind any hubs, into running Proxmox VE VMs and other QEMU guests.
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

#include "host/disk.h"
#include "commands/check.h"
#include "commands/hook.h"
#include "commands/identify.h"
#include "commands/release.h"
#include "commands/status.h"
#include "commands/sync.h"
#include "events/diskevent.h"
#include "events/listen.h"
#include "events/usbevent.h"
#include "base/log.h"
#include "base/state.h"
#include "base/settings.h"
#include "host/uevent.h"
#include "policy/usbconf.h"
#include "base/util.h"

#ifndef VERSION
#define VERSION "0"
#endif

static void usage(FILE *out)
{
	fputs("Usage:\n"
	      "  pve-usb-hotplug VMID PHASE          as a Proxmox VE hookscript (PHASE: pre-start,\n"
	      "                                      post-start, pre-stop, post-stop)\n"
	      "  pve-usb-hotplug                     from the udev rule: the event is read from\n"
	      "                                      the environment (ACTION, DEVPATH, ...)\n"
	      "  pve-usb-hotplug DOMAIN OP SUBOP X   as libvirt's hook /etc/libvirt/hooks/qemu:\n"
	      "                                      at 'started', sync that domain in the\n"
	      "                                      background\n"
	      "  pve-usb-hotplug status [GUEST] [--json]\n"
	      "                                      the host's USB devices, who claims them and\n"
	      "                                      whether they are attached\n"
	      "  pve-usb-hotplug check [GUEST]       check the settings and the .usb.conf files\n"
	      "  pve-usb-hotplug sync [GUEST]        attach what is missing, detach what is stale\n"
	      "  pve-usb-hotplug plugged PORT        the add of the device at PORT (3-4.1), as\n"
	      "                                      pve-usb-hotplug@.service runs it\n"
	      "  pve-usb-hotplug listen              follow plugs from udev's announcements, as\n"
	      "                                      pve-usb-hotplug.service runs it\n"
	      "  pve-usb-hotplug release GUEST       detach everything the tool added (before a\n"
	      "                                      migration, a snapshot with RAM, hibernation);\n"
	      "                                      'sync GUEST' brings it back\n"
	      "  pve-usb-hotplug identify [--timeout SECONDS]\n"
	      "                                      wait for a device to be plugged in and print\n"
	      "                                      the .usb.conf lines that select it\n"
	      "  pve-usb-hotplug --help | --version\n"
	      "\n"
	      "/etc/pve/qemu-server/VMID.usb.conf holds a VM's rules, one a line: a port such\n"
	      "as 3-4 (and everything behind it, through hubs), 'path ID_PATH', 'id VID:PID',\n"
	      "'serial SERIAL', or 'deny' before any of them. At post-start every device the\n"
	      "rules give the VM is attached; udev events then attach and detach devices as\n"
	      "they are plugged in and out.\n"
	      "\n"
	      "GUEST is a Proxmox VMID, or the NAME of a QEMU or Xen guest declared in the\n"
	      "settings as [qemu NAME] or [xen NAME].\n"
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

static int parse_vmid_arg(const char *arg, unsigned long *ret)
{
	char shown[64];

	if (usbconf_parse_vmid(arg, ret) == 0)
		return 0;
	log_error("'%s' is not a VM id (100 to 999999999)", log_escape(arg, shown, sizeof(shown)));
	return -EINVAL;
}

/* A guest's name on the command line: a VMID or a declared guest's name. */
static int parse_name_arg(const struct settings *s, const char *config, const char *arg)
{
	unsigned long vmid;
	char shown[64];

	if (usbconf_parse_vmid(arg, &vmid) == 0 || settings_guest(s, arg))
		return 0;
	log_error("'%s' is neither a VM id (100 to 999999999) nor a guest declared in %s ([qemu NAME], [xen NAME] or [libvirt NAME])",
		  log_escape(arg, shown, sizeof(shown)), config);
	return -EINVAL;
}

/* The operator's commands: CMD [NAME] [--json] / identify [--timeout S]. */
static int run_command(const struct settings *settings, int settings_r, const char *config,
		       int argc, char **argv)
{
	const char *cmd = argv[1], *name = NULL;
	bool json = false;
	int timeout_s = 60, r;

	if (!strcmp(cmd, "listen")) {
		unsigned long n = 0;

		if (argc != 2 && !(argc == 4 && !strcmp(argv[2], "--events") &&
				   util_parse_uint(argv[3], 1000000, &n) == 0 && n > 0)) {
			usage(stderr);
			return 2;
		}
		if (settings_r < 0) {
			log_error("%s has errors (see above); fix them and start again", config);
			return 2;
		}
		return exit_code(listen_run(settings, config, (unsigned)n));
	}
	if (!strcmp(cmd, "plugged")) {
		if (argc != 3) {
			usage(stderr);
			return 2;
		}
		if (settings_r < 0) {
			log_error("%s has errors (see above); %s not handled", config, "the plugged device");
			return 2;
		}
		return exit_code(usbevent_plugged(settings, argv[2], NULL));
	}
	for (int i = 2; i < argc; i++) {
		unsigned long v;

		if (!strcmp(cmd, "status") && !strcmp(argv[i], "--json") && !json) {
			json = true;
		} else if (!strcmp(cmd, "identify") && !strcmp(argv[i], "--timeout") && i + 1 < argc) {
			if (util_parse_uint(argv[++i], 3600, &v) < 0 || v == 0) {
				log_error("--timeout takes seconds, 1 to 3600");
				return 2;
			}
			timeout_s = (int)v;
		} else if (strcmp(cmd, "identify") && !name && argv[i][0] != '-') {
			if (parse_name_arg(settings, config, argv[i]) < 0)
				return 2;
			name = argv[i];
		} else {
			usage(stderr);
			return 2;
		}
	}

	if (!strcmp(cmd, "check")) {
		if (settings_r < 0)
			log_error("%s: has errors (see above)", config);
		else
			log_info("%s: valid", config);
		return check_run(settings, name, false) < 0 || settings_r < 0 ? 1 : 0;
	}
	if (!strcmp(cmd, "identify"))
		return exit_code(identify_run(timeout_s * 1000));
	if (settings_r < 0) {
		log_error("%s has errors (see above); fix them and run again", config);
		return 2;
	}
	if (!strcmp(cmd, "status"))
		return exit_code(status_run(settings, name, json));
	if (!strcmp(cmd, "release")) {
		if (!name) {
			log_error("release needs the guest: pve-usb-hotplug release VMID|NAME");
			return 2;
		}
		r = release_run(settings, name);
	} else {
		r = sync_run(settings, name);
	}
	/* what the guests have has changed: the listener looks again */
	(void)state_poke_listener(settings->state_dir);
	return exit_code(r);
}

/* As libvirt's hook /etc/libvirt/hooks/qemu (DOMAIN OPERATION SUB-OP
 * EXTRA): at "started", 'sync' for the declared libvirt guest of that
 * domain. libvirt waits for its hook, and its calls for the domain wait for
 * the hook in turn, so the sync runs in a child of its own, its output to
 * the system log only, once the hook has returned. Never fails the domain. */
static int libvirt_hook(const struct settings *s, int settings_r, const char *domain,
			const char *operation)
{
	const struct guest_conf *g = NULL;
	pid_t pid;

	for (size_t i = 0; i < s->n_guests && !g; i++)
		if (s->guests[i].kind == GUEST_LIBVIRT && strcmp(s->guests[i].domain, domain) == 0)
			g = &s->guests[i];
	if (strcmp(operation, "started") != 0 || !g || settings_r < 0)
		return 0;
	pid = fork();
	if (pid != 0)
		return 0; /* the hook is done (a failed fork: nothing attached, as without it) */
	setsid();
	if (!freopen("/dev/null", "r", stdin) || !freopen("/dev/null", "w", stdout) ||
	    !freopen("/dev/null", "w", stderr))
		_exit(1);
	log_setup(s->log_level, NULL, true);
	_exit(exit_code(sync_run(s, g->name)));
}

/* Which try a scheduled retry is (retry.h); 0 for anything else. */
static unsigned retry_attempt(const char *v)
{
	unsigned long n;

	return v && util_parse_uint(v, 100, &n) == 0 ? (unsigned)n : 0;
}

static bool is_command(const char *arg)
{
	static const char *const commands[] = { "check", "status", "sync", "identify", "release",
						"plugged", "listen" };

	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(arg, commands[i]))
			return true;
	return false;
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
	bool command = argc >= 2 && is_command(argv[1]);

	if (!command && argc != 1 && argc != 3 && argc != 5) {
		usage(stderr);
		return 2;
	}

	if (!config || !config[0])
		config = SETTINGS_DEFAULT_PATH;
	r = settings_load(&settings, config);
	log_setup(settings.log_level, stdout, settings.log_syslog);
	/* one deadline for the whole run, well inside udev's 180 s */
	settings.run_deadline_ms = util_now_ms() + settings.run_timeout_ms;
	settings.path = config;
	settings.retry_attempt = retry_attempt(getenv("PVE_USB_HOTPLUG_RETRY"));

	if (command)
		return run_command(&settings, r, config, argc, argv);

	if (argc == 5)
		return libvirt_hook(&settings, r, argv[1], argv[2]);

	if (argc == 3) {
		unsigned long vmid;

		if (parse_vmid_arg(argv[1], &vmid) < 0) {
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
		const char *from = getenv("PVE_MIGRATED_FROM");

		return exit_code(hook_run(&settings, vmid, argv[2], from && from[0] ? from : NULL));
	}

	/* udev: cheap checks first, so the many uninteresting events cost
	 * nothing but reading the environment */
	struct uevent ev;
	const char *reason, *subsystem = getenv("SUBSYSTEM");

	if (subsystem && strcmp(subsystem, "block") == 0) {
		enum uevent_action action;
		struct usb_disk disk;

		if (disk_from_event(env_lookup, NULL, &action, &disk, &reason) == 0) {
			log_debug("ignored event: %s", reason);
			return 0;
		}
		if (r < 0) {
			log_error("%s has errors (see above); event for %s not handled", config,
				  disk.devpath);
			return 2;
		}
		return exit_code(diskevent_handle(&settings, action, &disk));
	}
	if (uevent_parse(env_lookup, NULL, &ev, &reason) == 0) {
		log_debug("ignored event: %s", reason);
		return 0;
	}
	if (r < 0) {
		log_error("%s has errors (see above); event for %s not handled", config, ev.devpath);
		return 2;
	}
	return exit_code(usbevent_handle(&settings, &ev, NULL));
}
