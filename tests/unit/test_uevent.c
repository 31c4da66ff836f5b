/* udev environments: what is handled, what is ignored and why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "host/uevent.h"

#define DEV "/devices/pci0000:00/0000:00:14.0/usb3/3-4/3-4.1"

struct env {
	const char *kv[12];
};

static const char *lookup(const char *key, void *ud)
{
	const struct env *e = ud;
	size_t kl = strlen(key);

	for (size_t i = 0; e->kv[i]; i++)
		if (strncmp(e->kv[i], key, kl) == 0 && e->kv[i][kl] == '=')
			return e->kv[i] + kl + 1;
	return NULL;
}

static void test_table(void **state)
{
	static const struct {
		struct env env;
		int handled;
		const char *reason;
	} cases[] = {
		{ { { "ACTION=add", "DEVPATH=" DEV, "SUBSYSTEM=usb", "DEVTYPE=usb_device", "BUSNUM=003", "TYPE=0/0/0", "PRODUCT=46d/c52b/1201" } }, 1, NULL },
		{ { { "ACTION=remove", "DEVPATH=" DEV } }, 1, NULL },
		{ { { "ACTION=bind", "DEVPATH=" DEV } }, 0, "action is neither add nor remove" },
		{ { { "ACTION=change", "DEVPATH=" DEV } }, 0, "action is neither add nor remove" },
		{ { { "DEVPATH=" DEV } }, 0, "no ACTION" },
		{ { { "ACTION=", "DEVPATH=" DEV } }, 0, "no ACTION" },
		{ { { "ACTION=add", "DEVPATH=" DEV ":1.0", "DEVTYPE=usb_interface" } }, 0, "not a USB device (an interface?)" },
		{ { { "ACTION=add", "DEVPATH=" DEV "/3-4.1:1.0" } }, 0, "a USB interface, not a device" },
		{ { { "ACTION=add", "DEVPATH=/devices/pci0000:00/0000:00:14.0/usb3" } }, 0, "a root hub" },
		{ { { "ACTION=add", "DEVPATH=" DEV, "TYPE=9/0/1" } }, 0, "a hub (hubs are never passed through)" },
		{ { { "ACTION=add", "DEVPATH=" DEV, "TYPE=junk" } }, 0, "TYPE malformed" },
		{ { { "ACTION=add", "DEVPATH=" DEV, "SUBSYSTEM=block" } }, 0, "not a USB event" },
		{ { { "ACTION=add", "DEVPATH=" DEV, "BUSNUM=004" } }, 0, "BUSNUM disagrees with DEVPATH" },
		{ { { "ACTION=add", "DEVPATH=" DEV, "BUSNUM=x" } }, 0, "BUSNUM disagrees with DEVPATH" },
		{ { { "ACTION=add" } }, 0, "DEVPATH missing or malformed" },
		{ { { "ACTION=add", "DEVPATH=" } }, 0, "DEVPATH missing or malformed" },
		{ { { "ACTION=add", "DEVPATH=/sys/bus/usb/devices/3-4" } }, 0, "DEVPATH missing or malformed" },
		{ { { "ACTION=add", "DEVPATH=/devices/../../etc/3-4" } }, 0, "DEVPATH missing or malformed" },
		{ { { "ACTION=add", "DEVPATH=/devices/./3-4" } }, 0, "DEVPATH missing or malformed" },
		{ { { "ACTION=add", "DEVPATH=/devices//3-4" } }, 0, "DEVPATH missing or malformed" },
		{ { { "ACTION=add", "DEVPATH=/devices/x/3-4 " } }, 0, "DEVPATH missing or malformed" },
		{ { { "ACTION=add", "DEVPATH=/devices/x/3-4/" } }, 0, "DEVPATH missing or malformed" },
		{ { { "ACTION=add", "DEVPATH=/devices/x/3-4\n" } }, 0, "DEVPATH missing or malformed" },
		{ { { "ACTION=add", "DEVPATH=/devices/x/3-x" } }, 0, "DEVPATH does not end in a USB port" },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct uevent ev;
		struct env env = cases[i].env;
		const char *reason = NULL;
		int r = uevent_parse(lookup, &env, &ev, &reason);

		if (r != cases[i].handled)
			fail_msg("case %zu: got %d (%s)", i, r, reason ? reason : "");
		if (!cases[i].handled)
			assert_string_equal(reason, cases[i].reason);
	}
}

static void test_fields(void **state)
{
	struct env e = { { "ACTION=remove", "DEVPATH=" DEV, "PRODUCT=46d/c52b/1201", "TYPE=0/0/0" } };
	struct uevent ev;
	const char *reason;
	(void)state;

	assert_int_equal(uevent_parse(lookup, &e, &ev, &reason), 1);
	assert_int_equal(ev.action, UEVENT_REMOVE);
	assert_int_equal(ev.port.bus, 3);
	assert_int_equal(ev.port.depth, 2);
	assert_true(ev.have_ids);
	assert_int_equal(ev.vid, 0x046d);
	assert_int_equal(ev.pid, 0xc52b);
	assert_int_equal(ev.dev_class, 0);
	assert_string_equal(ev.devpath, DEV);
}

static void test_bad_product_is_only_ignored(void **state)
{
	static const char *const bad[] = { "PRODUCT=", "PRODUCT=x/y/z", "PRODUCT=12345/1/1",
					   "PRODUCT=46d", "PRODUCT=46d/", "PRODUCT=/1/1",
					   "PRODUCT=46d/+1/1", "PRODUCT=0x46d/1/1", "PRODUCT=46d/c52b0/1",
					   "PRODUCT=46d//1", "PRODUCT=-1/1/1" };
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct env e = { { "ACTION=add", "DEVPATH=" DEV, bad[i] } };
		struct uevent ev;
		const char *reason;

		assert_int_equal(uevent_parse(lookup, &e, &ev, &reason), 1);
		assert_false(ev.have_ids);
	}
}

/* PRODUCT is not zero padded: 1 to 4 hex digits each, either case. */
static void test_products(void **state)
{
	static const struct {
		const char *product;
		unsigned vid, pid;
	} cases[] = {
		{ "PRODUCT=46d/c52b/1201", 0x046d, 0xc52b },
		{ "PRODUCT=0/1/0", 0, 1 },
		{ "PRODUCT=046D/C52B/", 0x046d, 0xc52b },
		{ "PRODUCT=ffff/fFfF/x", 0xffff, 0xffff },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct env e = { { "ACTION=add", "DEVPATH=" DEV, cases[i].product } };
		struct uevent ev;
		const char *reason;

		assert_int_equal(uevent_parse(lookup, &e, &ev, &reason), 1);
		assert_true(ev.have_ids);
		assert_int_equal(ev.vid, cases[i].vid);
		assert_int_equal(ev.pid, cases[i].pid);
	}
}

static void test_long_devpath(void **state)
{
	char big[UEVENT_DEVPATH_MAX + 20] = "DEVPATH=/devices/";
	struct env e = { { "ACTION=add", big } };
	struct uevent ev;
	const char *reason;
	(void)state;

	memset(big + strlen(big), 'a', sizeof(big) - strlen(big) - 5);
	memcpy(big + sizeof(big) - 5, "/3-4", 5);
	assert_int_equal(uevent_parse(lookup, &e, &ev, &reason), 0);
	assert_string_equal(reason, "DEVPATH missing or malformed");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_bad_product_is_only_ignored),
		cmocka_unit_test(test_products),
		cmocka_unit_test(test_long_devpath),
	};
	return cmocka_run_group_tests_name("uevent", tests, NULL, NULL);
}
