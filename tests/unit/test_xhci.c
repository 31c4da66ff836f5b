/* Which controller and port a device gets (xhci_pick is pure). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "xhci.h"

static struct xhci_ctrl ctrl(const char *id, unsigned p2, unsigned p3, uint32_t taken)
{
	struct xhci_ctrl c = { .p2 = p2, .p3 = p3, .taken = taken };

	strcpy(c.id, id);
	c.ours = strncmp(id, XHCI_OWN_PREFIX, strlen(XHCI_OWN_PREFIX)) == 0;
	return c;
}

#define PORTS(...) (ports_mask((const unsigned[]){ __VA_ARGS__, 0 }))
static uint32_t ports_mask(const unsigned *p)
{
	uint32_t m = 0;

	for (; *p; p++)
		m |= 1u << *p;
	return m;
}

static void test_pick(void **state)
{
	struct xhci_set set = { 0 };
	size_t ci;
	unsigned port;
	(void)state;

	/* nothing at all */
	assert_int_equal(xhci_pick(&set, false, 0, &ci, &port), -ENOSPC);

	/* Proxmox's: top down, above the usbN ports */
	set.n = 1;
	set.c[0] = ctrl("xhci", 15, 15, 0);
	assert_int_equal(xhci_pick(&set, false, 3, &ci, &port), 0);
	assert_int_equal(port, 15);
	set.c[0].taken = PORTS(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5);
	assert_int_equal(xhci_pick(&set, false, 3, &ci, &port), 0);
	assert_int_equal(port, 4);
	assert_int_equal(xhci_pick(&set, true, 4, &ci, &port), -ENOSPC);
	/* another controller of the VM's is used, reserved ports are only xhci's */
	set.n = 2;
	set.c[1] = ctrl("myxhci", 2, 2, 0);
	assert_int_equal(xhci_pick(&set, false, 4, &ci, &port), 0);
	assert_int_equal(ci, 1);
	assert_int_equal(port, 2);
	/* the tool's own comes first */
	set.n = 3;
	set.c[2] = ctrl("usbhotplug-xhci0", 15, 15, PORTS(15));
	assert_int_equal(xhci_pick(&set, false, 4, &ci, &port), 0);
	assert_int_equal(ci, 2);
	assert_int_equal(port, 14);

	/* speed: SuperSpeed needs a port <= p3, the others <= p2 */
	set.n = 1;
	set.c[0] = ctrl("xhci", 2, 4, 0);
	assert_int_equal(xhci_pick(&set, true, 0, &ci, &port), 0);
	assert_int_equal(port, 4);
	assert_int_equal(xhci_pick(&set, false, 0, &ci, &port), 0);
	assert_int_equal(port, 2);
	set.c[0] = ctrl("xhci", 4, 2, PORTS(4, 3));
	assert_int_equal(xhci_pick(&set, false, 0, &ci, &port), 0);
	assert_int_equal(port, 2);
	set.c[0].taken |= PORTS(2, 1);
	assert_int_equal(xhci_pick(&set, true, 0, &ci, &port), -ENOSPC);
}

static void test_speed(void **state)
{
	(void)state;
	assert_false(xhci_is_superspeed("1.5"));
	assert_false(xhci_is_superspeed("12"));
	assert_false(xhci_is_superspeed("480"));
	assert_false(xhci_is_superspeed(""));
	assert_false(xhci_is_superspeed("5000x"));
	assert_true(xhci_is_superspeed("5000"));
	assert_true(xhci_is_superspeed("10000"));
	assert_true(xhci_is_superspeed("20000"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pick),
		cmocka_unit_test(test_speed),
	};
	return cmocka_run_group_tests_name("xhci", tests, NULL, NULL);
}
