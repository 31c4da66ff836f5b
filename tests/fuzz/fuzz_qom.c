/* libFuzzer: what QEMU answers to the questions about its controllers and
 * devices (xhci_load: qom-list, then a batch of qom-get), as any bytes
 * after a well-formed greeting. The answers carry ids 2, 3, ... as QEMU's
 * would (1 is qmp_capabilities), so the seeds reach the parsing of the
 * values. Whatever comes, the set is within bounds. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "guests/xhci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char greeting[] = "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n"
				       "{\"return\": {}, \"id\": 1}\n";
	struct qmp *q = NULL;
	struct xhci_set set = { 0 };
	int sv[2];

	if (size > 100000 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	if (write(sv[1], greeting, sizeof(greeting) - 1) != (ssize_t)sizeof(greeting) - 1 ||
	    write(sv[1], data, size) != (ssize_t)size) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	shutdown(sv[1], SHUT_WR);
	if (qmp_open_fd(sv[0], 1000, 0, &q) == 0) {
		if (xhci_load(q, false, &set) == 0) {
			size_t ci;
			unsigned port;

			assert(set.n <= XHCI_MAX_CTRLS && set.n_devs <= XHCI_MAX_DEVS);
			for (size_t i = 0; i < set.n; i++)
				assert(set.c[i].p2 <= XHCI_MAX_PORTS && set.c[i].p3 <= XHCI_MAX_PORTS);
			if (xhci_pick(&set, false, &ci, &port) == 0)
				assert(ci < set.n && port >= 1 && port <= XHCI_MAX_PORTS);
		}
		qmp_close(q);
	}
	close(sv[1]);
	return 0;
}
