#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

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
