#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t util_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int util_remaining_ms(int64_t deadline_ms)
{
	int64_t left = deadline_ms - util_now_ms();

	if (left < 0)
		return 0;
	if (left > INT32_MAX)
		return INT32_MAX;
	return (int)left;
}

int util_parse_uint_n(const char *s, size_t len, unsigned long max,
		      unsigned long *ret)
{
	unsigned long v = 0;

	if (len == 0 || (len > 1 && s[0] == '0'))
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned long d;

		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		d = (unsigned long)(s[i] - '0');
		/* d > max first: (max - d) must not wrap around */
		if (d > max || v > (max - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*ret = v;
	return 0;
}

int util_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int util_parse_hex_n(const char *s, size_t len, size_t max_digits, unsigned long *ret)
{
	unsigned long v = 0;

	if (len == 0 || len > max_digits || max_digits > 2 * sizeof(v))
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int d = util_hex_digit(s[i]);

		if (d < 0)
			return -EINVAL;
		v = v * 16 + (unsigned long)d;
	}
	*ret = v;
	return 0;
}

int util_parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	return util_parse_uint_n(s, strlen(s), max, ret);
}

bool util_startswith(const char *s, const char *prefix)
{
	/* prefixes are short: a loop costs less than strlen() and strncmp() */
	while (*prefix)
		if (*s++ != *prefix++)
			return false;
	return true;
}

int util_strlcpy(char *dst, const char *src, size_t n)
{
	size_t len = strlen(src);

	if (n == 0)
		return -ENAMETOOLONG;
	if (len >= n) {
		memcpy(dst, src, n - 1);
		dst[n - 1] = '\0';
		return -ENAMETOOLONG;
	}
	memcpy(dst, src, len + 1);
	return 0;
}

int util_read_file(const char *path, bool nofollow, size_t max, char **ret, size_t *ret_len)
{
	return util_read_file_at(AT_FDCWD, path, nofollow, max, ret, ret_len);
}

int util_read_file_at(int dirfd, const char *name, bool nofollow, size_t max, char **ret,
		      size_t *ret_len)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t got = 0;

	fd = openat(dirfd, name,
		    O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | (nofollow ? O_NOFOLLOW : 0));
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if ((unsigned long long)st.st_size > max)
		return -EFBIG;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	/* one byte more than stat said, to notice a file that grew */
	while (got <= (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size + 1 - got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got > (size_t)st.st_size)
		return -EFBIG;
	buf[got] = '\0';
	*ret = steal_ptr(&buf);
	*ret_len = got;
	return 0;
}

int util_write_file_at(int dirfd, const char *name, const char *data, size_t len)
{
	char tmp[256];
	int fd, r = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.new", name) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	/* whatever is there (a leftover, anything) goes; a new file is made */
	if (unlinkat(dirfd, tmp, 0) < 0 && errno != ENOENT)
		return -errno;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return -errno;
	while (len > 0 && r == 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno != EINTR)
			r = -errno;
		else if (n > 0) {
			data += n;
			len -= (size_t)n;
		}
	}
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(dirfd, tmp, 0);
	return r;
}
