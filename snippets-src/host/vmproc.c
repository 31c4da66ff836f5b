#include "host/vmproc.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/util.h"

/* Up to n-1 bytes of a small file, terminated. Length, or -1. */
static ssize_t read_small(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	ssize_t len;

	if (fd < 0)
		return -1;
	len = read(fd, buf, n - 1);
	close(fd);
	if (len <= 0)
		return -1;
	buf[len] = '\0';
	return len;
}

/* Whether fn holds for a value of -pidfile/--pidfile (as "-pidfile V" or
 * "-pidfile=V") in a NUL-separated command line. */
static bool any_pidfile(const char *cmdline, size_t len, bool (*fn)(const char *v, const void *ud),
			const void *ud)
{
	const char *end = cmdline + len;
	bool value_next = false;

	for (const char *a = cmdline, *nul; a < end; a = nul + 1) {
		const char *opt;
		bool pidfile;

		/* the last argument may lack its NUL (a cut read) */
		nul = memchr(a, '\0', (size_t)(end - a));
		if (!nul)
			break;
		if (value_next && fn(a, ud))
			return true;
		/* "-pidfile" or "--pidfile", then the value, or "=VALUE" */
		opt = a[0] == '-' ? a + 1 + (a[1] == '-') : NULL;
		pidfile = opt && util_startswith(opt, "pidfile");
		value_next = pidfile && opt[7] == '\0';
		if (pidfile && opt[7] == '=' && fn(opt + 8, ud))
			return true;
	}
	return false;
}

static bool same_text(const char *v, const void *pidfile)
{
	return strcmp(v, pidfile) == 0;
}

/* the same file by another name (/var/run is /run) */
static bool same_file(const char *v, const void *st)
{
	const struct stat *a = st;
	struct stat b;

	return stat(v, &b) == 0 && a->st_dev == b.st_dev && a->st_ino == b.st_ino;
}

bool vmproc_cmdline_names(const char *cmdline, size_t len, const char *pidfile)
{
	return any_pidfile(cmdline, len, same_text, pidfile);
}

static bool started_with(unsigned long pid, const char *pidfile)
{
	char path[64], cmdline[16384];
	struct stat st;
	ssize_t len;

	snprintf(path, sizeof(path), "/proc/%lu/cmdline", pid);
	len = read_small(path, cmdline, sizeof(cmdline));
	if (len < 0)
		return false;
	if (vmproc_cmdline_names(cmdline, (size_t)len, pidfile))
		return true;
	return stat(pidfile, &st) == 0 && any_pidfile(cmdline, (size_t)len, same_file, &st);
}

/* The fields of /proc/PID/stat after the command name: state first. */
static const char *stat_fields(unsigned long pid, char *buf, size_t n)
{
	char path[64], *p;

	snprintf(path, sizeof(path), "/proc/%lu/stat", pid);
	if (read_small(path, buf, n) < 0 || !(p = strrchr(buf, ')')))
		return NULL;
	return p + 1;
}

unsigned long vmproc_pid(const char *path)
{
	char buf[1024];
	const char *fields;
	unsigned long pid;

	if (!path[0] || read_small(path, buf, 32) < 0)
		return 0;
	buf[strcspn(buf, "\n")] = '\0';
	if (util_parse_uint(buf, INT32_MAX, &pid) < 0 || pid < 2)
		return 0;
	/* alive, and not a zombie waiting for its parent */
	fields = stat_fields(pid, buf, sizeof(buf));
	if (!fields || fields[0] != ' ' || fields[1] == 'Z' || fields[1] == 'X')
		return 0;
	return started_with(pid, path) ? pid : 0;
}

void vmproc_stamp(const char *pidfile, char *buf, size_t n)
{
	unsigned long pid = vmproc_pid(pidfile), start;
	char stat[1024];
	const char *p;

	buf[0] = '\0';
	if (!pid || !(p = stat_fields(pid, stat, sizeof(stat))))
		return;
	/* field 22, starttime; p is at the space before field 3 */
	for (int field = 3; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (p && sscanf(p, " %lu", &start) == 1)
		snprintf(buf, n, "%lu:%lu", pid, start);
}

int vmproc_has_open(unsigned long pid, mode_t type, dev_t rdev)
{
	char path[64];
	struct dirent *de;
	DIR *dir;
	int held = 0;

	snprintf(path, sizeof(path), "/proc/%lu/fd", pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while (!held && (de = readdir(dir))) {
		char target[16];
		struct statx stx;
		ssize_t len;

		if (de->d_name[0] == '.')
			continue;
		/* Never stat what the fd opens before its link's text says it
		 * is a device node: a file on a dead NFS or CIFS server (a
		 * backup or ISO storage) would hang this run in uninterruptible
		 * sleep. The node itself is asked without revalidation. */
		len = readlinkat(dirfd(dir), de->d_name, target, sizeof(target));
		if (len < 5 || memcmp(target, "/dev/", 5) != 0)
			continue;
		held = statx(dirfd(dir), de->d_name, AT_STATX_DONT_SYNC, STATX_TYPE, &stx) == 0 &&
		       (stx.stx_mode & S_IFMT) == type &&
		       makedev(stx.stx_rdev_major, stx.stx_rdev_minor) == rdev;
	}
	closedir(dir);
	return held;
}

/* Whether arg names socket path as its own value: after ':' or '=' (as in
 * "unix:PATH,server=on" or "socket,path=PATH,..."), up to ',' or the end. */
static bool arg_names_socket(const char *arg, const char *path)
{
	size_t len = strlen(path);

	for (const char *p = strstr(arg, path); p; p = strstr(p + 1, path))
		if (p > arg && (p[-1] == ':' || p[-1] == '=') && (p[len] == ',' || p[len] == '\0'))
			return true;
	return false;
}

bool vmproc_cmdline_socket(const char *cmdline, size_t len, const char *path, char *name,
			   size_t n)
{
	const char *end = cmdline + len;
	bool found = false, name_next = false;

	if (n)
		name[0] = '\0';
	for (const char *a = cmdline, *nul; a < end; a = nul + 1) {
		nul = memchr(a, '\0', (size_t)(end - a));
		if (!nul)
			break;
		if (name_next && n) {
			/* "-name NAME" or libvirt's "-name guest=NAME,debug-threads=on" */
			const char *v = util_startswith(a, "guest=") ? a + 6 : a;

			snprintf(name, n, "%.*s", (int)strcspn(v, ","), v);
		}
		name_next = strcmp(a, "-name") == 0;
		found = found || arg_names_socket(a, path);
	}
	return found;
}

unsigned long vmproc_by_socket(const char *path, char *name, size_t n)
{
	char file[64], cmdline[16384];
	unsigned long found = 0;
	struct dirent *de;
	DIR *proc = opendir("/proc");

	if (!proc)
		return 0;
	while (!found && (de = readdir(proc))) {
		unsigned long pid;
		ssize_t len;

		if (util_parse_uint(de->d_name, 1UL << 22, &pid) < 0)
			continue;
		/* any process: QEMU may run under another name (a loader, a
		 * wrapper); a command line is one read */
		snprintf(file, sizeof(file), "/proc/%lu/cmdline", pid);
		len = read_small(file, cmdline, sizeof(cmdline));
		if (len > 0 && vmproc_cmdline_socket(cmdline, (size_t)len, path, name, n))
			found = pid;
	}
	closedir(proc);
	return found;
}
