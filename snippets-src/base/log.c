#include "base/log.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

static enum log_level max_level = LOG_LVL_INFO;
static FILE *info_out;
static int syslog_on;
static const char *journal_stream; /* JOURNAL_STREAM, or NULL */
static bool to_journal;

void log_journal_stream(const char *value)
{
	journal_stream = value && value[0] ? value : NULL;
}

/* Whether f is the journal's stream of this unit: systemd names it in
 * JOURNAL_STREAM as DEVICE:INODE. */
static bool is_journal(FILE *f)
{
	unsigned long long dev, ino;
	struct stat st;

	return f && journal_stream && sscanf(journal_stream, "%llu:%llu", &dev, &ino) == 2 &&
	       fstat(fileno(f), &st) == 0 && (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

bool log_to_journal(void)
{
	return to_journal;
}

void log_setup(enum log_level level, FILE *info_stream, int use_syslog)
{
	max_level = level;
	info_out = info_stream;
	/* Under systemd both streams are the journal already: syslog would
	 * write every line a second time. The streams then carry each line's
	 * priority as the journal reads it ("<3>"). */
	to_journal = is_journal(stderr) && (!info_stream || is_journal(info_stream));
	if (to_journal) {
		use_syslog = 0;
		if (!info_out)
			info_out = stderr;
	}
	if (use_syslog && !syslog_on)
		openlog("pve-usb-hotplug", LOG_PID, LOG_DAEMON);
	else if (!use_syslog && syslog_on)
		closelog();
	syslog_on = use_syslog;
}

int log_level_from_string(const char *s, enum log_level *ret)
{
	static const char *const names[] = {
		[LOG_LVL_ERROR] = "error",
		[LOG_LVL_WARNING] = "warning",
		[LOG_LVL_INFO] = "info",
		[LOG_LVL_DEBUG] = "debug",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0) {
			*ret = (enum log_level)i;
			return 0;
		}
	return -EINVAL;
}

static void log_va(enum log_level level, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[2048];
	FILE *out;

	if (level > max_level)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	/* One message, one line: whatever an argument brought in (QEMU's
	 * words, a file's bytes) never starts a line of its own or drives a
	 * terminal. Callers escape what they quote; this is the backstop. */
	for (char *c = line; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	if (syslog_on)
		syslog(prio[level], "%s", line);

	out = level <= LOG_LVL_WARNING ? stderr : info_out;
	if (out) {
		const char *tag = level == LOG_LVL_ERROR	 ? "error: "
				  : level == LOG_LVL_WARNING ? "warning: "
							     : "";
		if (to_journal)
			fprintf(out, "<%d>", prio[level]);
		fprintf(out, "pve-usb-hotplug: %s%s\n", tag, line);
		fflush(out);
	}
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_va(level, fmt, ap);
	va_end(ap);
}

int log_err(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_va(LOG_LVL_ERROR, fmt, ap);
	va_end(ap);
	/* an error was logged: never report success */
	if (err == 0)
		return -EIO;
	return err < 0 ? err : -err;
}

char *log_escape(const char *in, char *out, size_t out_size)
{
	return log_escape_n(in, strlen(in), out, out_size);
}

char *log_escape_n(const char *in, size_t len, char *out, size_t out_size)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *end = (const unsigned char *)in + len;
	size_t o = 0;

	if (out_size == 0)
		return out;
	for (const unsigned char *p = (const unsigned char *)in; p < end; p++) {
		char buf[4];
		size_t n;

		if (*p == '\\' || *p == '"') {
			buf[0] = '\\';
			buf[1] = (char)*p;
			n = 2;
		} else if (*p >= 0x20 && *p < 0x7f) {
			buf[0] = (char)*p;
			n = 1;
		} else {
			buf[0] = '\\';
			buf[1] = 'x';
			buf[2] = hex[*p >> 4];
			buf[3] = hex[*p & 0xf];
			n = 4;
		}
		if (o + n >= out_size)
			break;
		memcpy(out + o, buf, n);
		o += n;
	}
	out[o] = '\0';
	return out;
}

int log_read_error(int r, const char *path, const char *kind, size_t max)
{
	if (r == -EINVAL)
		return log_err(r, "%s: not a regular file", path);
	if (r == -EFBIG)
		return log_err(r, "%s: larger than the %zu bytes a %s may have", path, max, kind);
	return log_err(r, "%s: cannot read: %s", path, strerror(-r));
}
