/* Whether a process has a device open is told without ever waiting for a
 * remote file system: a file of a dead NFS or CIFS server that some process
 * has open must not hang the run in uninterruptible sleep. Stood in for by
 * a FUSE file system of this test's own whose every GETATTR after the open
 * blocks forever (needs root and /dev/fuse; skipped otherwise). */
#define FUSE_USE_VERSION 31

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"
#include "host/vmproc.h"

static volatile int opened;

static int hang_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	memset(st, 0, sizeof(*st));
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	if (strcmp(path, "/f") != 0)
		return -ENOENT;
	while (opened) /* the server is gone: nobody ever answers */
		pause();
	st->st_mode = S_IFREG | 0644;
	st->st_nlink = 1;
	return 0;
}

static int hang_open(const char *path, struct fuse_file_info *fi)
{
	(void)fi;
	if (strcmp(path, "/f") != 0)
		return -ENOENT;
	opened = 1;
	return 0;
}

static const struct fuse_operations hang_ops = {
	.getattr = hang_getattr,
	.open = hang_open,
};

/* Runs the file system on mnt in a child (foreground, one thread, no
 * attribute caching: every stat asks the server). */
static pid_t serve(const char *mnt)
{
	pid_t pid = fork();

	if (pid == 0) {
		char name[] = "hangfs", fg[] = "-f", single[] = "-s", o[] = "-o",
		     opts[] = "attr_timeout=0,entry_timeout=0", where[64];
		char *argv[] = { name, fg, single, o, opts, where, NULL };

		snprintf(where, sizeof(where), "%s", mnt);

		_exit(fuse_main(6, argv, &hang_ops, NULL));
	}
	return pid;
}

static bool mounted(const char *mnt)
{
	struct stat a, b;
	char parent[256];

	snprintf(parent, sizeof(parent), "%s/..", mnt);
	return stat(mnt, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

static void test_open_file_on_a_dead_server_does_not_hang(void **state)
{
	char mnt[] = "/tmp/puh-hangfs-XXXXXX", file[64];
	pid_t server, checker;
	int fd, status = 0, waited_ms = 0;
	(void)state;

	if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) < 0) {
		skip();
		return;
	}
	assert_non_null(mkdtemp(mnt));
	server = serve(mnt);
	assert_true(server > 0);
	for (int i = 0; i < 500 && !mounted(mnt); i++)
		usleep(10000);
	assert_true(mounted(mnt));
	snprintf(file, sizeof(file), "%s/f", mnt);
	fd = open(file, O_RDONLY | O_CLOEXEC); /* what some VM's backup job has open */
	assert_true(fd >= 0);

	/* looked for among this process's files, as the held ports and the
	 * disk code look at QEMU's and every other process's */
	checker = fork();
	if (checker == 0)
		_exit(vmproc_has_open((unsigned long)getppid(), S_IFCHR, makedev(4000, 4000)) == 0 ? 0 : 1);
	while (waitpid(checker, &status, WNOHANG) == 0 && waited_ms < 5000) {
		usleep(10000);
		waited_ms += 10;
	}
	/* The server goes first: a request it has read ends only with an
	 * answer or the end of the connection, whatever signal the waiting
	 * process gets; and close() would wait for it too. */
	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
	if (waited_ms >= 5000)
		waitpid(checker, &status, 0);
	close(fd);
	umount2(mnt, MNT_DETACH);
	rmdir(mnt);
	assert_true(waited_ms < 5000); /* it did not hang */
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The device itself is still found: this process's own /dev/null. */
static void test_a_device_node_is_found(void **state)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	struct stat st;
	(void)state;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(vmproc_has_open((unsigned long)getpid(), S_IFCHR, st.st_rdev), 1);
	assert_int_equal(vmproc_has_open((unsigned long)getpid(), S_IFBLK, st.st_rdev), 0);
	close(fd);
}

/* Xen's device model (and any QEMU) is found by its command line naming
 * the QMP socket, without a connect() to it. */
static void test_cmdline_socket(void **state)
{
	static const char xen[] = "/usr/lib/xen/bin/qemu-system-i386\0-xen-domid\0007\0-chardev\0"
				  "socket,id=libxl-cmd,path=/var/run/xen/qmp-libxl-7,server=on,wait=off\0"
				  "-name\0win10\0";
	static const char plain[] = "qemu-system-x86_64\0-name\0guest=lab,debug-threads=on\0-qmp\0"
				    "unix:/tmp/q/desk.qmp,server=on,wait=off\0";
	char name[32];
	(void)state;

	assert_true(vmproc_cmdline_socket(xen, sizeof(xen) - 1, "/var/run/xen/qmp-libxl-7", name,
					  sizeof(name)));
	assert_string_equal(name, "win10");
	/* qmp-libxl-7 is not qmp-libxl-70, nor a prefix of another path */
	assert_false(vmproc_cmdline_socket(xen, sizeof(xen) - 1, "/var/run/xen/qmp-libxl-70", name,
					   sizeof(name)));
	assert_false(vmproc_cmdline_socket(xen, sizeof(xen) - 1, "/var/run/xen/qmp-libxl", name,
					   sizeof(name)));
	assert_true(vmproc_cmdline_socket(plain, sizeof(plain) - 1, "/tmp/q/desk.qmp", name,
					  sizeof(name)));
	assert_string_equal(name, "lab");
	/* a cut read: the last argument without its NUL is not looked at */
	assert_false(vmproc_cmdline_socket(plain, sizeof(plain) - 3, "/tmp/q/desk.qmp", name,
					   sizeof(name)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_device_node_is_found),
		cmocka_unit_test(test_cmdline_socket),
		cmocka_unit_test(test_open_file_on_a_dead_server_does_not_hang),
	};
	return cmocka_run_group_tests_name("vmproc", tests, NULL, NULL);
}
