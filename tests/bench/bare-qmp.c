/* The yardstick for make bench: the bare QMP exchange a hot-plug needs and
 * nothing else. No config, no sysfs, no lock, no checks.
 *
 *   bare-qmp SOCKET                       connect, negotiate, leave
 *   bare-qmp SOCKET add BUS PORT GBUS GPORT...
 *                                         device_add usb-host for each
 *   bare-qmp SOCKET del ID...             device_del each
 *   bare-qmp none                         start and exit */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char buf[65536];
static size_t have;

/* Reads until a line with "return" or "error" (skipping the greeting and
 * events) when want_answer, else one line. */
static int read_line(int fd, int want_answer)
{
	for (;;) {
		char *nl;

		while (!(nl = memchr(buf, '\n', have))) {
			ssize_t n = read(fd, buf + have, sizeof(buf) - have);

			if (n <= 0)
				return -1;
			have += (size_t)n;
		}
		size_t l = (size_t)(nl - buf) + 1;
		int answer = memmem(buf, l, "\"return\"", 8) || memmem(buf, l, "\"error\"", 7);

		memmove(buf, buf + l, have - l);
		have -= l;
		if (!want_answer || answer)
			return 0;
	}
}

static int cmd(int fd, const char *text)
{
	size_t len = strlen(text);

	if (write(fd, text, len) != (ssize_t)len)
		return -1;
	return read_line(fd, 1);
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char line[512];
	int fd;

	if (argc < 2 || strcmp(argv[1], "none") == 0)
		return 0;
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || read_line(fd, 0) < 0 ||
	    cmd(fd, "{\"execute\":\"qmp_capabilities\"}\n") < 0)
		return 1;
	if (argc >= 7 && strcmp(argv[2], "add") == 0) {
		for (int i = 3; i + 3 < argc; i += 4) {
			snprintf(line, sizeof(line),
				 "{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"usb-host\","
				 "\"id\":\"usbhost%s-%s\",\"hostbus\":%s,\"hostport\":\"%s\","
				 "\"bus\":\"%s\",\"port\":\"%s\"}}\n",
				 argv[i], argv[i + 1], argv[i], argv[i + 1], argv[i + 2], argv[i + 3]);
			if (cmd(fd, line) < 0)
				return 1;
		}
	} else if (argc >= 4 && strcmp(argv[2], "del") == 0) {
		for (int i = 3; i < argc; i++) {
			snprintf(line, sizeof(line),
				 "{\"execute\":\"device_del\",\"arguments\":{\"id\":\"%s\"}}\n", argv[i]);
			if (cmd(fd, line) < 0)
				return 1;
		}
	}
	close(fd);
	return 0;
}
