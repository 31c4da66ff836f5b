#include "guests/target.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/log.h"
#include "base/report.h"
#include "guests/qmp.h"
#include "policy/usbconf.h"
#include "base/util.h"
#include "host/vmproc.h"

/* What every kind is called, whether asking if it runs, and what it
 * holds, costs no more than a file read or a local socket, whether
 * someone else (Proxmox) manages the guest's controllers, and whether a
 * device it holds live is open (its manager opened it; QEMU is not asked). */
static const struct {
	const char *name;
	bool cheap;
	bool any;
	bool held_is_open;
} kinds[] = {
	[TARGET_PVE] = { "proxmox", true, false, false },
	[TARGET_QEMU] = { "qemu", true, true, false },
	[TARGET_XEN] = { "xen", true, true, false },
	[TARGET_LIBVIRT] = { "libvirt", false, true, true },
	/* not "cheap": its ports are not held, so the host's drivers bind
	 * (a container uses the host's ttyUSB, hidraw, ...) */
	[TARGET_LXC] = { "lxc", false, true, false },
};

const char *target_kind_name(enum target_kind kind)
{
	return (size_t)kind < ARRAY_SIZE(kinds) ? kinds[kind].name : "?";
}

bool target_cheap(const struct target *t)
{
	return kinds[t->kind].cheap;
}

bool target_any(const struct target *t)
{
	return kinds[t->kind].any;
}

bool target_held_is_open(const struct target *t)
{
	return kinds[t->kind].held_is_open;
}

static void init(struct target *t)
{
	memset(t, 0, sizeof(*t));
	t->sock_state = 1;
}

int target_pve(const struct settings *s, unsigned long vmid, struct target *ret, struct report *rep)
{
	init(ret);
	ret->kind = TARGET_PVE;
	ret->vmid = vmid;
	snprintf(ret->name, sizeof(ret->name), "%lu", vmid);
	snprintf(ret->label, sizeof(ret->label), "VM %lu", vmid);
	snprintf(ret->key, sizeof(ret->key), "%lu", vmid);
	if (snprintf(ret->qmp, sizeof(ret->qmp), "%s/%lu.qmp", s->qmp_socket_dir, vmid) >=
		    (int)sizeof(ret->qmp) ||
	    snprintf(ret->pidfile, sizeof(ret->pidfile), "%s/%lu.pid", s->qmp_socket_dir, vmid) >=
		    (int)sizeof(ret->pidfile) ||
	    snprintf(ret->rules, sizeof(ret->rules), "%s/%lu.usb.conf", s->vm_config_dir, vmid) >=
		    (int)sizeof(ret->rules))
		return report_err(rep, -ENAMETOOLONG,
				  "VM %lu: the paths made from [paths] are too long", vmid);
	return 0;
}

int target_lxc(const struct settings *s, unsigned long ctid, struct target *ret,
	       struct report *rep)
{
	init(ret);
	ret->kind = TARGET_LXC;
	ret->vmid = ctid;
	snprintf(ret->name, sizeof(ret->name), "%lu", ctid);
	snprintf(ret->label, sizeof(ret->label), "CT %lu", ctid);
	snprintf(ret->key, sizeof(ret->key), "%lu", ctid);
	if (snprintf(ret->rules, sizeof(ret->rules), "%s/%lu.usb.conf", s->lxc_config_dir, ctid) >=
	    (int)sizeof(ret->rules))
		return report_err(rep, -ENAMETOOLONG, "CT %lu: the paths made from [paths] are too long",
				  ctid);
	return 0;
}

int target_by_id(const struct settings *s, unsigned long id, struct target *ret,
		 struct report *rep)
{
	char conf[SETTINGS_PATH_MAX + 32];

	snprintf(conf, sizeof(conf), "%s/%lu.conf", s->lxc_config_dir, id);
	return access(conf, F_OK) == 0 ? target_lxc(s, id, ret, rep) : target_pve(s, id, ret, rep);
}

void target_from_conf(const struct guest_conf *c, struct target *ret)
{
	static const struct {
		enum target_kind kind;
		const char *label, *key;
	} declared[] = {
		[GUEST_QEMU] = { TARGET_QEMU, "QEMU guest", "qemu" },
		[GUEST_XEN] = { TARGET_XEN, "Xen guest", "xen" },
		[GUEST_LIBVIRT] = { TARGET_LIBVIRT, "libvirt domain", "libvirt" },
	};

	init(ret);
	ret->kind = declared[c->kind].kind;
	snprintf(ret->name, sizeof(ret->name), "%s", c->name);
	snprintf(ret->label, sizeof(ret->label), "%s %s", declared[c->kind].label, c->name);
	snprintf(ret->key, sizeof(ret->key), "%s-%s", declared[c->kind].key, c->name);
	snprintf(ret->uri, sizeof(ret->uri), "%s", c->uri);
	snprintf(ret->domain, sizeof(ret->domain), "%s", c->domain);
	snprintf(ret->qmp, sizeof(ret->qmp), "%s", c->qmp);
	snprintf(ret->qemu_name, sizeof(ret->qemu_name), "%s", c->qemu_name);
	snprintf(ret->pidfile, sizeof(ret->pidfile), "%s", c->pidfile);
	snprintf(ret->rules, sizeof(ret->rules), "%s", c->rules);
	ret->origin = c->origin;
}

/* Whether something listens on the unix socket at path. A connect() that
 * would have to wait (a full backlog) counts as listening. */
static bool listening(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode) || strlen(path) >= sizeof(sa.sun_path))
		return false;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return false;
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	r = r == 0 || errno == EAGAIN || errno == EINPROGRESS;
	close(fd);
	return r;
}

/* Whether a QEMU runs behind the unix socket at path, with -name name
 * when name is not "". A name is read from /proc (the QEMU whose command
 * line names the socket): no QMP handshake and query-name on a socket
 * whose one client slot is libxl's on a Xen host, every few seconds.
 * Without one, a connect() tells, the cheapest way. */
static bool qemu_behind(const char *path, const char *name)
{
	char its[SETTINGS_NAME_MAX + 1];
	struct stat st;

	if (!name[0])
		return listening(path);
	if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode) || !vmproc_by_socket(path, its, sizeof(its)))
		return false;
	return strcmp(its, name) == 0;
}

static int find_socket(struct target *t)
{
	glob_t g;
	size_t found = 0;
	int r;

	if (!strpbrk(t->qmp, "*?[")) {
		snprintf(t->sock, sizeof(t->sock), "%s", t->qmp);
		return access(t->sock, F_OK) == 0 ? 0 : -ENOENT;
	}
	r = glob(t->qmp, GLOB_NOSORT, NULL, &g);
	if (r == GLOB_NOMATCH)
		return -ENOENT;
	if (r != 0)
		return -ENOMEM;
	for (size_t i = 0; i < g.gl_pathc && found < 2; i++) {
		const char *p = g.gl_pathv[i];

		/* only sockets with a QEMU behind them; with a name, the one
		 * whose QEMU carries it */
		if (!qemu_behind(p, t->qemu_name))
			continue;
		if (found++ == 0)
			snprintf(t->sock, sizeof(t->sock), "%s", p);
	}
	globfree(&g);
	return found == 0 ? -ENOENT : found > 1 ? -ENOTUNIQ : 0;
}

int target_socket(struct target *t)
{
	if (t->sock_state == 1)
		t->sock_state = find_socket(t);
	return t->sock_state;
}

bool target_socket_live(struct target *t)
{
	return target_socket(t) == 0 && qemu_behind(t->sock, "");
}

int target_by_name(const struct settings *s, const char *name, struct target *ret, struct report *rep)
{
	const struct guest_conf *c = settings_guest(s, name);
	unsigned long vmid;
	char shown[96];

	if (usbconf_parse_vmid(name, &vmid) == 0)
		return target_by_id(s, vmid, ret, rep);
	if (c) {
		target_from_conf(c, ret);
		return 0;
	}
	return report_err(rep, -ENOENT, "'%s' is neither a Proxmox VMID nor a guest declared in %s ([qemu NAME], [xen NAME] or [libvirt NAME])",
			  log_escape(name, shown, sizeof(shown)),
			  s->path ? s->path : SETTINGS_DEFAULT_PATH);
}

void target_explain_ambiguous(const struct target *t, enum log_level level, struct report *rep)
{
	report_add(rep, level, "%s: %s finds more than one QEMU; %s", t->label, t->qmp,
		   t->qemu_name[0] ? "their -name is the same: make it tell them apart"
				   : "set qemu_name to QEMU's -name of the guest");
}
