#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "util.h"

static void on_alarm(int sig)
{
	(void)sig;
}

int lock_vm(const char *lock_dir, unsigned long vmid, int timeout_ms, int *ret_fd)
{
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	struct itimerval timer = { 0 }, off = { 0 };
	_cleanup_close_ int fd = -1;
	char path[4096];
	int r;

	if (mkdir(lock_dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	if (snprintf(path, sizeof(path), "%s/%lu.lock", lock_dir, vmid) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
	if (fd < 0)
		return -errno;

	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		*ret_fd = steal_fd(&fd);
		return 0;
	}
	if (errno != EWOULDBLOCK)
		return -errno;

	/* Block in the kernel's queue (fair under a storm of events), with a
	 * timer to interrupt the wait at the deadline. */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, &old) < 0)
		return -errno;
	timer.it_value.tv_sec = timeout_ms / 1000;
	timer.it_value.tv_usec = (timeout_ms % 1000) * 1000;
	setitimer(ITIMER_REAL, &timer, NULL);
	r = flock(fd, LOCK_EX) < 0 ? -errno : 0;
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	if (r == -EINTR)
		r = -ETIMEDOUT;
	if (r < 0)
		return r;
	*ret_fd = steal_fd(&fd);
	return 0;
}
