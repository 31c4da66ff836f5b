#include "base/state.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

int state_open(const char *path, int *ret_fd, char *why, size_t why_size)
{
	_cleanup_close_ int fd = -1;
	struct stat st;

	if (why_size)
		why[0] = '\0';
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		/* with O_DIRECTORY a link says ENOTDIR: tell it apart */
		if (errno == ENOTDIR && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
			return -ELOOP;
		return -errno;
	}
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_uid != geteuid()) {
		snprintf(why, why_size, "it is owned by uid %u, not by uid %u (root)", (unsigned)st.st_uid,
			 (unsigned)geteuid());
		return -EPERM;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, why_size, "its mode is %04o: others may write there",
			 (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	*ret_fd = steal_fd(&fd);
	return 0;
}

static void released_name(const char *key, const char *suffix, char *buf, size_t n)
{
	snprintf(buf, n, "%s.released%s", key, suffix);
}

int state_mark_released(int dirfd, const char *key, const char *stamp)
{
	char name[96], text[128];
	int len;

	released_name(key, "", name, sizeof(name));
	len = snprintf(text, sizeof(text), "stamp %s\n", stamp);
	return util_write_file_at(dirfd, name, text, (size_t)len);
}

bool state_is_released(int dirfd, const char *key, const char *stamp)
{
	_cleanup_free_ char *text = NULL;
	char name[96];
	size_t len;

	released_name(key, "", name, sizeof(name));
	if (!stamp[0] || util_read_file_at(dirfd, name, true, 256, &text, &len) < 0)
		return false;
	return len > 6 && strncmp(text, "stamp ", 6) == 0 && strlen(stamp) == len - 7 &&
	       strncmp(text + 6, stamp, len - 7) == 0 && text[len - 1] == '\n';
}

int state_clear_released(int dirfd, const char *key)
{
	char name[96];

	released_name(key, "", name, sizeof(name));
	return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
}

int state_poke_listener(const char *state_dir)
{
	_cleanup_free_ char *text = NULL;
	char why[128], comm[32] = "", path[64];
	unsigned long pid;
	size_t len;
	FILE *f;
	int fd;

	if (state_open(state_dir, &fd, why, sizeof(why)) < 0)
		return 0;
	int r = util_read_file_at(fd, STATE_LISTEN_MARKER, true, 64, &text, &len);

	close(fd);
	if (r < 0 || (text[strcspn(text, "\n")] = '\0', util_parse_uint(text, 1UL << 22, &pid) < 0))
		return 0;
	/* only a listener of ours: the pid may have been reused */
	snprintf(path, sizeof(path), "/proc/%lu/comm", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = '\0';
	fclose(f);
	if (strcmp(comm, "pve-usb-hotplug\n") == 0 && kill((pid_t)pid, SIGHUP) == 0)
		return (int)pid;
	return 0;
}
