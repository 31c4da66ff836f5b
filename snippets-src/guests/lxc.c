#include "guests/lxc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/report.h"
#include "base/state.h"
#include "base/util.h"
#include "host/devnode.h"
#include "host/ifnode.h"
#include "host/usbtree.h"

extern char **environ;

#define RECORD_SUFFIX ".ctusb"
#define RECORD_MAX (64 * 1024)

/* A device the tool passed, as the record keeps it. */
struct ct_dev {
	struct usb_port port;
	unsigned devnum, vid, pid, major, minor;
};

/* A node of a passed device's interface (ifnode.h) the tool made. */
struct ct_node {
	struct usb_port port;
	unsigned major, minor;
	char name[IFNODE_NAME_MAX]; /* below /dev */
	char link[IFNODE_LINK_MAX]; /* below /dev, or "" */
};

#define CT_NODES_MAX 64

struct ct {
	const struct settings *s;
	const struct target *t;
	struct report *rep; /* what happened, for the caller to say */
	struct devnode_proc init;
	bool unprivileged; /* in a user namespace of its own */
	char stamp[64];
	int state_fd;
	size_t n;
	struct ct_dev devs[XHCI_MAX_DEVS];
	size_t n_nodes;
	struct ct_node nodes[CT_NODES_MAX];
};

/* Connects to the monitor of the container: 1 with the socket in *ret_fd
 * (with stdin closed, as Proxmox runs a hookscript, that may be fd 0), 0
 * when nothing listens on its command socket (it does not run), or -errno. */
static int connect_monitor(const struct settings *s, const struct target *t, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n, fd;

	/* abstract: a NUL, then the name, not terminated */
	n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "%s/%s/command", s->lxcpath, t->name);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path) - 1)
		return -ENAMETOOLONG; /* LXC hashes such names: not followed */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa,
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) < 0) {
		int r = errno == ECONNREFUSED || errno == ENOENT ? 0 : -errno;

		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 1;
}

/* Whether pid is this container's monitor: "lxc-start ... -n CTID ..."
 * (Proxmox's lxc-start -F), or "[lxc monitor] LXCPATH CTID" as LXC renames
 * a daemonized one. */
static bool is_monitor(const struct settings *s, const struct target *t, pid_t pid)
{
	char path[64], renamed[SETTINGS_PATH_MAX + 80], text[4096], *end, *arg;
	const char *base;
	size_t len;
	bool r = false;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	if (devnode_read_proc(path, text, sizeof(text), &len) < 0 || len == 0)
		return false;
	snprintf(renamed, sizeof(renamed), "[lxc monitor] %s %s", s->lxcpath, t->name);
	end = text + len;
	base = strrchr(text, '/') ? strrchr(text, '/') + 1 : text;
	if (strcmp(text, renamed) == 0)
		r = true;
	else if (strcmp(base, "lxc-start") == 0)
		for (arg = text; arg < end && !r; arg += strlen(arg) + 1)
			r = (strcmp(arg, "-n") == 0 && arg + strlen(arg) + 1 < end &&
			     strcmp(arg + strlen(arg) + 1, t->name) == 0) ||
			    (util_startswith(arg, "--name=") && strcmp(arg + 7, t->name) == 0);
	return r;
}

/* The monitor by its name in /proc: LXC daemonized it after it made its
 * socket, so the socket's peer is a pid gone. 0 or -ESRCH. */
static int scan_monitor(const struct settings *s, const struct target *t, pid_t *ret)
{
	struct dirent *de;
	DIR *d = opendir("/proc");
	int r = -ESRCH;

	if (!d)
		return -ESRCH;
	while (r < 0 && (de = readdir(d))) {
		unsigned long pid;

		if (util_parse_uint(de->d_name, INT32_MAX, &pid) == 0 && is_monitor(s, t, (pid_t)pid)) {
			*ret = (pid_t)pid;
			r = 0;
		}
	}
	closedir(d);
	return r;
}

/* The container's init: the child of its monitor mon that lives in a pid
 * namespace of its own. 0 or -ESRCH. */
static int find_init(pid_t mon, struct devnode_proc *ret)
{
	char path[64], text[4096], *p, *end;
	struct stat mine, its;
	size_t len;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)mon, (int)mon);
	if (devnode_read_proc(path, text, sizeof(text), &len) < 0 || stat("/proc/self/ns/pid", &mine) < 0)
		return -ESRCH;
	r = -ESRCH;
	for (p = text; *p; p = end) {
		long pid = strtol(p, &end, 10);
		uint64_t start;
		pid_t ppid;

		if (end == p)
			break;
		snprintf(path, sizeof(path), "/proc/%ld/ns/pid", pid);
		if (pid > 0 && devnode_proc_starttime((pid_t)pid, &start, &ppid) == 0 && ppid == mon &&
		    stat(path, &its) == 0 && its.st_ino != mine.st_ino) {
			*ret = (struct devnode_proc){ .pid = (pid_t)pid, .starttime = start };
			r = 0;
			break;
		}
	}
	return r;
}

/* Asks who listens on the command socket fd: its monitor, whose child is
 * the container's init. 0 or -ESRCH (starting, stopping). */
static int ask_init(const struct settings *s, const struct target *t, int fd,
		    struct devnode_proc *ret)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	pid_t mon;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0 &&
	    is_monitor(s, t, cred.pid))
		mon = cred.pid;
	else if (scan_monitor(s, t, &mon) < 0)
		return -ESRCH;
	return find_init(mon, ret);
}

/* 1 with the container's init, 0 when it does not run, or -errno. */
static int probe(const struct settings *s, const struct target *t, struct devnode_proc *ret)
{
	int fd, r = connect_monitor(s, t, &fd);

	if (r <= 0)
		return r;
	r = ask_init(s, t, fd, ret);
	close(fd);
	return r == -ESRCH ? 0 : r < 0 ? r : 1;
}

static int lxc_running(struct target *t, const struct settings *s, struct report *rep)
{
	int fd, r = connect_monitor(s, t, &fd);

	(void)rep;
	if (r > 0)
		close(fd);
	return r;
}

static void stamp_of(const struct devnode_proc *p, char *buf, size_t n)
{
	snprintf(buf, n, "lxc:%d:%" PRIu64, (int)p->pid, p->starttime);
}

static void lxc_stamp(struct target *t, const struct settings *s, char *buf, size_t n)
{
	struct devnode_proc p;

	if (n)
		buf[0] = '\0';
	if (probe(s, t, &p) > 0)
		stamp_of(&p, buf, n);
}

/* A "node PORT MAJOR MINOR NAME [LINK]" line of the record. */
static void node_load(struct ct *c, const char *line)
{
	char port[PORT_STRLEN], name[IFNODE_NAME_MAX], link[IFNODE_LINK_MAX];
	struct ct_node *n = &c->nodes[c->n_nodes];
	int k;

	link[0] = '\0';
	k = sscanf(line, "node %31s %u %u %63s %191s", port, &n->major, &n->minor, name, link);
	if (c->n_nodes < ARRAY_SIZE(c->nodes) && k >= 4 && port_parse(port, &n->port) == 0 &&
	    ifnode_name_ok(name) && (!link[0] || ifnode_name_ok(link))) {
		snprintf(n->name, sizeof(n->name), "%s", name);
		snprintf(n->link, sizeof(n->link), "%s", link);
		c->n_nodes++;
	}
}

/* The record: "<stamp>\n", then "PORT DEVNUM VID PID MAJOR MINOR" a line
 * for each device, "node ..." for each node of their interfaces. One for
 * another run of the container counts as empty. */
static void record_load(struct ct *c)
{
	char name[sizeof(c->t->key) + 8], *text = NULL, *line, *save = NULL;
	size_t len;

	c->n = c->n_nodes = 0;
	snprintf(name, sizeof(name), "%s" RECORD_SUFFIX, c->t->key);
	if (util_read_file_at(c->state_fd, name, true, RECORD_MAX, &text, &len) < 0)
		return;
	line = strtok_r(text, "\n", &save);
	if (line && strcmp(line, c->stamp) == 0)
		while ((line = strtok_r(NULL, "\n", &save)) && c->n < ARRAY_SIZE(c->devs)) {
			struct ct_dev *d = &c->devs[c->n];
			char port[PORT_STRLEN];

			if (util_startswith(line, "node "))
				node_load(c, line);
			else if (sscanf(line, "%31s %u %x %x %u %u", port, &d->devnum, &d->vid, &d->pid,
				   &d->major, &d->minor) == 6 &&
			    port_parse(port, &d->port) == 0)
				c->n++;
		}
	free(text);
}

static int record_save(struct ct *c)
{
	char name[sizeof(c->t->key) + 8], port[PORT_STRLEN];
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	snprintf(name, sizeof(name), "%s" RECORD_SUFFIX, c->t->key);
	if (c->n == 0 && c->n_nodes == 0)
		return unlinkat(c->state_fd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	f = open_memstream(&text, &len);
	if (!f)
		return -ENOMEM;
	fprintf(f, "%s\n", c->stamp);
	for (size_t i = 0; i < c->n; i++) {
		port_format(&c->devs[i].port, port, sizeof(port));
		fprintf(f, "%s %u %04x %04x %u %u\n", port, c->devs[i].devnum, c->devs[i].vid,
			c->devs[i].pid, c->devs[i].major, c->devs[i].minor);
	}
	for (size_t i = 0; i < c->n_nodes; i++) {
		port_format(&c->nodes[i].port, port, sizeof(port));
		fprintf(f, "node %s %u %u %s%s%s\n", port, c->nodes[i].major, c->nodes[i].minor,
			c->nodes[i].name, c->nodes[i].link[0] ? " " : "", c->nodes[i].link);
	}
	if (fclose(f) != 0) {
		free(text);
		return -ENOMEM;
	}
	r = util_write_file_at(c->state_fd, name, text, len);
	free(text);
	return r;
}

static struct ct_dev *record_find(struct ct *c, const struct usb_port *port)
{
	for (size_t i = 0; i < c->n; i++)
		if (port_equal(&c->devs[i].port, port))
			return &c->devs[i];
	return NULL;
}

static void record_drop(struct ct *c, struct ct_dev *d)
{
	*d = c->devs[--c->n];
}

static int lxc_open(const struct settings *s, struct target *t, struct report *rep, void **ret)
{
	char why[128];
	struct ct *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->s = s;
	c->t = t;
	c->rep = rep;
	c->state_fd = -1;
	r = probe(s, t, &c->init);
	if (r <= 0) {
		free(c);
		if (r == 0) {
			report_add(rep, LOG_LVL_WARNING,
				   "%s is not running (nothing listens on @%s/%s/command); nothing to do",
				   t->label, s->lxcpath, t->name);
			return -ENOENT;
		}
		return report_err(rep, r, "%s: cannot ask LXC whether it runs: %s", t->label,
				  strerror(-r));
	}
	stamp_of(&c->init, c->stamp, sizeof(c->stamp));
	c->unprivileged = devnode_in_own_userns(&c->init) > 0;
	/* the core checked it: a second fd for the kind's record */
	r = state_open(s->state_dir, &c->state_fd, why, sizeof(why));
	if (r < 0) {
		free(c);
		return report_err(rep, r, "%s: cannot use the state directory %s: %s", t->label,
				  s->state_dir, strerror(-r));
	}
	record_load(c);
	*ret = c;
	return 0;
}

static bool lxc_usable(const void *c)
{
	(void)c;
	return true;
}

static int lxc_explain(void *conn, int r, const char *what, const char *desc)
{
	struct ct *c = conn;

	return report_err(c->rep, r, "%s: %s %s: %s", c->t->label, what, desc, strerror(-r));
}

static void *lxc_close(void *conn)
{
	struct ct *c = conn;

	if (c) {
		if (c->state_fd >= 0)
			close(c->state_fd);
		free(c);
	}
	return NULL;
}

static int lxc_held(void *conn, struct xhci_set *ret)
{
	struct ct *c = conn;

	memset(ret, 0, sizeof(*ret));
	for (size_t i = 0; i < c->n; i++)
		ret->devs[ret->n_devs++] = (struct xhci_dev){
			.port = c->devs[i].port,
			.ctrl = XHCI_NO_CTRL,
			.vid = c->devs[i].vid,
			.pid = c->devs[i].pid,
			.open = 1, /* the node is there */
		};
	return 0;
}

/* <cgroup_command> -P LXCPATH -n CTID devices.allow|deny "c M:m rwm":
 * 0, or -EIO (it said why on stderr). */
static int cgroup_devices(struct ct *c, bool allow, unsigned major, unsigned minor)
{
	/* posix_spawn() wants writable strings */
	char cmd[SETTINGS_PATH_MAX], lxcpath[SETTINGS_PATH_MAX], name[SETTINGS_NAME_MAX + 1],
		rule[64], opt_p[] = "-P", opt_n[] = "-n", allow_key[] = "devices.allow",
		deny_key[] = "devices.deny";
	char *const argv[] = { cmd, opt_p, lxcpath, opt_n, name, allow ? allow_key : deny_key, rule, NULL };
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int r, status;

	snprintf(cmd, sizeof(cmd), "%s", c->s->lxc_cgroup_command);
	snprintf(lxcpath, sizeof(lxcpath), "%s", c->s->lxcpath);
	snprintf(name, sizeof(name), "%s", c->t->name);
	snprintf(rule, sizeof(rule), "c %u:%u rwm", major, minor);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	r = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0)
		return -r;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* n owned by the container's root, as the host sees it. */
static int owned_by_root(struct ct *c, struct devnode *n)
{
	unsigned long uid, gid;
	int r = devnode_root_id(&c->init, false, &uid);

	if (r == 0)
		r = devnode_root_id(&c->init, true, &gid);
	if (r < 0)
		return report_err(c->rep, r, "%s: cannot read who its root is (/proc/%d/uid_map): %s", c->t->label,
			       (int)c->init.pid, strerror(-r));
	n->uid = (uid_t)uid;
	n->gid = (gid_t)gid;
	return 0;
}

/* The node n for dev: the host's, owned by the container's root. */
static int host_node(struct ct *c, const struct usb_device_info *dev, const char *desc,
		     struct devnode *n)
{
	char path[SETTINGS_PATH_MAX + 16];
	int r;

	snprintf(path, sizeof(path), "%s/%03u/%03u", c->s->usb_dev_dir, dev->port.bus, dev->devnum);
	r = devnode_stat(path, n);
	if (r < 0)
		return report_err(c->rep, r, "%s: %s has no device node %s (%s); not passed", c->t->label, desc,
			       path, strerror(-r));
	return owned_by_root(c, n);
}

/* Makes rel in the container as n says: mounted into an unprivileged
 * one (its /dev allows no device nodes), made in a privileged one. */
static int make_node(struct ct *c, const char *rel, const struct devnode *n)
{
	return c->unprivileged ? devnode_inject(&c->init, c->s->state_dir, rel, n)
			       : devnode_make(&c->init, rel, n);
}

/* Makes in's node (and its link) in the container, allowed in its device
 * cgroup, and records it. 0 or -errno (noted). */
static int add_node(struct ct *c, const struct ifnode *in, const char *desc)
{
	char path[SETTINGS_PATH_MAX + IFNODE_NAME_MAX + 2], rel[IFNODE_LINK_MAX + 8];
	struct devnode n;
	int r;

	snprintf(path, sizeof(path), "%s/%s", c->s->dev_dir, in->name);
	r = devnode_stat(path, &n);
	if (r == 0 && (n.major != in->major || n.minor != in->minor))
		r = -ESTALE; /* another device's node by now */
	if (r == -ENOENT) {
		/* udev has not made it yet: its add event passes it */
		report_add(c->rep, LOG_LVL_DEBUG, "%s: %s of %s is not there yet", c->t->label, path, desc);
		return r;
	}
	if (r < 0)
		return report_err(c->rep, r, "%s: %s of %s is not there as c %u:%u (%s); not passed", c->t->label,
			       path, desc, in->major, in->minor, strerror(-r));
	if (c->n_nodes == ARRAY_SIZE(c->nodes))
		return report_err(c->rep, -ENOSPC, "%s: /dev/%s of %s not passed: %d nodes passed already",
			       c->t->label, in->name, desc, CT_NODES_MAX);
	r = owned_by_root(c, &n);
	if (r < 0)
		return r;
	if (cgroup_devices(c, true, n.major, n.minor) < 0)
		return report_err(c->rep, -EIO, "%s: %s would not allow 'c %u:%u' (see above); /dev/%s of %s not passed",
			       c->t->label, c->s->lxc_cgroup_command, n.major, n.minor, in->name, desc);
	snprintf(rel, sizeof(rel), "dev/%s", in->name);
	r = make_node(c, rel, &n);
	if (r < 0) {
		(void)cgroup_devices(c, false, n.major, n.minor);
		return report_err(c->rep, r, "%s: cannot make /%s for %s: %s", c->t->label, rel, desc,
			       r == -ESRCH ? "it stopped" : strerror(-r));
	}
	c->nodes[c->n_nodes] = (struct ct_node){ .port = in->port, .major = n.major, .minor = n.minor };
	snprintf(c->nodes[c->n_nodes].name, sizeof(c->nodes[0].name), "%s", in->name);
	report_add(c->rep, LOG_LVL_INFO, "%s: passed /dev/%s of %s (c %u:%u, mode %04o, owner %u:%u)", c->t->label,
		   in->name, desc, n.major, n.minor, (unsigned)n.mode, (unsigned)n.uid, (unsigned)n.gid);
	if (in->link[0]) {
		snprintf(rel, sizeof(rel), "dev/%s", in->link);
		snprintf(path, sizeof(path), "/dev/%s", in->name);
		r = devnode_link(&c->init, rel, path, n.uid, n.gid);
		if (r < 0)
			report_add(c->rep, LOG_LVL_WARNING, "%s: cannot make the link /%s to %s: %s", c->t->label, rel,
				   path, strerror(-r));
		else
			snprintf(c->nodes[c->n_nodes].link, sizeof(c->nodes[0].link), "%s", in->link);
	}
	c->n_nodes++;
	return 0;
}

/* Takes n (its link, its node) out of the container and its permission
 * back. 0 or -errno (noted). */
static int remove_node(struct ct *c, const struct ct_node *n)
{
	char rel[IFNODE_LINK_MAX + 8], target[IFNODE_NAME_MAX + 8];
	int r = 0;

	snprintf(target, sizeof(target), "/dev/%s", n->name);
	if (n->link[0]) {
		snprintf(rel, sizeof(rel), "dev/%s", n->link);
		r = devnode_unlink(&c->init, rel, target);
	}
	snprintf(rel, sizeof(rel), "dev/%s", n->name);
	if (r >= 0)
		r = c->unprivileged ? devnode_eject(&c->init, rel, n->major, n->minor)
				    : devnode_remove(&c->init, rel, n->major, n->minor);
	if (r < 0)
		return report_err(c->rep, r, "%s: cannot remove %s: %s", c->t->label, target, strerror(-r));
	if (cgroup_devices(c, false, n->major, n->minor) < 0)
		return report_err(c->rep, -EIO, "%s: %s would not withdraw 'c %u:%u' of %s (see above); the node is gone",
			       c->t->label, c->s->lxc_cgroup_command, n->major, n->minor, target);
	report_add(c->rep, LOG_LVL_INFO, "%s: took %s back (c %u:%u)", c->t->label, target, n->major, n->minor);
	return 0;
}

/* Takes every node of port's interfaces; one that would not go stays
 * recorded. 0 or the first error. */
static int remove_nodes(struct ct *c, const struct usb_port *port)
{
	int r = 0;

	for (size_t i = c->n_nodes; i-- > 0;)
		if (port_equal(&c->nodes[i].port, port)) {
			int k = remove_node(c, &c->nodes[i]);

			if (k == 0)
				c->nodes[i] = c->nodes[--c->n_nodes];
			else if (r == 0)
				r = k;
		}
	return r;
}

static bool same_node(const struct ct_node *o, const struct ifnode *in)
{
	return port_equal(&o->port, &in->port) && o->major == in->major && o->minor == in->minor &&
	       strcmp(o->name, in->name) == 0 && strcmp(o->link, in->link) == 0;
}

/* Brings the nodes of dev's interfaces in the container in step with the
 * host's: the ones there made, the ones gone taken. How many changed. */
static int sync_nodes(struct ct *c, const struct usb_device_info *dev, const char *desc)
{
	char name[PORT_STRLEN], devpath[UEVENT_DEVPATH_MAX];
	struct ifnode now[IFNODE_MAX];
	size_t n_now = 0;
	int changed = 0;

	port_format(&dev->port, name, sizeof(name));
	if (usbtree_devpath(name, devpath, sizeof(devpath)) < 0 ||
	    ifnode_list(devpath, now, ARRAY_SIZE(now), &n_now) < 0)
		return 0; /* gone: its remove takes them */
	for (size_t i = c->n_nodes; i-- > 0;) {
		bool there = false;

		for (size_t k = 0; k < n_now && !there; k++)
			there = same_node(&c->nodes[i], &now[k]);
		if (port_equal(&c->nodes[i].port, &dev->port) && !there && remove_node(c, &c->nodes[i]) == 0) {
			c->nodes[i] = c->nodes[--c->n_nodes];
			changed++;
		}
	}
	for (size_t k = 0; k < n_now; k++) {
		bool have = false;

		for (size_t i = 0; i < c->n_nodes && !have; i++)
			have = same_node(&c->nodes[i], &now[k]);
		if (!have && add_node(c, &now[k], desc) == 0)
			changed++;
	}
	if (changed && record_save(c) < 0)
		report_add(c->rep, LOG_LVL_WARNING, "%s: cannot note the nodes of %s in %s; they stay when it is pulled out",
			   c->t->label, desc, c->s->state_dir);
	return changed;
}

/* "dev/bus/usb/003/005": where the node of bus/devnum goes. */
static void node_rel(unsigned bus, unsigned devnum, char *buf, size_t n)
{
	snprintf(buf, n, "dev/bus/usb/%03u/%03u", bus, devnum);
}

/* Takes d's node out of the container and its permission back. */
static int remove_dev(struct ct *c, const struct ct_dev *d, const char *desc)
{
	char rel[64];
	int r = remove_nodes(c, &d->port);

	if (r < 0)
		return r;
	node_rel(d->port.bus, d->devnum, rel, sizeof(rel));
	r = c->unprivileged ? devnode_eject(&c->init, rel, d->major, d->minor)
			    : devnode_remove(&c->init, rel, d->major, d->minor);
	if (r < 0)
		return report_err(c->rep, r, "%s: cannot remove /%s of %s: %s", c->t->label, rel, desc,
			       strerror(-r));
	if (cgroup_devices(c, false, d->major, d->minor) < 0)
		return report_err(c->rep, -EIO, "%s: %s would not withdraw 'c %u:%u' of %s (see above); its node is gone",
			       c->t->label, c->s->lxc_cgroup_command, d->major, d->minor, desc);
	return 0;
}

static int lxc_can_attach(void *conn, const struct usb_device_info *dev, const char *desc)
{
	struct ct *c = conn;

	if (!dev->devnum)
		return report_err(c->rep, -ENODEV, "%s: %s has no device number on its bus; not passed",
			       c->t->label, desc);
	return 0;
}

static int lxc_attach(void *conn, struct guest_held *h, const struct usb_device_info *dev,
		      const char *desc)
{
	struct ct *c = conn;
	struct ct_dev *have = record_find(c, &dev->port), d;
	struct devnode n;
	char rel[64];
	int r;

	(void)h; /* the record is the kind's */
	node_rel(dev->port.bus, dev->devnum, rel, sizeof(rel));
	if (have && have->devnum == dev->devnum && have->vid == dev->vid && have->pid == dev->pid) {
		/* its interfaces' nodes may have come or gone since */
		if (sync_nodes(c, dev, desc) == 0)
			report_add(c->rep, LOG_LVL_INFO, "%s: %s already passed as /%s", c->t->label, desc, rel);
		return 0;
	}
	/* another device (or an earlier plug of it) was there: out with it */
	if (have && remove_dev(c, have, desc) == 0)
		record_drop(c, have);
	r = host_node(c, dev, desc, &n);
	if (r < 0)
		return r;
	d = (struct ct_dev){ dev->port, dev->devnum, dev->vid, dev->pid, n.major, n.minor };
	if (cgroup_devices(c, true, n.major, n.minor) < 0)
		return report_err(c->rep, -EIO, "%s: %s would not allow 'c %u:%u' (see above); %s not passed",
			       c->t->label, c->s->lxc_cgroup_command, n.major, n.minor, desc);
	/* an unprivileged container's /dev allows no device nodes: one made
	 * on the host is mounted there */
	r = make_node(c, rel, &n);
	if (r < 0) {
		(void)cgroup_devices(c, false, n.major, n.minor);
		return report_err(c->rep, r, "%s: cannot make /%s for %s: %s", c->t->label, rel, desc,
			       r == -ESRCH ? "it stopped" : strerror(-r));
	}
	if (c->n < ARRAY_SIZE(c->devs))
		c->devs[c->n++] = d;
	r = record_save(c);
	if (r < 0)
		report_add(c->rep, LOG_LVL_WARNING, "%s: cannot note %s in %s: %s; its node stays when it is pulled out",
			    c->t->label, desc, c->s->state_dir, strerror(-r));
	report_add(c->rep, LOG_LVL_INFO, "%s: passed %s as /%s (c %u:%u, mode %04o, owner %u:%u)", c->t->label, desc, rel,
		 n.major, n.minor, (unsigned)n.mode, (unsigned)n.uid, (unsigned)n.gid);
	(void)sync_nodes(c, dev, desc);
	return 0;
}

static int lxc_detach(void *conn, const struct usb_port *port, const char *desc)
{
	struct ct *c = conn;
	struct ct_dev *d = record_find(c, port);
	int r;

	if (!d)
		return 1;
	r = remove_dev(c, d, desc);
	if (r < 0)
		return r;
	record_drop(c, d);
	r = record_save(c);
	if (r < 0)
		report_add(c->rep, LOG_LVL_WARNING, "%s: cannot note in %s that %s is gone: %s", c->t->label, c->s->state_dir,
			    desc, strerror(-r));
	return 0;
}

/* USB disks go to VMs only: a container has none of the tool's. */
static int lxc_disks(void *conn, struct vdisk_set *ret)
{
	(void)conn;
	ret->n = 0;
	return 0;
}

static int lxc_disk_attach(void *conn, const struct usb_disk *d, const char *id, const char *path,
			   enum disk_as as, const char *desc, char *where, size_t n)
{
	struct ct *c = conn;

	(void)d, (void)id, (void)path, (void)as, (void)where, (void)n;
	return report_err(c->rep, -EOPNOTSUPP, "%s: %s not attached: disk rules are for VMs; pass the USB device instead",
		       c->t->label, desc);
}

static int lxc_disk_detach(void *conn, const char *id, const char *desc)
{
	(void)conn, (void)id, (void)desc;
	return 1;
}

bool lxc_holds(const struct settings *s, const struct usb_port *port)
{
	char key[PORT_STRLEN + 1], *text = NULL, *line, *save = NULL, why[128];
	struct dirent *de;
	bool r = false;
	DIR *d;
	int fd;

	if (state_open(s->state_dir, &fd, why, sizeof(why)) < 0)
		return false;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return false;
	}
	port_format(port, key, sizeof(key) - 1);
	strcat(key, " ");
	while (!r && (de = readdir(d))) {
		size_t len = strlen(de->d_name);

		if (len <= strlen(RECORD_SUFFIX) || strcmp(de->d_name + len - strlen(RECORD_SUFFIX), RECORD_SUFFIX) ||
		    util_read_file_at(dirfd(d), de->d_name, true, RECORD_MAX, &text, &len) < 0)
			continue;
		for (line = strtok_r(text, "\n", &save); line && !r; line = strtok_r(NULL, "\n", &save))
			r = util_startswith(line, key);
		free(text);
		text = NULL;
	}
	closedir(d);
	return r;
}

const struct guest_ops lxc_guest_ops = {
	.keeps_hint = false,
	.running = lxc_running,
	.stamp = lxc_stamp,
	.follows_nodes_of = lxc_holds,
	.open = lxc_open,
	.usable = lxc_usable,
	.explain = lxc_explain,
	.close = lxc_close,
	.held = lxc_held,
	.can_attach = lxc_can_attach,
	.attach = lxc_attach,
	.detach = lxc_detach,
	.disks = lxc_disks,
	.disk_attach = lxc_disk_attach,
	.disk_detach = lxc_disk_detach,
};
