#include "host/devnode.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/util.h"

int devnode_read_proc(const char *path, char *buf, size_t size, size_t *ret_len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	size_t len = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	if (size == 0)
		return -EINVAL;
	while (len < size - 1 && (n = read(fd, buf + len, size - 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*ret_len = len;
	return 0;
}

int devnode_proc_starttime(pid_t pid, uint64_t *ret, pid_t *ret_ppid)
{
	char path[64], text[1024], *p, *save = NULL;
	unsigned long long start = 0;
	long ppid = 0;
	size_t len;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	r = devnode_read_proc(path, text, sizeof(text), &len);
	if (r == -ENOENT || r == -ESRCH)
		return -ESRCH;
	if (r < 0)
		return -EIO;
	/* "pid (comm) state ppid ...": comm may hold anything, ')' too */
	p = strrchr(text, ')');
	r = -EIO;
	if (p) {
		p = strtok_r(p + 1, " ", &save);
		for (int field = 3; p && field <= 22; field++, p = strtok_r(NULL, " ", &save)) {
			if (field == 4)
				ppid = strtol(p, NULL, 10);
			if (field == 22) {
				start = strtoull(p, NULL, 10);
				r = 0;
			}
		}
	}
	if (r == 0) {
		*ret = start;
		if (ret_ppid)
			*ret_ppid = (pid_t)ppid;
	}
	return r;
}

/* Whether p is still the process the caller found. */
static int same_proc(const struct devnode_proc *p)
{
	uint64_t st;
	int r = devnode_proc_starttime(p->pid, &st, NULL);

	return r < 0 ? r : st == p->starttime ? 0 : -ESRCH;
}

int devnode_root_id(const struct devnode_proc *p, bool gid, unsigned long *ret)
{
	char path[64], text[4096], *line, *save = NULL;
	unsigned long inside, outside, count;
	size_t len;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)p->pid, gid ? "gid_map" : "uid_map");
	r = devnode_read_proc(path, text, sizeof(text), &len);
	if (r < 0)
		return r == -ENOENT ? -ESRCH : -EIO;
	r = -ENOENT;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (sscanf(line, "%lu %lu %lu", &inside, &outside, &count) == 3 && inside == 0 &&
		    count > 0) {
			*ret = outside;
			r = 0;
			break;
		}
	return r == 0 ? same_proc(p) : r;
}

int devnode_in_own_userns(const struct devnode_proc *p)
{
	struct stat mine, its;
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)p->pid);
	if (stat("/proc/self/ns/user", &mine) < 0 || stat(path, &its) < 0)
		return -ESRCH;
	return its.st_ino != mine.st_ino || its.st_dev != mine.st_dev;
}

int devnode_stat(const char *path, struct devnode *ret)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISCHR(st.st_mode))
		return -ENODEV;
	*ret = (struct devnode){
		.major = major(st.st_rdev),
		.minor = minor(st.st_rdev),
		.mode = st.st_mode & 07777,
		.uid = st.st_uid,
		.gid = st.st_gid,
	};
	return 0;
}

/* p's root, opened and checked to be p's still. */
static int open_root(const struct devnode_proc *p)
{
	char path[64];
	int fd, r;

	snprintf(path, sizeof(path), "/proc/%d/root", (int)p->pid);
	fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	r = same_proc(p);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* The directory name below dirfd, never through a link; made first (mode
 * 0755, owned by n's owner) with create. */
static int open_dir(int dirfd, const char *name, const struct devnode *n, bool create)
{
	int fd;

	if (create && mkdirat(dirfd, name, 0755) == 0 &&
	    fchownat(dirfd, name, n->uid, n->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	fd = openat(dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOTDIR ? -ELOOP : -errno;
	return fd;
}

/* The directory that holds rel's last name, walked one name at a time
 * from p's root; *ret_name points into rel. */
static int walk(const struct devnode_proc *p, const char *rel, const struct devnode *n,
		bool create, const char **ret_name)
{
	char part[256];
	const char *s = rel, *slash;
	int fd = open_root(p);

	while (fd >= 0 && (slash = strchr(s, '/'))) {
		int next;

		if ((size_t)(slash - s) >= sizeof(part) || slash == s) {
			close(fd);
			return -EINVAL;
		}
		memcpy(part, s, (size_t)(slash - s));
		part[slash - s] = '\0';
		next = open_dir(fd, part, n, create);
		close(fd);
		fd = next;
		s = slash + 1;
	}
	*ret_name = s;
	return fd;
}

int devnode_make(const struct devnode_proc *p, const char *rel, const struct devnode *n)
{
	_cleanup_close_ int dir = -1;
	const char *name;
	struct stat st;
	dev_t dev = makedev(n->major, n->minor);

	dir = walk(p, rel, n, true, &name);
	if (dir < 0)
		return dir;
	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    !(S_ISCHR(st.st_mode) && st.st_rdev == dev) && unlinkat(dir, name, 0) < 0)
		return -errno;
	if (mknodat(dir, name, S_IFCHR | (n->mode & 0777), dev) < 0 && errno != EEXIST)
		return -errno;
	/* its owner and mode exactly (the umask took bits); never through a
	 * link put there meanwhile */
	if (fchownat(dir, name, n->uid, n->gid, AT_SYMLINK_NOFOLLOW) < 0 ||
	    fchmodat(dir, name, n->mode & 07777, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

int devnode_remove(const struct devnode_proc *p, const char *rel, unsigned major, unsigned minor)
{
	_cleanup_close_ int dir = -1;
	const char *name;
	struct stat st;

	dir = walk(p, rel, &(struct devnode){ 0 }, false, &name);
	if (dir == -ENOENT)
		return 1;
	if (dir < 0)
		return dir;
	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 1 : -errno;
	if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(major, minor))
		return 1;
	return unlinkat(dir, name, 0) < 0 ? -errno : 0;
}
