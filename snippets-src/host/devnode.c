#include "host/devnode.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
 * from the directory fd (taken over; <0: its error); *ret_name points
 * into rel. */
static int walk_from(int fd, const char *rel, const struct devnode *n, bool create,
		     const char **ret_name)
{
	char part[256];
	const char *s = rel, *slash;

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

/* The same from p's root. */
static int walk(const struct devnode_proc *p, const char *rel, const struct devnode *n,
		bool create, const char **ret_name)
{
	return walk_from(open_root(p), rel, n, create, ret_name);
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

/* A child's exit status for "there was none" (1). */
#define CHILD_NONE 254

/* Runs fn(p, arg) in a forked child that may change its namespaces; its
 * -errno comes back as its exit status. */
static int in_child(int (*fn)(int nsfd, const void *arg), const struct devnode_proc *p,
		    const void *arg)
{
	char path[64];
	int nsfd, status, r;
	pid_t pid;

	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)p->pid);
	nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	r = same_proc(p);
	if (r < 0) {
		close(nsfd);
		return r;
	}
	pid = fork();
	if (pid == 0) {
		r = fn(nsfd, arg);
		_exit(r == 1 ? CHILD_NONE : (-r) & 0xff);
	}
	close(nsfd);
	if (pid < 0)
		return -errno;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status))
		return -EIO;
	return WEXITSTATUS(status) == CHILD_NONE ? 1 : -WEXITSTATUS(status);
}

/* The same from the root of the mount namespace the caller is in. */
static int walk_here(const char *rel, const struct devnode *n, bool create, const char **ret_name)
{
	int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);

	return walk_from(fd < 0 ? -errno : fd, rel, n, create, ret_name);
}

struct inject {
	const char *scratch, *rel;
	const struct devnode *n;
};

/* The child's node on a tmpfs of its own, cloned: a mount's fd. */
static int clone_node(const struct inject *in)
{
	_cleanup_close_ int dir = -1;
	dev_t dev = makedev(in->n->major, in->n->minor);
	int tree;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", in->scratch, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0700,size=16k") < 0)
		return -errno;
	dir = open(in->scratch, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0 || mknodat(dir, "node", S_IFCHR | 0600, dev) < 0 ||
	    fchownat(dir, "node", in->n->uid, in->n->gid, AT_SYMLINK_NOFOLLOW) < 0 ||
	    fchmodat(dir, "node", in->n->mode & 07777, 0) < 0)
		return -errno;
	tree = open_tree(dir, "node", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	return tree < 0 ? -errno : tree;
}

static int inject_child(int nsfd, const void *arg)
{
	const struct inject *in = arg;
	_cleanup_close_ int dir = -1;
	const char *name;
	char path[300];
	int tree = clone_node(in), fd;

	if (tree < 0)
		return tree;
	if (setns(nsfd, CLONE_NEWNS) < 0)
		return -errno;
	/* the container's /dev is its user namespace's tmpfs: what is made
	 * there must be made as an id mapped there, its root (the fs caps
	 * go; CAP_SYS_ADMIN for the mount stays) */
	(void)setfsgid(in->n->gid);
	(void)setfsuid(in->n->uid);
	dir = walk_here(in->rel, in->n, true, &name);
	if (dir < 0)
		return dir;
	/* whatever is there (a node of an earlier plug) goes first */
	snprintf(path, sizeof(path), "/%s", in->rel);
	(void)umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW);
	(void)unlinkat(dir, name, 0);
	fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	close(fd);
	return move_mount(tree, "", dir, name, MOVE_MOUNT_F_EMPTY_PATH) < 0 ? -errno : 0;
}

int devnode_inject(const struct devnode_proc *p, const char *scratch, const char *rel,
		   const struct devnode *n)
{
	struct inject in = { scratch, rel, n };

	return in_child(inject_child, p, &in);
}

struct eject {
	const char *rel;
	dev_t dev;
};

static int eject_child(int nsfd, const void *arg)
{
	const struct eject *ej = arg;
	_cleanup_close_ int dir = -1;
	const char *name;
	char path[300];
	struct stat st;
	bool was_mounted;

	if (setns(nsfd, CLONE_NEWNS) < 0)
		return -errno;
	snprintf(path, sizeof(path), "/%s", ej->rel);
	was_mounted = umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0;
	dir = walk_here(ej->rel, &(struct devnode){ 0 }, false, &name);
	if (dir == -ENOENT)
		return was_mounted ? 0 : 1;
	if (dir < 0)
		return dir;
	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT && !was_mounted ? 1 : errno == ENOENT ? 0 : -errno;
	/* the empty file under the mount, or a node of the device */
	if ((was_mounted && S_ISREG(st.st_mode) && st.st_size == 0) ||
	    (S_ISCHR(st.st_mode) && st.st_rdev == ej->dev))
		return unlinkat(dir, name, 0) < 0 ? -errno : 0;
	return was_mounted ? 0 : 1;
}

int devnode_eject(const struct devnode_proc *p, const char *rel, unsigned major, unsigned minor)
{
	struct eject ej = { rel, makedev(major, minor) };

	return in_child(eject_child, p, &ej);
}

struct link {
	const char *rel, *target;
	uid_t uid;
	gid_t gid;
};

/* Whether the link name below dir points to target: 1, 0 (another link),
 * -errno (none, or not a link: -EINVAL). */
static int points_to(int dir, const char *name, const char *target)
{
	char buf[512];
	ssize_t n = readlinkat(dir, name, buf, sizeof(buf) - 1);

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return strcmp(buf, target) == 0;
}

static int link_child(int nsfd, const void *arg)
{
	const struct link *l = arg;
	struct devnode owner = { .uid = l->uid, .gid = l->gid };
	_cleanup_close_ int dir = -1;
	const char *name;
	int r;

	if (setns(nsfd, CLONE_NEWNS) < 0)
		return -errno;
	(void)setfsgid(l->gid);
	(void)setfsuid(l->uid);
	dir = walk_here(l->rel, &owner, true, &name);
	if (dir < 0)
		return dir;
	r = points_to(dir, name, l->target);
	if (r == 1)
		return 0;
	if (r == 0 && unlinkat(dir, name, 0) < 0)
		return -errno;
	if (r == -EINVAL)
		return -EEXIST;
	return symlinkat(l->target, dir, name) < 0 ? -errno : 0;
}

int devnode_link(const struct devnode_proc *p, const char *rel, const char *target, uid_t uid,
		 gid_t gid)
{
	struct link l = { rel, target, uid, gid };

	return in_child(link_child, p, &l);
}

static int unlink_child(int nsfd, const void *arg)
{
	const struct link *l = arg;
	_cleanup_close_ int dir = -1;
	const char *name;
	int r;

	if (setns(nsfd, CLONE_NEWNS) < 0)
		return -errno;
	dir = walk_here(l->rel, &(struct devnode){ 0 }, false, &name);
	if (dir == -ENOENT)
		return 1;
	if (dir < 0)
		return dir;
	r = points_to(dir, name, l->target);
	if (r != 1)
		return r == 0 || r == -ENOENT || r == -EINVAL ? 1 : r;
	return unlinkat(dir, name, 0) < 0 ? -errno : 0;
}

int devnode_unlink(const struct devnode_proc *p, const char *rel, const char *target)
{
	struct link l = { rel, target, 0, 0 };

	return in_child(unlink_child, p, &l);
}
