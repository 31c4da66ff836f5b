/* Small helpers shared by every module: scope-bound cleanup, deadlines,
 * strict number parsing. Nothing here logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static inline void freep(void *p)
{
	free(*(void **)p);
}

static inline void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

/* Hand ownership on: returns *p and leaves NULL (or -1) behind. */
#define steal_ptr(p)                                                           \
	({                                                                     \
		__typeof__(*(p)) _v = *(p);                                    \
		*(p) = NULL;                                                   \
		_v;                                                            \
	})
#define steal_fd(p)                                                            \
	({                                                                     \
		int _fd = *(p);                                                \
		*(p) = -1;                                                     \
		_fd;                                                           \
	})

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Monotonic milliseconds. */
int64_t util_now_ms(void);

/* Milliseconds left until deadline, never negative. */
int util_remaining_ms(int64_t deadline_ms);

/* Parses a decimal number with no sign, no leading zero (except "0"), no
 * trailing bytes, at most max. Returns 0 or -EINVAL / -ERANGE. */
int util_parse_uint(const char *s, unsigned long max, unsigned long *ret);

/* Same over the first len bytes of s. */
int util_parse_uint_n(const char *s, size_t len, unsigned long max,
		      unsigned long *ret);

/* The one hex parser: a digit's value (0-15), or -1 for anything else. */
int util_hex_digit(char c);

/* The first len bytes of s as 1 to max_digits hex digits (either case, no
 * "0x", no sign, nothing else): 0 with *ret, -EINVAL otherwise. max_digits
 * 4 reads a USB id, 2 a class byte. */
int util_parse_hex_n(const char *s, size_t len, size_t max_digits, unsigned long *ret);

/* true if s starts with prefix. */
bool util_startswith(const char *s, const char *prefix);

/* Copies src into dst (size n), always terminated. Returns -ENAMETOOLONG
 * when src did not fit. */
int util_strlcpy(char *dst, const char *src, size_t n);

/* Reads a whole regular file of at most max bytes into a NUL-terminated
 * malloc()ed buffer. nofollow: refuse a symbolic link. Returns 0, or
 * -ENOENT, -ELOOP (a link, with nofollow), -EINVAL (not a regular file),
 * -EFBIG (larger than max, or grew while read), other -errno. Logs nothing. */
int util_read_file(const char *path, bool nofollow, size_t max, char **ret, size_t *ret_len);

/* The same for name relative to the directory dirfd (AT_FDCWD: the
 * working directory). */
int util_read_file_at(int dirfd, const char *name, bool nofollow, size_t max, char **ret,
		      size_t *ret_len);

/* Replaces name in the directory dirfd with data (mode 0600), atomically:
 * a new file NAME.new (whatever was there first is removed, never followed
 * or opened) renamed over it. 0 or -errno. */
int util_write_file_at(int dirfd, const char *name, const char *data, size_t len);
