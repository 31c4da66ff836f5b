/* The tool's own settings, /etc/pve-usb-hotplug.conf (INI). A missing file
 * means every default. Unknown keys and bad values are errors naming the
 * file and line. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "base/log.h"

#define SETTINGS_DEFAULT_PATH "/etc/pve-usb-hotplug.conf"
#define SETTINGS_PATH_MAX 1024
/* Larger settings files are refused. */
#define SETTINGS_MAX_SIZE (64 * 1024)
/* udev kills a RUN program after 180 s: a run must end well before. */
#define SETTINGS_RUN_MAX_MS 170000
/* Declared guests ([qemu NAME], [xen NAME], [libvirt NAME]): how many, how
 * long a name. */
#define SETTINGS_MAX_GUESTS 32
#define SETTINGS_NAME_MAX 48
/* The drop-in directory: <settings file> + this; its *.conf files (not
 * *.usb.conf, the rules files that may sit beside them) are read after the
 * file itself, in name order. */
#define SETTINGS_DROPIN_SUFFIX ".d"

/* A Xen HVM guest's device model listens on qmp-libxl-<domid>. */
#define SETTINGS_XEN_QMP_GLOB "/var/run/xen/qmp-libxl-*"

/* libvirt's local system instance */
#define SETTINGS_LIBVIRT_URI "qemu:///system"

enum guest_conf_kind {
	GUEST_QEMU,
	GUEST_XEN,
	GUEST_LIBVIRT,
};

/* A guest declared in the settings (see target.h). */
struct guest_conf {
	enum guest_conf_kind kind;
	char name[SETTINGS_NAME_MAX + 1];
	char qmp[SETTINGS_PATH_MAX];	       /* qemu, xen */
	char qemu_name[SETTINGS_NAME_MAX + 1]; /* qemu, xen */
	char uri[SETTINGS_PATH_MAX];	       /* libvirt: the connection */
	char domain[SETTINGS_PATH_MAX];	       /* libvirt: the domain's name */
	char pidfile[SETTINGS_PATH_MAX];
	char rules[SETTINGS_PATH_MAX];
	char origin[SETTINGS_PATH_MAX + 16]; /* "FILE:LINE" of its section */
};

/* The paths first: every one has a default (settings_defaults() sets
 * them, and clears only what follows them). */
struct settings {
	char vm_config_dir[SETTINGS_PATH_MAX];
	char qmp_socket_dir[SETTINGS_PATH_MAX];
	char state_dir[SETTINGS_PATH_MAX];
	char mapping_file[SETTINGS_PATH_MAX];
	char disk_dir[SETTINGS_PATH_MAX]; /* where a USB disk's by-id link is */
	char lxc_config_dir[SETTINGS_PATH_MAX];	    /* Proxmox's <ctid>.conf: containers */
	char lxcpath[SETTINGS_PATH_MAX];	    /* LXC's: <ctid>/config, the command socket */
	char usb_dev_dir[SETTINGS_PATH_MAX];	    /* the host's BBB/DDD nodes of USB devices */
	char dev_dir[SETTINGS_PATH_MAX];	    /* the host's /dev: nodes of interfaces */
	char lxc_cgroup_command[SETTINGS_PATH_MAX]; /* lxc-cgroup: a container's devices.allow */
	char retry_command[SETTINGS_PATH_MAX];
	int qmp_timeout_ms;
	int lock_timeout_ms;
	int run_timeout_ms;
	int retry_delay_ms;
	enum log_level log_level;
	bool log_syslog;
	bool listen_hold_ports; /* the listener keeps host drivers off held ports (hold.h) */
	size_t n_guests;

	/* Not from the file: set by main() when the run starts. Every wait of
	 * the run ends by then (CLOCK_MONOTONIC ms; 0: no limit). */
	int64_t run_deadline_ms;
	/* The settings file this run read (for a retry to read it too), and
	 * which retry this run is (0: none). */
	const char *path;
	unsigned retry_attempt;

	/* Last, and only the first n_guests are ever set: the defaults need
	 * not clear it (it is large, and every udev event reads the settings). */
	struct guest_conf guests[SETTINGS_MAX_GUESTS];
};

/* Fills s with the defaults. */
void settings_defaults(struct settings *s);

/* Defaults, then the file at path (missing: defaults only), then the
 * drop-in directory's files. Every problem is
 * logged as "PATH:LINE: ..."; returns 0, or -EINVAL if there was any (s then
 * holds the defaults plus the good lines), or another -errno when the file
 * could not be read at all. */
int settings_load(struct settings *s, const char *path);

/* Whether name can name a declared guest: 1 to SETTINGS_NAME_MAX of
 * [A-Za-z0-9_.-] (it names files and a systemd unit), starting with a letter or a digit, and not only digits
 * (those are Proxmox VMIDs). */
bool settings_guest_name_valid(const char *name);

/* The declared guest named name, or NULL. */
const struct guest_conf *settings_guest(const struct settings *s, const char *name);

/* Parses INI text from memory (for tests and fuzzing); name is used in
 * messages. Same returns as settings_load. */
int settings_load_string(struct settings *s, const char *text, const char *name);
