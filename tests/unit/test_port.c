/* Port names: parsing and whole-component prefix matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "host/port.h"

static void test_parse(void **state)
{
	static const struct {
		const char *in;
		int ok;
		const char *formatted;
	} cases[] = {
		{ "3-4", 1, "3-4" },
		{ "3-4.1.2", 1, "3-4.1.2" },
		{ "11-2", 1, "11-2" },
		{ "3-14", 1, "3-14" },
		{ "999-255", 1, "999-255" },
		{ "1-1.2.3.4.5.6.7", 1, "1-1.2.3.4.5.6.7" },
		{ "1-1.2.3.4.5.6.7.8", 0, NULL },
		{ "3", 0, NULL },
		{ "3-", 0, NULL },
		{ "-4", 0, NULL },
		{ "3-4.", 0, NULL },
		{ "3-4..1", 0, NULL },
		{ "3-04", 0, NULL },
		{ "03-4", 0, NULL },
		{ "0-4", 0, NULL },
		{ "3-0", 0, NULL },
		{ "3-256", 0, NULL },
		{ "1000-1", 0, NULL },
		{ "usb3", 0, NULL },
		{ "3-4:1.0", 0, NULL },
		{ "3-4 ", 0, NULL },
		{ " 3-4", 0, NULL },
		{ "3-4.1-2", 0, NULL },
		{ "3-+4", 0, NULL },
		{ "", 0, NULL },
		{ "99999999999999999999-1", 0, NULL },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usb_port p;
		char buf[PORT_STRLEN];
		int r = port_parse(cases[i].in, &p);

		if (cases[i].ok) {
			assert_int_equal(r, 0);
			port_format(&p, buf, sizeof(buf));
			assert_string_equal(buf, cases[i].formatted);
		} else if (r == 0) {
			fail_msg("'%s' parsed but must not", cases[i].in);
		}
	}
}

static void test_is_under(void **state)
{
	static const struct {
		const char *dev, *prefix;
		int under;
	} cases[] = {
		{ "3-4", "3-4", 1 },
		{ "3-4.1", "3-4", 1 },
		{ "3-4.1.2", "3-4", 1 },
		{ "3-4.1.2", "3-4.1", 1 },
		{ "3-40", "3-4", 0 },
		{ "3-41.2", "3-4", 0 },
		{ "3-14", "3-1", 0 },
		{ "3-4", "3-4.1", 0 },
		{ "4-4", "3-4", 0 },
		{ "13-4", "3-4", 0 },
		{ "3-4.10", "3-4.1", 0 },
		{ "11-2.3", "11-2", 1 },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usb_port d, p;

		assert_int_equal(port_parse(cases[i].dev, &d), 0);
		assert_int_equal(port_parse(cases[i].prefix, &p), 0);
		if (port_is_under(&d, &p) != (cases[i].under != 0))
			fail_msg("%s under %s: expected %d", cases[i].dev, cases[i].prefix, cases[i].under);
	}
}

static void test_hostport(void **state)
{
	struct usb_port p;
	char buf[PORT_STRLEN];
	(void)state;

	assert_int_equal(port_parse("12-4.1.2", &p), 0);
	port_format_hostport(&p, buf, sizeof(buf));
	assert_string_equal(buf, "4.1.2");
	assert_int_equal(p.bus, 12);
	/* a short buffer is cut as snprintf() cuts, always terminated */
	for (size_t n = 1; n <= sizeof("12-4.1.2"); n++) {
		char cut[16], want[16];

		memset(cut, 'x', sizeof(cut));
		port_format(&p, cut, n);
		snprintf(want, n, "%s", "12-4.1.2");
		assert_string_equal(cut, want);
	}
	assert_int_equal(port_parse("255-15.15.15.15.15.15.15", &p), 0);
	port_format(&p, buf, sizeof(buf));
	assert_string_equal(buf, "255-15.15.15.15.15.15.15");
}

static void test_compare(void **state)
{
	/* the one order: sorted already */
	static const char *const sorted[] = { "1-2", "3-4", "3-4.1", "3-4.1.2", "3-4.2", "3-10", "3-10.1", "11-1" };
	(void)state;

	for (size_t i = 0; i < sizeof(sorted) / sizeof(sorted[0]); i++)
		for (size_t k = 0; k < sizeof(sorted) / sizeof(sorted[0]); k++) {
			struct usb_port a, b;
			int c;

			assert_int_equal(port_parse(sorted[i], &a), 0);
			assert_int_equal(port_parse(sorted[k], &b), 0);
			c = port_compare(&a, &b);
			if ((i < k && c >= 0) || (i == k && c != 0) || (i > k && c <= 0))
				fail_msg("%s vs %s: %d", sorted[i], sorted[k], c);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_is_under),
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_compare),
	};
	return cmocka_run_group_tests_name("port", tests, NULL, NULL);
}
