/* Number parsing, the log's one-line contract, log_err's return, and how a
 * QEMU process of a VM is recognised from its command line. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "host/vmproc.h"

static void test_parse_hex(void **state)
{
	static const struct {
		const char *in;
		size_t max;
		int r;
		unsigned long v;
	} t[] = {
		{ "046d", 4, 0, 0x46d }, { "C52B", 4, 0, 0xc52b }, { "9", 2, 0, 9 },
		{ "09", 2, 0, 9 },	 { "ff", 2, 0, 0xff },	   { "", 4, -EINVAL, 0 },
		{ "046d1", 4, -EINVAL, 0 }, { "0x46", 4, -EINVAL, 0 }, { "4g", 4, -EINVAL, 0 },
		{ "-1", 4, -EINVAL, 0 },	 { " 1", 4, -EINVAL, 0 },  { "12345678", 17, -EINVAL, 0 },
	};
	unsigned long v;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		v = 12345;
		assert_int_equal(util_parse_hex_n(t[i].in, strlen(t[i].in), t[i].max, &v), t[i].r);
		assert_int_equal(v, t[i].r == 0 ? t[i].v : 12345);
	}
	assert_int_equal(util_hex_digit('a'), 10);
	assert_int_equal(util_hex_digit('F'), 15);
	assert_int_equal(util_hex_digit('g'), -1);
}

static void test_parse_uint(void **state)
{
	static const struct {
		const char *in;
		unsigned long max;
		int r;
		unsigned long v;
	} table[] = {
		{ "0", 10, 0, 0 },	  { "7", 7, 0, 7 },	    { "7", 5, -ERANGE, 0 },
		{ "9", 1, -ERANGE, 0 },	  { "10", 9, -ERANGE, 0 },  { "255", 255, 0, 255 },
		{ "256", 255, -ERANGE, 0 }, { "012", 99, -EINVAL, 0 }, { "", 9, -EINVAL, 0 },
		{ "1x", 99, -EINVAL, 0 },  { "-1", 99, -EINVAL, 0 },  { "18446744073709551615", (unsigned long)-1, 0, (unsigned long)-1 },
		{ "18446744073709551616", (unsigned long)-1, -ERANGE, 0 },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		unsigned long v = 12345;
		int r = util_parse_uint(table[i].in, table[i].max, &v);

		if (r != table[i].r || (r == 0 && v != table[i].v))
			fail_msg("'%s' max %lu: %d %lu", table[i].in, table[i].max, r, v);
	}
}

static char *captured(void (*fn)(void))
{
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len), *saved = stderr;

	stderr = mem;
	fn();
	stderr = saved;
	fclose(mem);
	return buf;
}

static int log_err_result;

static void log_hostile(void)
{
	log_setup(LOG_LVL_DEBUG, NULL, 0);
	log_err_result = log_err(0, "QEMU says: %s", "bad\nline\r\x1b[31mred\x7f");
}

static void test_log(void **state)
{
	char *out;
	char esc[64];
	(void)state;

	out = captured(log_hostile);
	/* one line, whatever came in */
	assert_string_equal(out, "pve-usb-hotplug: error: QEMU says: bad?line??[31mred?\n");
	/* an error is never success */
	assert_int_equal(log_err_result, -EIO);
	free(out);
	assert_int_equal(log_err(-ENOENT, "x"), -ENOENT);
	assert_int_equal(log_err(ENOENT, "x"), -ENOENT);
	assert_string_equal(log_escape("a\"b\\c\n\xff", esc, sizeof(esc)), "a\\\"b\\\\c\\x0a\\xff");
}

/* Under systemd (JOURNAL_STREAM names stderr) a line is written once, with
 * its priority for the journal, and syslog stays out. */
static void test_journal(void **state)
{
	char path[] = "/tmp/puh-journal-XXXXXX", stream[64], buf[256] = "";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	struct stat st;
	ssize_t n;
	(void)state;

	assert_true(fd >= 0 && saved >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	snprintf(stream, sizeof(stream), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	log_journal_stream(stream);
	log_setup(LOG_LVL_INFO, NULL, 1);
	assert_true(log_to_journal());
	log_error("bad %d", 1);
	log_info("fine");
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	assert_string_equal(buf, "<3>pve-usb-hotplug: error: bad 1\n<6>pve-usb-hotplug: fine\n");
	/* another stream than the journal's: as before */
	log_journal_stream("1:2");
	log_setup(LOG_LVL_INFO, NULL, 0);
	assert_false(log_to_journal());
	log_journal_stream(NULL);
	close(fd);
	unlink(path);
}

static void test_cmdline(void **state)
{
	static const char a[] = "/usr/bin/kvm\0-id\0100\0-pidfile\0/var/run/qemu-server/100.pid\0-daemonize";
	static const char b[] = "qemu\0-pidfile=/run/x/100.pid\0";
	static const char c[] = "sleep\0-pidfile";
	static const char d[] = "python3\0/var/run/qemu-server/100.pid\0";
	(void)state;

	assert_true(vmproc_cmdline_names(a, sizeof(a), "/var/run/qemu-server/100.pid"));
	assert_false(vmproc_cmdline_names(a, sizeof(a), "/var/run/qemu-server/10.pid"));
	assert_false(vmproc_cmdline_names(a, sizeof(a), "/var/run/qemu-server/100.pi"));
	assert_true(vmproc_cmdline_names(b, sizeof(b) - 1, "/run/x/100.pid"));
	assert_false(vmproc_cmdline_names(c, sizeof(c), "/run/x/100.pid"));
	assert_false(vmproc_cmdline_names(d, sizeof(d) - 1, "/var/run/qemu-server/100.pid"));
	/* no VM: a pid file that names this very process, which is no QEMU */
	{
		char dir[] = "/tmp/puh-vmproc-XXXXXX", path[64];
		FILE *f;

		assert_non_null(mkdtemp(dir));
		snprintf(path, sizeof(path), "%s/100.pid", dir);
		f = fopen(path, "w");
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
		/* a live pid, but not started with -pidfile naming the file */
		assert_int_equal(vmproc_pid(path), 0);
		assert_int_equal(vmproc_pid(""), 0);
		strcat(path, ".none");
		assert_int_equal(vmproc_pid(path), 0);
		path[strlen(path) - 5] = '\0';
		unlink(path);
		rmdir(dir);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_hex),
		cmocka_unit_test(test_parse_uint),
		cmocka_unit_test(test_log),
		cmocka_unit_test(test_journal),
		cmocka_unit_test(test_cmdline),
	};
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
