/* Held ports: which hub a port hangs on, and whether a port is held. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "host/hold.h"

static struct usb_port port(const char *s)
{
	struct usb_port p;

	assert_int_equal(port_parse(s, &p), 0);
	return p;
}

static void test_parent(void **state)
{
	static const struct {
		const char *port, *hub;
	} cases[] = {
		{ "3-4", "usb3" },
		{ "11-2", "usb11" },
		{ "3-4.1", "3-4" },
		{ "1-1.3.1", "1-1.3" },
		{ "1-1.2.3.4.5.6", "1-1.2.3.4.5" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usb_port p = port(cases[i].port);
		char buf[PORT_STRLEN];

		hold_parent_name(&p, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].hub);
	}
}

static void test_is_held(void **state)
{
	struct hold_hub hubs[2] = { { .name = "usb1", .fd = 7 }, { .name = "1-1", .fd = -1 } };
	struct hold h = { .hubs = hubs, .n = 2 };
	struct usb_port p;

	(void)state;
	hubs[0].held[0] = 1u << 1;  /* usb1 port 1 */
	hubs[0].held[31] = 1u << 7; /* usb1 port 255 */
	hubs[1].held[0] = 0xff;	    /* 1-1's ports, but its file could not be opened */
	p = port("1-1");
	assert_true(hold_is_held(&h, &p));
	p = port("1-2");
	assert_false(hold_is_held(&h, &p));
	p = port("1-255");
	assert_true(hold_is_held(&h, &p));
	p = port("2-1");
	assert_false(hold_is_held(&h, &p));
	p = port("1-1.1");
	assert_false(hold_is_held(&h, &p));
	p = port("1-1.1.1");
	assert_false(hold_is_held(&h, &p));
}

static void test_wanted(void **state)
{
	/* VM a: 1-1 but not 1-1.2 (but 1-1.2.3 again); VM b: 1-1.2.4; VM c:
	 * 2-3 and deny 2-3 */
	struct hold_rule rules[] = {
		{ port("1-1"), false, 0, "VM a" },     { port("1-1.2"), true, 0, "VM a" },
		{ port("1-1.2.3"), false, 0, "VM a" }, { port("1-1.2.4"), false, 1, "VM b" },
		{ port("2-3"), false, 2, "VM c" },     { port("2-3"), true, 2, "VM c" },
	};
	static const struct {
		const char *port;
		bool held;
	} cases[] = {
		{ "1-1", true },       { "1-1.1", true },      { "1-1.2", false },
		{ "1-1.2.1", false },  { "1-1.2.3", true },    { "1-1.2.3.1", true },
		{ "1-1.2.4", true },   { "1-2", false },       { "2-3", false },
		{ "2-3.1", false },    { "3-1", false },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usb_port p = port(cases[i].port);

		if (hold_wanted(rules, sizeof(rules) / sizeof(rules[0]), &p) != cases[i].held)
			fail_msg("%s: held %d, expected %d", cases[i].port, !cases[i].held, cases[i].held);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parent),
		cmocka_unit_test(test_is_held),
		cmocka_unit_test(test_wanted),
	};
	return cmocka_run_group_tests_name("hold", tests, NULL, NULL);
}
