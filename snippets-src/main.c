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

/* One run of an operator's command: the settings and its arguments. */
struct invocation {
	const struct settings *settings;
	int settings_r; /* what loading the settings returned */
	const char *config;
	const char *name; /* the guest named, or NULL */
	const char *port; /* plugged PORT */
	bool json;
	int timeout_s;
	unsigned events; /* listen --events N; 0: no end */
};

/* The shapes of a command's arguments. */
enum arg_shape {
	ARGS_GUEST,	 /* [GUEST] */
	ARGS_GUEST_JSON, /* [GUEST] [--json] */
	ARGS_TIMEOUT,	 /* [--timeout SECONDS] */
	ARGS_PORT,	 /* PORT */
	ARGS_EVENTS,	 /* [--events N] */
};

/* CMD [GUEST] [--json] / identify [--timeout S]. 0, or the exit code of a
 * bad command line. */
static int parse_options(enum arg_shape shape, int argc, char **argv, struct invocation *in)
{
	for (int i = 2; i < argc; i++) {
		unsigned long v;

		if (shape == ARGS_GUEST_JSON && !strcmp(argv[i], "--json") && !in->json) {
			in->json = true;
		} else if (shape == ARGS_TIMEOUT && !strcmp(argv[i], "--timeout") && i + 1 < argc) {
			if (util_parse_uint(argv[++i], 3600, &v) < 0 || v == 0) {
				log_error("--timeout takes seconds, 1 to 3600");
				return 2;
			}
			in->timeout_s = (int)v;
		} else if (shape != ARGS_TIMEOUT && !in->name && argv[i][0] != '-') {
			if (parse_name_arg(in->settings, in->config, argv[i]) < 0)
				return 2;
			in->name = argv[i];
		} else {
			usage(stderr);
			return 2;
		}
	}
	return 0;
}

static int parse_args(enum arg_shape shape, int argc, char **argv, struct invocation *in)
{
	unsigned long n = 0;

	switch (shape) {
	case ARGS_PORT:
		if (argc != 3)
			break;
		in->port = argv[2];
		return 0;
	case ARGS_EVENTS:
		if (argc != 2 && !(argc == 4 && !strcmp(argv[2], "--events") &&
				   util_parse_uint(argv[3], 1000000, &n) == 0 && n > 0))
			break;
		in->events = (unsigned)n;
		return 0;
	default:
		return parse_options(shape, argc, argv, in);
	}
	usage(stderr);
	return 2;
}

static int cmd_check(const struct invocation *in)
{
	return check_command(in->settings, in->settings_r, in->name);
}

static int cmd_status(const struct invocation *in)
{
	return status_run(in->settings, in->name, in->json);
}

/* What the guests have has changed: the listener looks again. */
static int poked(const struct invocation *in, int r)
{
	(void)state_poke_listener(in->settings->state_dir);
	return r;
}

static int cmd_sync(const struct invocation *in)
{
	return poked(in, sync_run(in->settings, in->name));
}

static int cmd_release(const struct invocation *in)
{
	return poked(in, release_run(in->settings, in->name));
}

static int cmd_identify(const struct invocation *in)
{
	return identify_run(in->timeout_s * 1000);
}

static int cmd_plugged(const struct invocation *in)
{
	return usbevent_plugged(in->settings, in->port, NULL);
}

static int cmd_listen(const struct invocation *in)
{
	return listen_run(in->settings, in->config, in->events);
}

/* The operator's commands. bad_settings: what is said, after "CONFIG has
 * errors (see above); ", when the settings did not load (NULL: the command
 * runs anyway). */
static const struct command {
	const char *name;
	enum arg_shape args;
	bool needs_guest;
	const char *bad_settings;
	int (*run)(const struct invocation *in);
} commands[] = {
	{ "check", ARGS_GUEST, false, NULL, cmd_check },
	{ "status", ARGS_GUEST_JSON, false, "fix them and run again", cmd_status },
	{ "sync", ARGS_GUEST, false, "fix them and run again", cmd_sync },
	{ "identify", ARGS_TIMEOUT, false, NULL, cmd_identify },
	{ "release", ARGS_GUEST, true, "fix them and run again", cmd_release },
	{ "plugged", ARGS_PORT, false, "the plugged device not handled", cmd_plugged },
	{ "listen", ARGS_EVENTS, false, "fix them and start again", cmd_listen },
};

static const struct command *find_command(const char *arg)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(arg, commands[i].name))
			return &commands[i];
	return NULL;
}

static int run_command(const struct command *cmd, const struct settings *settings,
		       int settings_r, const char *config, int argc, char **argv)
{
	struct invocation in = { .settings = settings, .settings_r = settings_r, .config = config,
				 .timeout_s = 60 };
	int r;

	r = parse_args(cmd->args, argc, argv, &in);
	if (r != 0)
		return r;
	if (cmd->bad_settings && settings_r < 0) {
		log_error("%s has errors (see above); %s", config, cmd->bad_settings);
		return 2;
	}
	if (cmd->needs_guest && !in.name) {
		log_error("%s needs the guest: pve-usb-hotplug %s VMID|NAME", cmd->name, cmd->name);
		return 2;
	}
	return exit_code(cmd->run(&in));
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

/* As a Proxmox VE hookscript: VMID PHASE. */
static int run_hookscript(const struct settings *s, int settings_r, const char *config,
			  char **argv)
{
	const char *from = getenv("PVE_MIGRATED_FROM");
	unsigned long vmid;

	if (parse_vmid_arg(argv[1], &vmid) < 0) {
		usage(stderr);
		return 2;
	}
	if (settings_r < 0) {
		/* pre-start must never keep a VM from starting */
		if (!strcmp(argv[2], "pre-start")) {
			log_warning("%s has errors (see above); fix them, USB hot-plug will not work until then", config);
			return 0;
		}
		log_error("%s has errors (see above); fix them and run again", config);
		return 2;
	}
	return exit_code(hook_run(s, vmid, argv[2], from && from[0] ? from : NULL));
}

/* From the udev rule: the event is in the environment. Cheap checks first,
 * so the many uninteresting events cost nothing but reading it. */
/* The settings file (PVE_USB_HOTPLUG_CONFIG, or the default) and what the
 * environment adds to them. Returns what settings_load returned. */
static int load_settings(struct settings *s, const char **ret_config)
{
	const char *config = getenv("PVE_USB_HOTPLUG_CONFIG");
	int r;

	if (!config || !config[0])
		config = SETTINGS_DEFAULT_PATH;
	r = settings_load(s, config);
	log_setup(s->log_level, stdout, s->log_syslog);
	/* one deadline for the whole run, well inside udev's 180 s */
	s->run_deadline_ms = util_now_ms() + s->run_timeout_ms;
	s->path = config;
	s->retry_attempt = retry_attempt(getenv("PVE_USB_HOTPLUG_RETRY"));
	*ret_config = config;
	return r;
}

/* Most events concern nothing here (every interface of every device, a
 * hub's own ports, a partition): they are told apart from the environment
 * alone, before the settings are read, and end without a word. */
/* A node of a USB device's interface (a tty...) added or removed. */
static int run_node_event(struct settings *s)
{
	enum uevent_action action;
	const char *reason, *config;
	struct ifnode n;

	if (ifnode_from_event(env_lookup, NULL, &action, &n, &reason) == 0)
		return 0;
	if (load_settings(s, &config) < 0) {
		log_error("%s has errors (see above); event for /dev/%s not handled", config, n.name);
		return 2;
	}
	return exit_code(usbevent_node(s, action, &n));
}

static int run_udev_event(struct settings *s)
{
	const char *reason, *config, *subsystem = getenv("SUBSYSTEM");
	bool is_disk = subsystem && strcmp(subsystem, "block") == 0;
	enum uevent_action action;
	struct usb_disk disk;
	struct uevent ev;

	if (ifnode_subsystem(subsystem))
		return run_node_event(s);
	if (is_disk ? disk_from_event(env_lookup, NULL, &action, &disk, &reason) == 0
		    : uevent_parse(env_lookup, NULL, &ev, &reason) == 0)
		return 0;
	if (load_settings(s, &config) < 0) {
		log_error("%s has errors (see above); event for %s not handled", config,
			  is_disk ? disk.devpath : ev.devpath);
		return 2;
	}
	return exit_code(is_disk ? diskevent_handle(s, action, &disk) : usbevent_handle(s, &ev, NULL));
}

int main(int argc, char **argv)
{
	const struct command *cmd = argc >= 2 ? find_command(argv[1]) : NULL;
	struct settings settings;
	const char *config;
	int r;

	/* a unit's output is the journal: commands run as units (listen,
	 * plugged, a retry's sync); udev's RUN is none */
	if (argc > 1)
		log_journal_stream(getenv("JOURNAL_STREAM"));
	log_setup(LOG_LVL_INFO, stdout, 1);

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		puts("pve-usb-hotplug " VERSION);
		return 0;
	}
	if (!cmd && argc != 1 && argc != 3 && argc != 5) {
		usage(stderr);
		return 2;
	}

	if (argc == 1)
		return run_udev_event(&settings);
	r = load_settings(&settings, &config);
	if (cmd)
		return run_command(cmd, &settings, r, config, argc, argv);
	if (argc == 5)
		return libvirt_hook(&settings, r, argv[1], argv[2]);
	if (argc == 3)
	return run_hookscript(&settings, r, config, argv);
}
