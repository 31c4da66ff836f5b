/* Which running VM gets a device. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "log.h"
#include "policy.h"

static bool running_set(unsigned long vmid, void *ud)
{
	const unsigned long *up = ud;

	for (; *up; up++)
		if (*up == vmid)
			return true;
	return false;
}

static struct vm_rules *rules(unsigned long vmid, const char *text)
{
	struct vm_rules *r;

	assert_int_equal(usbconf_parse_text(text, strlen(text), "t", vmid, &r), 0);
	return r;
}

static void test_pick(void **state)
{
	struct vm_rules *vms[3];
	const struct vm_rules *w = NULL, *rival = NULL;
	unsigned long all[] = { 100, 101, 102, 0 }, not101[] = { 100, 102, 0 }, none[] = { 0 };
	struct usb_port p;
	(void)state;

	vms[0] = rules(100, "3-4\n");
	vms[1] = rules(101, "3-4.2\n");
	vms[2] = rules(102, "3-4\n5-1\n");

	assert_int_equal(port_parse("3-4.2.1", &p), 0);
	assert_int_equal(policy_pick(vms, 3, &p, running_set, all, &w, &rival), 1);
	assert_int_equal(w->vmid, 101);
	/* 101 stopped: 100 and 102 tie */
	assert_int_equal(policy_pick(vms, 3, &p, running_set, not101, &w, &rival), -EBUSY);
	assert_int_equal(w->vmid, 100);
	assert_int_equal(rival->vmid, 102);
	assert_int_equal(policy_pick(vms, 3, &p, running_set, none, &w, &rival), 0);

	assert_int_equal(port_parse("5-1.7", &p), 0);
	assert_int_equal(policy_pick(vms, 3, &p, running_set, all, &w, &rival), 1);
	assert_int_equal(w->vmid, 102);
	assert_int_equal(port_parse("5-10", &p), 0);
	assert_int_equal(policy_pick(vms, 3, &p, running_set, all, &w, &rival), 0);

	for (int i = 0; i < 3; i++)
		usbconf_free(vms[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pick),
	};
	log_setup(LOG_LVL_ERROR, NULL, 0);
	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
