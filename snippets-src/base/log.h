/* Logging: every message goes to syslog (tag "pve-usb-hotplug"); errors and
 * warnings also to stderr, information to the stream chosen by log_setup()
 * (stdout for the hookscript and operator commands, so Proxmox shows it in
 * the task log). Arguments are always data, never a format. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

enum log_level {
	LOG_LVL_ERROR,
	LOG_LVL_WARNING,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

/* info_stream: where info and debug lines go besides syslog (NULL: only
 * syslog). use_syslog: false keeps syslog out (tests, --no-syslog). When
 * stderr and info_stream are the journal's stream (log_journal_stream()),
 * syslog is left out, since every line reached the journal twice, and each
 * line starts with its priority ("<6>") for the journal to read. */
void log_setup(enum log_level max_level, FILE *info_stream, int use_syslog);

/* systemd's JOURNAL_STREAM ("DEVICE:INODE" of the unit's output; NULL or
 * "": none), read by main; used by the next log_setup(). */
void log_journal_stream(const char *value);

/* Whether the last log_setup() found the streams to be the journal. */
bool log_to_journal(void);

/* "error", "warning", "info", "debug" -> level. 0 or -EINVAL. */
int log_level_from_string(const char *s, enum log_level *ret);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Logs at error level and returns -|err| (-EIO for 0: an error is never
 * success), for "return log_err(r, ...)". Every line is one line: control
 * characters that reach it are shown as '?'. */
int log_err(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

/* Explains a failed util_read_file() of path: "not a regular file", "larger
 * than the MAX bytes a KIND may have", "cannot read: ...". Returns r. */
int log_read_error(int r, const char *path, const char *kind, size_t max);

/* Makes untrusted bytes (strings a USB device reports about itself) safe for
 * a log line: printable ASCII stays, '\\' and '"' are escaped, everything
 * else becomes \xNN. Truncates to fit, returns out. */
char *log_escape(const char *in, char *out, size_t out_size);

/* The same for the first len bytes of in. */
char *log_escape_n(const char *in, size_t len, char *out, size_t out_size);
