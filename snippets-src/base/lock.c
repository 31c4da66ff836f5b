#include "base/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "base/util.h"

static void on_alarm(int sig)
{
	(void)sig;
}

/* Blocks in flock() until the deadline. A timer interrupts the wait; it
 * fires at the deadline and every TICK_MS after it, so a tick that lands
 * just before flock() starts to wait is followed by another: the deadline
 * cannot be missed. */
#define TICK_MS 10

static int wait_lock(int fd, int64_t deadline_ms)
{
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	struct itimerval timer = { 0 }, off = { 0 };
	int left = util_remaining_ms(deadline_ms), r;

	if (left == 0)
		return -ETIMEDOUT;
	sigemptyset(&sa.sa_mask); /* no SA_RESTART: flock() must return */
	if (sigaction(SIGALRM, &sa, &old) < 0)
		return -errno;
	timer.it_value.tv_sec = left / 1000;
	timer.it_value.tv_usec = (left % 1000) * 1000;
	timer.it_interval.tv_usec = TICK_MS * 1000;
	if (setitimer(ITIMER_REAL, &timer, NULL) < 0) {
		r = -errno;
		sigaction(SIGALRM, &old, NULL);
		return r;
	}
	for (;;) {
		if (util_remaining_ms(deadline_ms) == 0) {
			r = -ETIMEDOUT;
			break;
		}
		if (flock(fd, LOCK_EX) == 0) {
			r = 0;
			break;
		}
		if (errno != EINTR) {
			r = -errno;
			break;
		}
	}
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	return r;
}

int lock_vm(int dirfd, const char *key, int64_t deadline_ms, int *ret_fd)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	char name[96];
	int r;

	snprintf(name, sizeof(name), "%s.lock", key);
	fd = openat(dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY,
		    0600);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;

	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		*ret_fd = steal_fd(&fd);
		return 0;
	}
	if (errno != EWOULDBLOCK)
		return -errno;
	r = wait_lock(fd, deadline_ms);
	if (r < 0)
		return r;
	*ret_fd = steal_fd(&fd);
	return 0;
}
