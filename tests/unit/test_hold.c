/* Held ports: whether a port is held, from the hub files held now. */
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

static void test_is_held(void **state)
{
	struct hold_hub hubs[2] = { { .name = "usb1", .fd = 7 }, { .name = "1-1", .fd = -1 } };
	struct hold h = { .hubs = hubs, .n = 2 };
	static const struct {
		const char *port;
		bool held;
	} cases[] = {
		{ "1-1", true },   { "1-2", false },   { "1-255", true },
		{ "2-1", false },  { "1-1.1", false }, /* its hub's file could not be opened */
		{ "1-1.1.1", false },
	};

	(void)state;
	holdplan_ports_set(&hubs[0].held, 1, true);
	holdplan_ports_set(&hubs[0].held, 255, true);
	for (unsigned p = 1; p <= 8; p++)
		holdplan_ports_set(&hubs[1].held, p, true);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct usb_port p = port(cases[i].port);

		if (hold_is_held(&h, &p) != cases[i].held)
			fail_msg("%s: held %d, expected %d", cases[i].port, !cases[i].held, cases[i].held);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_is_held),
	};
	return cmocka_run_group_tests_name("hold", tests, NULL, NULL);
}
