/* umockdev-plug TREE NEWDEV MARKER -- PROGRAM [ARG...]
 *
 * Runs PROGRAM on the umockdev tree TREE, and once PROGRAM has printed a
 * line containing MARKER (it is listening now) "plugs in" the devices of
 * NEWDEV (a .umockdev file too): they appear in the fake sysfs and udev
 * announces the first one with an "add" event, as the kernel and udev
 * would. PROGRAM's output is passed on; exits with its exit status. For testing 'identify',
 * which waits on a udev monitor: umockdev-run alone cannot send events.
 * Run it under umockdev-wrapper: the testbed's own udev calls, like the
 * program's, must see the fake sysfs. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <umockdev.h>
#include <unistd.h>

/* "/sys" + the first "P: " path of the file */
static char *first_syspath(const char *file)
{
	char line[4096];
	FILE *f = fopen(file, "r");
	char *ret = NULL;

	if (!f)
		return NULL;
	while (!ret && fgets(line, sizeof(line), f))
		if (strncmp(line, "P: ", 3) == 0) {
			line[strcspn(line, "\n")] = '\0';
			if (asprintf(&ret, "/sys%s", line + 3) < 0)
				ret = NULL;
		}
	fclose(f);
	return ret;
}

int main(int argc, char **argv)
{
	UMockdevTestbed *tb;
	GError *err = NULL;
	char *syspath, line[4096];
	int out[2], plugged = 0;
	FILE *child_out;
	const char *old;
	int status;
	pid_t pid;

	if (argc < 6 || strcmp(argv[4], "--") != 0) {
		fprintf(stderr, "usage: umockdev-plug TREE NEWDEV MARKER -- PROGRAM [ARG...]\n");
		return 2;
	}
	tb = umockdev_testbed_new(); /* sets UMOCKDEV_DIR for the child */
	if (!umockdev_testbed_add_from_file(tb, argv[1], &err)) {
		fprintf(stderr, "umockdev-plug: %s: %s\n", argv[1], err->message);
		return 2;
	}
	syspath = first_syspath(argv[2]);
	if (!syspath) {
		fprintf(stderr, "umockdev-plug: %s: no device in it\n", argv[2]);
		return 2;
	}
	old = getenv("LD_PRELOAD");
	if (!old || !strstr(old, "libumockdev-preload")) {
		fprintf(stderr, "umockdev-plug: run it under umockdev-wrapper\n");
		return 2;
	}

	if (pipe(out) < 0)
		return 2;
	pid = fork();
	if (pid == 0) {
		dup2(out[1], STDOUT_FILENO);
		close(out[0]);
		close(out[1]);
		execvp(argv[5], argv + 5);
		perror(argv[5]);
		_exit(127);
	}
	close(out[1]);
	child_out = fdopen(out[0], "r");
	while (child_out && fgets(line, sizeof(line), child_out)) {
		fputs(line, stdout);
		fflush(stdout);
		if (!plugged && strstr(line, argv[3])) {
			if (!umockdev_testbed_add_from_file(tb, argv[2], &err)) {
				fprintf(stderr, "umockdev-plug: %s: %s\n", argv[2], err->message);
				return 2;
			}
			umockdev_testbed_uevent(tb, syspath, "add");
			plugged = 1;
		}
	}
	if (waitpid(pid, &status, 0) < 0)
		return 2;
	g_object_unref(tb);
	free(syspath);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
