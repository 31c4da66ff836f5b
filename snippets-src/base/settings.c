#include "base/settings.h"

#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"

enum kind { K_PATH, K_MS, K_RUN_MS, K_LEVEL, K_BOOL };

/* One table drives the defaults, the parser and the documentation. */
#define SETTINGS_TABLE(X)                                                                 \
	X("paths", "vm_config_dir", K_PATH, vm_config_dir, "/etc/pve/qemu-server")         \
	X("paths", "qmp_socket_dir", K_PATH, qmp_socket_dir, "/var/run/qemu-server")       \
	X("paths", "state_dir", K_PATH, state_dir, "/run/pve-usb-hotplug")                 \
	X("paths", "mapping_file", K_PATH, mapping_file, "/etc/pve/mapping/usb.cfg")       \
	X("paths", "disk_dir", K_PATH, disk_dir, "/dev/disk/by-id")                        \
	X("paths", "lxc_config_dir", K_PATH, lxc_config_dir, "/etc/pve/lxc")               \
	X("paths", "lxcpath", K_PATH, lxcpath, "/var/lib/lxc")                             \
	X("paths", "usb_dev_dir", K_PATH, usb_dev_dir, "/dev/bus/usb")                     \
	X("paths", "dev_dir", K_PATH, dev_dir, "/dev")                                     \
	X("lxc", "cgroup_command", K_PATH, lxc_cgroup_command, "/usr/bin/lxc-cgroup")      \
	X("qmp", "timeout_ms", K_MS, qmp_timeout_ms, "5000")                               \
	X("lock", "timeout_ms", K_MS, lock_timeout_ms, "30000")                            \
	X("run", "timeout_ms", K_RUN_MS, run_timeout_ms, "90000")                          \
	X("retry", "command", K_PATH, retry_command, "/usr/bin/systemd-run")               \
	X("retry", "delay_ms", K_MS, retry_delay_ms, "10000")                              \
	X("log", "level", K_LEVEL, log_level, "info")                                      \
	X("log", "syslog", K_BOOL, log_syslog, "yes")                                      \
	X("listen", "hold_ports", K_BOOL, listen_hold_ports, "yes")

struct field {
	const char *section, *name;
	enum kind kind;
	size_t offset;
	const char *def;
};

static const struct field fields[] = {
#define X(sec, key, kind, member, def) { sec, key, kind, offsetof(struct settings, member), def },
	SETTINGS_TABLE(X)
#undef X
};

#define MS_MIN 10
#define MS_MAX 600000

/* Returns 0 or a reason in err. */
static int set_field(struct settings *s, const struct field *f, const char *value,
		     char *err, size_t err_size)
{
	void *dst = (char *)s + f->offset;
	unsigned long v;

	switch (f->kind) {
	case K_PATH:
		if (value[0] != '/') {
			snprintf(err, err_size, "%s must be an absolute path", f->name);
			return -EINVAL;
		}
		if (util_strlcpy(dst, value, SETTINGS_PATH_MAX) < 0) {
			snprintf(err, err_size, "%s is longer than %d bytes", f->name, SETTINGS_PATH_MAX - 1);
			return -EINVAL;
		}
		return 0;
	case K_MS:
	case K_RUN_MS: {
		unsigned long max = f->kind == K_RUN_MS ? SETTINGS_RUN_MAX_MS : MS_MAX;

		if (util_parse_uint(value, max, &v) < 0 || v < MS_MIN) {
			snprintf(err, err_size, "%s must be a whole number of milliseconds from %d to %lu%s",
				 f->name, MS_MIN, max,
				 f->kind == K_RUN_MS ? " (udev ends a program after 180 s)" : "");
			return -EINVAL;
		}
		*(int *)dst = (int)v;
		return 0;
	}
	case K_LEVEL:
		if (log_level_from_string(value, dst) < 0) {
			snprintf(err, err_size, "%s must be one of error, warning, info, debug", f->name);
			return -EINVAL;
		}
		return 0;
	case K_BOOL:
		if (!strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "1"))
			*(bool *)dst = true;
		else if (!strcmp(value, "no") || !strcmp(value, "false") || !strcmp(value, "0"))
			*(bool *)dst = false;
		else {
			snprintf(err, err_size, "%s must be yes or no", f->name);
			return -EINVAL;
		}
		return 0;
	}
	return -EINVAL;
}

void settings_defaults(struct settings *s)
{
	char err[128];

	/* the paths (they come first) each get their default below: clearing
	 * them too cost every udev event 11,000 instructions */
	memset(&s->qmp_timeout_ms, 0,
	       offsetof(struct settings, guests) - offsetof(struct settings, qmp_timeout_ms));
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		set_field(s, &fields[i], fields[i].def, err, sizeof(err));
}

struct parse_state {
	struct settings *s;
	const char *name;
	/* the reader's position: the line inih is handling */
	const char *pos, *end;
	unsigned line;
	unsigned section_line; /* where the section being read begins */
	unsigned refused_line; /* a guest section refused there: told once */
	/* an unknown section begun at unknown_line, told at its end unless a
	 * key in it was told about (a keyless [xem NAME], a typo of [xen
	 * NAME], would otherwise pass unnoticed) */
	unsigned unknown_line;
	char unknown[SETTINGS_NAME_MAX + 16];
	int errors;
};

__attribute__((format(printf, 2, 3)))
static void report(struct parse_state *st, const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s:%u: %s", st->name, st->line, msg);
	st->errors++;
}

static void section_seen(struct parse_state *st, const char *text, size_t len);

/* fgets() over the text, counting lines and checking each line's shape, so
 * that every message can name its line (inih r55 does not pass it on). */
static char *reader(char *str, int num, void *stream)
{
	struct parse_state *st = stream;
	const char *nl, *p;
	size_t len, take;

	if (st->pos >= st->end || num < 2)
		return NULL;
	nl = memchr(st->pos, '\n', (size_t)(st->end - st->pos));
	len = nl ? (size_t)(nl - st->pos) : (size_t)(st->end - st->pos);
	st->line++;

	take = len < (size_t)num - 2 ? len : (size_t)num - 2;
	memcpy(str, st->pos, take);
	str[take] = '\n';
	str[take + 1] = '\0';

	for (p = st->pos; p < st->pos + len && (*p == ' ' || *p == '\t' || *p == '\r'); p++)
		;
	if (p < st->pos + len && *p == '[') {
		st->section_line = st->line;
		section_seen(st, p + 1, (size_t)(st->pos + len - p - 1));
	}
	if (memchr(st->pos, '\0', len)) {
		report(st, "the line contains a NUL byte");
		str[0] = '\n';
		str[1] = '\0';
	} else if (take < len) {
		report(st, "line longer than %d bytes", num - 2);
		str[0] = '\n';
		str[1] = '\0';
	} else if (p < st->pos + len && *p != ';' && *p != '#' && *p != '[' &&
		   !memchr(p, '=', (size_t)(st->pos + len - p))) {
		report(st, "expected '[section]' or 'key = value'");
		str[0] = '\n';
		str[1] = '\0';
	}
	st->pos += len + (nl ? 1 : 0);
	return str;
}

#define SECTIONS "[paths], [qmp], [lock], [run], [retry], [log], [lxc], [qemu NAME], [xen NAME], [libvirt NAME]"

const struct guest_conf *settings_guest(const struct settings *s, const char *name)
{
	for (size_t i = 0; i < s->n_guests; i++)
		if (strcmp(s->guests[i].name, name) == 0)
			return &s->guests[i];
	return NULL;
}

bool settings_guest_name_valid(const char *name)
{
	size_t len = strlen(name), digits = strspn(name, "0123456789");

	if (len == 0 || len > SETTINGS_NAME_MAX || digits == len ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != len)
		return false;
	return name[0] != '.' && name[0] != '_' && name[0] != '-';
}

static const char *const kind_names[] = {
	[GUEST_QEMU] = "qemu",
	[GUEST_XEN] = "xen",
	[GUEST_LIBVIRT] = "libvirt",
};

/* The declared guest a [KIND NAME] section is about, made when its header
 * is read; NULL (reported once) when it cannot be one. */
static struct guest_conf *guest_of(struct parse_state *st, enum guest_conf_kind kind,
				   const char *name)
{
	struct settings *s = st->s;
	const struct guest_conf *known = settings_guest(s, name);
	struct guest_conf *g;
	char shown[96];

	if (st->refused_line && st->refused_line == st->section_line)
		return NULL;
	st->refused_line = st->section_line; /* unless it is taken below */
	if (known && known->kind == kind) {
		st->refused_line = 0;
		return &s->guests[known - s->guests];
	}
	if (known) {
		report(st, "'%s' is declared as [%s %s] already (%s); a name names one guest", name,
		       kind_names[known->kind], name, known->origin);
		return NULL;
	}
	if (!settings_guest_name_valid(name)) {
		report(st, "[%s %s]: a guest's name is 1 to %d letters, digits, '_', '.' or '-', starting with a letter or a digit, and not only digits (those are Proxmox VMIDs)",
		       kind_names[kind], log_escape(name, shown, sizeof(shown)), SETTINGS_NAME_MAX);
		return NULL;
	}
	if (s->n_guests == SETTINGS_MAX_GUESTS) {
		report(st, "[%s %s]: more than %d guests are declared", kind_names[kind], name,
		       SETTINGS_MAX_GUESTS);
		return NULL;
	}
	st->refused_line = 0;
	g = &s->guests[s->n_guests++];
	memset(g, 0, sizeof(*g));
	g->kind = kind;
	snprintf(g->name, sizeof(g->name), "%s", name);
	snprintf(g->origin, sizeof(g->origin), "%s:%u", st->name, st->section_line);
	return g;
}

/* The name of a [KIND NAME] section, or NULL for any other section. A
 * guest is declared by its header alone (a Xen guest needs no key), which
 * inih does not pass on: the reader calls section_seen() for it. */
static const char *guest_section(const char *section, enum guest_conf_kind *kind)
{
	for (size_t k = 0; k < ARRAY_SIZE(kind_names); k++) {
		size_t len = strlen(kind_names[k]);

		if (strncmp(section, kind_names[k], len) == 0 && section[len] == ' ') {
			*kind = (enum guest_conf_kind)k;
			section += len;
			while (*section == ' ')
				section++;
			return section;
		}
	}
	return NULL;
}

static bool known_section(const char *section)
{
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		if (strcmp(section, fields[i].section) == 0)
			return true;
	return false;
}

/* An unknown section that ended without a key. */
static void report_keyless_section(struct parse_state *st)
{
	unsigned line = st->line;
	char sec[96];

	if (!st->unknown_line)
		return;
	st->line = st->unknown_line;
	st->unknown_line = 0;
	report(st, "unknown section [%s]; known: " SECTIONS,
	       log_escape(st->unknown, sec, sizeof(sec)));
	st->line = line;
}

static void section_seen(struct parse_state *st, const char *text, size_t len)
{
	const char *end = memchr(text, ']', len), *name;
	char section[SETTINGS_NAME_MAX + 16];
	enum guest_conf_kind kind;

	while (end && end > text && end[-1] == ' ')
		end--;
	while (end && text < end && *text == ' ')
		text++;
	if (!end || (size_t)(end - text) >= sizeof(section))
		return; /* inih or the handler tell what is wrong */
	memcpy(section, text, (size_t)(end - text));
	section[end - text] = '\0';
	report_keyless_section(st);
	if ((name = guest_section(section, &kind))) {
		(void)guest_of(st, kind, name);
	} else if (section[0] && !known_section(section)) {
		memcpy(st->unknown, section, (size_t)(end - text) + 1);
		st->unknown_line = st->line;
	}
}

/* A key of a [KIND NAME] section. */
static void guest_key(struct parse_state *st, enum guest_conf_kind kind, const char *gname,
		      const char *key, const char *value)
{
	static const char *const known[] = {
		[GUEST_QEMU] = "qmp, qemu_name, pidfile, rules",
		[GUEST_XEN] = "qmp, qemu_name, pidfile, rules",
		[GUEST_LIBVIRT] = "uri, domain, rules",
	};
	struct guest_conf *g = guest_of(st, kind, gname);
	char *dst = NULL, shown[96];
	size_t size = SETTINGS_PATH_MAX;
	bool path = true;

	if (!g)
		return;
	if (kind != GUEST_LIBVIRT && strcmp(key, "qmp") == 0)
		dst = g->qmp;
	else if (kind != GUEST_LIBVIRT && strcmp(key, "pidfile") == 0)
		dst = g->pidfile;
	else if (strcmp(key, "rules") == 0)
		dst = g->rules;
	else if (kind != GUEST_LIBVIRT && strcmp(key, "qemu_name") == 0)
		dst = g->qemu_name, size = sizeof(g->qemu_name), path = false;
	else if (kind == GUEST_LIBVIRT && strcmp(key, "uri") == 0)
		dst = g->uri, path = false;
	else if (kind == GUEST_LIBVIRT && strcmp(key, "domain") == 0)
		dst = g->domain, path = false;
	if (!dst) {
		report(st, "unknown key '%s' in section [%s %s]; known: %s",
		       log_escape(key, shown, sizeof(shown)), kind_names[kind], gname, known[kind]);
		return;
	}
	if (path && value[0] != '/') {
		report(st, "%s must be an absolute path (got '%s')", key,
		       log_escape(value, shown, sizeof(shown)));
		return;
	}
	if (!path && (!value[0] || strpbrk(value, "\"'\\<>&"))) {
		report(st, "%s must be %s (got '%s')", key,
		       dst == g->qemu_name ? "QEMU's -name of the guest"
		       : dst == g->uri	   ? "a libvirt connection URI such as " SETTINGS_LIBVIRT_URI
					   : "the libvirt domain's name",
		       log_escape(value, shown, sizeof(shown)));
		return;
	}
	if (util_strlcpy(dst, value, size) < 0)
		report(st, "%s is longer than %zu bytes", key, size - 1);
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *st = user;
	bool section_known = false;
	char err[160], n[96], v[96], sec[96];

	enum guest_conf_kind kind;
	const char *gname = guest_section(section, &kind);

	st->unknown_line = 0; /* a key: the messages below name the section */
	if (gname) {
		guest_key(st, kind, gname, name, value);
		return 1;
	}

	/* the older name of state_dir */
	if (strcmp(section, "paths") == 0 && strcmp(name, "lock_dir") == 0)
		name = "state_dir";
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		if (strcmp(section, fields[i].section) != 0)
			continue;
		section_known = true;
		if (strcmp(name, fields[i].name) != 0)
			continue;
		if (set_field(st->s, &fields[i], value, err, sizeof(err)) < 0)
			report(st, "%s (got '%s')", err, log_escape(value, v, sizeof(v)));
		return 1;
	}
	log_escape(name, n, sizeof(n));
	log_escape(section, sec, sizeof(sec));
	if (section_known)
		report(st, "unknown key '%s' in section [%s]", n, sec);
	else if (section[0] == '\0')
		report(st, "'%s' is outside any section; put it under " SECTIONS, n);
	else
		report(st, "unknown section [%s] (key '%s'); known: " SECTIONS, sec, n);
	return 1;
}

/* One file's text, over what s holds already. */
static int parse_text(struct settings *s, const char *text, const char *name)
{
	struct parse_state st = {
		.s = s, .name = name, .pos = text, .end = text + strlen(text),
	};

	int r;

	r = ini_parse_stream(reader, &st, handler, &st);
	report_keyless_section(&st);
	if (r == -2)
		return log_err(-ENOMEM, "%s: out of memory while reading it", name);
	if (r > 0) {
		/* inih's own complaint, the one the reader lets through: a
		 * section header without its ']' */
		st.line = (unsigned)r;
		report(&st, "a section header needs its closing ']', e.g. [paths]");
	}
	return st.errors ? -EINVAL : 0;
}

/* The declared guests, once every file is read: what each needs, and the
 * defaults of what it may leave out. */
static int finish_guests(struct settings *s, const char *dropin_dir)
{
	int r = 0;

	for (size_t i = 0; i < s->n_guests; i++) {
		struct guest_conf *g = &s->guests[i];

		if (g->kind == GUEST_XEN && !g->qmp[0])
			snprintf(g->qmp, sizeof(g->qmp), "%s", SETTINGS_XEN_QMP_GLOB);
		if (g->kind == GUEST_XEN && !g->qemu_name[0])
			snprintf(g->qemu_name, sizeof(g->qemu_name), "%s", g->name);
		if (g->kind == GUEST_LIBVIRT && !g->uri[0])
			snprintf(g->uri, sizeof(g->uri), "%s", SETTINGS_LIBVIRT_URI);
		if (g->kind == GUEST_LIBVIRT && !g->domain[0])
			snprintf(g->domain, sizeof(g->domain), "%s", g->name);
		if (g->kind == GUEST_QEMU && !g->qmp[0])
			r = log_err(-EINVAL, "%s: [qemu %s] needs 'qmp = PATH', its QMP socket (QEMU's -qmp unix:PATH,server=on,wait=off)",
				    g->origin, g->name);
		if (!g->rules[0] && snprintf(g->rules, sizeof(g->rules), "%s/%s.usb.conf", dropin_dir,
					     g->name) >= (int)sizeof(g->rules))
			r = log_err(-EINVAL, "%s: [%s %s]: the default rules file's path is too long; set 'rules = PATH'",
				    g->origin, kind_names[g->kind], g->name);
	}
	return r;
}

int settings_load_string(struct settings *s, const char *text, const char *name)
{
	char dropin[SETTINGS_PATH_MAX + 8];
	int r;

	settings_defaults(s);
	r = parse_text(s, text, name);
	snprintf(dropin, sizeof(dropin), "%s" SETTINGS_DROPIN_SUFFIX, name);
	return finish_guests(s, dropin) < 0 ? -EINVAL : r;
}

/* One file over what s holds: 0, -ENOENT (none), -EINVAL, other -errno. */
static int load_file(struct settings *s, const char *path)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r;

	r = util_read_file(path, false, SETTINGS_MAX_SIZE, &buf, &len);
	if (r == -ENOENT)
		return r;
	if (r < 0)
		return log_read_error(r, path, "settings file", SETTINGS_MAX_SIZE);
	if (strlen(buf) != len)
		return log_err(-EINVAL, "%s: contains a NUL byte; not a text file", path);
	return parse_text(s, buf, path);
}

static int dropin_filter(const struct dirent *de)
{
	size_t len = strlen(de->d_name);

	return de->d_name[0] != '.' && len > 5 && strcmp(de->d_name + len - 5, ".conf") == 0 &&
	       !(len > 9 && strcmp(de->d_name + len - 9, ".usb.conf") == 0);
}

int settings_load(struct settings *s, const char *path)
{
	char dir[SETTINGS_PATH_MAX + 8], file[2 * SETTINGS_PATH_MAX + 8];
	struct dirent **list = NULL;
	int r, n, ret;

	settings_defaults(s);
	r = load_file(s, path);
	ret = r == -ENOENT ? 0 : r;
	if (ret < 0 && ret != -EINVAL)
		return ret; /* could not be read at all */
	snprintf(dir, sizeof(dir), "%s" SETTINGS_DROPIN_SUFFIX, path);
	n = scandir(dir, &list, dropin_filter, alphasort);
	if (n < 0 && errno != ENOENT && errno != ENOTDIR)
		ret = log_err(-errno, "%s: cannot read the drop-in directory: %s", dir, strerror(errno));
	for (int i = 0; i < n; i++) {
		snprintf(file, sizeof(file), "%s/%s", dir, list[i]->d_name);
		r = load_file(s, file);
		if (r < 0 && r != -ENOENT && ret == 0)
			ret = r;
		free(list[i]);
	}
	free(list);
	if (finish_guests(s, dir) < 0 && ret == 0)
		ret = -EINVAL;
	return ret;
}
