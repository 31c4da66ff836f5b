#include "settings.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

enum kind { K_PATH, K_MS, K_RUN_MS, K_LEVEL, K_BOOL };

/* One table drives the defaults, the parser and the documentation. */
#define SETTINGS_TABLE(X)                                                                 \
	X("paths", "vm_config_dir", K_PATH, vm_config_dir, "/etc/pve/qemu-server")         \
	X("paths", "qmp_socket_dir", K_PATH, qmp_socket_dir, "/var/run/qemu-server")       \
	X("paths", "state_dir", K_PATH, state_dir, "/run/pve-usb-hotplug")                 \
	X("paths", "mapping_file", K_PATH, mapping_file, "/etc/pve/mapping/usb.cfg")       \
	X("qmp", "timeout_ms", K_MS, qmp_timeout_ms, "5000")                               \
	X("lock", "timeout_ms", K_MS, lock_timeout_ms, "30000")                            \
	X("run", "timeout_ms", K_RUN_MS, run_timeout_ms, "90000")                          \
	X("retry", "command", K_PATH, retry_command, "/usr/bin/systemd-run")               \
	X("retry", "delay_ms", K_MS, retry_delay_ms, "10000")                              \
	X("log", "level", K_LEVEL, log_level, "info")                                      \
	X("log", "syslog", K_BOOL, log_syslog, "yes")

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

	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		set_field(s, &fields[i], fields[i].def, err, sizeof(err));
}

struct parse_state {
	struct settings *s;
	const char *name;
	/* the reader's position: the line inih is handling */
	const char *pos, *end;
	unsigned line;
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

#define SECTIONS "[paths], [qmp], [lock], [run], [retry], [log]"

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *st = user;
	bool section_known = false;
	char err[160], n[96], v[96], sec[96];

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

int settings_load_string(struct settings *s, const char *text, const char *name)
{
	struct parse_state st = {
		.s = s, .name = name, .pos = text, .end = text + strlen(text),
	};

	int r;

	settings_defaults(s);
	r = ini_parse_stream(reader, &st, handler, &st);
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

int settings_load(struct settings *s, const char *path)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r;

	settings_defaults(s);
	r = util_read_file(path, false, SETTINGS_MAX_SIZE, &buf, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return log_read_error(r, path, "settings file", SETTINGS_MAX_SIZE);
	if (strlen(buf) != len)
		return log_err(-EINVAL, "%s: contains a NUL byte; not a text file", path);
	return settings_load_string(s, buf, path);
}
