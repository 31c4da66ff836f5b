/* A container's device node is made below its init's root one name at a
 * time, never through a link: stood in for by this process (its root is the
 * host's /) and a scratch directory whose "dev" a container's root would
 * control. Making nodes needs root; those tests are skipped otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "host/devnode.h"

static struct devnode_proc self(void)
{
	struct devnode_proc p = { .pid = getpid() };

	assert_int_equal(devnode_proc_starttime(p.pid, &p.starttime, NULL), 0);
	return p;
}

static void test_starttime_and_parent(void **state)
{
	uint64_t start;
	pid_t ppid;

	(void)state;
	assert_int_equal(devnode_proc_starttime(getpid(), &start, &ppid), 0);
	assert_int_equal(ppid, getppid());
	assert_true(start > 0);
	assert_int_equal(devnode_proc_starttime(0x7ffffff0, &start, NULL), -ESRCH);
}

static void test_read_proc(void **state)
{
	char buf[8];
	size_t len;

	(void)state;
	/* /proc says size 0: read to the end, cut to the buffer */
	assert_int_equal(devnode_read_proc("/proc/self/status", buf, sizeof(buf), &len), 0);
	assert_int_equal(len, sizeof(buf) - 1);
	assert_memory_equal(buf, "Name:\t", 6);
}

static void test_root_id_of_the_hosts_own(void **state)
{
	struct devnode_proc p = self();
	unsigned long id = 1;

	(void)state;
	assert_int_equal(devnode_root_id(&p, false, &id), 0);
	assert_int_equal(id, 0);
	assert_int_equal(devnode_in_own_userns(&p), 0);
	/* a pid that is not the process it was: refused */
	p.starttime++;
	assert_int_equal(devnode_root_id(&p, true, &id), -ESRCH);
}

/* A scratch directory in $TMPDIR (or /tmp), its path in buf (n bytes). */
static char *scratch(char *buf, size_t n, const char *what)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(buf, n, "%s/devnode-%s-XXXXXX", tmp && tmp[0] == '/' ? tmp : "/tmp", what);
	assert_non_null(mkdtemp(buf));
	return buf;
}

static void test_make_and_remove(void **state)
{
	char tmpl[256], rel[320], path[340];
	struct devnode n = { .major = 1, .minor = 3, .mode = 0640, .uid = 0, .gid = 0 };
	struct devnode_proc p = self();
	struct stat st;

	(void)state;
	if (geteuid() != 0)
		skip();
	/* below / without its leading slash */
	snprintf(rel, sizeof(rel), "%s/dev/bus/usb/003/002", scratch(tmpl, sizeof(tmpl), "ct") + 1);
	assert_int_equal(devnode_make(&p, rel, &n), 0);
	snprintf(path, sizeof(path), "/%s", rel);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(st.st_rdev, makedev(1, 3));
	assert_int_equal(st.st_mode & 07777, 0640);
	/* again: made right, not refused */
	n.mode = 0664;
	assert_int_equal(devnode_make(&p, rel, &n), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0664);
	/* another device's numbers: left alone */
	assert_int_equal(devnode_remove(&p, rel, 1, 5), 1);
	assert_int_equal(devnode_remove(&p, rel, 1, 3), 0);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(devnode_remove(&p, rel, 1, 3), 1);
	snprintf(path, sizeof(path), "rm -rf '%s'", tmpl);
	assert_int_equal(system(path), 0);
}

static void test_a_link_on_the_way_is_refused(void **state)
{
	char tmpl[256], outside[256], rel[320], path[600];
	struct devnode n = { .major = 1, .minor = 3, .mode = 0666 };
	struct devnode_proc p = self();

	(void)state;
	if (geteuid() != 0)
		skip();
	scratch(tmpl, sizeof(tmpl), "ct");
	scratch(outside, sizeof(outside), "out");
	/* the container's root points its /dev/bus elsewhere */
	snprintf(path, sizeof(path), "%s/dev", tmpl);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/dev/bus", tmpl);
	assert_int_equal(symlink(outside, path), 0);
	snprintf(rel, sizeof(rel), "%s/dev/bus/usb/003/002", tmpl + 1);
	assert_int_equal(devnode_make(&p, rel, &n), -ELOOP);
	snprintf(path, sizeof(path), "%s/usb", outside);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "rm -rf '%s' '%s'", tmpl, outside);
	assert_int_equal(system(path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_starttime_and_parent),
		cmocka_unit_test(test_read_proc),
		cmocka_unit_test(test_root_id_of_the_hosts_own),
		cmocka_unit_test(test_make_and_remove),
		cmocka_unit_test(test_a_link_on_the_way_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
