/* libFuzzer: a port hint as any bytes (the file lives in a root-only
 * directory, but a parser never trusts a file). Whatever parses must be a
 * set the placement can use: controllers within bounds, devices on a
 * controller of the set, and a hint written from it parses to the same. */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guests/xhci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xhci_set set, again;
	size_t ci;
	unsigned port;

	if (xhci_hint_parse((const char *)data, size, "1:2", false, &set) < 0)
		return 0;
	assert(set.n <= XHCI_MAX_CTRLS && set.n_devs <= XHCI_MAX_DEVS);
	for (size_t i = 0; i < set.n_devs; i++)
		assert(set.devs[i].ctrl == XHCI_NO_CTRL || set.devs[i].ctrl < set.n);
	for (int ss = 0; ss < 2; ss++)
		if (xhci_pick(&set, ss, &ci, &port) == 0)
			assert(ci < set.n && port >= 1 && port <= XHCI_MAX_PORTS);

	/* written out (as the program does) and read back: the same set */
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	char name[PORT_STRLEN];

	fprintf(f, "stamp 1:2\n");
	for (size_t i = 0; i < set.n; i++)
		fprintf(f, "ctrl %s %u %u %x\n", set.c[i].id, set.c[i].p2, set.c[i].p3, set.c[i].taken);
	for (size_t i = 0; i < set.n_devs; i++) {
		port_format(&set.devs[i].port, name, sizeof(name));
		if (set.devs[i].ctrl == XHCI_NO_CTRL)
			fprintf(f, "dev %s - 0 %x %x\n", name, set.devs[i].vid, set.devs[i].pid);
		else
			fprintf(f, "dev %s %u %u %x %x\n", name, set.devs[i].ctrl, set.devs[i].guest_port,
				set.devs[i].vid, set.devs[i].pid);
	}
	fclose(f);
	assert(xhci_hint_parse(text, len, "1:2", false, &again) == 0);
	assert(again.n == set.n && again.n_devs == set.n_devs);
	free(text);
	return 0;
}
