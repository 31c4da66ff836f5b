/* maxrss PROGRAM [ARG...]: runs PROGRAM and prints its peak resident set
 * size as the last line of stderr ("MAXRSS <KiB>"). Forked from this small
 * process, not from the benchmark's Python, whose pages would otherwise be
 * counted: Linux keeps the high-water mark across exec. */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct rusage ru;
	int status;
	pid_t pid;

	if (argc < 2)
		return 2;
	pid = fork();
	if (pid == 0) {
		execvp(argv[1], argv + 1);
		_exit(127);
	}
	if (pid < 0 || wait4(pid, &status, 0, &ru) < 0)
		return 2;
	fprintf(stderr, "MAXRSS %ld\n", ru.ru_maxrss);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}
