/* listen: the resident way to follow plugs (pve-usb-hotplug.service).
 *
 * It waits on udev's monitor for "add" of whole USB devices, the same
 * announcement QEMU's libusb waits for, and handles each in a forked child
 * exactly as 'plugged PORT' would, with the run's own deadline and settings
 * read anew. What that saves against the udev rule's systemd unit is
 * starting a unit and a program per plug (measured: README, "From plug to
 * guest"). While it runs it keeps the marker <state_dir>/listening, and the
 * rule's pve-usb-hotplug@.service stands aside (ConditionPathExists=!), so
 * a plug is handled once. Removal stays with the rule's RUN: it needs no
 * announcement. */
#include <errno.h>
#include <fcntl.h>
#include <libudev.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hotplug.h"
#include "log.h"
#include "port.h"
#include "state.h"
#include "util.h"

#define MARKER "listening"

/* What the child inherits of the listening and lets go of at once. */
struct listening {
	struct udev *udev;
	struct udev_monitor *mon;
	int sfd;
	sigset_t mask;
};

/* Handles the add of name in a child; the parent goes on listening. */
static pid_t handle(const char *config, const char *name, struct listening *l)
{
	struct settings s;
	pid_t pid = fork();
	int r;

	if (pid != 0)
		return pid; /* the parent, or -1 */
	sigprocmask(SIG_UNBLOCK, &l->mask, NULL);
	close(l->sfd);
	udev_monitor_unref(l->mon);
	udev_unref(l->udev);
	/* the settings as they are now: an edit needs no restart */
	r = settings_load(&s, config);
	log_setup(s.log_level, stdout, s.log_syslog);
	s.run_deadline_ms = util_now_ms() + s.run_timeout_ms;
	s.path = config;
	if (r < 0) {
		log_error("%s has errors (see above); %s not handled", config, name);
		_exit(2);
	}
	_exit(hotplug_plugged(&s, name) < 0 ? 1 : 0);
}

static void reap(unsigned *running)
{
	int status;

	while (waitpid(-1, &status, WNOHANG) > 0)
		if (*running)
			(*running)--;
}

static int marker(const struct settings *s, bool set)
{
	char why[128];
	int fd, r;

	r = state_open(s->state_dir, &fd, why, sizeof(why));
	if (r < 0)
		return log_err(r, "cannot use the state directory %s: %s", s->state_dir,
			       r == -EPERM ? why : strerror(-r));
	if (set) {
		char pid[24];
		int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());

		r = util_write_file_at(fd, MARKER, pid, (size_t)len);
	} else {
		r = unlinkat(fd, MARKER, 0) < 0 && errno != ENOENT ? -errno : 0;
	}
	close(fd);
	return r;
}

int hotplug_listen(const struct settings *s, const char *config, unsigned max_events)
{
	struct udev *udev = udev_new();
	struct udev_monitor *mon = NULL;
	unsigned handled = 0, running = 0;
	struct listening l;
	sigset_t mask;
	int sfd = -1, r = 0;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGCHLD);
	if (!udev || sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
	    (sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
		r = log_err(-ENOMEM, "cannot set up listening: %s", strerror(errno));
		goto out;
	}
	mon = udev_monitor_new_from_netlink(udev, "udev");
	if (!mon || udev_monitor_filter_add_match_subsystem_devtype(mon, "usb", "usb_device") < 0 ||
	    udev_monitor_enable_receiving(mon) < 0) {
		r = log_err(-EIO, "cannot listen to udev's announcements (is systemd-udevd running?)");
		goto out;
	}
	r = marker(s, true);
	if (r < 0)
		goto out;
	log_info("listening for USB devices plugged in");

	while (!max_events || handled < max_events || running) {
		struct pollfd p[2] = { { .fd = udev_monitor_get_fd(mon), .events = POLLIN },
				       { .fd = sfd, .events = POLLIN } };

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			r = log_err(-errno, "poll: %s", strerror(errno));
			break;
		}
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo != SIGCHLD)
				break;
			reap(&running);
		}
		if (!(p[0].revents & POLLIN))
			continue;
		struct udev_device *d = udev_monitor_receive_device(mon);
		const char *action = d ? udev_device_get_action(d) : NULL;
		const char *name = d ? udev_device_get_sysname(d) : NULL;
		char port_name[PORT_STRLEN];
		struct usb_port port;
		pid_t pid;

		if (!action || !name || strcmp(action, "add") != 0 || port_parse(name, &port) < 0 ||
		    (max_events && handled == max_events)) {
			udev_device_unref(d);
			continue;
		}
		/* the child gets the port's name, not the device */
		port_format(&port, port_name, sizeof(port_name));
		udev_device_unref(d);
		l = (struct listening){ .udev = udev, .mon = mon, .sfd = sfd, .mask = mask };
		pid = handle(config, port_name, &l);
		if (pid < 0)
			log_error("%s: cannot start its handling: %s", port_name, strerror(errno));
		else
			running++;
		handled++;
	}
	/* what is being handled is finished, not cut off */
	while (running && waitpid(-1, NULL, 0) > 0)
		running--;
	marker(s, false);
out:
	if (sfd >= 0)
		close(sfd);
	udev_monitor_unref(mon);
	udev_unref(udev);
	return r;
}
