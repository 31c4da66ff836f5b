/* The tool's own INI: defaults, values, and messages naming the line. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/settings.h"

static char *errors; /* what went to stderr, captured */

static int capture(const char *text, struct settings *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	FILE *saved = stderr;
	int r;

	stderr = mem;
	r = settings_load_string(s, text, "test.conf");
	stderr = saved;
	fclose(mem);
	free(errors);
	errors = buf;
	return r;
}

static void test_defaults(void **state)
{
	struct settings s;
	(void)state;

	assert_int_equal(capture("", &s), 0);
	assert_string_equal(s.vm_config_dir, "/etc/pve/qemu-server");
	assert_string_equal(s.qmp_socket_dir, "/var/run/qemu-server");
	assert_string_equal(s.state_dir, "/run/pve-usb-hotplug");
	assert_int_equal(s.qmp_timeout_ms, 5000);
	assert_int_equal(s.run_timeout_ms, 90000);
	assert_string_equal(s.retry_command, "/usr/bin/systemd-run");
	assert_int_equal(s.log_level, LOG_LVL_INFO);
	assert_true(s.log_syslog);
}

static void test_values(void **state)
{
	struct settings s;
	(void)state;

	assert_int_equal(capture("; comment\n[paths]\nvm_config_dir = /tmp/a\n"
				 "[qmp]\ntimeout_ms=250\n[log]\nlevel = debug\nsyslog = no\n",
				 &s),
			 0);
	assert_string_equal(s.vm_config_dir, "/tmp/a");
	assert_string_equal(s.state_dir, "/run/pve-usb-hotplug");
	assert_int_equal(s.qmp_timeout_ms, 250);
	assert_int_equal(s.log_level, LOG_LVL_DEBUG);
	assert_false(s.log_syslog);
}

static void test_errors_name_lines(void **state)
{
	static const struct {
		const char *text, *message;
	} cases[] = {
		{ "[qmp]\ntimeout_ms = 5s\n", "test.conf:2: timeout_ms must be a whole number of milliseconds from 10 to 600000 (got '5s')" },
		{ "[qmp]\n\ntimeout_ms = 0\n", "test.conf:3: timeout_ms must be a whole number" },
		{ "[qmp]\ntimeout_ms = 600001\n", "test.conf:2: timeout_ms must be a whole number" },
		{ "[paths]\nvm_config_dir = relative\n", "test.conf:2: vm_config_dir must be an absolute path" },
		{ "[paths]\nsocket = /x\n", "test.conf:2: unknown key 'socket' in section [paths]" },
		{ "[colours]\nred = 1\n", "test.conf:2: unknown section [colours] (key 'red')" },
		{ "level = info\n", "test.conf:1: 'level' is outside any section" },
		{ "[log]\nlevel = loud\n", "test.conf:2: level must be one of error, warning, info, debug" },
		{ "[log]\nsyslog = maybe\n", "test.conf:2: syslog must be yes or no" },
		{ "[log]\njust words\n", "test.conf:2: expected '[section]' or 'key = value'" },
		/* inih's own: an unterminated section header */
		{ "[paths]\n\n[qmp\ntimeout_ms = 5\n", "test.conf:3: a section header needs its closing ']'" },
		{ "[run]\ntimeout_ms = 180000\n", "test.conf:2: timeout_ms must be a whole number of milliseconds from 10 to 170000 (udev ends a program after 180 s)" },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct settings s;

		assert_int_equal(capture(cases[i].text, &s), -22);
		if (!strstr(errors, cases[i].message))
			fail_msg("case %zu: '%s' not in '%s'", i, cases[i].message, errors);
	}
}

/* A section nobody knows, even without a key: a keyless [xem NAME], a typo
 * of [xen NAME], would leave the guest without devices and nobody told. */
static void test_unknown_sections(void **state)
{
	static const struct {
		const char *text, *message;
	} cases[] = {
		{ "[xem win11]\n", "test.conf:1: unknown section [xem win11]; known: [paths], [qmp], [lock], [run], [retry], [log], [lxc], [qemu NAME], [xen NAME], [libvirt NAME]\n" },
		{ "[xen a]\n\n[ xem  b ]\n[qmp]\ntimeout_ms = 50\n", "test.conf:3: unknown section [xem  b]; known: " },
		{ "[paths]\n[xen]\n; nothing\n", "test.conf:2: unknown section [xen]; known: " },
		{ "[qemu a]\nqmp = /q\n[colour]\n[colours]\n", "test.conf:3: unknown section [colour]; known: " },
		{ "[qemu a]\nqmp = /q\n[colour]\n[colours]\n", "test.conf:4: unknown section [colours]; known: " },
	};
	struct settings s;
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(capture(cases[i].text, &s), -EINVAL);
		if (!strstr(errors, cases[i].message))
			fail_msg("case %zu: '%s' not in '%s'", i, cases[i].message, errors);
	}
	/* with a key, one message, the one naming the key */
	assert_int_equal(capture("[colours]\nred = 1\ngreen = 2\n", &s), -EINVAL);
	assert_null(strstr(errors, "test.conf:1:"));
	/* known sections may be empty */
	assert_int_equal(capture("[paths]\n[log]\n[xen win11]\n", &s), 0);
	assert_string_equal(errors, "");
}

static void test_bad_line_keeps_the_good_ones(void **state)
{
	struct settings s;
	(void)state;

	/* lock_dir: the older name of state_dir */
	assert_true(capture("[qmp]\ntimeout_ms = x\n[paths]\nlock_dir = /tmp/l\n", &s) < 0);
	assert_string_equal(s.state_dir, "/tmp/l");
	assert_int_equal(s.qmp_timeout_ms, 5000);
}

static void test_long_line(void **state)
{
	struct settings s;
	char text[2048];
	(void)state;

	snprintf(text, sizeof(text), "[paths]\nstate_dir = /%01500d\n[qmp]\ntimeout_ms = 77\n", 0);
	assert_true(capture(text, &s) < 0);
	assert_non_null(strstr(errors, "test.conf:2: line longer than"));
	assert_int_equal(s.qmp_timeout_ms, 77); /* and line 4 is still line 4 */
}

static void test_guests(void **state)
{
	struct settings s;
	(void)state;

	assert_int_equal(capture("[qemu desk]\nqmp = /run/desk.qmp\npidfile = /run/desk.pid\n"
				 "[xen win-10]\n[qemu lab.2]\nqmp=/q/*.qmp\nqemu_name = lab\nrules = /r/lab\n",
				 &s),
			 0);
	assert_int_equal(s.n_guests, 3);
	assert_int_equal(s.guests[0].kind, GUEST_QEMU);
	assert_string_equal(s.guests[0].name, "desk");
	assert_string_equal(s.guests[0].qmp, "/run/desk.qmp");
	assert_string_equal(s.guests[0].pidfile, "/run/desk.pid");
	assert_string_equal(s.guests[0].rules, "test.conf.d/desk.usb.conf");
	assert_string_equal(s.guests[0].origin, "test.conf:1");
	/* Xen's defaults: libxl's sockets, the QEMU named as the domain */
	assert_int_equal(s.guests[1].kind, GUEST_XEN);
	assert_string_equal(s.guests[1].qmp, "/var/run/xen/qmp-libxl-*");
	assert_string_equal(s.guests[1].qemu_name, "win-10");
	assert_string_equal(s.guests[1].origin, "test.conf:4");
	assert_string_equal(s.guests[2].qemu_name, "lab");
	assert_string_equal(s.guests[2].rules, "/r/lab");

	/* libvirt: the system instance, the domain of the same name */
	assert_int_equal(capture("[libvirt win11]\n[libvirt lab]\nuri = qemu+ssh://h/system\ndomain = Lab VM\n"
				 "[libvirt bad]\nqmp = /x\n",
				 &s),
			 -EINVAL);
	assert_int_equal(s.guests[0].kind, GUEST_LIBVIRT);
	assert_string_equal(s.guests[0].uri, "qemu:///system");
	assert_string_equal(s.guests[0].domain, "win11");
	assert_string_equal(s.guests[1].uri, "qemu+ssh://h/system");
	assert_string_equal(s.guests[1].domain, "Lab VM");
	assert_non_null(strstr(errors, "test.conf:6: unknown key 'qmp' in section [libvirt bad]; known: uri, domain, rules"));

	static const struct {
		const char *name;
		bool ok;
	} names[] = {
		{ "a", true },	      { "9lives", true },  { "win10.lab_2-b", true },
		{ "", false },	      { "100", false },	   { "-x", false },
		{ ".x", false },      { "a b", false },	   { "a/b", false },
		{ "a+b", false },
		{ "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv", true },
		{ "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvw", false },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (settings_guest_name_valid(names[i].name) != names[i].ok)
			fail_msg("'%s' should be %s", names[i].name, names[i].ok ? "valid" : "refused");

	assert_int_equal(capture("[qemu a]\nqmp = /a\n[xen a]\nqmp = /b\n[qemu b]\nfoo = 1\n"
				 "[qemu c]\nqemu_name = x\"y\n",
				 &s),
			 -EINVAL);
	assert_non_null(strstr(errors, "test.conf:3: 'a' is declared as [qemu a] already (test.conf:1)"));
	/* told once for the section, not once more for its key */
	assert_null(strstr(errors, "test.conf:4:"));
	assert_non_null(strstr(errors, "test.conf:6: unknown key 'foo' in section [qemu b]"));
	assert_non_null(strstr(errors, "test.conf:8: qemu_name must be QEMU's -name of the guest"));
	assert_non_null(strstr(errors, "test.conf:5: [qemu b] needs 'qmp = PATH'"));
}

static void test_files(void **state)
{
	struct settings s;
	char dir[] = "/tmp/puh-settings-XXXXXX";
	(void)state;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(settings_load(&s, "/nonexistent/pve-usb-hotplug.conf"), 0);
	assert_true(settings_load(&s, dir) < 0); /* a directory */
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_errors_name_lines),
		cmocka_unit_test(test_unknown_sections),
		cmocka_unit_test(test_bad_line_keeps_the_good_ones),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_guests),
		cmocka_unit_test(test_files),
	};
	int r;

	log_setup(LOG_LVL_ERROR, NULL, 0);
	r = cmocka_run_group_tests_name("settings", tests, NULL, NULL);
	free(errors);
	return r;
}
