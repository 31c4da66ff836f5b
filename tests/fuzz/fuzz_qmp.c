/* libFuzzer: whatever a QMP peer may send, as the reader gets it from a
 * socket: the greeting, the answer to qmp_capabilities, then answers to
 * two commands. The peer has closed its end, so nothing waits. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "guests/qmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qmp *q = NULL;
	json_t *ret = NULL;
	int sv[2];

	/* more than a socket buffer would block the write; the framing of
	 * long lines is covered by the unit tests */
	if (size > 100000 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	if (write(sv[1], data, size) != (ssize_t)size) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	shutdown(sv[1], SHUT_WR);
	if (qmp_open_fd(sv[0], 1000, 0, &q) == 0) {
		if (qmp_execute(q, "qom-list", json_pack("{s:s}", "path", "/machine/peripheral"), &ret) == 0)
			json_decref(ret);
		(void)qmp_error_desc(q);
		(void)qmp_execute(q, "device_del", json_pack("{s:s}", "id", "usbhost3-4"), NULL);
		qmp_close(q);
	}
	close(sv[1]);
	return 0;
}
