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
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/state.h"
#include "base/util.h"
#include "events/listen.h"
#include "events/usbevent.h"
#include "host/hold.h"
#include "host/port.h"
#include "host/usbfs.h"

/* How often the held ports are brought up to date when nobody says so
 * (a guest started without the hookscript, a rules file edited). */
#define HOLD_SYNC_MS 5000
/* Plugs into held ports being handled at once, remembered to hand a
 * device nobody took to the host's drivers when its child ends. */
#define MAX_PENDING 64
/* The receive buffer for udev's announcements (udevd takes 128 MiB). */
#define LISTEN_RCVBUF (128 * 1024 * 1024)
/* A child's exit status: the device went to no guest (it did not fail). */
#define EXIT_NOT_PASSED 3

struct pending {
	pid_t pid;
	struct usb_port port;
};

/* The loop's state: its sources (udev's monitor, signals, the timer),
 * the held ports and the plugs being handled. */
struct listener {
	const struct settings *s;
	const char *config;
	unsigned max_events, handled, running;
	struct udev *udev;
	struct udev_monitor *mon;
	int sfd; /* signalfd: SIGTERM, SIGINT end; SIGHUP looks again; SIGCHLD */
	int tfd; /* timerfd: every HOLD_SYNC_MS, while ports are held; -1 else */
	sigset_t mask;
	struct hold hold;
	struct pending pend[MAX_PENDING];
	size_t n_pend;
	bool stop;
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
static void give_to_host(struct listener *l, const struct usb_port *port)
{
	struct hold_changes c = { 0 };

	hold_give_to_host(&l->hold, port, &c);
	say(&c);
}

/* Handles the add of name in a child; the parent goes on listening. */
static pid_t handle(struct listener *l, const char *name)
{
	struct settings s;
	bool passed = false;
	pid_t pid = fork();
	int r;

	if (pid != 0)
		return pid; /* the parent, or -1 */
	/* the child lets go of what the listening has; a stop of the
	 * listener (systemctl restart: a package upgrade) lets its attach
	 * finish and be recorded: it ends by its own deadline */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	sigprocmask(SIG_UNBLOCK, &l->mask, NULL);
	close(l->sfd);
	if (l->tfd >= 0)
		close(l->tfd);
	udev_monitor_unref(l->mon);
	udev_unref(l->udev);
	hold_forget(&l->hold);
	/* the settings as they are now: an edit needs no restart */
	r = settings_load(&s, l->config);
	log_setup(s.log_level, stdout, s.log_syslog);
	s.run_deadline_ms = util_now_ms() + s.run_timeout_ms;
	s.path = l->config;
	if (r < 0) {
		log_error("%s has errors (see above); %s not handled", l->config, name);
		_exit(2);
	}
	r = usbevent_plugged(&s, name, &passed);
	_exit(r < 0 ? 1 : passed ? 0 : EXIT_NOT_PASSED);
}

/* Children that ended; a device on a held port that its child did not
 * pass to a guest goes to the host's drivers. */
static void reap(struct listener *l)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (l->running)
			l->running--;
		for (size_t i = 0; i < l->n_pend; i++) {
			if (l->pend[i].pid != pid)
				continue;
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
				give_to_host(l, &l->pend[i].port);
			else
				hold_passed(&l->hold, &l->pend[i].port);
			l->pend[i] = l->pend[--l->n_pend];
			break;
		}
	}
}

/* The held ports as the settings, the rules and the running guests say
 * now. */
static void resync(struct listener *l)
{
	struct usb_port busy[MAX_PENDING];
	struct hold_changes c = { 0 };
	struct settings now;

	if (!l->s->listen_hold_ports)
		return;
	if (settings_load(&now, l->config) < 0) {
		log_warning("%s has errors (see above); the held ports are left as they are", l->config);
		return;
	}
	for (size_t i = 0; i < l->n_pend; i++)
		busy[i] = l->pend[i].port;
	if (now.listen_hold_ports)
		hold_sync(&l->hold, &now, busy, l->n_pend, &c);
	else
		hold_release_all(&l->hold, &c);
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


/* A plug: handled in a child. A hub works for the host (its ports are
 * held next); a device on a held port that no child will answer for goes
 * to the host's drivers at once. */
static void plugged(struct listener *l, const char *name, const struct usb_port *port)
{
	char port_name[PORT_STRLEN];
	bool held = hold_is_held(&l->hold, port);
	pid_t pid;

	if (l->s->listen_hold_ports && usbfs_is_hub(name)) {
		if (held)
			give_to_host(l, port);
		resync(l);
		held = false;
	}
	/* the child gets the port's name, not the device */
	port_format(port, port_name, sizeof(port_name));
	pid = handle(l, port_name);
	if (pid < 0) {
		log_error("%s: cannot start its handling: %s", port_name, strerror(errno));
		if (held)
			give_to_host(l, port);
	} else {
		l->running++;
		if (held && l->n_pend < MAX_PENDING)
			l->pend[l->n_pend++] = (struct pending){ .pid = pid, .port = *port };
		else if (held)
			give_to_host(l, port);
	}
	l->handled++;
}

/* udev's announcements were lost (the socket's buffer overflowed in a
 * burst: a hub with many devices, a KVM switch). An add lost on a held
 * port leaves its device unconfigured, without a driver, in no guest: each
 * held port with an unconfigured device and no plug in flight is handled
 * as plugged now. */
static void overflowed(struct listener *l)
{
	struct usb_port found[MAX_PENDING], busy[MAX_PENDING];
	size_t n;

	log_warning("udev's announcements were lost (receive buffer full); looking again at every held port");
	for (size_t i = 0; i < l->n_pend; i++)
		busy[i] = l->pend[i].port;
	n = hold_unhandled(&l->hold, busy, l->n_pend, found, MAX_PENDING);
	for (size_t i = 0; i < n; i++) {
		char name[PORT_STRLEN];

		port_format(&found[i], name, sizeof(name));
		log_info("%s: plugged in while announcements were lost; handled now", name);
		plugged(l, name, &found[i]);
	}
	resync(l);
}

/* udev's monitor: an add is handled, a remove looks again (a hub gone:
 * its file goes). */
static void on_udev(struct listener *l)
{
	struct udev_device *d = udev_monitor_receive_device(l->mon);
	const char *action;

	if (!d && errno == ENOBUFS) {
		overflowed(l);
		return;
	}
	action = d ? udev_device_get_action(d) : NULL;
	const char *name = d ? udev_device_get_sysname(d) : NULL;
	struct usb_port port;

	if (action && strcmp(action, "remove") == 0)
		resync(l);
	if (action && name && strcmp(action, "add") == 0 && port_parse(name, &port) == 0 &&
	    !(l->max_events && l->handled == l->max_events))
		plugged(l, name, &port);
	udev_device_unref(d);
}

/* The signals: SIGHUP looks again (the hookscript: a guest started or
 * stopped; sync, release), SIGCHLD reaps, SIGTERM and SIGINT end. */
static void on_signal(struct listener *l)
{
	struct signalfd_siginfo si;

	if (read(l->sfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			resync(l);
		} else if (si.ssi_signo != SIGCHLD) {
			l->stop = true;
			return;
		}
	}
	reap(l);
}

/* The timer: the held ports every HOLD_SYNC_MS. */
static void on_timer(struct listener *l)
{
	uint64_t ticks;

	if (read(l->tfd, &ticks, sizeof(ticks)) == sizeof(ticks))
		resync(l);
}

/* Until a signal ends it, or max_events adds were handled and their
 * children ended. 0, or -errno of poll. */
static int loop(struct listener *l)
{
	while (!l->max_events || l->handled < l->max_events || l->running) {
		struct pollfd p[3] = { { .fd = l->sfd, .events = POLLIN },
				       { .fd = l->tfd, .events = POLLIN },
				       { .fd = udev_monitor_get_fd(l->mon), .events = POLLIN } };

		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return log_err(-errno, "poll: %s", strerror(errno));
		}
		if (p[0].revents & POLLIN)
			on_signal(l);
		if (l->stop)
			break;
		if (p[1].revents & POLLIN)
			on_timer(l);
		if (p[2].revents & POLLIN)
			on_udev(l);
	}
	return 0;
}

/* The sources: signals through a signalfd, udev's monitor for whole USB
 * devices, a timer while ports are held (armed later: arm_timer). */
static int setup(struct listener *l)
{
	sigemptyset(&l->mask);
	sigaddset(&l->mask, SIGTERM);
	sigaddset(&l->mask, SIGINT);
	sigaddset(&l->mask, SIGCHLD);
	sigaddset(&l->mask, SIGHUP);
	l->udev = udev_new();
	if (!l->udev || sigprocmask(SIG_BLOCK, &l->mask, NULL) < 0 ||
	    (l->sfd = signalfd(-1, &l->mask, SFD_CLOEXEC)) < 0 ||
	    (l->s->listen_hold_ports &&
	     (l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK)) < 0))
		return log_err(-ENOMEM, "cannot set up listening: %s", strerror(errno));
	l->mon = udev_monitor_new_from_netlink(l->udev, "udev");
	if (!l->mon ||
	    udev_monitor_filter_add_match_subsystem_devtype(l->mon, "usb", "usb_device") < 0 ||
	    udev_monitor_enable_receiving(l->mon) < 0)
		return log_err(-EIO, "cannot listen to udev's announcements (is systemd-udevd running?)");
	/* the loop does blocking work (sysfs, /proc, QMP to the held ports):
	 * room for a burst, as udevd itself and libvirt take */
	if (udev_monitor_set_receive_buffer_size(l->mon, LISTEN_RCVBUF) < 0)
		log_warning("cannot enlarge the receive buffer for udev's announcements: %s; a burst of plugs may be lost (and is then looked for)",
			    strerror(errno));
	return 0;
}

/* The timer goes off every HOLD_SYNC_MS from now. */
static void arm_timer(struct listener *l)
{
	struct itimerspec t = {
		.it_interval = { .tv_sec = HOLD_SYNC_MS / 1000, .tv_nsec = HOLD_SYNC_MS % 1000 * 1000000L },
		.it_value = { .tv_sec = HOLD_SYNC_MS / 1000, .tv_nsec = HOLD_SYNC_MS % 1000 * 1000000L },
	};

	if (l->tfd >= 0 && timerfd_settime(l->tfd, 0, &t, NULL) < 0)
		log_warning("cannot set up looking at the held ports every %d s: %s",
			    HOLD_SYNC_MS / 1000, strerror(errno));
}

/* The end (SIGTERM: systemctl stop or restart, a package upgrade): the
 * rule's unit takes over plugs at once, what udev announced while the
 * marker stood is still handled here, what is being handled is finished
 * and recorded, not cut off, and then what nobody took gets the host's
 * drivers. */
static void wind_down(struct listener *l)
{
	struct hold_changes c = { 0 };
	struct udev_device *d;

	marker(l->s, false);
	l->max_events = 0;
	while ((d = udev_monitor_receive_device(l->mon))) {
		const char *action = udev_device_get_action(d);
		const char *name = udev_device_get_sysname(d);
		struct usb_port port;

		if (action && name && strcmp(action, "add") == 0 && port_parse(name, &port) == 0)
			plugged(l, name, &port);
		udev_device_unref(d);
	}
	udev_monitor_unref(l->mon);
	l->mon = NULL;
	while (l->running && waitpid(-1, NULL, 0) > 0)
		l->running--;
	hold_release_all(&l->hold, &c);
	say(&c);
}

int listen_run(const struct settings *s, const char *config, unsigned max_events)
{
	struct listener l = { .s = s, .config = config, .max_events = max_events, .sfd = -1, .tfd = -1 };
	int r = setup(&l);

	if (r < 0)
		goto out;
	r = marker(s, true);
	if (r < 0)
		goto out;
	log_info("listening for USB devices plugged in");
	resync(&l);
	arm_timer(&l);
	r = loop(&l);
	wind_down(&l);
out:
	if (l.sfd >= 0)
		close(l.sfd);
	if (l.tfd >= 0)
		close(l.tfd);
	udev_monitor_unref(l.mon);
	udev_unref(l.udev);
	return r;
}
