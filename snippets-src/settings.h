/* The tool's own settings, /etc/pve-usb-hotplug.conf (INI). A missing file
 * means every default. Unknown keys and bad values are errors naming the
 * file and line. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "log.h"

#define SETTINGS_DEFAULT_PATH "/etc/pve-usb-hotplug.conf"
#define SETTINGS_PATH_MAX 1024
/* Larger settings files are refused. */
#define SETTINGS_MAX_SIZE (64 * 1024)
/* udev kills a RUN program after 180 s: a run must end well before. */
#define SETTINGS_RUN_MAX_MS 170000

struct settings {
	char vm_config_dir[SETTINGS_PATH_MAX];
	char qmp_socket_dir[SETTINGS_PATH_MAX];
	char state_dir[SETTINGS_PATH_MAX];
	char mapping_file[SETTINGS_PATH_MAX];
	char retry_command[SETTINGS_PATH_MAX];
	int qmp_timeout_ms;
	int lock_timeout_ms;
	int run_timeout_ms;
	int retry_delay_ms;
	enum log_level log_level;
	bool log_syslog;

	/* Not from the file: set by main() when the run starts. Every wait of
	 * the run ends by then (CLOCK_MONOTONIC ms; 0: no limit). */
	int64_t run_deadline_ms;
	/* The settings file this run read (for a retry to read it too), and
	 * which retry this run is (0: none). */
	const char *path;
	unsigned retry_attempt;
};

/* Fills s with the defaults. */
void settings_defaults(struct settings *s);

/* Defaults, then the file at path (missing: defaults only). Every problem is
 * logged as "PATH:LINE: ..."; returns 0, or -EINVAL if there was any (s then
 * holds the defaults plus the good lines), or another -errno when the file
 * could not be read at all. */
int settings_load(struct settings *s, const char *path);

/* Parses INI text from memory (for tests and fuzzing); name is used in
 * messages. Same returns as settings_load. */
int settings_load_string(struct settings *s, const char *text, const char *name);
