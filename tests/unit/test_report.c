/* A report keeps what library code has to say, in order, until the caller
 * says it: then each line is logged once, at its level, and the report is
 * empty. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/report.h"

static void test_notes_in_order_said_once(void **state)
{
	struct report rep = { 0 };
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	(void)state;

	assert_non_null(f);
	log_setup(LOG_LVL_INFO, f, 0);
	report_add(&rep, LOG_LVL_INFO, "VM %d: attached %s", 100, "3-4");
	report_add(&rep, LOG_LVL_DEBUG, "not shown at info level");
	report_add(&rep, LOG_LVL_INFO, "VM %d: detached %s", 100, "3-4");
	assert_int_equal(rep.n, 3);
	assert_int_equal(rep.notes[1].level, LOG_LVL_DEBUG);
	fflush(f);
	assert_int_equal(len, 0); /* nothing said yet */
	report_say(&rep);
	assert_int_equal(rep.n, 0);
	assert_null(rep.notes);
	report_say(&rep); /* said once */
	fclose(f);
	assert_string_equal(out, "pve-usb-hotplug: VM 100: attached 3-4\n"
				 "pve-usb-hotplug: VM 100: detached 3-4\n");
	free(out);
	log_setup(LOG_LVL_INFO, NULL, 0);
}

static void test_err_and_null(void **state)
{
	struct report rep = { 0 };
	(void)state;

	log_setup(LOG_LVL_ERROR, NULL, 0);
	assert_int_equal(report_err(&rep, -ENOENT, "x"), -ENOENT);
	assert_int_equal(report_err(&rep, ENOENT, "x"), -ENOENT);
	/* an error is never success */
	assert_int_equal(report_err(&rep, 0, "x"), -EIO);
	assert_int_equal(rep.n, 3);
	assert_int_equal(rep.notes[0].level, LOG_LVL_ERROR);
	report_clear(&rep);
	assert_int_equal(rep.n, 0);
	/* nobody to say it to: debug, and no harm */
	report_add(NULL, LOG_LVL_ERROR, "nobody asked");
	assert_int_equal(report_err(NULL, -EIO, "nobody asked"), -EIO);
	report_say(NULL);
	report_clear(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_notes_in_order_said_once),
		cmocka_unit_test(test_err_and_null),
	};
	return cmocka_run_group_tests_name("report", tests, NULL, NULL);
}
