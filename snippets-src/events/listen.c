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
 * announcement.
 *
 * It also holds the running guests' ports (hold.h): the parent owns the
 * hub files, looks again on SIGHUP (the hookscript, sync, release), after
 * every remove and every HOLD_SYNC_MS, and hands a device on a held port
 * to the host's drivers when its child says it went to no guest (the
 * child's exit status). */
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

#include "host/hold.h"
#include "events/listen.h"
#include "events/usbevent.h"
#include "base/log.h"
#include "host/port.h"
#include "host/usbfs.h"
#include "base/state.h"
#include "base/util.h"


/* How often the held ports are brought up to date when nobody says so
 * (a guest started without the hookscript, a rules file edited). */
#define HOLD_SYNC_MS 5000
/* Plugs into held ports being handled at once, remembered to hand a
 * device nobody took to the host's drivers when its child ends. */
#define MAX_PENDING 64
/* A child's exit status: the device went to no guest (it did not fail). */
#define EXIT_NOT_PASSED 3

/* What the child inherits of the listening and lets go of at once. */
struct listening {
	struct udev *udev;
	struct udev_monitor *mon;
	int sfd;
	sigset_t mask;
	struct hold *hold;
};

struct pending {
	pid_t pid;
	struct usb_port port;
};

/* Says what the held ports did (hold does not log), once. */
static void say(struct hold_changes *c)
{
	for (size_t i = 0; i < c->n; i++) {
		const struct hold_change *x = &c->list[i];

		switch (x->kind) {
		case HOLD_HOLDING:
			log_info("holding port %s (%s): the host's drivers stay off what is plugged there",
				 x->port, x->what);
			break;
		case HOLD_LET_GO:
			log_info("port %s (%s) is held no more", x->port, x->what);
			break;
		case HOLD_HANDED:
			log_info("%s: %s: handed to the host's drivers", x->port, x->what);
			break;
		case HOLD_NOT_BOUND:
			log_warning("%s: the host's drivers could not be bound to it (%s); plug it in again",
				    x->port, strerror(-x->err));
			break;
		case HOLD_NO_HUB:
			log_warning("cannot hold the ports of hub %s (%s: %s): the host's drivers take what is plugged there first, and QEMU takes it from them",
				    x->port, x->what, strerror(-x->err));
			break;
		case HOLD_NO_CLAIM:
			log_warning("cannot hold port %s: %s%s", x->port, strerror(-x->err),
				    x->err == -EBUSY ? " (another program holds it)" : "");
			break;
		case HOLD_NO_RELEASE:
			log_warning("%s: cannot let its port go for the host's drivers: %s", x->port,
				    strerror(-x->err));
			break;
		case HOLD_NO_NOTE:
			log_warning("cannot write %s: %s", x->what, strerror(-x->err));
			break;
		case HOLD_NO_PLAN:
			log_warning("cannot work out which ports to hold now; left as they are");
			break;
		case HOLD_NO_MEMORY:
			log_warning("cannot note which ports are held: out of memory");
			break;
		}
	}
	hold_changes_free(c);
}

/* The device at port (held) goes to the host's drivers. */
static void give_to_host(struct hold *h, const struct usb_port *port)
{
	struct hold_changes c = { 0 };

	hold_give_to_host(h, port, &c);
	say(&c);
}


/* Handles the add of name in a child; the parent goes on listening. */
static pid_t handle(const char *config, const char *name, struct listening *l)
{
	struct settings s;
	bool passed = false;
	pid_t pid = fork();
	int r;

	if (pid != 0)
		return pid; /* the parent, or -1 */
	sigprocmask(SIG_UNBLOCK, &l->mask, NULL);
	close(l->sfd);
	udev_monitor_unref(l->mon);
	udev_unref(l->udev);
	hold_forget(l->hold);
	/* the settings as they are now: an edit needs no restart */
	r = settings_load(&s, config);
	log_setup(s.log_level, stdout, s.log_syslog);
	s.run_deadline_ms = util_now_ms() + s.run_timeout_ms;
	s.path = config;
	if (r < 0) {
		log_error("%s has errors (see above); %s not handled", config, name);
		_exit(2);
	}
	r = usbevent_plugged(&s, name, &passed);
	_exit(r < 0 ? 1 : passed ? 0 : EXIT_NOT_PASSED);
}

/* Children that ended; a device on a held port that its child did not
 * pass to a guest goes to the host's drivers. */
static void reap(unsigned *running, struct pending *pend, size_t *n_pend, struct hold *h)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (*running)
			(*running)--;
		for (size_t i = 0; i < *n_pend; i++) {
			if (pend[i].pid != pid)
				continue;
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
				give_to_host(h, &pend[i].port);
			else
				hold_passed(h, &pend[i].port);
			pend[i] = pend[--*n_pend];
			break;
		}
	}
}

/* The held ports as the settings, the rules and the running guests say
 * now. */
static void resync(struct hold *h, const struct settings *s, const char *config,
		   const struct pending *pend, size_t n_pend)
{
	struct usb_port busy[MAX_PENDING];
	struct hold_changes c = { 0 };
	struct settings now;

	if (!s->listen_hold_ports)
		return;
	if (settings_load(&now, config) < 0) {
		log_warning("%s has errors (see above); the held ports are left as they are", config);
		return;
	}
	for (size_t i = 0; i < n_pend; i++)
		busy[i] = pend[i].port;
	if (now.listen_hold_ports)
		hold_sync(h, &now, busy, n_pend, &c);
	else
		hold_release_all(h, &c);
	say(&c);
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

		r = util_write_file_at(fd, STATE_LISTEN_MARKER, pid, (size_t)len);
	} else {
		r = unlinkat(fd, STATE_LISTEN_MARKER, 0) < 0 && errno != ENOENT ? -errno : 0;
	}
	close(fd);
	return r;
}


int listen_run(const struct settings *s, const char *config, unsigned max_events)
{
	struct udev *udev = udev_new();
	struct udev_monitor *mon = NULL;
	unsigned handled = 0, running = 0;
	struct pending pend[MAX_PENDING];
	struct hold hold = { 0 };
	size_t n_pend = 0;
	int64_t next_sync = 0;
	struct listening l;
	sigset_t mask;
	int sfd = -1, r = 0;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGHUP); /* the hookscript: a guest started or stopped */
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
	resync(&hold, s, config, pend, n_pend);
	next_sync = util_now_ms() + HOLD_SYNC_MS;

	while (!max_events || handled < max_events || running) {
		struct pollfd p[2] = { { .fd = udev_monitor_get_fd(mon), .events = POLLIN },
				       { .fd = sfd, .events = POLLIN } };
		int wait = s->listen_hold_ports ? util_remaining_ms(next_sync) : -1;

		if (wait == 0) {
			resync(&hold, s, config, pend, n_pend);
			next_sync = util_now_ms() + HOLD_SYNC_MS;
			continue;
		}
		if (poll(p, 2, wait) < 0) {
			if (errno == EINTR)
				continue;
			r = log_err(-errno, "poll: %s", strerror(errno));
			break;
		}
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			bool got = read(sfd, &si, sizeof(si)) == sizeof(si);

			if (got && si.ssi_signo == SIGHUP)
				resync(&hold, s, config, pend, n_pend);
			else if (got && si.ssi_signo != SIGCHLD)
				break;
			reap(&running, pend, &n_pend, &hold);
		}
		if (!(p[0].revents & POLLIN))
			continue;
		struct udev_device *d = udev_monitor_receive_device(mon);
		const char *action = d ? udev_device_get_action(d) : NULL;
		const char *name = d ? udev_device_get_sysname(d) : NULL;
		char port_name[PORT_STRLEN];
		struct usb_port port;
		pid_t pid;

		if (action && strcmp(action, "remove") == 0 && s->listen_hold_ports)
			resync(&hold, s, config, pend, n_pend); /* a hub gone: its file goes */
		if (!action || !name || strcmp(action, "add") != 0 || port_parse(name, &port) < 0 ||
		    (max_events && handled == max_events)) {
			udev_device_unref(d);
			continue;
		}
		bool held = hold_is_held(&hold, &port);

		if (s->listen_hold_ports && usbfs_is_hub(name)) {
			/* a hub works for the host; its ports are held next */
			if (held)
				give_to_host(&hold, &port);
			resync(&hold, s, config, pend, n_pend);
			held = false;
		}
		/* the child gets the port's name, not the device */
		port_format(&port, port_name, sizeof(port_name));
		udev_device_unref(d);
		l = (struct listening){ .udev = udev, .mon = mon, .sfd = sfd, .mask = mask, .hold = &hold };
		pid = handle(config, port_name, &l);
		if (pid < 0) {
			log_error("%s: cannot start its handling: %s", port_name, strerror(errno));
			if (held)
				give_to_host(&hold, &port);
		} else {
			running++;
			if (held && n_pend < MAX_PENDING)
				pend[n_pend++] = (struct pending){ .pid = pid, .port = port };
			else if (held)
				give_to_host(&hold, &port);
		}
		handled++;
	}
	/* what is being handled is finished, not cut off */
	while (running && waitpid(-1, NULL, 0) > 0)
		running--;
	/* what nobody took gets the host's drivers */
	struct hold_changes c = { 0 };

	hold_release_all(&hold, &c);
	say(&c);
	marker(s, false);
out:
	if (sfd >= 0)
		close(sfd);
	udev_monitor_unref(mon);
	udev_unref(udev);
	return r;
}
