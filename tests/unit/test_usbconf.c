/* .usb.conf lines: what parses, and what the error says. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "usbconf.h"

static void test_lines(void **state)
{
	static const struct {
		const char *line;
		int result;
		const char *port_or_error;
	} cases[] = {
		{ "3-4", 1, "3-4" },
		{ "  3-4.1  ", 1, "3-4.1" },
		{ "\t11-12\r", 1, "11-12" },
		{ "port 3-4", 1, "3-4" },
		{ "port\t3-4 # comment", 1, "3-4" },
		{ "3-4#comment", 1, "3-4" },
		{ "", 0, NULL },
		{ "   ", 0, NULL },
		{ "# only a comment", 0, NULL },
		{ "3-x", -1, "'3-x' is neither a port nor a known rule (expected BUS-PORT[.PORT...] such as 3-4 or 3-4.1)" },
		{ "port", -1, "'port' needs a port, e.g. 'port 3-4'" },
		{ "port 3", -1, "'3' is not a USB port (expected BUS-PORT[.PORT...] such as 3-4 or 3-4.1)" },
		{ "3-4 3-5", -1, "unexpected text after the port; one rule a line" },
		{ "3-4\"\x01", -1, "'3-4\\\"\\x01' is neither a port nor a known rule (expected BUS-PORT[.PORT...] such as 3-4 or 3-4.1)" },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usb_rule rule;
		char err[256] = "", port[PORT_STRLEN];
		int r = usbconf_parse_line(cases[i].line, strlen(cases[i].line), &rule, err, sizeof(err));

		if (cases[i].result > 0) {
			assert_int_equal(r, 1);
			port_format(&rule.port, port, sizeof(port));
			assert_string_equal(port, cases[i].port_or_error);
		} else if (cases[i].result == 0) {
			assert_int_equal(r, 0);
		} else {
			assert_true(r < 0);
			assert_string_equal(err, cases[i].port_or_error);
		}
	}
}

static void test_nul_byte(void **state)
{
	struct usb_rule rule;
	char err[256];
	(void)state;

	assert_true(usbconf_parse_line("3-4\0x", 5, &rule, err, sizeof(err)) < 0);
	assert_string_equal(err, "the line contains a NUL byte");
	/* after the comment sign it does not matter */
	assert_int_equal(usbconf_parse_line("3-4#\0", 5, &rule, err, sizeof(err)), 1);
}

static void test_text(void **state)
{
	static const char text[] = "3-4\nnonsense\n\n5-1.2\n# c\n7-1";
	struct vm_rules *r;
	(void)state;

	assert_int_equal(usbconf_parse_text(text, sizeof(text) - 1, "x.usb.conf", 100, &r), 0);
	assert_int_equal(r->n_rules, 3);
	assert_int_equal(r->n_errors, 1);
	assert_int_equal(r->rules[1].line, 4);
	assert_int_equal(r->rules[2].line, 6);
	usbconf_free(r);
}

static void test_match_is_deepest_prefix(void **state)
{
	static const char text[] = "3-4\n3-4.2\n";
	struct vm_rules *r;
	struct usb_port p;
	(void)state;

	assert_int_equal(usbconf_parse_text(text, sizeof(text) - 1, "x", 100, &r), 0);
	assert_int_equal(port_parse("3-4.2.1", &p), 0);
	assert_int_equal(usbconf_match(r, &p), 2);
	assert_int_equal(port_parse("3-4.1", &p), 0);
	assert_int_equal(usbconf_match(r, &p), 1);
	assert_int_equal(port_parse("3-40", &p), 0);
	assert_int_equal(usbconf_match(r, &p), 0);
	usbconf_free(r);
}

static void test_vmid(void **state)
{
	unsigned long v;
	(void)state;

	assert_int_equal(usbconf_parse_vmid("100", &v), 0);
	assert_int_equal(v, 100);
	assert_int_equal(usbconf_parse_vmid("999999999", &v), 0);
	assert_true(usbconf_parse_vmid("99", &v) < 0);
	assert_true(usbconf_parse_vmid("1000000000", &v) < 0);
	assert_true(usbconf_parse_vmid("0100", &v) < 0);
	assert_true(usbconf_parse_vmid("100a", &v) < 0);
	assert_true(usbconf_parse_vmid("../100", &v) < 0);
	assert_true(usbconf_parse_vmid("", &v) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_match_is_deepest_prefix),
		cmocka_unit_test(test_vmid),
	};
	log_setup(LOG_LVL_ERROR, NULL, 0);
	return cmocka_run_group_tests_name("usbconf", tests, NULL, NULL);
}
