#include "base/retry.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

extern char **environ;

/* systemd-run only talks to systemd: this is a generous bound */
#define SPAWN_TIMEOUT_MS 5000

static int wait_child(pid_t pid, int64_t deadline, int *ret_status)
{
	for (;;) {
		pid_t w = waitpid(pid, ret_status, WNOHANG);

		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR)
			return -errno;
		if (util_remaining_ms(deadline) == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, ret_status, 0);
			return -ETIMEDOUT;
		}
		poll(NULL, 0, 5);
	}
}

int retry_schedule(const struct settings *s, const struct target *t)
{
	char self[4096], unit[128], when[32], vm[SETTINGS_NAME_MAX + 1], attempt[64], config[SETTINGS_PATH_MAX + 40];
	posix_spawn_file_actions_t fa;
	int64_t deadline = util_now_ms() + SPAWN_TIMEOUT_MS;
	ssize_t len;
	pid_t pid;
	int r, status = 0;

	if (s->retry_attempt >= RETRY_MAX)
		return log_err(-EAGAIN, "%s: still failing after %u tries; run 'pve-usb-hotplug sync %s' once it answers",
			       t->label, s->retry_attempt, t->name);
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0)
		return log_err(-errno, "%s: cannot schedule a retry (own path unknown); run 'pve-usb-hotplug sync %s'",
			       t->label, t->name);
	self[len] = '\0';
	/* one unit name per try: the next try is scheduled from inside the
	 * running one, and systemd refuses a second unit of the same name
	 * while the first is active */
	snprintf(unit, sizeof(unit), "pve-usb-hotplug-retry-%s-%u", t->key, s->retry_attempt + 1);
	snprintf(when, sizeof(when), "%dms", s->retry_delay_ms);
	snprintf(vm, sizeof(vm), "%s", t->name);
	snprintf(attempt, sizeof(attempt), "PVE_USB_HOTPLUG_RETRY=%u", s->retry_attempt + 1);
	snprintf(config, sizeof(config), "PVE_USB_HOTPLUG_CONFIG=%s",
		 s->path ? s->path : SETTINGS_DEFAULT_PATH);
	/* posix_spawn() wants writable strings */
	char cmd[SETTINGS_PATH_MAX], quiet[] = "--quiet", collect[] = "--collect", unit_opt[] = "--unit",
		on_active[] = "--on-active", accuracy[] = "--timer-property=AccuracySec=100ms",
		setenv1[] = "--setenv", setenv2[] = "--setenv", sync[] = "sync";
	char *const argv[] = {
		cmd,	 quiet,	  collect, unit_opt, unit, on_active, when, accuracy,
		setenv1, attempt, setenv2, config,   self, sync,	      vm,   NULL,
	};

	snprintf(cmd, sizeof(cmd), "%s", s->retry_command);

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	r = posix_spawn(&pid, s->retry_command, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0)
		return log_err(-r, "%s: cannot schedule a retry: %s: %s; run 'pve-usb-hotplug sync %s'",
			       t->label, s->retry_command, strerror(r), t->name);
	r = wait_child(pid, deadline, &status);
	if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		log_warning("%s: %s could not schedule a retry (%s; one may be pending already); run 'pve-usb-hotplug sync %s'",
			    t->label, s->retry_command, r < 0 ? strerror(-r) : "it failed", t->name);
		return r < 0 ? r : -EIO;
	}
	log_info("%s: will try again in %d ms ('pve-usb-hotplug sync %s', unit %s)", t->label,
		 s->retry_delay_ms, t->name, unit);
	return 0;
}
