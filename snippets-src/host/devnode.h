/* A host device node, made again inside a container: the container's
 * /dev/bus/usb/BBB/DDD for a USB device it is passed.
 *
 * The container is reached through its init process: /proc/<pid>/root is
 * its root as its mount namespace sees it (its own /dev). Every step below
 * that root is one name, opened without following a link, relative to the
 * directory opened before: a link the container's root planted (say
 * /dev/bus -> /etc) is refused, never followed on the host. The pid is
 * checked against its start time after the root is opened, so a pid reused
 * since the caller looked is refused (-ESRCH).
 *
 * Nothing here logs. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The process a container runs as init, as the caller found it. */
struct devnode_proc {
	pid_t pid;
	uint64_t starttime; /* /proc/<pid>/stat field 22 */
};

/* What a node is: its device numbers, permission bits and owner. */
struct devnode {
	unsigned major, minor;
	mode_t mode; /* permission bits only */
	uid_t uid;
	gid_t gid;
};

/* Reads a /proc file (its size says 0) into buf, NUL-terminated: at most
 * size - 1 bytes (the rest is cut off). 0 with *ret_len, or -errno. */
int devnode_read_proc(const char *path, char *buf, size_t size, size_t *ret_len);

/* The start time of pid from /proc: 0, -ESRCH (gone), -EIO (unreadable).
 * With ret_ppid, its parent too. */
int devnode_proc_starttime(pid_t pid, uint64_t *ret, pid_t *ret_ppid);

/* The host id that id 0 of p's user namespace maps to (uid_map, or
 * gid_map with gid): 0 for a privileged container. -ENOENT when 0 is not
 * mapped, -ESRCH, -EIO. */
int devnode_root_id(const struct devnode_proc *p, bool gid, unsigned long *ret);

/* Whether p lives in a user namespace of its own (an unprivileged
 * container): 1, 0, or -ESRCH. */
int devnode_in_own_userns(const struct devnode_proc *p);

/* The node at path on the host: a character device (-ENODEV otherwise),
 * its numbers, mode and owner. */
int devnode_stat(const char *path, struct devnode *ret);

/* Makes rel ("dev/bus/usb/003/005", its parents made as needed, mode
 * 0755, owned like the node) below p's root as n says. A node there for
 * the same device is made right (owner, mode); anything else there is
 * replaced. 0, -ESRCH (p is gone), -ELOOP (a link on the way), -errno. */
int devnode_make(const struct devnode_proc *p, const char *rel, const struct devnode *n);

/* For a container in a user namespace of its own (its /dev does not
 * allow device nodes), Proxmox's way, in a forked child: the node is made
 * on a tmpfs of the child's own, mounted over scratch in a private mount
 * namespace (a tmpfs made there allows devices), owned as n says; cloned
 * (open_tree OPEN_TREE_CLONE); the child joins p's mount namespace and
 * mounts the clone (move_mount) on an empty file at rel, made there with
 * its parents. Inside p's namespace links resolve within the container.
 * 0, -ESRCH, -errno. */
int devnode_inject(const struct devnode_proc *p, const char *scratch, const char *rel,
		   const struct devnode *n);

/* Takes what devnode_inject() or devnode_make() put at rel out of p's
 * mount namespace (in a forked child): unmounted, and the file under it
 * (an empty file, or the node major:minor) removed. 0; 1 when there was
 * none; -ESRCH, -errno. */
int devnode_eject(const struct devnode_proc *p, const char *rel, unsigned major, unsigned minor);

/* Removes rel below p's root when it is the character device
 * major:minor. 0; 1 when there was none (or another file, left alone);
 * -ESRCH, -errno. */
int devnode_remove(const struct devnode_proc *p, const char *rel, unsigned major, unsigned minor);

/* Makes rel ("dev/serial/by-id/usb-...") in p's mount namespace (in a
 * forked child, as the container's root, uid and gid) a symbolic link to
 * target ("/dev/ttyUSB0"), its parents made as needed. A link there is
 * replaced; anything else there is left (-EEXIST). Links on the way are
 * refused (-ELOOP), never followed. 0, -ESRCH, -errno. */
int devnode_link(const struct devnode_proc *p, const char *rel, const char *target, uid_t uid,
		 gid_t gid);

/* Removes the link rel in p's mount namespace when it points to target.
 * 0; 1 when there was none (or another file, left alone); -ESRCH, -errno. */
int devnode_unlink(const struct devnode_proc *p, const char *rel, const char *target);
